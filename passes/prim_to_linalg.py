"""The ``prim-to-linalg`` pass: every ``prim`` op to linalg/tensor/arith/math."""

from __future__ import annotations

import functools


from stepwell.dialects.prim import parse_contract_spec
from stepwell.core.ir import ir
from stepwell.core.opspec import is_custom
from stepwell.passes._linalg_contract import grouped_contract
from stepwell.passes._linalg_conv import lower_conv
from stepwell.passes._linalg_moe import LOWERINGS as MOE_LOWERINGS
from stepwell.passes._linalg_shapes import (lower_broadcast, lower_cast, lower_concat, lower_gather,
                                            lower_iota, lower_pad, lower_reduce, lower_reshape,
                                            lower_slice, lower_transpose, lower_update_slice)
from stepwell.passes._linalg_text import (narrow, Unsupported, amap, attr, convert, floats_wide, function_text,
                                          identity, splice, ttype)
from stepwell.core.passes_base import Pass, fail_at, producer, register, splat_value as _splat
from stepwell.core.types import TensorType, is_float
from stepwell.core.verifier import walk


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
    lhs, rhs, out = parse_contract_spec(attr(op, "spec"))
    a, b = (ttype(v) for v in op.operands)
    res = ttype(op.results[0])
    sizes = {c: d for letters, t in ((lhs, a), (rhs, b), (out, res)) for c, d in zip(letters, t.shape)
             if d is not None}  # a dynamic size meeting a static one is checked at run time
    args = list(args)
    args[0], a = e.agree(args[0], a, [sizes.get(c) for c in lhs], "'prim.contract' lhs")
    args[1], b = e.agree(args[1], b, [sizes.get(c) for c in rhs], "'prim.contract' rhs")
    acc = res.with_dtype(floats_wide(res.dtype))
    if (widen and acc.dtype == "f32" and {a.dtype, b.dtype} <= {"f16", "bf16"}
            and not any(_stored(v) for v in op.operands)):
        (x, a), (y, b) = _widened(e, args[0], a), _widened(e, args[1], b)
        args = [x, y]
    like = {i: (args[0], a, lhs.index(c)) if c in lhs else (args[1], b, rhs.index(c))
            for i, c in enumerate(out)}
    kind = _matmul_kind(lhs, rhs, out)
    grouped = None if kind else grouped_contract(e, lhs, rhs, out, args, a, b, acc)
    if grouped is not None:  # several row/column/summed letters: a batched matmul
        return narrow(e, grouped, acc, res)
    init = e.filled(0, acc, like)
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
    return narrow(e, value, acc, res)


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
    """(input, the result dims it keeps) of a ``linalg.broadcast``, else None."""
    owner = producer(value, "linalg.broadcast")
    if owner is None:
        return None
    added = set(ir.DenseI64ArrayAttr(owner.attributes["dimensions"]))
    rank = ttype(value).rank
    return owner.operands[0], [d for d in range(rank) if d not in added]


def map_inputs(op):
    """A ``prim.map``'s tensor inputs, as (value, result dims it is read at), looking
    through what is already lowered: a splat constant becomes a scalar in the body
    (None), a ``linalg.broadcast`` is read through a projected map (with dynamic sizes,
    only while another operand is read whole: it gives the sizes)."""
    static = None not in ttype(op.results[0]).shape
    out = []
    for v in op.operands:
        if static and _splat(v) is not None:
            out.append(None)
        else:
            out.append(_broadcast_source(v) or (v, list(range(ttype(v).rank))))
    if not static and all(inp is None or len(inp[1]) < ttype(op.results[0]).rank for inp in out):
        out = [(v, list(range(ttype(v).rank))) for v in op.operands]
    return out


# map: an elementwise linalg.generic whose body is the scalar arith/math function; a
# broadcast operand is read through its map and a splat constant is a scalar (IREE
# then fuses the chain; a linalg.broadcast between reductions made IREE raise a
# softmax it runs 1.7x slower than the fused generics).
def lower_map(op, e, args):
    fn = attr(op, "fn")
    types = [ttype(v) for v in op.operands]
    res = ttype(op.results[0])
    ins, maps, slots, whole = [], [], [], 0
    for k, inp in enumerate(map_inputs(op)):
        if inp is None:
            slots.append(None)
            continue
        value, t = args[len(ins)], ttype(inp[0])
        if len(inp[1]) == res.rank:  # read whole: a dynamic size meeting a static one is checked
            value, t = e.agree(value, t, res.shape, f"'prim.map' operand {k}")
            whole = len(ins)
        slots.append(len(ins))
        ins.append((value, t))
        maps.append(amap(res.rank, inp[1]))
    like = {} if None not in res.shape else {i: (ins[whole][0], ins[whole][1], i) for i in range(res.rank)}

    def body(s, xs):
        scalars = [xs[k] if k is not None else s.const(_splat(v), types[i].dtype)
                   for i, (k, v) in enumerate(zip(slots, op.operands))]
        return scalar_fn(s, fn, scalars, types[-1].dtype)
    init = e.empty(res, like)
    return e.generic(ins, init, res, maps + [identity(res.rank)], ["parallel"] * res.rank, body)


lower_map.operands = lambda op: [inp[0] for inp in map_inputs(op) if inp is not None]


LOWERINGS = {
    "prim.contract": lower_contract, "prim.map": lower_map, "prim.broadcast": lower_broadcast,
    "prim.reduce": lower_reduce, "prim.transpose": lower_transpose, "prim.reshape": lower_reshape,
    "prim.cast": lower_cast, "prim.slice": lower_slice, "prim.pad": lower_pad,
    "prim.concat": lower_concat, "prim.gather": lower_gather, "prim.iota": lower_iota,
    "prim.conv": lower_conv, "prim.update_slice": lower_update_slice,
    **MOE_LOWERINGS,  # prim.top_k, prim.scan, prim.scatter, prim.block_matmul
}


def _cannot_lower(op, why: str = ""):
    hint = why or (": run nn-to-prim first" if op.name.startswith("nn.") else "")
    return fail_at(op, f"cannot lower '{op.name}' to linalg{hint}")


def lower_op(op, lowerings=LOWERINGS) -> None:
    """Replace one prim op by its linalg lowering (spliced in from MLIR text)."""
    lowering = lowerings[op.name]
    # the values the lowered IR reads (a map reads through broadcasts, not splats)
    operands = lowering.operands(op) if hasattr(lowering, "operands") else list(op.operands)
    result_types = [ttype(r) for r in op.results]
    try:
        text = function_text([ttype(v) or "index" for v in operands], result_types,
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
