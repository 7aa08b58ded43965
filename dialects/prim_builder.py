"""``PrimBuilder``: terse construction of ``prim`` ops at the current insertion point.

Used by lowerings into ``prim`` (``nn-to-prim``, the StableHLO raising)::

    with rewriter.ip, op.location:
        b = PrimBuilder()
        y = b.map("add", b.broadcast_to(x, shape), bias)
"""

from __future__ import annotations

import numpy as np

from stepwell.core.ir import arith, ir
from stepwell.core.opspec import lookup
from stepwell.core.types import TensorType, is_float


def ttype(value) -> TensorType:
    return TensorType.from_mlir(value.type)


class PrimBuilder:
    def _op(self, name, *operands, result_type=None, **attrs):
        return lookup(name).build(*operands, result_type=result_type, **attrs)

    # -- constants ------------------------------------------------------------
    def splat(self, value, t: TensorType):
        """``arith.constant dense<value> : t``."""
        elem = t.to_mlir().element_type
        attr = (ir.FloatAttr.get(elem, float(value)) if is_float(t.dtype)
                else ir.IntegerAttr.get(elem, int(value)))
        return arith.ConstantOp(t.to_mlir(), ir.DenseElementsAttr.get_splat(t.to_mlir(), attr)).result

    def like(self, value, x):
        """A splat constant of ``value`` with the type of ``x``."""
        return self.splat(value, ttype(x))

    def lowest(self, t: TensorType):
        """The most negative finite value of ``t``'s element type (a safe -inf for masking)."""
        from stepwell.core.types import numpy_dtype
        dt = numpy_dtype(t.dtype)
        return self.splat(float(np.finfo(dt).min) if is_float(t.dtype) else int(np.iinfo(dt).min), t)

    # -- prim ops ---------------------------------------------------------------
    def map(self, fn: str, *xs):
        return self._op("prim.map", *xs, fn=fn)

    def contract(self, a, b, spec: str, dtype: str | None = None):
        rt = None
        if dtype is not None:
            from stepwell.dialects.prim import parse_contract_spec
            lhs, rhs, out = parse_contract_spec(spec)
            sizes = dict(zip(lhs, ttype(a).shape)) | dict(zip(rhs, ttype(b).shape))
            rt = TensorType(tuple(sizes[c] for c in out), dtype)
        return self._op("prim.contract", a, b, spec=spec, result_type=rt)

    def reduce(self, x, kind: str, axes):
        return self._op("prim.reduce", x, kind=kind, axes=list(axes))

    def transpose(self, x, perm):
        perm = list(perm)
        return x if perm == sorted(perm) else self._op("prim.transpose", x, permutation=perm)

    def reshape(self, x, shape):
        t = ttype(x)
        return x if tuple(shape) == t.shape else self._op("prim.reshape", x, result_type=t.with_shape(shape))

    def cast(self, x, dtype: str):
        t = ttype(x)
        return x if t.dtype == dtype else self._op("prim.cast", x, result_type=t.with_dtype(dtype))

    def broadcast(self, x, dims, shape):
        t = ttype(x)
        if tuple(shape) == t.shape:
            return x
        return self._op("prim.broadcast", x, dims=list(dims), result_type=t.with_shape(shape))

    def iota(self, shape, dim: int, dtype: str = "i64"):
        return self._op("prim.iota", dim=dim, result_type=TensorType(tuple(shape), dtype))

    # -- composites -----------------------------------------------------------
    def broadcast_to(self, x, shape):
        """Numpy-style broadcast of ``x`` to ``shape``: drop stretched 1-dims, add dims."""
        t = ttype(x)
        shape = tuple(shape)
        if t.shape == shape:
            return x
        offset = len(shape) - t.rank
        keep = [i for i, d in enumerate(t.shape) if d == shape[offset + i]]
        x = self.reshape(x, [t.shape[i] for i in keep])
        return self.broadcast(x, [offset + i for i in keep], shape)

    def restore_axes(self, reduced, axes, shape):
        """Broadcast a reduction result back over the reduced ``axes`` of ``shape``."""
        kept = [i for i in range(len(shape)) if i not in axes]
        return self.broadcast(reduced, kept, shape)
