"""nn-to-prim rules for the MoE ops (dialects/nn_moe.py): routed, never dense (docs/moe.md).

Routing bookkeeping is linear in the number of assignments N = T*k: a one-hot [N, E],
its prefix sum along N (``prim.scan``: an assignment's position in its expert), an
inverse map by ``prim.scatter``, row gathers. Two layouts compute the experts:

* ``slots``: every expert gets C slots (the capacity; C = T when dropless), tokens are
  gathered into [E, C, D], the experts run as batched matmuls, results are gathered
  back. Static shapes; E*C rows of work.
* ``tiles``: the block-padded sorted layout of vLLM's ``moe_align_block_size`` and
  MegaBlocks: each expert's rows padded to a multiple of B, so that every B-row tile
  belongs to one expert; ``prim.block_ffn`` runs each used tile's whole FFN with its
  expert's weights in one loop (only the touched experts' weights are read). At most
  N + E*(B-1) rows.

:func:`strategy` is the rule choosing between them (``nn-to-prim{moe=...}`` forces one).
An expert weight computed by ``nn.dequantize`` (int8 weights, ``nn-quantize-weights``)
stays integer in the ``slots`` contractions, its scales applied to their results.
"""

from __future__ import annotations

import math

from stepwell.core.types import TensorType
from stepwell.dialects.prim_builder import PrimBuilder, ttype

STRATEGIES = ("auto", "slots", "tiles")
MAX_BLOCK = 64


def strategy(tokens: int, k: int, experts: int, capacity: int, forced: str = "auto") -> str:
    """The layout for a layer (``forced`` unless ``auto``): with a capacity, ``slots``
    (E*min(C, T) rows, static shapes); dropless, ``tiles`` (at most N + E*(B-1) rows,
    and only the touched experts' weights are read)."""
    if forced != "auto":
        return forced
    return "slots" if capacity > 0 else "tiles"


def block_size(assignments: int, experts: int, forced: int = 0) -> int:
    """Rows per tile: the power of two at or above twice the mean rows per expert, at
    most 64 (T=512, k=2, E=8: 64; decode T=1: 1, T=8: 4), so that most experts fill
    one or a few tiles and the padding (at most B-1 rows per expert) stays small."""
    if forced > 0:
        return forced
    mean2 = max(1, math.ceil(2 * assignments / experts))
    return min(MAX_BLOCK, 1 << math.ceil(math.log2(mean2)))


def _shape(v) -> tuple:
    return ttype(v).shape


def _static(name: str, *values) -> None:
    """A located error for a dynamic shape (the layouts are sized at compile time)."""
    from stepwell.core.diagnostics import PassError, at
    from stepwell.core.ir import ir
    bad = next((ttype(v) for v in values if None in ttype(v).shape), None)
    if bad is not None:
        raise PassError([at(ir.Location.current, f"'{name}' needs static shapes to be lowered, found {bad}")])


def _acc(dtype: str) -> str:
    return "f32" if dtype in ("f16", "bf16") else dtype


# -- routing bookkeeping -------------------------------------------------------------------


def _flat(b: PrimBuilder, ids, priority: str):
    """ids [T, k] as i32 [T*k] in priority order (token: t*k + j, choice: j*T + t)."""
    t, k = _shape(ids)
    ids = b.cast(ids, "i32")
    if priority == "choice":
        ids = b.transpose(ids, [1, 0])
    return b.reshape(ids, (t * k,))


def _unflat(b: PrimBuilder, v, t: int, k: int, priority: str):
    """[N, ...] in priority order back to [T, k, ...]."""
    rest = _shape(v)[1:]
    if priority == "token":
        return b.reshape(v, (t, k) + rest)
    return b.transpose(b.reshape(v, (k, t) + rest), [1, 0] + list(range(2, 2 + len(rest))))


def _positions(b: PrimBuilder, flat, experts: int):
    """(position of each assignment among its expert's, in order; whether its id is in
    [0, E); assignments per expert [E]): a one-hot [N, E] and its prefix sum."""
    n = _shape(flat)[0]
    onehot = b.cast(b.map("eq", b.broadcast(flat, [0], (n, experts)), b.iota((n, experts), 1, "i32")), "i32")
    before = b._op("prim.scan", onehot, axis=0)
    pos = b.map("sub", b.reduce(b.map("mul", before, onehot), "sum", [1]), b.like(1, flat))
    valid = b.map("and", b.map("ge", flat, b.like(0, flat)), b.map("lt", flat, b.like(experts, flat)))
    return pos, valid, b.reduce(onehot, "sum", [0])


def _inverse(b: PrimBuilder, dest, size: int):
    """src [size]: the assignment n with dest[n] == r, or N where none (a scatter)."""
    n = _shape(dest)[0]
    init = b.splat(n, ttype(dest).with_shape((size,)))
    return b._op("prim.scatter", init, dest, b.iota((n,), 0, "i32"))


def _rows(b: PrimBuilder, table, index, present):
    """table[index] per row, zero where ``present`` is false (the index is clamped)."""
    rows = b._op("prim.gather", table, index, axis=0)
    shape = _shape(rows)
    return b.map("select", b.broadcast(present, [0], shape), rows, b.splat(0, ttype(rows)))


def _token_of(b: PrimBuilder, src, t: int, k: int, priority: str):
    """The token of assignment n (token order: n // k, choice order: n % T)."""
    return b.map("div", src, b.like(k, src)) if priority == "token" else b.map("rem", src, b.like(t, src))


# -- the expert FFN ---------------------------------------------------------------------------


def _act(b: PrimBuilder, name: str, x):
    if name == "silu":
        return b.map("mul", x, b.map("logistic", x))
    if name == "relu":
        return b.map("max", x, b.like(0.0, x))
    if name == "gelu":
        t = b.map("erf", b.map("mul", x, b.like(1 / math.sqrt(2), x)))
    else:  # gelu_tanh
        inner = b.map("add", x, b.map("mul", b.like(0.044715, x), b.map("mul", b.map("mul", x, x), x)))
        t = b.map("tanh", b.map("mul", b.like(math.sqrt(2 / math.pi), x), inner))
    return b.map("mul", b.map("mul", b.like(0.5, x), x), b.map("add", b.like(1.0, x), t))


def _dequantized(w):
    """(q, scales, zero points) of an 8-bit ``nn.dequantize`` grouped along axis 1 that
    computes ``w``, else None."""
    from stepwell.core import opspec
    owner = w.owner
    op = getattr(owner, "operation", owner)
    if not hasattr(op, "name") or op.name != "nn.dequantize":
        return None
    attrs = {n: opspec.attr_to_python(op.attributes[n])[1] for n in op.attributes}
    if attrs.get("bits", 8) != 8 or attrs.get("axis", 0) % 3 != 1:
        return None
    ops = list(op.operands)
    return ops[0], ops[1], (ops[2] if len(ops) > 2 else None)


def _batched(b: PrimBuilder, lhs, w, acc: str):
    """lhs [E, C, K] @ w [E, K, N] per expert, in ``acc``: a batched matmul; an int8 w
    from nn.dequantize is contracted as integers (converted in the contraction) and
    its per-group scales multiply the per-group results."""
    e, c, kk = _shape(lhs)
    deq = _dequantized(w)
    if deq is None:
        return b.contract(lhs, w, "eck,ekn->ecn", acc)
    q, scales, zero = deq
    n, groups = _shape(q)[2], _shape(scales)[1]
    g = kk // groups
    wf = b.cast(q, ttype(lhs).dtype)
    if zero is not None:
        wf = b.map("sub", wf, b.reshape(b.broadcast(b.cast(zero, ttype(lhs).dtype), [0, 1, 3], (e, groups, g, n)),
                                        (e, kk, n)))
    wf = b.reshape(wf, (e * groups, g, n))
    xg = b.reshape(b.transpose(b.reshape(lhs, (e, c, groups, g)), [0, 2, 1, 3]), (e * groups, c, g))
    y = b.reshape(b.contract(xg, wf, "bmk,bkn->bmn", acc), (e, groups, c, n))
    y = b.map("mul", y, b.broadcast(b.cast(scales, acc), [0, 1, 3], (e, groups, c, n)))
    return b.reduce(y, "sum", [1]) if groups > 1 else b.reshape(y, (e, c, n))


def _ffn(b: PrimBuilder, s, rows, w_gate, w_up, w_down, matmul):
    """(act(rows @ w_gate) * (rows @ w_up)) @ w_down with ``matmul(lhs, w, acc)``."""
    dtype = ttype(rows).dtype
    acc = _acc(dtype)
    h = _act(b, s.activation, matmul(rows, w_gate, acc))
    if w_up is not None:
        h = b.map("mul", h, matmul(rows, w_up, acc))
    return matmul(b.cast(h, dtype), w_down, acc)


# -- nn.moe_ffn ---------------------------------------------------------------------------------


def _combine(b: PrimBuilder, s, yk, weights, out_dtype):
    """y[t] = sum_j weights[t, j] * yk[t, j] (in the accumulator type): a product and a
    sum over j, which IREE fuses with the gather of yk (as a contraction it became a
    batch of [1, k] x [k, D] matmuls, data-tiled)."""
    acc = ttype(yk).dtype
    w = b.broadcast(b.cast(weights, acc), [0, 1], ttype(yk).shape)
    return b.cast(b.reduce(b.map("mul", yk, w), "sum", [1]), out_dtype)


def _slot_rows(b: PrimBuilder, s, x, flat, pos, keep, c: int, experts):
    """The expert outputs [N, D] of the kept assignments through slots: C per expert,
    [E, C, D] gathered, batched matmuls, gathered back (zeros where not kept)."""
    (t, d), n, e = _shape(x), _shape(flat)[0], _shape(experts[0])[0]
    k = n // t
    slot = b.map("select", keep, b.map("add", b.map("mul", flat, b.like(c, flat)), pos), b.like(e * c, flat))
    src = b._op("prim.slice", _inverse(b, slot, e * c + 1), start=[0], limit=[e * c])
    xe = _rows(b, x, _token_of(b, src, t, k, s.priority), b.map("lt", src, b.like(n, src)))
    ye = _ffn(b, s, b.reshape(xe, (e, c, d)), *experts, lambda lhs, w, acc: _batched(b, lhs, w, acc))
    return _rows(b, b.reshape(ye, (e * c, d)), slot, keep)


def block_layout(b: PrimBuilder, group, pos, kept, groups: int, block: int, rows: int):
    """The block-padded sorted layout of N items: ``group`` [N] (an item in no group:
    out of [0, groups)), ``pos`` [N] its place in its group, ``kept`` [groups] the
    items per group. Returns (dest [N]: the layout row of each item, R for none;
    src [R]: the item of each layout row, N for a padding row; tile_groups [R/B]:
    each tile's group, ``groups`` past the used tiles)."""
    padded = b.map("mul", b.map("div", b.map("add", kept, b.like(block - 1, kept)), b.like(block, kept)),
                   b.like(block, kept))
    ends = b._op("prim.scan", padded, axis=0)
    starts = b.map("sub", ends, padded)
    inside = b.map("and", b.map("ge", group, b.like(0, group)), b.map("lt", group, b.like(groups, group)))
    start = b._op("prim.gather", starts, b.map("select", inside, group, b.like(0, group)), axis=0)
    dest = b.map("select", inside, b.map("add", start, pos), b.like(rows, group))
    src = b._op("prim.slice", _inverse(b, dest, rows + 1), start=[0], limit=[rows])
    tiles = rows // block
    first_row = b.map("mul", b.iota((tiles, groups), 0, "i32"), b.splat(block, ttype(group).with_shape((tiles, groups))))
    done = b.cast(b.map("le", b.broadcast(ends, [1], (tiles, groups)), first_row), "i32")
    return dest, src, b.reduce(done, "sum", [1])


def layout_rows(items: int, groups: int, block: int) -> int:
    """Rows of the block-padded layout of at most ``items``: each group padded to whole tiles."""
    return block * -(-(items + groups * (block - 1)) // block)


def _tile_rows(b: PrimBuilder, s, x, group, pos, kept, items: int, block: int, experts):
    """The expert outputs [N, D] of the items with a group in [0, E), through the
    block-padded sorted layout: rows gathered into tiles, one ``prim.block_ffn``."""
    (t, d), n, e = _shape(x), _shape(group)[0], _shape(experts[0])[0]
    k = n // t
    rows = layout_rows(items, e, block)
    dest, src, tile_groups = block_layout(b, group, pos, kept, e, block, rows)
    xs = _rows(b, x, _token_of(b, src, t, k, s.priority), b.map("lt", src, b.like(n, src)))
    acc = _acc(ttype(x).dtype)
    ys = b._op("prim.block_ffn", xs, tile_groups, *[w for w in experts if w is not None], block=block,
               activation=s.activation, result_type=TensorType((rows, d), acc))
    return _rows(b, ys, dest, b.map("lt", group, b.like(e, group)))


def _moe_ffn(forced: str, block: int):
    # nn.moe_ffn -> routing bookkeeping + the layout strategy() picks + the weighted combine.
    def rule(b, s, x, weights, ids, w_gate, *rest):
        _static("nn.moe_ffn", x, weights, ids, w_gate, *rest)
        experts = (w_gate, rest[0], rest[1]) if len(rest) == 2 else (w_gate, None, rest[0])
        (t, _), k, e = _shape(x), _shape(ids)[1], _shape(w_gate)[0]
        n = t * k
        flat = _flat(b, ids, s.priority)
        pos, keep, kept = _positions(b, flat, e)
        if s.capacity > 0:
            keep = b.map("and", keep, b.map("lt", pos, b.like(s.capacity, pos)))
            kept = b.map("min", kept, b.like(s.capacity, kept))
        items = min(n, e * s.capacity) if s.capacity > 0 else n
        if strategy(t, k, e, s.capacity, forced) == "slots":
            yk = _slot_rows(b, s, x, flat, pos, keep, min(s.capacity, t) if s.capacity > 0 else t, experts)
        else:
            group = b.map("select", keep, flat, b.like(e, flat))
            yk = _tile_rows(b, s, x, group, pos, kept, items, block_size(items, e, block), experts)
        return _combine(b, s, _unflat(b, yk, t, k, s.priority), weights, s.results[0].dtype)
    return rule


# -- nn.grouped_matmul ------------------------------------------------------------------------------


def _grouped_matmul(block: int):
    # rows in consecutive groups -> the block-padded layout, prim.block_matmul, rows back.
    def rule(b, s, x, w, sizes):
        _static("nn.grouped_matmul", x, w, sizes)
        m, g = _shape(x)[0], _shape(w)[0]
        sizes = b.map("max", b.cast(sizes, "i32"), b.splat(0, ttype(sizes).with_dtype("i32")))
        ends = b.map("min", b._op("prim.scan", sizes, axis=0), b.like(m, sizes))
        starts = b.map("min", b.map("sub", b._op("prim.scan", sizes, axis=0), sizes), b.like(m, sizes))
        row = b.iota((m,), 0, "i32")
        before = b.map("le", b.broadcast(ends, [1], (m, g)), b.broadcast(row, [0], (m, g)))
        group = b.reduce(b.cast(before, "i32"), "sum", [1])  # g for rows past the last group
        start = b._op("prim.gather", starts, b.map("min", group, b.like(g - 1, group)), axis=0)
        bsize = block_size(m, g, block)
        rows = layout_rows(m, g, bsize)
        dest, src, tile_groups = block_layout(b, group, b.map("sub", row, start), b.map("sub", ends, starts),
                                              g, bsize, rows)
        xs = _rows(b, x, src, b.map("lt", src, b.like(m, src)))
        out = s.results[0]
        ys = b._op("prim.block_matmul", xs, tile_groups, w, block=bsize,
                   result_type=ttype(xs).with_shape((rows, out.shape[1])).with_dtype(_acc(out.dtype)))
        inside = b.map("lt", group, b.like(g, group))
        return b.cast(_rows(b, ys, dest, inside), out.dtype)
    return rule


def rules(forced: str = "auto", block: int = 0) -> dict:
    """nn op -> rule(builder, sig, *operands) for the MoE ops (``forced``: a strategy
    of :data:`STRATEGIES`; ``block``: the tile rows, 0 for :func:`block_size`)."""
    return {
        "nn.top_k": lambda b, s, x: b._op("prim.top_k", x, k=s.k),  # nn.top_k is prim.top_k (two results)
        "nn.moe_ffn": _moe_ffn(forced, block),
        "nn.grouped_matmul": _grouped_matmul(block),
    }
