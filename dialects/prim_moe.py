"""``prim`` ops for routed computation (what ``nn.top_k``/``nn.moe_ffn``/``nn.grouped_matmul``
decompose into, docs/moe.md): top-k, prefix sums, row scatters and the block-grouped matmul.

    %v, %i = "prim.top_k"(%x) {k = 2 : i64} : (tensor<16x8xf32>) -> (tensor<16x2xf32>, tensor<16x2xi32>)
    %c = "prim.scan"(%oh) {axis = 0 : i64} : (tensor<32x8xi32>) -> tensor<32x8xi32>
    %s = "prim.scatter"(%init, %idx, %upd) : (tensor<41xi32>, tensor<32xi32>, tensor<32xi32>) -> tensor<41xi32>
    %y = "prim.block_matmul"(%xs, %w, %tiles) {block = 16 : i64}
           : (tensor<128x64xf32>, tensor<8x64x32xf32>, tensor<8xi32>) -> tensor<128x32xf32>

Indices outside the valid range are dropped by ``prim.scatter`` and end the computed
tiles of ``prim.block_matmul``: nothing is read or written out of bounds.
"""

from __future__ import annotations

import numpy as np

from stepwell.dialects._common import dims_agree, norm_axis, shape_agrees, upcast
from stepwell.dialects.nn_moe import top_k_infer, top_k_ref
from stepwell.core.opspec import Attr, Operand, check, op
from stepwell.core.types import TensorType, is_float

op("prim.top_k", "The k largest entries along the last axis (descending, ties to the lower index) and "
   "their i32 indices.", operands=["x"], attrs=[Attr("k", "i64")], infer=top_k_infer, reference=top_k_ref,
   num_results=2)


def _scan_infer(s):
    check(s.x.dtype != "i1", f"x must not be i1, found {s.x}")
    norm_axis(s.axis, s.x.rank)
    return s.x


def _scan_ref(s, x):
    axis = s.axis % x.ndim
    acc = np.cumsum(upcast(x), axis=axis, dtype=np.float64 if is_float(s.x.dtype) else np.int64)
    if s.exclusive:
        acc = acc - upcast(x)
    return acc


op("prim.scan", "Prefix sums along `axis` (inclusive; `exclusive` leaves each element out of its own sum).",
   operands=["x"], attrs=[Attr("axis", "i64", 0, "the axis to sum along"),
                          Attr("exclusive", "bool", False, "sum the elements before each one only")],
   infer=_scan_infer, reference=_scan_ref)


def _scatter_infer(s):
    dest, idx, upd = s.dest, s.indices, s.updates
    check(dest.rank >= 1, f"dest must have rank >= 1, found {dest}")
    check(idx.rank == 1 and idx.dtype in ("i32", "i64"), f"indices must be i32/i64 [n], found {idx}")
    check(upd.dtype == dest.dtype, f"updates element type must be {dest.dtype} like dest, found {upd}")
    want = (idx.shape[0],) + dest.shape[1:]
    check(shape_agrees(upd.shape, want), f"updates must be [n] + dest's row shape, found {upd} for {idx} and {dest}")
    return dest


def _scatter_ref(s, dest, indices, updates):
    out = np.array(dest, copy=True)
    ok = (indices >= 0) & (indices < dest.shape[0])
    out[indices[ok]] = updates[ok]
    return out


op("prim.scatter", "dest with row indices[n] replaced by updates[n]; indices outside dest's rows are dropped "
   "(an index given twice takes one of its updates).", operands=["dest", "indices", "updates"],
   infer=_scatter_infer, reference=_scatter_ref)


def _block_check(s, w):
    """x [tiles * block, in] and i32/i64 tile_groups [tiles] against a stacked weight w."""
    x, g = s.x, s.tile_groups
    check(x.rank == 2, f"x must have rank 2 [rows, in], found {x}")
    check(w.rank == 3, f"w must have rank 3 [groups, in, out], found {w}")
    check(g.rank == 1 and g.dtype in ("i32", "i64"), f"tile_groups must be i32/i64 [tiles], found {g}")
    check(s.block >= 1, f"block must be at least 1, found {s.block}")
    check(x.dtype == w.dtype, f"operand element types differ: x {x}, w {w}")
    check(dims_agree(x.shape[1], w.shape[1]), f"x features {x.shape[1]} differ from the in size of w {w}")
    rows, tiles = x.shape[0], g.shape[0]
    check(rows is None or tiles is None or rows == tiles * s.block,
          f"x must have tiles * block = {tiles} * {s.block} rows, found {x}")
    out = s.results[0].dtype if s.results else x.dtype
    check(out == x.dtype or (is_float(out) and is_float(x.dtype)), f"result element type {out} cannot accumulate {x.dtype}")
    return out


def _block_matmul_infer(s):
    return TensorType((s.x.shape[0], s.w.shape[2]), _block_check(s, s.w))


def used_tiles(groups, num_groups: int) -> int:
    """How many leading tiles have a group in ``[0, num_groups)``."""
    bad = np.nonzero((np.asarray(groups) < 0) | (np.asarray(groups) >= num_groups))[0]
    return int(bad[0]) if bad.size else len(groups)


def _per_tile(s, x, groups, num_groups, fn):
    """fn(tile rows, group) on the used tiles (float64), zeros elsewhere."""
    b, out = s.block, None
    for i in range(used_tiles(groups, num_groups)):
        y = fn(upcast(x[i * b:(i + 1) * b]).astype(np.float64), int(groups[i]))
        out = np.zeros((x.shape[0], y.shape[1])) if out is None else out
        out[i * b:(i + 1) * b] = y
    return out if out is not None else np.zeros((x.shape[0], s.results[0].shape[1]))


def _f64(w):
    return upcast(w).astype(np.float64)


op("prim.block_matmul", "Rows of x in tiles of `block`: tile i times w[tile_groups[i]], up to the first tile whose "
   "group is outside [0, groups); that tile and the rest are zero.",
   operands=["x", "tile_groups", "w"], attrs=[Attr("block", "i64", doc="rows per tile")],
   infer=_block_matmul_infer,
   reference=lambda s, x, groups, w: _per_tile(s, x, groups, w.shape[0], lambda r, g: r @ _f64(w[g])))


def _block_ffn_infer(s):
    wg, wd = s.w_gate, s.w_down
    out = _block_check(s, wg)
    check(s.w_up is None or shape_agrees(s.w_up.shape, wg.shape), f"w_up {s.w_up} must have the shape of w_gate {wg}")
    check(wd.rank == 3 and shape_agrees(wd.shape, (wg.shape[0], wg.shape[2], s.x.shape[1])),
          f"w_down {wd} must be [groups, hidden, in] for w_gate {wg}")
    return TensorType((s.x.shape[0], wd.shape[2]), out)


def _block_ffn_ref(s, x, groups, w_gate, w_up, w_down):
    from stepwell.dialects.nn_moe import activation

    def ffn(r, g):
        h = activation(s.activation, r @ _f64(w_gate[g]))
        if w_up is not None:
            h = h * (r @ _f64(w_up[g]))
        if s.x.dtype != "f32" and s.x.dtype != "f64":  # the hidden layer is rounded to x's type
            h = h.astype(x.dtype).astype(np.float64)
        return h @ _f64(w_down[g])
    return _per_tile(s, x, groups, w_gate.shape[0], ffn)


op("prim.block_ffn", "prim.block_matmul of a whole expert FFN per tile: (act(x @ w_gate[g]) * (x @ w_up[g])) "
   "@ w_down[g] for tile group g.",
   operands=["x", "tile_groups", "w_gate", Operand("w_up", optional=True), "w_down"],
   attrs=[Attr("block", "i64", doc="rows per tile"),
          Attr("activation", "str", "silu", choices=("silu", "gelu", "gelu_tanh", "relu"))],
   infer=_block_ffn_infer, reference=_block_ffn_ref)

