"""Mixture-of-experts ``nn`` ops: routing (``nn.top_k``), the routed expert FFN
(``nn.moe_ffn``) and the grouped matmul (``nn.grouped_matmul``); docs/moe.md.

    %v, %i = "nn.top_k"(%logits) {k = 2 : i64} : (tensor<512x8xf32>) -> (tensor<512x2xf32>, tensor<512x2xi32>)
    %w = "nn.softmax"(%v) {axis = -1 : i64} : (tensor<512x2xf32>) -> tensor<512x2xf32>
    %y = "nn.moe_ffn"(%x, %w, %i, %wg, %wu, %wd) {activation = "silu", capacity = 0 : i64}
           : (tensor<512x256xf32>, tensor<512x2xf32>, tensor<512x2xi32>, tensor<8x256x512xf32>,
              tensor<8x256x512xf32>, tensor<8x512x256xf32>) -> tensor<512x256xf32>
    %g = "nn.grouped_matmul"(%xs, %w, %sizes)
           : (tensor<1024x256xf32>, tensor<8x256x512xf32>, tensor<8xi32>) -> tensor<1024x512xf32>

Scoring stays in ordinary ops (softmax-then-top-k, top-k-then-softmax, sigmoid routers):
``nn.moe_ffn`` takes the routing weights and expert ids as operands. Expert ids outside
``[0, E)`` are dropped (they contribute nothing and are never read out of bounds).
"""

from __future__ import annotations

import math

import numpy as np

from stepwell.dialects._common import dims_agree, float_type, rank_is, shape_agrees, shape_str, upcast
from stepwell.core.opspec import Attr, Operand, check, op
from stepwell.core.types import TensorType, is_float

# -- nn.top_k ----------------------------------------------------------------------------


def top_k_infer(s):
    """values like x with the last axis k, and i32 indices; checks k against the axis."""
    x = s.x
    check(x.dtype != "i1", f"x must have a float or integer element type, found {x}")
    check(x.rank >= 1, f"x must have rank >= 1, found {x}")
    n = x.shape[-1]
    check(s.k >= 1, f"k must be at least 1, found {s.k}")
    check(n is None or s.k <= n, f"k = {s.k} exceeds the last axis size {n} of x {x}")
    shape = x.shape[:-1] + (s.k,)
    return [TensorType(shape, x.dtype), TensorType(shape, "i32")]


def top_k_ref(s, x):
    """lax.top_k: descending along the last axis, equal values keep the lower index first,
    NaN above +inf."""
    xf = upcast(x)
    nan = np.isnan(xf) if is_float(s.x.dtype) else np.zeros(xf.shape, bool)
    key = np.where(nan, 0, xf)
    index = np.broadcast_to(np.arange(xf.shape[-1]), xf.shape)
    order = np.lexsort((index, -key if xf.dtype.kind == "f" else -key.astype(np.int64), ~nan), axis=-1)
    idx = order[..., :s.k]
    return np.take_along_axis(x, idx, -1), idx.astype(np.int32)


TOP_K = op("nn.top_k", "The k largest entries along the last axis, descending, and their i32 indices "
           "(lax.top_k: ties keep the lower index first, NaN ranks highest).",
           operands=["x"], attrs=[Attr("k", "i64", doc="how many entries to keep")],
           infer=top_k_infer, reference=top_k_ref, num_results=2)

# -- nn.moe_ffn --------------------------------------------------------------------------

ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "relu")
PRIORITIES = ("token", "choice")


def _moe_ffn_infer(s):
    x = float_type(rank_is(s.x, 2, "x", "[tokens, d_model]"), "x")
    t, d = x.shape
    w = float_type(rank_is(s.weights, 2, "weights", "[tokens, k]"), "weights")
    ids = rank_is(s.ids, 2, "ids", "[tokens, k]")
    check(ids.dtype in ("i32", "i64"), f"ids must have element type i32 or i64, found {ids}")
    check(shape_agrees(w.shape, ids.shape) and dims_agree(w.shape[0], t),
          f"weights {w} and ids {ids} must both be [{'?' if t is None else t}, k] (x {x})")
    wg = rank_is(s.w_gate, 3, "w_gate", "[experts, d_model, d_ff]")
    e, d_in, h = wg.shape
    check(dims_agree(d_in, d), f"w_gate input size {d_in} differs from the features {d} of x {x}")
    if s.w_up is not None:
        check(shape_agrees(s.w_up.shape, wg.shape), f"w_up {s.w_up} must have the shape of w_gate {wg}")
    want = (e, h, d)
    check(shape_agrees(s.w_down.shape, want),
          f"w_down must be [experts, d_ff, d_model] = {shape_str(want)} to match w_gate {wg}, found {s.w_down}")
    experts = [s.w_gate, s.w_down] + ([s.w_up] if s.w_up is not None else [])
    dtypes = {x.dtype} | {v.dtype for v in experts}
    check(len(dtypes) == 1, "x and the expert weights must share one float type, found "
          + ", ".join(str(v) for v in (x, *experts)))
    check(w.dtype in (x.dtype, "f32"), f"weights must have x's element type or f32, found {w}")
    k = ids.shape[1]
    check(e is None or k is None or k <= e, f"k = {k} choices per token exceed the {e} experts of w_gate {wg}")
    check(s.capacity >= 0, f"capacity must be >= 0 (0: dropless), found {s.capacity}")
    out = s.results[0].dtype if s.results else x.dtype
    if out != x.dtype:  # a wider float result: the f32 accumulator of a bf16 layer
        check(is_float(out) and TensorType((), out).numpy_dtype().itemsize > TensorType((), x.dtype).numpy_dtype().itemsize,
              f"result element type {out} cannot accumulate {x.dtype}")
    return TensorType((t, d), out)


def keep_mask(ids: np.ndarray, num_experts: int, capacity: int, priority: str) -> np.ndarray:
    """Which assignments ``(t, j)`` are computed: ids in ``[0, E)`` and, with a
    ``capacity``, within the first ``capacity`` an expert takes, counted in ``token``
    order (``t*k + j``, MaxText) or ``choice`` order (``j*T + t``: every token's first
    choice before any second one, Switch)."""
    ids = np.asarray(ids)
    valid = (ids >= 0) & (ids < num_experts)
    if capacity == 0:
        return valid
    order = ids if priority == "token" else ids.T
    flat, ok = order.reshape(-1), valid if priority == "token" else valid.T
    seen = np.zeros(num_experts, np.int64)
    keep = np.zeros(flat.shape, bool)
    for n, (e, v) in enumerate(zip(flat, ok.reshape(-1))):
        if v:
            keep[n] = seen[e] < capacity
            seen[e] += 1
    keep = keep.reshape(order.shape)
    return keep if priority == "token" else keep.T


def activation(name: str, x: np.ndarray) -> np.ndarray:
    """The expert activation ``name`` in numpy (float64 in, float64 out)."""
    if name == "silu":
        return x * (0.5 * (np.tanh(0.5 * x) + 1))
    if name == "relu":
        return np.maximum(x, 0)
    if name == "gelu_tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _moe_ffn_ref(s, x, weights, ids, w_gate, w_up, w_down):
    x64 = upcast(x).astype(np.float64)
    e = w_gate.shape[0]
    keep = keep_mask(ids, e, s.capacity, s.priority)
    out = np.zeros_like(x64)
    for ex in range(e):  # an expert at a time, on the tokens routed to it
        rows, cols = np.nonzero((ids == ex) & keep)
        if rows.size == 0:
            continue
        xr = x64[rows]
        h = activation(s.activation, xr @ upcast(w_gate[ex]).astype(np.float64))
        if w_up is not None:
            h = h * (xr @ upcast(w_up[ex]).astype(np.float64))
        y = h @ upcast(w_down[ex]).astype(np.float64)
        np.add.at(out, rows, y * upcast(weights[rows, cols]).astype(np.float64)[:, None])
    return out


MOE_FFN = op("nn.moe_ffn",
             "Routed expert FFN: y[t] = sum_j weights[t,j] * FFN_ids[t,j](x[t]), FFN_e(x) = "
             "(act(x @ w_gate[e]) * (x @ w_up[e])) @ w_down[e]; capacity 0 is dropless, ids outside [0, E) drop.",
             operands=["x", "weights", Operand("ids", doc="i32/i64 [tokens, k]: the chosen experts"),
                       Operand("w_gate", doc="[experts, d_model, d_ff]"),
                       Operand("w_up", optional=True, doc="[experts, d_model, d_ff]; absent: act(x @ w_gate[e])"),
                       Operand("w_down", doc="[experts, d_ff, d_model]")],
             attrs=[Attr("activation", "str", "silu", "the expert activation", choices=ACTIVATIONS),
                    Attr("capacity", "i64", 0, "slots per expert; 0: dropless (every assignment computed)"),
                    Attr("priority", "str", "token", "who gets an expert's slots first when capacity > 0: "
                         "token (t*k + j order) or choice (j*T + t order)", choices=PRIORITIES)],
             infer=_moe_ffn_infer, reference=_moe_ffn_ref)

# -- nn.grouped_matmul ---------------------------------------------------------------------


def _grouped_infer(s):
    x = float_type(rank_is(s.x, 2, "x", "[rows, in] (rows in consecutive groups)"), "x")
    w = rank_is(s.w, 3, "w", "[groups, in, out]")
    g = rank_is(s.group_sizes, 1, "group_sizes", "[groups]")
    check(g.dtype in ("i32", "i64"), f"group_sizes must have element type i32 or i64, found {g}")
    check(w.dtype == x.dtype, f"operand element types differ: x {x}, w {w}")
    check(dims_agree(x.shape[1], w.shape[1]), f"x features {x.shape[1]} differ from the in size {w.shape[1]} of w {w}")
    check(dims_agree(g.shape[0], w.shape[0]), f"group_sizes {g} must have one entry per group of w {w}")
    out = s.results[0].dtype if s.results else x.dtype
    if out != x.dtype:
        check(is_float(out) and TensorType((), out).numpy_dtype().itemsize > TensorType((), x.dtype).numpy_dtype().itemsize,
              f"result element type {out} cannot accumulate {x.dtype}")
    return TensorType((x.shape[0], w.shape[2]), out)


def group_bounds(sizes, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) rows of each group: consecutive, negative sizes counted as 0, clipped to ``rows``."""
    ends = np.cumsum(np.maximum(np.asarray(sizes, np.int64), 0))
    starts = ends - np.maximum(np.asarray(sizes, np.int64), 0)
    return np.minimum(starts, rows), np.minimum(ends, rows)


def _grouped_ref(s, x, w, sizes):
    out = np.zeros((x.shape[0], w.shape[2]), np.float64)
    for gi, (a, b) in enumerate(zip(*group_bounds(sizes, x.shape[0]))):
        out[a:b] = upcast(x[a:b]).astype(np.float64) @ upcast(w[gi]).astype(np.float64)
    return out


GROUPED_MATMUL = op(
    "nn.grouped_matmul", "Rows of x in consecutive groups, group g times w[g] (jax.lax.ragged_dot); rows past "
    "sum(group_sizes) give zeros, negative sizes count as 0.",
    operands=["x", "w", Operand("group_sizes", doc="i32/i64 [groups]: rows per group, in order")],
    infer=_grouped_infer, reference=_grouped_ref)
