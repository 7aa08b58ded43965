"""Algebraic simplification of ``prim`` ops: fold transposes into ``contract`` specs,
merge transpose/reshape/broadcast chains, drop identity ops and maps, fold constants.

Each rule is one short function below, with one line saying what it rewrites. Before::

    %t = "prim.transpose"(%a) {permutation = array<i64: 1, 0>} : (tensor<8x4xf32>) -> tensor<4x8xf32>
    %c = "prim.contract"(%t, %b) {spec = "mk,kn->mn"} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    %z = arith.constant dense<0.0> : tensor<4x16xf32>
    %r = "prim.map"(%c, %z) {fn = "add"} : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
    return %r : tensor<4x16xf32>

after::

    %c = "prim.contract"(%a, %b) {spec = "km,kn->mn"} : (tensor<8x4xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    return %c : tensor<4x16xf32>

Constant folding evaluates an op with its numpy reference semantics when all its
operands are ``arith.constant`` tensors of at most 64 elements (and so is the
result), or splats of any size for elementwise and shape ops (the result is a splat).
``prim.iota`` is never folded: recomputing it in a fused loop is cheaper than a load.
"""

from __future__ import annotations

import numpy as np

from stepwell.core import opspec
from stepwell.dialects.prim import parse_contract_spec
from stepwell.core.ir import arith, context, ir
from stepwell.core.passes_base import NO_MATCH, Pass, apply_patterns, producer as _producer, register, reshape_chain_rule
from stepwell.core.types import FLOAT_DTYPES, INT_DTYPES, TensorType

MAX_FOLD_ELEMENTS = 64
# Ops whose result is a splat whenever all operands are splats.
SPLAT_PRESERVING = ("prim.map", "prim.cast", "prim.broadcast", "prim.reshape", "prim.transpose",
                    "prim.slice")
# Generators are cheaper to recompute inside a fused loop than to load (XLA's constant
# folding skips iota for the same reason): they are never folded to constants.
NEVER_FOLDED = ("prim.iota",)
# Ops that are their operand when the result type equals the operand type.
SAME_TYPE_IS_IDENTITY = ("prim.reshape", "prim.cast", "prim.broadcast", "prim.slice", "prim.reduce",
                         "prim.concat")
# prim.map fn -> (identity element, operand positions it may take).
MAP_IDENTITIES = {"add": (0, (0, 1)), "sub": (0, (1,)), "mul": (1, (0, 1)), "div": (1, (1,))}


# -- helpers ---------------------------------------------------------------------------


def _attr(op, name: str):
    return opspec.attr_to_python(op.attributes[name])[1] if name in op.attributes else None


def _single_use(op) -> bool:
    return len(list(op.results[0].uses)) == 1


def _build(name: str, *operands, **kwargs):
    """A new prim op from its spec's builder (call inside ``with rewriter.ip, loc:``)."""
    return opspec.lookup(name).build(*operands, **kwargs)


def _replace(op, rewriter, name: str, *operands, **kwargs):
    """Replace ``op`` with a new ``name`` op of the same result type."""
    with rewriter.ip, op.location:
        new = _build(name, *operands, result_type=op.results[0].type, **kwargs)
    rewriter.replace_op(op, [new])


class _Const:
    """A dense ``arith.constant`` tensor: its value (0-d for a splat) and its type."""

    def __init__(self, value: np.ndarray, splat: bool, type_: TensorType):
        self.value, self.splat, self.type = value, splat, type_

    def full(self) -> np.ndarray:
        return np.broadcast_to(self.value, self.type.shape) if self.splat else self.value

    @property
    def size(self) -> int:
        return int(np.prod(self.type.shape, dtype=np.int64))


def _foldable_type(t: TensorType | None) -> bool:
    """A static tensor type with an element type numpy can hold."""
    return t is not None and None not in t.shape and t.dtype in FLOAT_DTYPES + INT_DTYPES


def _constant(value) -> _Const | None:
    """The static dense constant defining ``value``, else None (bf16 arrays are unreadable)."""
    const = _producer(value, "arith.constant")
    t = TensorType.from_mlir(value.type)
    if const is None or not _foldable_type(t):
        return None
    attr = const.attributes["value"]
    if not isinstance(attr, ir.DenseElementsAttr):
        return None
    dtype = t.numpy_dtype()
    if attr.is_splat:
        return _Const(np.asarray(attr.get_splat_value().value).astype(dtype), True, t)
    if t.dtype == "bf16" or int(np.prod(t.shape, dtype=np.int64)) > MAX_FOLD_ELEMENTS:
        return None
    return _Const(np.array(attr, copy=True).astype(dtype).reshape(t.shape), False, t)


def _splat_scalar(value):
    """The Python scalar of a splat constant defining ``value`` (or of a broadcast of one:
    a splat of a dynamic shape), else None."""
    const = _constant(value)
    if const is None:
        bcast = _producer(value, "prim.broadcast")
        return _splat_scalar(bcast.operands[0]) if bcast is not None else None
    return const.value.item() if const.splat else None


def _scalar_attr(element_type, value) -> ir.Attribute:
    if isinstance(element_type, ir.IntegerType):
        return ir.IntegerAttr.get(element_type, int(value))
    return ir.FloatAttr.get(element_type, float(value))


def _dense_attr(array: np.ndarray, mlir_type, splat: bool) -> ir.Attribute:
    """A DenseElementsAttr of ``mlir_type`` holding ``array`` (a splat when all equal)."""
    flat = array.reshape(-1)
    if splat or (flat.size and np.all(flat == flat[0])):
        element = ir.RankedTensorType(mlir_type).element_type
        return ir.DenseElementsAttr.get_splat(mlir_type, _scalar_attr(element, flat[0]))
    return ir.DenseElementsAttr.get(np.ascontiguousarray(array), type=mlir_type)


# -- rules -------------------------------------------------------------------------------


# contract(transpose(x, p), y) is contract(x, y) with x's spec letters permuted back.
def fold_transpose_into_contract(op, rewriter):
    lhs, rhs, out = parse_contract_spec(_attr(op, "spec"))
    letters, operands, changed = [lhs, rhs], list(op.operands), False
    for i in (0, 1):
        t = _producer(operands[i], "prim.transpose")
        if t is None:
            continue
        moved = [""] * len(letters[i])
        for j, p in enumerate(_attr(t, "permutation")):
            moved[p] = letters[i][j]
        letters[i], operands[i], changed = "".join(moved), t.operands[0], True
    if not changed:
        return NO_MATCH
    _replace(op, rewriter, "prim.contract", *operands, spec=f"{letters[0]},{letters[1]}->{out}")


# transpose(contract(a, b)) is contract(a, b) with its result letters permuted (single use).
def fold_contract_into_transpose(op, rewriter):
    c = _producer(op.operands[0], "prim.contract")
    if c is None or not _single_use(c):
        return NO_MATCH
    lhs, rhs, out = parse_contract_spec(_attr(c, "spec"))
    permuted = "".join(out[p] for p in _attr(op, "permutation"))
    _replace(op, rewriter, "prim.contract", *c.operands, spec=f"{lhs},{rhs}->{permuted}")


# transpose(transpose(x, p), q) is transpose(x, [p[i] for i in q]), or x for the identity.
def fold_transpose_chain(op, rewriter):
    inner = _producer(op.operands[0], "prim.transpose")
    if inner is None:
        return NO_MATCH
    p = _attr(inner, "permutation")
    composed = [p[i] for i in _attr(op, "permutation")]
    if composed == sorted(composed):
        rewriter.replace_op(op, [inner.operands[0]])
    else:
        _replace(op, rewriter, "prim.transpose", inner.operands[0], permutation=composed)


# transpose with the identity permutation is its operand.
def fold_identity_transpose(op, rewriter):
    perm = _attr(op, "permutation")
    if perm != sorted(perm):
        return NO_MATCH
    rewriter.replace_op(op, [op.operands[0]])


# reshape/cast/broadcast/slice/reduce/concat of one operand whose result type is the operand's is the operand.
def fold_same_type(op, rewriter):
    if len(op.operands) != 1 or op.results[0].type != op.operands[0].type:
        return NO_MATCH
    rewriter.replace_op(op, [op.operands[0]])


# pad with zero low and high padding is its operand.
def fold_zero_pad(op, rewriter):
    if any(_attr(op, "low")) or any(_attr(op, "high")) or op.results[0].type != op.operands[0].type:
        return NO_MATCH
    rewriter.replace_op(op, [op.operands[0]])


# broadcast(broadcast(x, d1), d2) is broadcast(x, [d2[i] for i in d1]) (with the outer's sizes).
def fold_broadcast_chain(op, rewriter):
    inner = _producer(op.operands[0], "prim.broadcast")
    if inner is None:
        return NO_MATCH
    outer, sizes = _attr(op, "dims"), list(op.operands)[1:]
    if len(inner.operands) > 1 and not sizes:  # (the inner's sizes would be lost)
        return NO_MATCH
    _replace(op, rewriter, "prim.broadcast", inner.operands[0], *sizes,
             dims=[outer[d] for d in _attr(inner, "dims")])


# x + 0, 0 + x, x - 0, x * 1, 1 * x and x / 1 (splat constants) are x (like fast-math for -0.0).
def fold_map_identity(op, rewriter):
    identity, positions = MAP_IDENTITIES.get(_attr(op, "fn"), (None, ()))
    for pos in positions:
        if _splat_scalar(op.operands[pos]) == identity:
            rewriter.replace_op(op, [op.operands[1 - pos]])
            return None
    return NO_MATCH


# select(c, x, x), max(x, x) and min(x, x) are x; select with a splat condition picks a branch.
def fold_trivial_select(op, rewriter):
    fn, xs = _attr(op, "fn"), list(op.operands)
    if fn in ("max", "min") and xs[0] == xs[1]:
        rewriter.replace_op(op, [xs[0]])
        return None
    if fn != "select":
        return NO_MATCH
    cond = _splat_scalar(xs[0])
    if xs[1] == xs[2] or cond is not None:
        rewriter.replace_op(op, [xs[1] if xs[1] == xs[2] or cond else xs[2]])
        return None
    return NO_MATCH


# an op of small (or splat) constants is the arith.constant its reference semantics computes.
def fold_constants(op, rewriter):
    results = [TensorType.from_mlir(r.type) for r in op.results]
    if op.name in NEVER_FOLDED or len(results) != 1 or not _foldable_type(results[0]):
        return NO_MATCH
    consts = [_constant(v) for v in op.operands]
    if None in consts:
        return NO_MATCH
    out, spec, attrs = results[0], opspec.lookup(op.name), {n: _attr(op, n) for n in _attr_names(op)}
    splat = bool(consts) and all(c.splat for c in consts) and op.name in SPLAT_PRESERVING
    small = all(c.size <= MAX_FOLD_ELEMENTS for c in consts) and \
        int(np.prod(out.shape, dtype=np.int64)) <= MAX_FOLD_ELEMENTS
    if not (splat or small):
        return NO_MATCH
    with np.errstate(all="ignore"):
        if splat and op.name in ("prim.map", "prim.cast"):  # the scalar function of the splats
            value = spec.evaluate([c.value for c in consts], attrs, [out.with_shape(())])[0]
        elif splat:  # shape ops move a splat's value around unchanged
            value = consts[0].value
        else:
            value = spec.evaluate([c.full() for c in consts], attrs, results)[0]
    try:
        with op.location:
            attr = _dense_attr(value, op.results[0].type, splat)
    except (TypeError, ValueError):  # an element type the bindings cannot build from numpy
        return NO_MATCH
    with rewriter.ip, op.location:
        const = arith.ConstantOp(op.results[0].type, attr)
    rewriter.replace_op(op, [const.result])


def _attr_names(op) -> list[str]:
    return [a.name for a in opspec.lookup(op.name).attrs if a.name in op.attributes]


# a prim op whose results are unused is dead: prim ops are pure.
def erase_dead(op, rewriter):
    if any(list(r.uses) for r in op.results):
        return NO_MATCH
    rewriter.erase_op(op)


@register
class PrimSimplify(Pass):
    """Algebraic simplification of prim ops: transposes folded into contract specs,
    transpose/reshape/broadcast chains merged, identity ops and maps dropped, constants folded.

    ``contract(transpose(%a, [1, 0]), %b) {spec = "mk,kn->mn"}`` becomes
    ``contract(%a, %b) {spec = "km,kn->mn"}``; ``map(%x, dense<0.0>) {fn = "add"}`` becomes
    ``%x``; ``broadcast(broadcast(%x))`` becomes one broadcast; a prim op of small constants
    becomes an ``arith.constant``.
    """

    name = "prim-simplify"

    def run(self, module) -> None:
        patterns = {s.name: [erase_dead, fold_constants] for s in opspec.specs("prim")}
        for root in SAME_TYPE_IS_IDENTITY:
            patterns[root].append(fold_same_type)
        patterns["prim.contract"].append(fold_transpose_into_contract)
        patterns["prim.transpose"] += [fold_identity_transpose, fold_transpose_chain,
                                       fold_contract_into_transpose]
        # reshape(reshape(x)) is one reshape of x (or x when the types agree).
        patterns["prim.reshape"].append(reshape_chain_rule("prim.reshape"))
        patterns["prim.broadcast"].append(fold_broadcast_chain)
        patterns["prim.pad"].append(fold_zero_pad)
        patterns["prim.map"] += [fold_map_identity, fold_trivial_select]
        with context():
            apply_patterns(module, patterns)
