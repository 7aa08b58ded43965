"""MoE rules of ``stablehlo-to-nn`` (docs/moe.md): one op each for top-k, ragged dots
and prefix sums; the DAGs of the masked ragged dot and of MoE layers in
``_stablehlo_moe_layers.py``.

* ``chlo.top_k`` and ``stablehlo.composite "chlo.top_k"`` (``jax.export``) -> ``nn.top_k``;
* ``chlo.ragged_dot`` and its composite, in ``jax.lax.ragged_dot``'s form (rows ragged,
  groups the weight's first dimension) -> ``nn.grouped_matmul``;
* ``jnp.cumsum``'s ``reduce_window`` (add over the whole axis, padded before) ->
  ``prim.scan``.

Each rule is ``rule(op, b) -> value | tuple | None`` like the primitive rules.
"""

from __future__ import annotations

import re

import numpy as np

from stepwell.core.ir import ir
from stepwell.passes._stablehlo_match import attr, shape, splat, ttype
from stepwell.passes._stablehlo_raise import _reduce_body


def _composite_attrs(op) -> dict:
    attrs = ir.DictAttr(op.attributes["composite_attributes"])
    return {a.name: a.attr for a in attrs}


def _top_k(b, x, k):
    if k is None or ttype(x).rank < 1 or not 1 <= k <= shape(x)[-1]:
        return None
    return b.nn("top_k", x, k=k)


# chlo.top_k(x, k) -> nn.top_k (values, i32 indices).
def chlo_top_k(op, b):
    if ttype(op.results[1]).dtype != "i32":
        return None
    return _top_k(b, op.operands[0], attr(op, "k"))


# [lhs batch, rhs batch, lhs contracting, rhs contracting, lhs ragged, rhs group] of
# jax.lax.ragged_dot: no batch, rows ragged, the weight's dim 0 the group.
_RAGGED_DOT = ([], [], [1], [1], [0], [0])


def _grouped(b, op, dims):
    x, w, sizes = op.operands
    if tuple(map(list, dims)) != _RAGGED_DOT or ttype(x).rank != 2 or ttype(w).rank != 3:
        return None
    if len({ttype(v).dtype for v in (x, w, op.results[0])}) != 1:
        return None
    return b.nn("grouped_matmul", x, w, sizes)


# chlo.ragged_dot in lax.ragged_dot's form -> nn.grouped_matmul.
def chlo_ragged_dot(op, b):
    text = str(op.attributes["ragged_dot_dimension_numbers"])
    field = lambda name: [int(v) for v in re.findall(r"\d+", (re.search(rf"{name} = \[([^\]]*)\]", text)  # noqa: E731
                                                           or re.search("()", ""))[1])]
    dims = [field(n) for n in ("lhs_batching_dimensions", "rhs_batching_dimensions", "lhs_contracting_dimensions",
                               "rhs_contracting_dimensions", "lhs_ragged_dimensions", "rhs_group_dimensions")]
    return _grouped(b, op, dims)


# stablehlo.composite "chlo.top_k" / "chlo.ragged_dot" (jax.export) -> nn.top_k / nn.grouped_matmul.
def composite(op, b):
    name = ir.StringAttr(op.attributes["name"]).value
    attrs = _composite_attrs(op)
    if name == "chlo.top_k" and len(op.results) == 2 and ttype(op.results[1]).dtype == "i32":
        k = attrs.get("k")
        return _top_k(b, op.operands[0], ir.IntegerAttr(k).value if k is not None else None)
    if name == "chlo.ragged_dot" and "ragged_dot_dimension_numbers" in attrs:
        dims = [np.asarray(ir.DenseIntElementsAttr(a)).reshape(-1).tolist()
                for a in ir.ArrayAttr(attrs["ragged_dot_dimension_numbers"])]
        return _grouped(b, op, dims)
    return None


# reduce_window(add) over a whole axis padded before it (jnp.cumsum on CPU) -> prim.scan.
def cumsum(op, b):
    if len(op.operands) != 2 or _reduce_body(op) != "stablehlo.add" or splat(op.operands[1]) != 0:
        return None
    x = op.operands[0]
    dims = list(attr(op, "window_dimensions"))
    axes = [i for i, d in enumerate(dims) if d != 1]
    if len(axes) != 1:
        return None
    axis, n = axes[0], shape(x)[axes[0]]
    for name in ("window_strides", "base_dilations", "window_dilations"):
        if name in op.attributes and any(v != 1 for v in attr(op, name)):
            return None
    pad = np.asarray(ir.DenseIntElementsAttr(op.attributes["padding"])).tolist() if "padding" in op.attributes else []
    want = [[n - 1, 0] if i == axis else [0, 0] for i in range(len(dims))]
    if dims[axis] != n or pad != want:
        return None
    return b._op("prim.scan", x, axis=axis)


RULES = {
    "chlo.top_k": chlo_top_k,
    "chlo.ragged_dot": chlo_ragged_dot,
    "stablehlo.composite": composite,
    "stablehlo.reduce_window": cumsum,
}
