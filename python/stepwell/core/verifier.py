"""Verification of ``nn``/``prim`` ops against their specs, plus MLIR's own verifier.

Runs after parsing and after every pass (like ``mlir-opt``'s verify-each). Each
problem becomes a located diagnostic such as
``in.mlir:3:8: error: 'nn.matmul' contracting dimensions differ: lhs tensor<4x8xf32>
has 8, rhs tensor<7x16xf32> has 7``.
"""

from __future__ import annotations

from stepwell.core import opspec, sharding
from stepwell.core.diagnostics import Diagnostic, VerifyError, at, from_mlir_error
from stepwell.core.ir import cache, ir
from stepwell.core.types import TensorType


def walk(op):
    """Every operation nested under ``op`` (pre-order, ``op`` excluded)."""
    for region in op.regions:
        for block in region.blocks:
            for inner in block.operations:
                inner = inner.operation  # OpViews (func.func) shadow .name
                yield inner
                yield from walk(inner)


def verify_op(op) -> str | None:
    """The failure message of one custom op (without location), or None if valid."""
    # Validity depends only on the name, types and attributes (all uniqued in the
    # context): verifying after every pass asks about the same few again and again.
    attrs = op.attributes
    key = (op.name, *(v.type for v in op.operands), None, *(r.type for r in op.results),
           None, *((n, attrs[n]) for n in attrs))
    if key in _VALID:
        return None
    message = _check_op(op)
    if message is None:
        _VALID[key] = True
    return message


_VALID = cache()


def _check_op(op) -> str | None:
    name = op.name
    spec = opspec.lookup(name)
    if spec is None:
        return f"unknown op '{name}'{opspec.suggest(name)}"
    try:
        operands = []
        for i, v in enumerate(op.operands):
            if isinstance(v.type, ir.IndexType):  # a run-time size (prim.broadcast's sizes, ...)
                operands.append(opspec.INDEX)
                continue
            t = TensorType.from_mlir(v.type)
            opspec.check(t is not None, f"operand #{i} must be a ranked tensor or index, found {v.type}")
            operands.append(t)
        results = []
        for i, r in enumerate(op.results):
            t = TensorType.from_mlir(r.type)
            opspec.check(t is not None, f"result #{i} must be a ranked tensor, found {r.type}")
            results.append(t)
        attrs = {}
        for attr_name in op.attributes:
            attr = op.attributes[attr_name]
            a = spec.attr(attr_name)
            if a is None:
                if "." in attr_name:  # dialect-prefixed discardable attributes are allowed
                    continue
                known = ", ".join(x.name for x in spec.attrs) or "none"
                opspec.fail(f"unknown attribute '{attr_name}' (known: {known})")
            kind, value = opspec.attr_to_python(attr)
            opspec.check(kind in a.kinds,
                         f"attribute '{a.name}' must be {a.describe()}, found {attr}")
            attrs[a.name] = value
        sig = spec.bind(operands, attrs, results)
        expected = spec.infer_results(sig)
        opspec.check(len(expected) == len(results),
                     f"expects {len(expected)} results, found {len(results)}")
        for i, (want, got) in enumerate(zip(expected, results)):
            opspec.check(_compatible(want, got),
                         f"result #{i} type mismatch: expected {want}, found {got}")
    except opspec.SpecFailure as e:
        return f"'{name}' {e}"
    return None


def _compatible(want: TensorType, got: TensorType) -> bool:
    if want.dtype != got.dtype or want.rank != got.rank:
        return False
    return all(a is None or b is None or a == b for a, b in zip(want.shape, got.shape))


def diagnose(module_op, display_name: str | None = None, *, custom: bool = True) -> list[Diagnostic]:
    """All verification diagnostics of a module (ours first, then MLIR's);
    ``custom=False`` skips the ``nn``/``prim`` spec checks (MLIR's verifier only)."""
    diags = []
    for op in walk(module_op) if custom else ():
        if opspec.is_custom(op.name):
            msg = verify_op(op)
            if msg:
                diags.append(at(op.location, msg, display_name=display_name))
    if custom:
        diags.extend(sharding.diagnose(module_op, display_name))
    if not diags:
        try:
            module_op.verify()
        except ir.MLIRError as e:
            diags.extend(from_mlir_error(e, display_name))
    return diags


def verify(module_op, display_name: str | None = None) -> None:
    """Raise :class:`VerifyError` with every problem found."""
    diags = diagnose(module_op, display_name)
    if diags:
        raise VerifyError(diags)
