"""prim-to-linalg for the routing ops (dialects/prim_moe.py), one function per op.

``prim.top_k`` is k arg-max passes (``linalg.generic`` reductions; a strict compare
keeps the lower index on ties); ``prim.scan`` is ``iree_linalg_ext.scan``;
``prim.scatter`` is ``iree_linalg_ext.scatter`` into the destination plus one extra row
that takes the out-of-range indices (then sliced off); ``prim.block_matmul`` is an
``scf.for`` over the used tiles, each a ``linalg.matmul`` of a B-row tile with its
group's weight slice, inserted into a zero-filled result.
"""

from __future__ import annotations

from stepwell.core.types import TensorType, is_float
from stepwell.passes._linalg_shapes import reduce_init
from stepwell.passes._linalg_text import Unsupported, amap, attr, convert, identity, ttype


def _static(*types):
    for t in types:
        if None in t.shape:
            raise Unsupported(f"a dynamic shape ({t})")


# top_k: k reductions over the last axis, each skipping the indices already taken; a
# candidate wins if it is the first one seen, greater, or NaN over a number (lax.top_k).
def lower_top_k(op, e, args):
    x = ttype(op.operands[0])
    k = attr(op, "k")
    _static(x)
    outer, n, rank = x.shape[:-1], x.shape[-1], x.rank
    dt = x.dtype
    vt, it = TensorType(outer, dt), TensorType(outer, "i32")
    picks, values = [], []
    for j in range(k):
        init_v = e.filled(reduce_init("max", dt) if dt != "i1" else 0, vt)
        init_i = e.filled(-1, it)
        ins = [(args[0], x)] + [(p, it) for p in picks]

        def body(s, xs, j=j):
            a, prev, cur_v, cur_i = xs[0], xs[1:1 + j], xs[1 + j], xs[2 + j]
            idx = s(f"arith.index_cast {s(f'linalg.index {rank - 1} : index')} : index to i32")
            none = s.const(-1, "i32")
            first = s(f"arith.cmpi eq, {cur_i}, {none} : i32")
            if is_float(dt):
                gt = s(f"arith.cmpf ogt, {a}, {cur_v} : {dt}")
                nan_a = s(f"arith.cmpf uno, {a}, {a} : {dt}")
                num_c = s(f"arith.cmpf ord, {cur_v}, {cur_v} : {dt}")
                gt = s(f"arith.ori {gt}, {s(f'arith.andi {nan_a}, {num_c} : i1')} : i1")
            else:
                gt = s(f"arith.cmpi sgt, {a}, {cur_v} : {dt}")
            win = s(f"arith.ori {first}, {gt} : i1")
            for p in prev:
                win = s(f"arith.andi {win}, {s(f'arith.cmpi ne, {idx}, {p} : i32')} : i1")
            return [s(f"arith.select {win}, {a}, {cur_v} : {dt}"), s(f"arith.select {win}, {idx}, {cur_i} : i32")]

        red = amap(rank, range(rank - 1))
        value, index = _generic2(e, ins, [(init_v, vt), (init_i, it)],
                                 [identity(rank)] + [red] * (len(ins) - 1) + [red, red],
                                 ["parallel"] * (rank - 1) + ["reduction"], body)
        picks.append(index)
        values.append(value)
    return [_stack(e, values, x.with_shape(outer + (k,))), _stack(e, picks, it.with_shape(outer + (k,)))]


def _generic2(e, ins, outs, maps, iterators, body):
    """A ``linalg.generic`` with two results (``body`` returns the two values)."""
    b = e.nested()
    names = [f"%in{next(b._counter)}" for _ in ins] + [f"%out{next(b._counter)}" for _ in outs]
    results = body(b, names)
    header = ", ".join(f"{a}: {t.dtype}" for a, (_, t) in zip(names, ins + outs))
    types = ", ".join(str(t) for _, t in outs)
    text = ("linalg.generic {indexing_maps = [" + ", ".join(maps) + "], iterator_types = ["
            + ", ".join(f'"{it}"' for it in iterators) + "]} "
            + f"ins({', '.join(v for v, _ in ins)} : {', '.join(str(t) for _, t in ins)}) "
            + f"outs({', '.join(v for v, _ in outs)} : {types}) {{\n^bb0({header}):\n  "
            + "\n  ".join(b.lines + [f"linalg.yield {', '.join(results)} : "
                                     + ", ".join(t.dtype for _, t in outs)]) + f"\n}} -> ({types})")
    name = e(text)
    e.lines[-1] = e.lines[-1].replace(f"{name} = ", f"{name}:2 = ", 1)
    return f"{name}#0", f"{name}#1"


def _stack(e, parts, out: TensorType) -> str:
    """[outer] tensors as the columns of [outer, k] (rank-reducing insert_slice)."""
    acc = e.empty(out)
    rank = out.rank
    sizes = ", ".join(map(str, out.shape[:-1] + (1,)))
    ones = ", ".join(["1"] * rank)
    for j, p in enumerate(parts):
        offsets = ", ".join(["0"] * (rank - 1) + [str(j)])
        acc = e(f"tensor.insert_slice {p} into {acc}[{offsets}] [{sizes}] [{ones}] : "
                f"{out.with_shape(out.shape[:-1])} into {out}")
    return acc


# scan: iree_linalg_ext.scan (inclusive, +) along the axis; exclusive subtracts x after.
def lower_scan(op, e, args):
    x = ttype(op.operands[0])
    _static(x)
    axis = attr(op, "axis", 0) % x.rank
    acc_t = x.with_shape(d for i, d in enumerate(x.shape) if i != axis)
    acc = e.filled(0, acc_t)
    add = "arith.addf" if is_float(x.dtype) else "arith.addi"
    name = e(f"iree_linalg_ext.scan dimension({axis}) inclusive(true) ins({args[0]} : {x}) "
             f"outs({e.empty(x)}, {acc} : {x}, {acc_t}) {{\n"
             f"^bb0(%sa: {x.dtype}, %sb: {x.dtype}):\n  %ss = {add} %sa, %sb : {x.dtype}\n"
             f"  iree_linalg_ext.yield %ss : {x.dtype}\n}} -> {x}, {acc_t}")
    e.lines[-1] = e.lines[-1].replace(f"{name} = ", f"{name}:2 = ", 1)
    value = f"{name}#0"
    if attr(op, "exclusive", False):
        sub = "arith.subf" if is_float(x.dtype) else "arith.subi"
        value = e.elementwise([(value, x), (args[0], x)], x, lambda s, xs: s(f"{sub} {xs[0]}, {xs[1]} : {x.dtype}"))
    return value


# scatter: iree_linalg_ext.scatter into dest plus a spare row; indices outside dest's
# rows are redirected to the spare row, which is sliced off: nothing out of bounds.
def lower_scatter(op, e, args):
    dest, idx, upd = (ttype(v) for v in op.operands)
    _static(dest, idx, upd)
    m, n = dest.shape[0], idx.shape[0]
    big = dest.with_shape((m + 1,) + dest.shape[1:])
    zeros = ", ".join(["0"] * dest.rank)
    ones = ", ".join(["1"] * dest.rank)
    sizes = ", ".join(map(str, dest.shape))
    spare = e(f"tensor.insert_slice {args[0]} into {e.empty(big)}[{zeros}] [{sizes}] [{ones}] : {dest} into {big}")
    it = idx.dtype

    def safe(s, xs):
        inside = s(f"arith.andi {s(f'arith.cmpi sge, {xs[0]}, {s.const(0, it)} : {it}')}, "
                   f"{s(f'arith.cmpi slt, {xs[0]}, {s.const(m, it)} : {it}')} : i1")
        return s(f"arith.select {inside}, {xs[0]}, {s.const(m, it)} : {it}")
    index = e.elementwise([(args[1], idx)], idx, safe)
    index2 = idx.with_shape((n, 1))
    index = e(f"tensor.expand_shape {index} [[0, 1]] output_shape [{n}, 1] : {idx} into {index2}")
    out = e(f"iree_linalg_ext.scatter dimension_map = [0] unique_indices(false) ins({args[2]}, {index} : "
            f"{upd}, {index2}) outs({spare} : {big}) {{\n^bb0(%su: {dest.dtype}, %so: {dest.dtype}):\n"
            f"  iree_linalg_ext.yield %su : {dest.dtype}\n}} -> {big}")
    return e(f"tensor.extract_slice {out}[{zeros}] [{sizes}] [{ones}] : {big} to {dest}")


def _used_tiles(e, groups_arg: str, groups: TensorType, num_groups: int) -> str:
    """The index count of leading tiles whose group is in [0, num_groups) (a min-reduction)."""
    used_t = TensorType((), "i32")

    def first_bad(s, xs):
        i = s(f"arith.index_cast {s('linalg.index 0 : index')} : index to i32")
        v = convert(s, xs[0], groups.dtype, "i32")
        zero, top = s.const(0, "i32"), s.const(num_groups, "i32")
        bad = s(f"arith.ori {s(f'arith.cmpi slt, {v}, {zero} : i32')}, {s(f'arith.cmpi sge, {v}, {top} : i32')} : i1")
        return s(f"arith.select {bad}, {s(f'arith.minsi {i}, {xs[1]} : i32')}, {xs[1]} : i32")
    used = e.generic([(groups_arg, groups)], e.filled(groups.shape[0], used_t), used_t,
                     [amap(1, [0]), amap(1, [])], ["reduction"], first_bad)
    return e(f"arith.index_cast {e(f'tensor.extract {used}[] : {used_t}')} : i32 to index")


def _tile_loop(e, op, args, tile_fn) -> str:
    """scf.for over the used tiles of ``op`` (x, tile_groups, weights...): each iteration
    takes x's B-row tile and the tile's group index and ``tile_fn(s, lhs, group)``
    returns its [B, out] result, inserted into a zero-filled result."""
    x, groups, res = ttype(op.operands[0]), ttype(op.operands[1]), ttype(op.results[0])
    weights = [ttype(v) for v in op.operands[2:]]
    _static(x, groups, res, *weights)
    block, k, n = attr(op, "block"), x.shape[1], res.shape[1]
    count = _used_tiles(e, args[1], groups, weights[0].shape[0])
    out = e.filled(0, res)
    c0, c1, cb = e.index(0), e.index(1), e.index(block)
    s = e.nested()
    i, acc = f"%i{next(s._counter)}", f"%acc{next(s._counter)}"
    grp = s(f"arith.index_cast {convert(s, s(f'tensor.extract {args[1]}[{i}] : {groups}'), groups.dtype, 'i32')} "
            f": i32 to index")
    row = s(f"arith.muli {i}, {cb} : index")
    lhs = s(f"tensor.extract_slice {args[0]}[{row}, 0] [{block}, {k}] [1, 1] : {x} to {x.with_shape((block, k))}")
    tile = tile_fn(s, lhs, grp)
    new = s(f"tensor.insert_slice {tile} into {acc}[{row}, 0] [{block}, {n}] [1, 1] : "
            f"{res.with_shape((block, n))} into {res}")
    body = "\n  ".join(s.lines + [f"scf.yield {new} : {res}"])
    return e(f"scf.for {i} = {c0} to {count} step {c1} iter_args({acc} = {out}) -> ({res}) {{\n  {body}\n}}")


def _tile_matmul(s, lhs, lhs_t: TensorType, w_arg: str, w: TensorType, grp: str, acc: str) -> str:
    """lhs [B, K] @ w[grp] ([K, N] slice of the stacked weight), accumulated in ``acc``."""
    _, k, n = w.shape
    wt, yt = w.with_shape((k, n)), TensorType((lhs_t.shape[0], n), acc)
    rhs = s(f"tensor.extract_slice {w_arg}[{grp}, 0, 0] [1, {k}, {n}] [1, 1, 1] : {w} to {wt}")
    return s(f"linalg.matmul ins({lhs}, {rhs} : {lhs_t}, {wt}) outs({s.filled(0, yt)} : {yt}) -> {yt}")


# block_matmul: an scf.for over the used tiles (up to the first out-of-range group), each
# tile times its group's weight slice (linalg.matmul), inserted into zeros.
def lower_block_matmul(op, e, args):
    x, w, acc = ttype(op.operands[0]), ttype(op.operands[2]), ttype(op.results[0]).dtype
    block = attr(op, "block")
    return _tile_loop(e, op, args, lambda s, lhs, g: _tile_matmul(
        s, lhs, x.with_shape((block, x.shape[1])), args[2], w, g, acc))


def activation(s, name: str, v: str, t: str) -> str:
    """The scalar code of an expert activation (silu, relu, gelu, gelu_tanh) on ``v : t``."""
    c = lambda x: s.const(x, t)  # noqa: E731
    if name == "relu":
        return s(f"arith.maximumf {v}, {c(0.0)} : {t}")
    if name == "silu":
        ex = s(f"math.exp {s(f'arith.negf {v} : {t}')} : {t}")
        return s(f"arith.divf {v}, {s(f'arith.addf {c(1.0)}, {ex} : {t}')} : {t}")
    if name == "gelu":
        inner = s(f"math.erf {s(f'arith.mulf {v}, {c(0.7071067811865476)} : {t}')} : {t}")
    else:
        cube = s(f"arith.mulf {s(f'arith.mulf {v}, {v} : {t}')}, {v} : {t}")
        arg = s(f"arith.addf {v}, {s(f'arith.mulf {c(0.044715)}, {cube} : {t}')} : {t}")
        inner = s(f"math.tanh {s(f'arith.mulf {c(0.7978845608028654)}, {arg} : {t}')} : {t}")
    half = s(f"arith.mulf {c(0.5)}, {v} : {t}")
    return s(f"arith.mulf {half}, {s(f'arith.addf {c(1.0)}, {inner} : {t}')} : {t}")


# block_ffn: one scf.for over the used tiles, each the whole expert FFN of its tile:
# matmuls with the group's gate/up/down slices and the activation between them.
def lower_block_ffn(op, e, args):
    x, res = ttype(op.operands[0]), ttype(op.results[0])
    ws = [ttype(v) for v in op.operands[2:]]
    block, act, acc = attr(op, "block"), attr(op, "activation", "silu"), res.dtype
    lt = x.with_shape((block, x.shape[1]))
    hidden = ws[0].shape[2]
    ht = TensorType((block, hidden), acc)

    def tile(s, lhs, g):
        gate = _tile_matmul(s, lhs, lt, args[2], ws[0], g, acc)
        ins = [(gate, ht)]
        if len(ws) == 3:
            ins.append((_tile_matmul(s, lhs, lt, args[3], ws[1], g, acc), ht))
        h_t = ht.with_dtype(x.dtype)

        def body(b, xs):
            h = activation(b, act, xs[0], acc)
            if len(xs) == 3:
                h = b(f"arith.mulf {h}, {xs[1]} : {acc}")
            return convert(b, h, acc, x.dtype)
        h = s.generic(ins, s.empty(h_t), h_t, [identity(2)] * (len(ins) + 1), ["parallel"] * 2, body)
        return _tile_matmul(s, h, h_t, args[-1], ws[-1], g, acc)
    return _tile_loop(e, op, args, tile)


LOWERINGS = {"prim.top_k": lower_top_k, "prim.scan": lower_scan, "prim.scatter": lower_scatter,
             "prim.block_matmul": lower_block_matmul, "prim.block_ffn": lower_block_ffn}
