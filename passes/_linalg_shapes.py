"""prim-to-linalg: the shape ops (broadcast, reduce, transpose, reshape, cast, slice, pad,
concat, gather, iota) as linalg/tensor ops, one function per op."""

from __future__ import annotations

import numpy as np

from stepwell.core.types import TensorType, is_float, numpy_dtype
from stepwell.passes._linalg_text import (Unsupported, amap, attr, convert, identity,
                                          ttype)


# -- shape ops --------------------------------------------------------------------------


def dynamic_sizes(res: TensorType, sizes) -> dict:
    """{result dim: its size operand} for the dynamic dims of ``res`` (``sizes`` in order)."""
    dyn = [i for i, d in enumerate(res.shape) if d is None]
    return dict(zip(dyn, sizes)) if sizes else {}


# broadcast: linalg.broadcast, whose `dimensions` are the result dims prim's `dims` leaves out;
# dynamic result dims take their `sizes` operand (else the operand's size).
def lower_broadcast(op, e, args):
    x, res = ttype(op.operands[0]), ttype(op.results[0])
    dims = attr(op, "dims")
    value, x = e.agree(args[0], x, [res.shape[d] for d in dims], "'prim.broadcast' operand")
    added = [d for d in range(res.rank) if d not in dims]
    if not added:
        return e.cast(value, x, res)
    like = {d: (value, x, i) for i, d in enumerate(dims)}
    like.update(dynamic_sizes(res, args[1:]))
    if any(res.shape[d] is None and d not in like for d in added):
        raise Unsupported(f"a dynamic added dimension in {res} without its size")
    init = e.empty(res, like)
    return e(f"linalg.broadcast ins({value} : {x}) outs({init} : {res}) "
             f"dimensions = [{', '.join(map(str, added))}]")


_REDUCE_OPS = {("sum", "f"): "addf", ("prod", "f"): "mulf", ("max", "f"): "maximumf",
               ("min", "f"): "minimumf", ("sum", "i"): "addi", ("prod", "i"): "muli",
               ("max", "i"): "maxsi", ("min", "i"): "minsi", ("sum", "b"): "ori",
               ("prod", "b"): "andi", ("max", "b"): "ori", ("min", "b"): "andi"}


def reduce_init(kind: str, dtype: str):
    """The identity of a reduction: 0, 1, -inf / +inf (the extreme integers)."""
    if kind in ("sum", "prod"):
        return int(kind == "prod")
    if dtype == "i1":
        return kind == "min"
    if is_float(dtype):
        return -np.inf if kind == "max" else np.inf
    info = np.iinfo(numpy_dtype(dtype))
    return info.min if kind == "max" else info.max


# reduce: linalg.reduce over the axes, initialised with the reduction's identity.
# reduce (sum over two or more dims that are not unit): the last such dim (with the unit
#   ones) first, the rest in a second linalg.reduce (IREE 3.13 builds an invalid
#   vector.contract for a sum of a broadcast product over two wide dims).
def lower_reduce(op, e, args):
    x, res = ttype(op.operands[0]), ttype(op.results[0])
    kind = attr(op, "kind")
    axes = sorted(a % x.rank for a in attr(op, "axes"))
    if not axes:
        return e.cast(args[0], x, res)
    split = split_sum(x.shape, axes) if kind == "sum" else None
    if split:
        first, rest = split
        mid = x.with_shape([d for i, d in enumerate(x.shape) if i not in first])
        return _reduce(e, _reduce(e, args[0], x, mid, first, kind), mid, res, rest, kind)
    return _reduce(e, args[0], x, res, axes, kind)


def split_sum(shape, axes):
    """(first axes, then the other axes numbered in the first reduce's result) for a sum
    over two or more wide dims (size not 1, or dynamic), else None."""
    wide = [a for a in sorted(axes) if shape[a] != 1]
    if len(wide) < 2:
        return None
    first = [a for a in sorted(axes) if a not in wide[:-1]]
    return first, [a - sum(f < a for f in first) for a in wide[:-1]]


def _reduce(e, value: str, x: TensorType, res: TensorType, axes, kind: str) -> str:
    """One linalg.reduce of ``value`` over ``axes``."""
    kept = [d for d in range(x.rank) if d not in axes]
    init = e.filled(reduce_init(kind, x.dtype), res, {i: (value, x, d) for i, d in enumerate(kept)})
    t = x.dtype
    fn = _REDUCE_OPS[kind, "b" if t == "i1" else ("f" if is_float(t) else "i")]
    b = e.nested()
    r = b(f"arith.{fn} %in, %acc : {t}")
    body = "\n    ".join(b.lines + [f"linalg.yield {r} : {t}"])
    return e(f"linalg.reduce ins({value} : {x}) outs({init} : {res}) "
             f"dimensions = [{', '.join(map(str, axes))}]\n"
             f"  (%in: {t}, %acc: {t}) {{\n    {body}\n  }}")


# transpose: linalg.transpose with the same permutation.
def lower_transpose(op, e, args):
    x, res = ttype(op.operands[0]), ttype(op.results[0])
    perm = attr(op, "permutation")
    if perm == sorted(perm):
        return e.cast(args[0], x, res)
    init = e.empty(res, {i: (args[0], x, p) for i, p in enumerate(perm)})
    return e(f"linalg.transpose ins({args[0]} : {x}) outs({init} : {res}) "
             f"permutation = [{', '.join(map(str, perm))}]")


def reassociation(big, small):
    """Groups of consecutive ``big`` dims whose products are the ``small`` dims, or None.

    A dynamic dim only groups with unit dims and matches a dynamic dim."""
    if not small:  # rank 0: only unit dims fold away
        return [] if all(d == 1 for d in big) else None
    groups, i = [], 0
    for d in small:
        group = []
        if d is None:
            while i < len(big) and big[i] == 1:
                group.append(i)
                i += 1
            if i == len(big) or big[i] is not None:
                return None
            group.append(i)
            i += 1
        else:
            size = 1
            while i < len(big) and big[i] is not None and (size < d or (big[i] == 1 and size == d and not group)):
                size *= big[i]
                group.append(i)
                i += 1
            if size != d or not group:
                return None
        groups.append(group)
    while i < len(big) and big[i] == 1 and groups:  # trailing unit dims join the last group
        groups[-1].append(i)
        i += 1
    return groups if i == len(big) else None


def _groups_text(groups) -> str:
    return "[" + ", ".join("[" + ", ".join(map(str, g)) + "]" for g in groups) + "]"


def _expand(e, value: str, src: TensorType, dst: TensorType, groups, known=None) -> str:
    """tensor.expand_shape; a dynamic result dim's size is ``known[i]`` (a size operand)
    or else its source dim's."""
    owner = {i: j for j, group in enumerate(groups) for i in group}
    known = known or {}
    sizes = [str(d) if d is not None else known.get(i) or e.dim(value, src, owner[i])
             for i, d in enumerate(dst.shape)]
    return e(f"tensor.expand_shape {value} {_groups_text(groups)} output_shape [{', '.join(sizes)}] "
             f": {src} into {dst}")


# reshape: collapse_shape / expand_shape when it is one, else collapse to 1-D and expand
# (dynamic result dims take their `sizes` operands).
def lower_reshape(op, e, args):
    x, res = ttype(op.operands[0]), ttype(op.results[0])
    return reshape_value(e, args[0], x, res, dynamic_sizes(res, args[1:]))


def reshape_value(e, value: str, x: TensorType, res: TensorType, known=None) -> str:
    """``value`` of type ``x`` reshaped (row-major) to ``res``; ``known``: the sizes
    (index SSA values) of the result's dynamic dims, by dim."""
    known = known or {}
    if x.shape == res.shape and (res.shape.count(None) <= 1 or not known):
        return value
    if x.rank > res.rank and (groups := reassociation(x.shape, res.shape)) is not None:
        return e(f"tensor.collapse_shape {value} {_groups_text(groups)} : {x} into {res}")
    if x.rank < res.rank and (groups := reassociation(res.shape, x.shape)) is not None:
        return _expand(e, value, x, res, groups, known)
    mid = x.with_shape([d for d in x.shape if d != 1])
    if [d for d in res.shape if d != 1] == list(mid.shape) and (not known or mid.shape.count(None) <= 1):
        # (moves unit dims only: with one dynamic dim, its size is the operand's)
        if mid.rank < x.rank:
            value = e(f"tensor.collapse_shape {value} {_groups_text(reassociation(x.shape, mid.shape))} "
                      f": {x} into {mid}")
        return _expand(e, value, mid, res, reassociation(res.shape, mid.shape)) if mid.rank < res.rank else value
    if None in res.shape and len(known) < res.shape.count(None):
        raise Unsupported(f"a dynamic reshape from {x} to {res} without the result's sizes")
    flat = x.with_shape([int(np.prod(x.shape))] if None not in x.shape else [None])
    if x.rank != 1:
        value = e(f"tensor.collapse_shape {value} {_groups_text([list(range(x.rank))])} : {x} into {flat}")
    if res.rank == 1:
        return value
    groups = [list(range(res.rank))] if res.rank else []
    if res.rank == 0:
        return e(f"tensor.collapse_shape {value} [] : {flat} into {res}")
    return _expand(e, value, flat, res, groups, known)


# cast: a linalg.generic applying arith.extf/truncf/sitofp/fptosi/extsi/trunci/... per element.
def lower_cast(op, e, args):
    x, res = ttype(op.operands[0]), ttype(op.results[0])
    if x == res:
        return args[0]
    return e.elementwise([(args[0], x)], res, lambda s, xs: convert(s, xs[0], x.dtype, res.dtype),
                         {i: (args[0], x, i) for i in range(res.rank)})


# slice: tensor.extract_slice with sizes ceil((limit - start) / stride) (or a `sizes` operand).
def lower_slice(op, e, args):
    x, res = ttype(op.operands[0]), ttype(op.results[0])
    start, stride = attr(op, "start"), attr(op, "stride") or [1] * x.rank
    known = dynamic_sizes(res, args[1:])
    sizes = [str(d) if d is not None else known[i] for i, d in enumerate(res.shape)]
    join = lambda v: ", ".join(map(str, v))  # noqa: E731
    return e(f"tensor.extract_slice {args[0]}[{join(start)}] [{join(sizes)}] [{join(stride)}] "
             f": {x} to {res}")


# pad: tensor.pad yielding `value` converted to the element type.
def lower_pad(op, e, args):
    x, res = ttype(op.operands[0]), ttype(op.results[0])
    return _pad(e, args[0], x, res, attr(op, "low"), attr(op, "high"), attr(op, "value", 0.0))


def _pad(e, value: str, x: TensorType, res: TensorType, low, high, fill) -> str:
    if not any(low) and not any(high):
        return e.cast(value, x, res)
    if not is_float(x.dtype):
        fill = bool(fill) if x.dtype == "i1" else int(fill)
    c = e.const(fill, x.dtype)
    join = lambda v: ", ".join(map(str, v))  # noqa: E731
    idx = ", ".join(f"%i{k}: index" for k in range(x.rank))
    return e(f"tensor.pad {value} low[{join(low)}] high[{join(high)}] {{\n"
             f"^bb0({idx}):\n  tensor.yield {c} : {x.dtype}\n}} : {x} to {res}")


# concat: tensor.concat along the axis.
def lower_concat(op, e, args):
    types = [ttype(v) for v in op.operands]
    res = ttype(op.results[0])
    if len(args) == 1:
        return e.cast(args[0], types[0], res)
    axis = attr(op, "axis") % res.rank
    return e(f"tensor.concat dim({axis}) {', '.join(args)} : "
             f"({', '.join(map(str, types))}) -> {res}")


# gather: a linalg.generic over the result reading the table at the clamped id (tensor.extract).
def lower_gather(op, e, args):
    table, ids = (ttype(v) for v in op.operands)
    res = ttype(op.results[0])
    axis = attr(op, "axis", 0) % table.rank
    n = ids.rank
    size = (e.index(table.shape[axis]) if table.shape[axis] is not None
            else e.dim(args[0], table, axis))
    last = e(f"arith.subi {size}, {e.index(1)} : index")
    zero = e.index(0)
    like = {d: (args[0], table, d) for d in range(axis)}
    like.update({axis + k: (args[1], ids, k) for k in range(n)})
    like.update({axis + n + d: (args[0], table, axis + 1 + d) for d in range(table.rank - axis - 1)})
    init = e.empty(res, like)

    def body(s, xs):
        i = s(f"arith.index_cast {xs[0]} : {ids.dtype} to index")
        i = s(f"arith.minsi {s(f'arith.maxsi {i}, {zero} : index')}, {last} : index")
        outer = [s(f"linalg.index {d} : index") for d in range(axis)]
        inner = [s(f"linalg.index {axis + n + d} : index") for d in range(table.rank - axis - 1)]
        return s(f"tensor.extract {args[0]}[{', '.join(outer + [i] + inner)}] : {table}")

    maps = [amap(res.rank, range(axis, axis + n)), identity(res.rank)]
    return e.generic([(args[1], ids)], init, res, maps, ["parallel"] * res.rank, body)


# iota: a linalg.generic yielding linalg.index of `dim`, converted to the element type.
def lower_iota(op, e, args):
    res = ttype(op.results[0])
    dim = attr(op, "dim")

    def body(s, xs):
        i = s(f"arith.index_cast {s(f'linalg.index {dim} : index')} : index to i64")
        return convert(s, i, "i64", res.dtype)

    return e.generic([], e.empty(res, dynamic_sizes(res, args)), res, [identity(res.rank)],
                     ["parallel"] * res.rank, body)


# update_slice: tensor.insert_slice at the offsets clamped into [0, size - update size].
def lower_update_slice(op, e, args):
    x, u = (ttype(v) for v in op.operands[:2])
    offsets, sizes = [], []
    for i, off in enumerate(args[2:]):
        n = e.index(u.shape[i]) if u.shape[i] is not None else e.dim(args[1], u, i)
        size = e.index(x.shape[i]) if x.shape[i] is not None else e.dim(args[0], x, i)
        room = e(f"arith.subi {size}, {n} : index")
        offsets.append(e(f"arith.minsi {e(f'arith.maxsi {off}, {e.index(0)} : index')}, {room} : index"))
        sizes.append(str(u.shape[i]) if u.shape[i] is not None else n)
    ones = ", ".join("1" for _ in range(x.rank))
    return e(f"tensor.insert_slice {args[1]} into {args[0]}[{', '.join(offsets)}] [{', '.join(sizes)}] "
             f"[{ones}] : {u} into {x}")
