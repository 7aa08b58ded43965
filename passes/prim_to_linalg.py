"""The ``prim-to-linalg`` pass: every ``prim`` op to linalg/tensor/arith/math."""

from __future__ import annotations

import functools

import numpy as np

from stepwell.dialects.prim import parse_contract_spec
from stepwell.core.ir import ir
from stepwell.core.opspec import is_custom
from stepwell.passes._linalg_text import amap, function_text, identity, splice
from stepwell.core.passes_base import Pass, fail_at, producer, register, splat_value as _splat
from stepwell.core.types import TensorType, is_float, numpy_dtype
from stepwell.core.verifier import walk


class Unsupported(Exception):
    """A prim op case this pass has no lowering for (reported at the op)."""


def _floats_wide(dtype: str) -> str:
    """The accumulator type for a float result: f32 for f16/bf16, else the type itself."""
    return "f32" if dtype in ("f16", "bf16") else dtype


def convert(b, value: str, src: str, dst: str) -> str:
    """Scalar conversion ``src`` -> ``dst`` (numpy ``astype`` semantics)."""
    if src == dst:
        return value
    if dst == "i1":  # nonzero -> true
        if is_float(src):
            return b(f"arith.cmpf une, {value}, {b.const(0, src)} : {src}")
        return b(f"arith.cmpi ne, {value}, {b.const(0, src)} : {src}")
    width = {"f16": 16, "bf16": 16, "f32": 32, "f64": 64}
    if is_float(src) and is_float(dst):
        if width[src] == width[dst]:  # f16 <-> bf16 goes through f32
            value, src = b(f"arith.extf {value} : {src} to f32"), "f32"
        op = "extf" if width[src] < width[dst] else "truncf"
        return b(f"arith.{op} {value} : {src} to {dst}")
    if is_float(dst):
        return b(f"arith.{'uitofp' if src == 'i1' else 'sitofp'} {value} : {src} to {dst}")
    if is_float(src):
        return b(f"arith.fptosi {value} : {src} to {dst}")
    bits = lambda t: int(t[1:])  # noqa: E731
    op = "trunci" if bits(src) > bits(dst) else ("extui" if src == "i1" else "extsi")
    return b(f"arith.{op} {value} : {src} to {dst}")


def _ttype(value) -> TensorType:
    return TensorType.from_mlir(value.type)


def _attr(op, name, default=None):
    """An attribute as a Python value (``default`` when left out)."""
    if name not in op.attributes:
        return default
    attr = op.attributes[name]
    return [int(v) for v in attr] if isinstance(attr, ir.DenseI64ArrayAttr) else attr.value


# -- contract ----------------------------------------------------------------------


def _matmul_kind(lhs: str, rhs: str, out: str) -> str | None:
    """'matmul' for ij,jk->ik, 'batch_matmul' for bij,bjk->bik (any letters), else None."""
    if len(lhs) == len(rhs) == 2 and lhs[1] == rhs[0] and out == lhs[0] + rhs[1]:
        return "matmul"
    if len(lhs) == 3 and lhs[0] == rhs[0] == out[:1] and _matmul_kind(lhs[1:], rhs[1:], out[1:]):
        return "batch_matmul"
    return None


def _widened(e, value: str, t: TensorType) -> tuple[str, TensorType]:
    """``value`` converted to f32 behind ``util.optimization_barrier``, so that IREE
    keeps the conversion out of the contraction that reads it."""
    wide = t.with_dtype("f32")
    value = e.elementwise([(value, t)], wide, lambda s, xs: convert(s, xs[0], t.dtype, "f32"),
                          {i: (value, t, i) for i in range(t.rank)})
    return e(f"util.optimization_barrier {value} : {wide}"), wide


_VIEWS = ("tensor.expand_shape", "tensor.collapse_shape", "tensor.cast", "linalg.transpose")


def _stored(value) -> bool:
    """Whether ``value`` is (a view of) a constant or a global: stored weights."""
    owner = value.owner
    while isinstance(owner, ir.OpView) and owner.operation.name in _VIEWS:
        owner = owner.operands[0].owner
    return isinstance(owner, ir.OpView) and owner.operation.name in ("arith.constant", "util.global.load")


# contract: linalg.matmul / batch_matmul for the plain specs, a linalg.generic otherwise;
# with widen, f16/bf16 operands are converted to f32 first (an f32 contraction), unless
# one is a stored weight: IREE would then keep an f32 copy of it, doubling its memory.
def lower_contract(op, e, args, widen: bool = False):
    lhs, rhs, out = parse_contract_spec(_attr(op, "spec"))
    a, b = (_ttype(v) for v in op.operands)
    res = _ttype(op.results[0])
    acc = res.with_dtype(_floats_wide(res.dtype))
    if (widen and acc.dtype == "f32" and {a.dtype, b.dtype} <= {"f16", "bf16"}
            and not any(_stored(v) for v in op.operands)):
        (x, a), (y, b) = _widened(e, args[0], a), _widened(e, args[1], b)
        args = [x, y]
    like = {i: (args[0], a, lhs.index(c)) if c in lhs else (args[1], b, rhs.index(c))
            for i, c in enumerate(out)}
    init = e.filled(0, acc, like)
    kind = _matmul_kind(lhs, rhs, out)
    if kind:
        value = e(f"linalg.{kind} ins({args[0]}, {args[1]} : {a}, {b}) outs({init} : {acc}) -> {acc}")
    else:
        loops = list(out) + [c for c in dict.fromkeys(lhs + rhs) if c not in out]
        maps = [amap(len(loops), [loops.index(c) for c in s]) for s in (lhs, rhs, out)]
        iters = ["parallel" if c in out else "reduction" for c in loops]

        def body(s, xs):
            x, y = (convert(s, v, a.dtype, acc.dtype) for v in xs[:2])
            if acc.dtype == "i1":
                return s(f"arith.ori {xs[2]}, {s(f'arith.andi {x}, {y} : i1')} : i1")
            f = "f" if is_float(acc.dtype) else "i"
            return s(f"arith.add{f} {xs[2]}, {s(f'arith.mul{f} {x}, {y} : {acc.dtype}')} : {acc.dtype}")

        value = e.generic([(args[0], a), (args[1], b)], init, acc, maps, iters, body)
    return _narrow(e, value, acc, res)


def _narrow(e, value: str, acc: TensorType, res: TensorType) -> str:
    """Round an f32 accumulator back to the f16/bf16 result type."""
    if acc == res:
        return value
    return e.elementwise([(value, acc)], res,
                         lambda s, xs: convert(s, xs[0], acc.dtype, res.dtype),
                         {i: (value, acc, i) for i in range(res.rank)})


# -- map -----------------------------------------------------------------------------

_FLOAT_UNARY = {"exp": "math.exp", "log": "math.log", "tanh": "math.tanh", "erf": "math.erf",
                "sqrt": "math.sqrt", "rsqrt": "math.rsqrt", "sin": "math.sin", "cos": "math.cos",
                "floor": "math.floor", "ceil": "math.ceil", "abs": "math.absf", "neg": "arith.negf",
                "round": "math.roundeven"}
_FLOAT_BINARY = {"add": "addf", "sub": "subf", "mul": "mulf", "div": "divf", "max": "maximumf",
                 "min": "minimumf", "rem": "remf"}
_INT_BINARY = {"add": "addi", "sub": "subi", "mul": "muli", "div": "divsi", "max": "maxsi",
               "min": "minsi", "rem": "remsi"}
_SHIFTS = {"shl": "shli", "shr_s": "shrsi", "shr_u": "shrui"}
_BOOL_BINARY = {"add": "ori", "mul": "andi", "sub": "xori", "max": "ori", "min": "andi", "div": "andi"}
# ne is unordered (true on NaN) like numpy and JAX; the others are ordered.
_CMPF = {"eq": "oeq", "ne": "une", "lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge"}
_CMPI = {"eq": "eq", "ne": "ne", "lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"}
_CMPU = {"eq": "eq", "ne": "ne", "lt": "ult", "le": "ule", "gt": "ugt", "ge": "uge"}  # i1


def scalar_fn(s, fn: str, xs, t: str) -> str:
    """The scalar arith/math code of ``prim.map``'s ``fn`` on values ``xs`` of type ``t``
    (for select: the type of the chosen values)."""
    if fn == "select":
        return s(f"arith.select {xs[0]}, {xs[1]}, {xs[2]} : {t}")
    if fn in _CMPF:
        if is_float(t):
            return s(f"arith.cmpf {_CMPF[fn]}, {xs[0]}, {xs[1]} : {t}")
        return s(f"arith.cmpi {(_CMPU if t == 'i1' else _CMPI)[fn]}, {xs[0]}, {xs[1]} : {t}")
    if is_float(t):
        if fn in _FLOAT_UNARY:
            return s(f"{_FLOAT_UNARY[fn]} {xs[0]} : {t}")
        if fn in _FLOAT_BINARY:
            return s(f"arith.{_FLOAT_BINARY[fn]} {xs[0]}, {xs[1]} : {t}")
        if fn == "pow":
            return s(f"math.powf {xs[0]}, {xs[1]} : {t}")
        if fn == "recip":
            return s(f"arith.divf {s.const(1, t)}, {xs[0]} : {t}")
        if fn == "logistic":  # 1 / (1 + exp(-x))
            one = s.const(1, t)
            ex = s(f"math.exp {s(f'arith.negf {xs[0]} : {t}')} : {t}")
            return s(f"arith.divf {one}, {s(f'arith.addf {one}, {ex} : {t}')} : {t}")
    else:
        if fn in ("and", "or", "xor"):  # logical on i1, bitwise on integers
            return s(f"arith.{fn}i {xs[0]}, {xs[1]} : {t}")
        if fn in _SHIFTS and t != "i1":
            return s(f"arith.{_SHIFTS[fn]} {xs[0]}, {xs[1]} : {t}")
        if fn == "not":
            return s(f"arith.xori {xs[0]}, {s.const(True if t == 'i1' else -1, t)} : {t}")
        if t == "i1" and fn in _BOOL_BINARY:  # numpy's bool arithmetic: add is or, mul is and
            return s(f"arith.{_BOOL_BINARY[fn]} {xs[0]}, {xs[1]} : i1")
        if t == "i1" and fn in ("neg", "abs"):
            return xs[0]
        if fn in _INT_BINARY:
            return s(f"arith.{_INT_BINARY[fn]} {xs[0]}, {xs[1]} : {t}")
        if fn == "neg":
            return s(f"arith.subi {s.const(0, t)}, {xs[0]} : {t}")
        if fn == "abs":
            return s(f"math.absi {xs[0]} : {t}")
    raise Unsupported(f"fn '{fn}' on {t}")


def _broadcast_source(value):
    """(input, the result dims it keeps) of a static ``linalg.broadcast``, else None."""
    owner = producer(value, "linalg.broadcast")
    if owner is None:
        return None
    added = set(ir.DenseI64ArrayAttr(owner.attributes["dimensions"]))
    rank = _ttype(value).rank
    return owner.operands[0], [d for d in range(rank) if d not in added]


def map_inputs(op):
    """A ``prim.map``'s tensor inputs, as (value, result dims it is read at), looking
    through what is already lowered: a splat constant becomes a scalar in the body
    (None), a ``linalg.broadcast`` is read through a projected map."""
    static = None not in _ttype(op.results[0]).shape  # else a full operand gives the sizes
    out = []
    for v in op.operands:
        if static and _splat(v) is not None:
            out.append(None)
        else:
            out.append((static and _broadcast_source(v)) or (v, list(range(_ttype(v).rank))))
    return out


# map: an elementwise linalg.generic whose body is the scalar arith/math function; a
# broadcast operand is read through its map and a splat constant is a scalar (IREE
# then fuses the chain; a linalg.broadcast between reductions made IREE raise a
# softmax it runs 1.7x slower than the fused generics).
def lower_map(op, e, args):
    fn = _attr(op, "fn")
    types = [_ttype(v) for v in op.operands]
    res = _ttype(op.results[0])
    inputs = map_inputs(op)
    ins, maps, slots = [], [], []
    for inp in inputs:
        if inp is None:
            slots.append(None)
            continue
        slots.append(len(ins))
        ins.append((args[len(ins)], _ttype(inp[0])))
        maps.append(amap(res.rank, inp[1]))
    like = {} if None not in res.shape else {i: (args[0], types[0], i) for i in range(res.rank)}

    def body(s, xs):
        scalars = [xs[k] if k is not None else s.const(_splat(v), types[i].dtype)
                   for i, (k, v) in enumerate(zip(slots, op.operands))]
        return scalar_fn(s, fn, scalars, types[-1].dtype)
    init = e.empty(res, like)
    return e.generic(ins, init, res, maps + [identity(res.rank)], ["parallel"] * res.rank, body)


lower_map.operands = lambda op: [inp[0] for inp in map_inputs(op) if inp is not None]


# -- shape ops --------------------------------------------------------------------------


# broadcast: linalg.broadcast, whose `dimensions` are the result dims prim's `dims` leaves out.
def lower_broadcast(op, e, args):
    x, res = _ttype(op.operands[0]), _ttype(op.results[0])
    dims = _attr(op, "dims")
    added = [d for d in range(res.rank) if d not in dims]
    if not added:
        return e.cast(args[0], x, res)
    if any(res.shape[d] is None for d in added):
        raise Unsupported(f"a dynamic added dimension in {res}")
    init = e.empty(res, {d: (args[0], x, i) for i, d in enumerate(dims)})
    return e(f"linalg.broadcast ins({args[0]} : {x}) outs({init} : {res}) "
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
def lower_reduce(op, e, args):
    x, res = _ttype(op.operands[0]), _ttype(op.results[0])
    kind = _attr(op, "kind")
    axes = sorted(a % x.rank for a in _attr(op, "axes"))
    if not axes:
        return e.cast(args[0], x, res)
    kept = [d for d in range(x.rank) if d not in axes]
    init = e.filled(reduce_init(kind, x.dtype), res, {i: (args[0], x, d) for i, d in enumerate(kept)})
    t = x.dtype
    fn = _REDUCE_OPS[kind, "b" if t == "i1" else ("f" if is_float(t) else "i")]
    b = e.nested()
    r = b(f"arith.{fn} %in, %acc : {t}")
    body = "\n    ".join(b.lines + [f"linalg.yield {r} : {t}"])
    return e(f"linalg.reduce ins({args[0]} : {x}) outs({init} : {res}) "
             f"dimensions = [{', '.join(map(str, axes))}]\n"
             f"  (%in: {t}, %acc: {t}) {{\n    {body}\n  }}")


# transpose: linalg.transpose with the same permutation.
def lower_transpose(op, e, args):
    x, res = _ttype(op.operands[0]), _ttype(op.results[0])
    perm = _attr(op, "permutation")
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


def _expand(e, value: str, src: TensorType, dst: TensorType, groups) -> str:
    """tensor.expand_shape; a dynamic result dim's size comes from its source dim."""
    owner = {i: j for j, group in enumerate(groups) for i in group}
    sizes = [str(d) if d is not None else e.dim(value, src, owner[i]) for i, d in enumerate(dst.shape)]
    return e(f"tensor.expand_shape {value} {_groups_text(groups)} output_shape [{', '.join(sizes)}] "
             f": {src} into {dst}")


# reshape: collapse_shape / expand_shape when it is one, else collapse to 1-D and expand.
def lower_reshape(op, e, args):
    x, res = _ttype(op.operands[0]), _ttype(op.results[0])
    if x.shape == res.shape:
        return args[0]
    if x.rank > res.rank and (groups := reassociation(x.shape, res.shape)) is not None:
        return e(f"tensor.collapse_shape {args[0]} {_groups_text(groups)} : {x} into {res}")
    if x.rank < res.rank and (groups := reassociation(res.shape, x.shape)) is not None:
        return _expand(e, args[0], x, res, groups)
    if None in x.shape or None in res.shape:
        raise Unsupported(f"a dynamic reshape from {x} to {res}")
    flat = x.with_shape([int(np.prod(x.shape))])
    value = args[0]
    if x.rank != 1:
        value = e(f"tensor.collapse_shape {value} {_groups_text([list(range(x.rank))])} : {x} into {flat}")
    if res.rank == 1:
        return value
    groups = [list(range(res.rank))] if res.rank else []
    if res.rank == 0:
        return e(f"tensor.collapse_shape {value} [] : {flat} into {res}")
    return _expand(e, value, flat, res, groups)


# cast: a linalg.generic applying arith.extf/truncf/sitofp/fptosi/extsi/trunci/... per element.
def lower_cast(op, e, args):
    x, res = _ttype(op.operands[0]), _ttype(op.results[0])
    if x == res:
        return args[0]
    return e.elementwise([(args[0], x)], res, lambda s, xs: convert(s, xs[0], x.dtype, res.dtype),
                         {i: (args[0], x, i) for i in range(res.rank)})


# slice: tensor.extract_slice with sizes ceil((limit - start) / stride).
def lower_slice(op, e, args):
    x, res = _ttype(op.operands[0]), _ttype(op.results[0])
    start, stride = _attr(op, "start"), _attr(op, "stride") or [1] * x.rank
    sizes = [str(d) for d in res.shape]
    join = lambda v: ", ".join(map(str, v))  # noqa: E731
    return e(f"tensor.extract_slice {args[0]}[{join(start)}] [{join(sizes)}] [{join(stride)}] "
             f": {x} to {res}")


# pad: tensor.pad yielding `value` converted to the element type.
def lower_pad(op, e, args):
    x, res = _ttype(op.operands[0]), _ttype(op.results[0])
    return _pad(e, args[0], x, res, _attr(op, "low"), _attr(op, "high"), _attr(op, "value", 0.0))


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
    types = [_ttype(v) for v in op.operands]
    res = _ttype(op.results[0])
    if len(args) == 1:
        return e.cast(args[0], types[0], res)
    axis = _attr(op, "axis") % res.rank
    return e(f"tensor.concat dim({axis}) {', '.join(args)} : "
             f"({', '.join(map(str, types))}) -> {res}")


# gather: a linalg.generic over the result reading the table at the clamped id (tensor.extract).
def lower_gather(op, e, args):
    table, ids = (_ttype(v) for v in op.operands)
    res = _ttype(op.results[0])
    axis = _attr(op, "axis", 0) % table.rank
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
    res = _ttype(op.results[0])
    dim = _attr(op, "dim")

    def body(s, xs):
        i = s(f"arith.index_cast {s(f'linalg.index {dim} : index')} : index to i64")
        return convert(s, i, "i64", res.dtype)

    return e.generic([], e.empty(res), res, [identity(res.rank)], ["parallel"] * res.rank, body)


# -- conv -----------------------------------------------------------------------------


# conv: tensor.pad, then linalg.conv_2d_nhwc_hwcf (groups 1), a depthwise conv (groups = C)
# or a grouped linalg.generic; f16/bf16 accumulate in f32.
def lower_conv(op, e, args):
    x, w = (_ttype(v) for v in op.operands)
    res = _ttype(op.results[0])
    strides, dilation = _attr(op, "strides", [1, 1]), _attr(op, "dilation", [1, 1])
    top, bottom, left, right = _attr(op, "padding", [0, 0, 0, 0])
    groups = _attr(op, "groups", 1)
    n, h, wd, c = x.shape
    kh, kw, ci, co = w.shape
    if c is None:
        raise Unsupported(f"a dynamic channel count in {x}")
    grow = lambda d, lo, hi: None if d is None else d + lo + hi  # noqa: E731
    padded = x.with_shape([n, grow(h, top, bottom), grow(wd, left, right), c])
    xv = _pad(e, args[0], x, padded, [0, top, left, 0], [0, bottom, right, 0], 0)
    like = {0: (args[0], x, 0)}  # dynamic output sizes: batch, (padded - span) / stride + 1
    for d, k in ((1, kh), (2, kw)):
        if res.shape[d] is None:
            span = (k - 1) * dilation[d - 1] + 1
            size = e(f"arith.subi {e.dim(xv, padded, d)}, {e.index(span)} : index")
            size = e(f"arith.divui {size}, {e.index(strides[d - 1])} : index")
            like[d] = e(f"arith.addi {size}, {e.index(1)} : index")
    acc = res.with_dtype(_floats_wide(res.dtype))
    attrs = (f"{{dilations = dense<[{dilation[0]}, {dilation[1]}]> : tensor<2xi64>, "
             f"strides = dense<[{strides[0]}, {strides[1]}]> : tensor<2xi64>}}")
    if groups == 1:
        init = e.filled(0, acc, like)
        value = e(f"linalg.conv_2d_nhwc_hwcf {attrs} ins({xv}, {args[1]} : {padded}, {w}) "
                  f"outs({init} : {acc}) -> {acc}")
    elif groups == c:
        m = co // c
        flat = w.with_shape([kh, kw, co])
        wv = e(f"tensor.collapse_shape {args[1]} [[0], [1], [2, 3]] : {w} into {flat}")
        if m == 1:
            init = e.filled(0, acc, like)
            value = e(f"linalg.depthwise_conv_2d_nhwc_hwc {attrs} ins({xv}, {wv} : {padded}, {flat}) "
                      f"outs({init} : {acc}) -> {acc}")
        else:
            wt = w.with_shape([kh, kw, c, m])
            wv = _expand(e, wv, flat, wt, [[0], [1], [2, 3]])
            wide = acc.with_shape(list(acc.shape[:3]) + [c, m])
            init = e.filled(0, wide, like)
            value = e(f"linalg.depthwise_conv_2d_nhwc_hwcm {attrs} ins({xv}, {wv} : {padded}, {wt}) "
                      f"outs({init} : {wide}) -> {wide}")
            value = e(f"tensor.collapse_shape {value} [[0], [1], [2], [3, 4]] : {wide} into {acc}")
    else:
        value = _grouped_conv(e, xv, padded, args[1], w, acc, groups, strides, dilation, like)
    return _narrow(e, value, acc, res)


def _grouped_conv(e, xv, xt, wv, wt, acc, groups, strides, dilation, like):
    """out[n,oh,ow,g,f] = sum x[n, oh*s+kh*d, ow*s+kw*d, g, c] * w[kh, kw, c, g, f]."""
    n, h, wd, c = xt.shape
    kh, kw, ci, co = wt.shape
    xg = xt.with_shape([n, h, wd, groups, ci])
    wg = wt.with_shape([kh, kw, ci, groups, co // groups])
    og = acc.with_shape(list(acc.shape[:3]) + [groups, co // groups])
    xv = _expand(e, xv, xt, xg, [[0], [1], [2], [3, 4]])
    wv = _expand(e, wv, wt, wg, [[0], [1], [2], [3, 4]])
    init = e.filled(0, og, like)
    # loops: n oh ow g f kh kw c
    maps = [amap(8, [0, f"d1 * {strides[0]} + d5 * {dilation[0]}", f"d2 * {strides[1]} + d6 * {dilation[1]}", 3, 7]),
            amap(8, [5, 6, 7, 3, 4]), amap(8, range(5))]
    iters = ["parallel"] * 5 + ["reduction"] * 3

    def body(s, args):
        a, b = (convert(s, v, xt.dtype, acc.dtype) for v in args[:2])
        f = "f" if is_float(acc.dtype) else "i"
        return s(f"arith.add{f} {args[2]}, {s(f'arith.mul{f} {a}, {b} : {acc.dtype}')} : {acc.dtype}")

    value = e.generic([(xv, xg), (wv, wg)], init, og, maps, iters, body)
    return e(f"tensor.collapse_shape {value} [[0], [1], [2], [3, 4]] : {og} into {acc}")


LOWERINGS = {
    "prim.contract": lower_contract, "prim.map": lower_map, "prim.broadcast": lower_broadcast,
    "prim.reduce": lower_reduce, "prim.transpose": lower_transpose, "prim.reshape": lower_reshape,
    "prim.cast": lower_cast, "prim.slice": lower_slice, "prim.pad": lower_pad,
    "prim.concat": lower_concat, "prim.gather": lower_gather, "prim.iota": lower_iota,
    "prim.conv": lower_conv,
}


def _cannot_lower(op, why: str = ""):
    hint = why or (": run nn-to-prim first" if op.name.startswith("nn.") else "")
    return fail_at(op, f"cannot lower '{op.name}' to linalg{hint}")


def lower_op(op, lowerings=LOWERINGS) -> None:
    """Replace one prim op by its linalg lowering (spliced in from MLIR text)."""
    lowering = lowerings[op.name]
    # the values the lowered IR reads (a map reads through broadcasts, not splats)
    operands = lowering.operands(op) if hasattr(lowering, "operands") else list(op.operands)
    result_types = [_ttype(r) for r in op.results]
    try:
        text = function_text([_ttype(v) for v in operands], result_types,
                             lambda e, args: lowering(op, e, args))
    except Unsupported as err:
        raise _cannot_lower(op, f": {err} is not supported") from None
    splice(op, text, operands)


@register
class PrimToLinalg(Pass):
    """Lower every ``prim`` op to upstream linalg/tensor/arith/math (+ ``iree_linalg_ext``).

    Named linalg ops where one fits (``matmul``, ``batch_matmul``, ``reduce``,
    ``broadcast``, ``transpose``, the NHWC convolutions), ``linalg.generic`` otherwise;
    ``tensor`` ops for slicing, padding, concatenation and reshapes. With
    ``attention=true`` the softmax(Q K^T * scale) V chain is kept whole as
    ``iree_linalg_ext.attention``. With ``widen=true`` f16/bf16 contractions read their
    operands converted to f32 (the cpu targets' choice). An ``nn`` op, or a case with
    no lowering, fails the pass naming the op. Before::

        %0 = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
        %1 = "prim.map"(%0) {fn = "exp"} : (tensor<4x16xf32>) -> tensor<4x16xf32>

    after::

        %cst = arith.constant 0.000000e+00 : f32
        %2 = tensor.empty() : tensor<4x16xf32>
        %3 = linalg.fill ins(%cst : f32) outs(%2 : tensor<4x16xf32>) -> tensor<4x16xf32>
        %4 = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x16xf32>)
                       outs(%3 : tensor<4x16xf32>) -> tensor<4x16xf32>
        %5 = tensor.empty() : tensor<4x16xf32>
        %6 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
               ins(%4 : tensor<4x16xf32>) outs(%5 : tensor<4x16xf32>) {
             ^bb0(%in: f32, %out: f32):
               %7 = math.exp %in : f32
               linalg.yield %7 : f32
             } -> tensor<4x16xf32>
    """

    name = "prim-to-linalg"
    attention: bool = False  # keep softmax(Q K^T * scale) V whole as iree_linalg_ext.attention
    # contract f16/bf16 operands in f32 (converted behind util.optimization_barrier) unless
    # one is a constant or global (kept half-size): the x86 cpu targets set it, as IREE
    # 3.13's x86 f16/bf16 microkernels run slower than its f32 one (2048^3 on AVX-512:
    # f16 161 -> 85 ms, bf16 101 -> 84 ms; 512^3 f16 4.4 -> 1.5 ms)
    widen: bool = False

    def run(self, module) -> None:
        custom = [op for op in walk(module.operation) if is_custom(op.name)]
        unknown = next((op for op in custom if op.name not in LOWERINGS), None)
        if unknown is not None:  # fail before rewriting anything
            raise _cannot_lower(unknown)
        if self.attention:
            from stepwell.passes._linalg_attention import raise_attention
            if raise_attention(module):
                custom = [op for op in walk(module.operation) if is_custom(op.name)]
        lowerings = dict(LOWERINGS)
        if self.widen:
            lowerings["prim.contract"] = functools.partial(lower_contract, widen=True)
        for op in custom:
            lower_op(op, lowerings)
