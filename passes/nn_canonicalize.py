"""The ``nn-canonicalize`` pass: folds of no-op ``nn`` ops, one short rule each."""

from __future__ import annotations

from stepwell.core.ir import ir
from stepwell.core.opspec import specs
from stepwell.core.passes_base import (NO_MATCH, Pass, apply_patterns, producer as _producer, register,
                                  reshape_chain_rule, splat_value as _splat)


def _permutation(op) -> list[int]:
    """An nn.transpose's permutation (absent: reversed axes)."""
    if "permutation" not in op.attributes:
        return list(range(ir.RankedTensorType(op.operands[0].type).rank))[::-1]
    return [int(v) for v in ir.DenseI64ArrayAttr(op.attributes["permutation"])]


def _is_dead(op) -> bool:
    return all(not list(r.uses) for r in op.results)


def _forward(op, rewriter, value):
    """Replace ``op`` by ``value`` when the types are equal; else report no match."""
    if value.type != op.results[0].type:
        return NO_MATCH
    rewriter.replace_op(op, [value])
    return None


def _erase_if_dead(op, rewriter) -> None:
    if op is not None and _is_dead(op):
        rewriter.erase_op(op)


# reshape/transpose/cast whose result type equals its operand type does nothing.
def fold_same_type(op, rewriter):
    if op.name == "nn.transpose" and _permutation(op) != sorted(_permutation(op)):
        return NO_MATCH  # a non-identity permutation of equal dims still moves data
    return _forward(op, rewriter, op.operands[0])


# transpose(transpose(x, p), q) == transpose(x, p∘q), or x when that is the identity.
def fold_double_transpose(op, rewriter):
    inner = _producer(op.operands[0], "nn.transpose")
    if inner is None:
        return NO_MATCH
    p, q = _permutation(inner), _permutation(op)
    composed = [p[i] for i in q]
    source = inner.operands[0]
    if composed == list(range(len(composed))):
        if _forward(op, rewriter, source) is NO_MATCH:
            return NO_MATCH
    else:
        with rewriter.ip, op.location:
            new = ir.Operation.create(
                "nn.transpose", results=[op.results[0].type], operands=[source],
                attributes={"permutation": ir.DenseI64ArrayAttr.get(composed)})
        rewriter.replace_op(op, new)
    _erase_if_dead(inner, rewriter)
    return None


def _fold_identity_operand(op, rewriter, identity):
    # x (op) c or c (op) x with c a splat of the identity element, result type == x type.
    a, b = op.operands[0], op.operands[1]
    if _splat(b) == identity and _forward(op, rewriter, a) is None:
        return None
    if _splat(a) == identity and _forward(op, rewriter, b) is None:
        return None
    return NO_MATCH


# x * 1 and 1 * x are x.
def fold_mul_one(op, rewriter):
    return _fold_identity_operand(op, rewriter, 1)


# x + 0 and 0 + x are x (like fast-math: the sign of a -0.0 input is kept).
def fold_add_zero(op, rewriter):
    return _fold_identity_operand(op, rewriter, 0)


# An nn op whose results are unused is dead: nn ops are pure, so erase it.
def erase_dead(op, rewriter):
    if not _is_dead(op):
        return NO_MATCH
    rewriter.erase_op(op)
    return None


@register
class NnCanonicalize(Pass):
    """Fold no-op nn ops: same-type reshape/transpose/cast, x*1, x+0, double transpose/reshape.

    A rule fires only when the replacement has exactly the type of the value it
    replaces, so no broadcasting is hidden; unused nn ops (pure) are erased. Before::

        %one = arith.constant dense<1.0> : tensor<4x8xf32>
        %0 = "nn.transpose"(%x) {permutation = array<i64: 1, 0>} : (tensor<4x8xf32>) -> tensor<8x4xf32>
        %1 = "nn.transpose"(%0) {permutation = array<i64: 1, 0>} : (tensor<8x4xf32>) -> tensor<4x8xf32>
        %2 = "nn.mul"(%1, %one) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
        return %2 : tensor<4x8xf32>

    after::

        return %x : tensor<4x8xf32>
    """

    name = "nn-canonicalize"

    def run(self, module) -> None:
        patterns = {s.name: [erase_dead] for s in specs("nn")}
        for root in ("nn.reshape", "nn.transpose", "nn.cast"):
            patterns.setdefault(root, []).append(fold_same_type)
        patterns.setdefault("nn.transpose", []).append(fold_double_transpose)
        # reshape(reshape(x)) == reshape(x): only the final shape matters.
        patterns.setdefault("nn.reshape", []).append(reshape_chain_rule("nn.reshape"))
        patterns.setdefault("nn.mul", []).append(fold_mul_one)
        patterns.setdefault("nn.add", []).append(fold_add_zero)
        apply_patterns(module, patterns)
