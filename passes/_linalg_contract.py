"""prim-to-linalg: a contraction whose free or summed dimensions come in groups, as the
batched matmul IREE's CPU code generation expects.

``prim.contract {spec = "tec,td->ecd"}`` (the dispatch einsum of a capacity-based MoE
layer: rows e, c of the result, summed over t) is not a matmul as written: its result
has two "row" dimensions. As one ``linalg.generic`` it made IREE 3.13's CPU backend
tile both, vectorize the contraction as ``vector<8x8x8xf32>`` operands and fail with
"One or more operations with large vector sizes (16384 bytes) were found". IREE's own
StableHLO input first rewrites every ``dot_general`` into batch/row/column/summed order;
here the same is done: each operand is transposed into (batch, free, summed) order and
reshaped to three dimensions, one ``linalg.batch_matmul`` (``linalg.matmul`` without
batch dimensions) computes, and the result is reshaped and transposed back::

    %0 = "prim.contract"(%d, %x) {spec = "tec,td->ecd"} : (tensor<64x8x20xf32>, tensor<64x32xf32>) -> tensor<8x20x32xf32>
  becomes
    %t = linalg.transpose ins(%d : tensor<64x8x20xf32>) ... permutation = [1, 2, 0]
    %l = tensor.collapse_shape %t [[0, 1], [2]] : tensor<8x20x64xf32> into tensor<160x64xf32>
    %m = linalg.matmul ins(%l, %x : tensor<160x64xf32>, tensor<64x32xf32>) ...
    %0 = tensor.expand_shape %m [[0, 1], [2]] output_shape [8, 20, 32] : tensor<160x32xf32> into tensor<8x20x32xf32>

Contractions with one letter per group (plain matmuls, attention's ``bhqd,bhkd->bhqk``)
keep their single ``linalg.generic`` or named op.
"""

from __future__ import annotations

import math

from stepwell.core.types import TensorType
from stepwell.passes._linalg_shapes import reshape_value


def _transpose(e, value: str, t: TensorType, letters: str, order: list) -> tuple[str, TensorType]:
    perm = [letters.index(c) for c in order]
    if perm == sorted(perm):
        return value, t
    out = t.with_shape(t.shape[p] for p in perm)
    return e(f"linalg.transpose ins({value} : {t}) outs({e.empty(out)} : {out}) "
             f"permutation = [{', '.join(map(str, perm))}]"), out


def grouped_contract(e, lhs: str, rhs: str, out: str, args, a: TensorType, b: TensorType, acc: TensorType):
    """The batched-matmul form of a contraction with a group of two or more row, column or
    summed letters (static shapes), else None."""
    batch = [c for c in out if c in lhs and c in rhs]
    rows = [c for c in lhs if c in out and c not in rhs]
    cols = [c for c in rhs if c in out and c not in lhs]
    summed = [c for c in lhs if c not in out]
    if max(len(rows), len(cols), len(summed)) <= 1 or None in a.shape + b.shape:
        return None
    size = dict(zip(lhs, a.shape)) | dict(zip(rhs, b.shape))
    n = lambda cs: math.prod(size[c] for c in cs)  # noqa: E731
    lead = (n(batch),) if batch else ()
    x, xt = _transpose(e, args[0], a, lhs, batch + rows + summed)
    y, yt = _transpose(e, args[1], b, rhs, batch + summed + cols)
    x3, y3 = xt.with_shape(lead + (n(rows), n(summed))), yt.with_shape(lead + (n(summed), n(cols)))
    x, y = reshape_value(e, x, xt, x3), reshape_value(e, y, yt, y3)
    prod_t = acc.with_shape(lead + (n(rows), n(cols)))
    kind = "batch_matmul" if batch else "matmul"
    init = e.filled(0, prod_t)
    value = e(f"linalg.{kind} ins({x}, {y} : {x3}, {y3}) outs({init} : {prod_t}) -> {prod_t}")
    order = batch + rows + cols
    grouped = acc.with_shape(size[c] for c in order)
    value = reshape_value(e, value, prod_t, grouped)
    value, _ = _transpose(e, value, grouped, "".join(order), list(out))
    return value
