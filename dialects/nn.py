"""The ``nn`` dialect: model-level ops with numpy/JAX semantics (layouts as in Flax)."""

from __future__ import annotations

import numpy as np

from stepwell.dialects._common import broadcast_shapes, float_type, same_dtype
from stepwell.opspec import Attr, Operand, check, fail, op
from stepwell.types import TensorType


def _matmul_infer(s):
    a, b = s.a, s.b
    dtype = same_dtype(a, b)
    check(a.rank >= 1 and b.rank >= 1, "operands must have rank >= 1")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.rank >= 2 else b.shape[0]
    if ka is not None and kb is not None and ka != kb:
        fail(f"contracting dimensions differ: lhs {a} has {ka}, rhs {b} has {kb}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    shape = batch + (a.shape[-2:-1] if a.rank >= 2 else ()) + (b.shape[-1:] if b.rank >= 2 else ())
    return TensorType(shape, dtype)


op("nn.matmul", "Matrix product with batch broadcasting, like jnp.matmul.",
   operands=["a", "b"], infer=_matmul_infer,
   reference=lambda s, a, b: np.matmul(a, b))

op("nn.relu", "Rectified linear unit: max(x, 0).",
   operands=["x"], infer=lambda s: float_type(s.x),
   reference=lambda s, x: np.maximum(x, 0))

op("nn.softmax", "Softmax along `axis` (subtracts the max for stability).",
   operands=["x"], attrs=[Attr("axis", "i64", -1, "axis to normalize over")],
   infer=lambda s: float_type(s.x),
   reference=lambda s, x: _softmax(x, s.axis))


def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


op("nn.add", "Elementwise a + b with numpy broadcasting.",
   operands=["a", "b"],
   infer=lambda s: TensorType(broadcast_shapes(s.a.shape, s.b.shape), same_dtype(s.a, s.b)),
   reference=lambda s, a, b: a + b)

op("nn.linear", "x @ w + b, with w of shape [in, out] and an optional bias [out].",
   operands=["x", "w", Operand("b", optional=True)],
   infer=lambda s: _matmul_infer(type("S", (), {"a": s.x, "b": s.w})()),
   reference=lambda s, x, w, b: x @ w + (0 if b is None else b))
