"""StableHLO as input text: detection, Shardy stripping, bytecode to text.

What the parser and the CLIs need to read a StableHLO program (from JAX or a file)
before anything compiles it. ``sdy.mesh``, ``sdy.sharding`` attributes and
``sdy.sharding_constraint`` on one device say nothing about the computation:
:func:`strip_shardy` removes them. IREE's MLIR has no ``sdy`` dialect, so text holding
them is first rewritten with JAX's bindings (:func:`strip_shardy_text`;
``stepwell.core.module.parse`` does it). Which StableHLO ops IREE cannot compile is the
compiler's business: ``stepwell.compiler.stablehlo_screen``.
"""

from __future__ import annotations

from stepwell.core import verifier
from stepwell.core.diagnostics import Diagnostic, StepwellError, at
from stepwell.core.ir import ir

__all__ = ["DIALECTS", "has_stablehlo", "resolve_input_type", "strip_shardy", "strip_shardy_text",
           "binary_to_text"]

DIALECTS = ("stablehlo.", "chlo.", "vhlo.")
_DIALECTS = DIALECTS


def has_stablehlo(module) -> bool:
    """Whether the module holds StableHLO (or CHLO) ops."""
    return any(op.name.startswith(_DIALECTS) for op in verifier.walk(module.operation))



def resolve_input_type(module, input_type: str = "auto") -> str:
    """``"stablehlo"`` or ``"nn"`` for a CLI's ``--input-type`` (``auto`` detects); an
    explicit type that the module contradicts is an error."""
    found = has_stablehlo(module)
    if input_type == "auto":
        return "stablehlo" if found else "nn"
    if input_type == "stablehlo" and not found:
        raise StepwellError([Diagnostic("--input-type=stablehlo: the input holds no StableHLO ops",
                                        "error", module.name)])
    if input_type == "nn" and found:
        op = next(op for op in verifier.walk(module.operation) if op.name.startswith(_DIALECTS))
        raise StepwellError([at(op.location, f"--input-type=nn: the input holds StableHLO "
                                             f"('{op.name}'); use --input-type=stablehlo or auto",
                                display_name=module.name)])
    return input_type



def strip_shardy(module, irmod=None) -> int:
    """Remove single-device Shardy annotations in place: ``sdy.mesh`` symbols,
    ``sdy.*`` attributes, and ``sdy.sharding_constraint``/``sdy.reshard`` (identities).
    Returns how many things were removed; other ``sdy`` ops stay (and are reported).
    ``module``: a stepwell Module, or (with ``irmod``, the bindings' ``ir`` module) a
    module of other MLIR bindings (JAX's, which can parse ``sdy``)."""
    irmod = irmod or ir
    mlir_module = getattr(module, "mlir", module)
    removed = 0
    for op in list(verifier.walk(mlir_module.operation)):
        if op.name in ("sdy.sharding_constraint", "sdy.reshard") and len(op.operands) == 1:
            op.results[0].replace_all_uses_with(op.operands[0])
            op.erase()
            removed += 1
    for op in list(mlir_module.body.operations):
        if op.operation.name == "sdy.mesh":
            op.operation.erase()
            removed += 1
    ctx = mlir_module.context
    for op in verifier.walk(mlir_module.operation):
        attrs = op.attributes
        for name in [n for n in attrs if n.startswith("sdy.")]:
            del attrs[name]
            removed += 1
        if op.name == "func.func":
            for list_name in ("arg_attrs", "res_attrs"):
                if list_name not in attrs:
                    continue
                dicts = [[d[i] for i in range(len(d))]
                         for d in (irmod.DictAttr(a) for a in irmod.ArrayAttr(attrs[list_name]))]
                if not any(n.name.startswith("sdy.") for d in dicts for n in d):
                    continue
                cleaned = []
                for d in dicts:
                    keep = {n.name: n.attr for n in d if not n.name.startswith("sdy.")}
                    removed += len(d) - len(keep)
                    cleaned.append(irmod.DictAttr.get(keep, context=ctx))
                attrs[list_name] = irmod.ArrayAttr.get(cleaned, context=ctx)
    return removed


def strip_shardy_text(text: str) -> str:
    """``text`` without single-device Shardy annotations. IREE's MLIR cannot even parse
    ``sdy`` ops and attributes, so this goes through JAX's MLIR bindings (which register
    the ``sdy`` dialect); text without ``sdy.`` is returned as is."""
    if "sdy." not in text:
        return text
    try:
        from jax._src.interpreters import mlir as jax_mlir
        from jax.extend.mlir import ir as jax_ir
    except ImportError:  # no JAX: let the parser report the sdy ops
        return text
    ctx = jax_mlir.make_ir_context()
    try:
        module = jax_ir.Module.parse(text, context=ctx)
    except Exception:  # noqa: BLE001  (not valid there either: our parser reports it)
        return text
    strip_shardy(module, jax_ir)
    return module.operation.get_asm(enable_debug_info=True)


def binary_to_text(data: bytes) -> str | None:
    """MLIR text of a binary input, or None: MLIR bytecode (a StableHLO portable
    artifact, ``jax.export``'s ``mlir_module_serialized``, is deserialized from VHLO by
    JAX; other bytecode is read by our own bindings) or ``Exported.serialize()`` bytes
    (which need the ``flatbuffers`` package)."""
    if data.startswith(b"ML\xefR"):
        try:
            from jax._src.interpreters import mlir as jax_mlir
            from jax.extend import mlir as jax_extend_mlir
            module = jax_extend_mlir.deserialize_portable_artifact(data, context=jax_mlir.make_ir_context())
            return strip_shardy_text(module.operation.get_asm(enable_debug_info=True))
        except Exception:  # noqa: BLE001  (not a portable artifact: plain bytecode)
            pass
        from stepwell.core.ir import context
        try:
            return ir.Module.parse(data, context()).operation.get_asm(enable_debug_info=True)
        except Exception:  # noqa: BLE001
            return None
    try:
        from jax import export as jax_export
        return jax_export.deserialize(bytearray(data)).mlir_module()
    except Exception:  # noqa: BLE001  (not an Exported, or no flatbuffers)
        return None
