"""What a linalg contraction is, in the terms data tiling and tuning need.

:func:`analyze` reads a ``linalg.matmul``, ``linalg.batch_matmul`` or a ``linalg.generic``
that multiplies and adds (one m, one n, one k loop, at most one batch loop, each
operand indexed by a permutation of its loops, the result in (batch, m, n) order) and
gives its loop sizes, where each loop sits in each operand, and the element types.
Anything else (dynamic sizes, several m/n/k loops, transposed results) gives None.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepwell.core.ir import ir, linalg
from stepwell.core.types import TensorType

NAMED = ("linalg.matmul", "linalg.batch_matmul")
# body ops a plain contraction may hold (the casts are implied by linalg.mmt4d's)
_BODY = {"arith.mulf", "arith.addf", "arith.muli", "arith.addi", "arith.extf", "arith.extsi",
         "linalg.yield"}
_WIDENING = ("arith.sitofp", "arith.uitofp", "arith.extsi", "arith.extui")


@dataclass(frozen=True)
class Contraction:
    """Sizes ``b`` (1 without a batch loop), ``m``, ``n``, ``k``; ``pos[o][role]`` is the
    dimension of operand ``o`` (0 lhs, 1 rhs, 2 result) holding loop ``role``."""
    b: int
    m: int
    n: int
    k: int
    batched: bool
    pos: tuple            # ({role: dim} for lhs, rhs, result)
    types: tuple          # element types of lhs, rhs, result

    @property
    def flops(self) -> int:
        return 2 * self.b * self.m * self.n * self.k


def _static(t: TensorType | None) -> bool:
    return t is not None and None not in t.shape


def analyze(op) -> Contraction | None:
    """The :class:`Contraction` of ``op``, or None if it is not a plain static one."""
    op = getattr(op, "operation", op)
    if op.name not in (*NAMED, "linalg.generic") or len(op.operands) != 3 or len(op.results) != 1:
        return None
    types = [TensorType.from_mlir(v.type) for v in op.operands]
    if not all(_static(t) for t in types):
        return None
    return _contraction(op, types)


def _make(types, pos, batched) -> Contraction:
    lhs, rhs, out = types
    b = lhs.shape[pos[0]["b"]] if batched else 1
    return Contraction(b, lhs.shape[pos[0]["m"]], rhs.shape[pos[1]["n"]], lhs.shape[pos[0]["k"]],
                       batched, pos, (lhs.dtype, rhs.dtype, out.dtype))


def _contraction(op, types) -> Contraction | None:
    if not linalg.isa_contraction_op(op) or "indexing_maps" not in op.attributes:
        return None
    if op.name == "linalg.generic":
        body = {inner.operation.name for inner in op.regions[0].blocks[0].operations}
        if not body <= _BODY:
            return None
    dims = linalg.infer_contraction_dimensions(op)
    roles = {"b": list(dims.batch), "m": list(dims.m), "n": list(dims.n), "k": list(dims.k)}
    if any(len(roles[r]) != 1 for r in "mnk") or len(roles["b"]) > 1:
        return None
    loop = {r: v[0] for r, v in roles.items() if v}
    maps = [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]
    pos = []
    for amap in maps:
        where = {}
        for i, expr in enumerate(amap.results):
            if not isinstance(expr, ir.AffineDimExpr):
                return None
            role = next((r for r, d in loop.items() if d == expr.position), None)
            if role is None:
                return None
            where[role] = i
        pos.append(where)
    batched = "b" in loop
    order = ["b", "m", "n"] if batched else ["m", "n"]
    if [r for r, _ in sorted(pos[2].items(), key=lambda kv: kv[1])] != order:
        return None  # a transposed result: not a (batch_)mmt4d's
    return _make(types, tuple(pos), batched)


def widens_narrow_ints(op) -> bool:
    """A ``linalg.generic`` whose body turns integers of 2-8 bits into wider values
    (a weight's dequantization)."""
    op = getattr(op, "operation", op)
    if op.name != "linalg.generic":
        return False
    for inner in op.regions[0].blocks[0].operations:
        inner = inner.operation
        if inner.name in _WIDENING:
            t = inner.operands[0].type
            if isinstance(t, ir.IntegerType) and 1 < ir.IntegerType(t).width <= 8:
                return True
    return False


def dequantized(value, depth: int = 4) -> bool:
    """Whether ``value`` is a dequantized weight: made by a widening of narrow integers,
    through at most ``depth`` elementwise/view ops."""
    for _ in range(depth):
        owner = value.owner
        if isinstance(owner, ir.Block):
            return False
        owner = owner.operation
        if widens_narrow_ints(owner):
            return True
        if not owner.operands:
            return False
        value = owner.operands[0]
    return False
