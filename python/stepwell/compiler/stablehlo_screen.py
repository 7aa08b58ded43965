"""StableHLO that IREE 3.13 cannot compile: measured facts, used to explain its failures.

IREE takes StableHLO directly (``--iree-input-type=stablehlo``) but fails on a few
programs, and crashes on one. Each case is a :class:`Fact`: the op, when it applies,
what IREE does, and a probe program on which plain IREE 3.13 does exactly that
(``tests/python/test_stablehlo_screen.py`` compiles every probe with plain IREE and
fails when IREE starts compiling one; it also runs look-alike programs that IREE
*does* compile, such as a zero-element FFT of length 17 or a splat complex128
constant, and fails if the screen refuses one).

A screen must never make stepwell accept less than the compiler it feeds, so only a
crash is refused before IREE runs (:func:`check_supported`). Every other fact is used
after IREE failed (:func:`explain_failure`): the error names the op, at its location,
with the reason, and IREE's own lines follow as notes.

=========================================  ==========================================
op (when)                                  what IREE 3.13 does
=========================================  ==========================================
``stablehlo.bitcast_convert`` to or from   segfaults (``BitcastConvertConverter``):
``complex<f64>``                           refused before IREE runs
``stablehlo.fft`` of a non-power-of-2      "failed to legalize" (zero-element inputs
length, with elements                      compile: nothing is computed)
``stablehlo.triangular_solve``             "failed to legalize"
``stablehlo.select_and_scatter``,          "failed to legalize" (the gradient of a max
overlapping windows                        pool whose windows overlap)
``stablehlo.custom_call`` to host          "failed to legalize" (LAPACK, cuSOLVER,
libraries                                  DUCC FFT, Python callbacks)
``stablehlo.constant`` of complex128,      invalid ``arith.constant`` after f64
not a splat, with elements                 demotion (splats and empty ones compile)
``stablehlo.constant`` of sub-byte         "failed to emulate bit width" (splats and
integers, not a splat, with elements       empty ones compile)
=========================================  ==========================================

Reading StableHLO text (Shardy stripping, bytecode) is ``stepwell.core.stablehlo``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from stepwell.core import verifier
from stepwell.core.diagnostics import Diagnostic, StepwellError, at, location_parts
from stepwell.core.ir import ir
from stepwell.core.stablehlo import DIALECTS

__all__ = ["Fact", "FACTS", "unsupported_ops", "check_supported", "explain_failure",
           "UnsupportedOpError", "JAX_PRIMITIVES", "op_name_from_class", "crash_op",
           "crash_diagnostics"]

_DIALECTS = DIALECTS


class UnsupportedOpError(StepwellError):
    """Ops IREE cannot compile; ``ops`` holds ``(op name, location, reason)``."""

    def __init__(self, diagnostics, ops=()):
        super().__init__(diagnostics)
        self.ops = list(ops)


# The JAX primitive behind an op, for messages aimed at JAX users.
JAX_PRIMITIVES = {
    "stablehlo.fft": "fft",
    "stablehlo.triangular_solve": "triangular_solve",
    "stablehlo.select_and_scatter": "select_and_scatter_add (the gradient of max pooling)",
    "stablehlo.bitcast_convert": "bitcast_convert_type",
}

# custom_call targets JAX emits for host libraries -> the JAX primitive.
_CUSTOM_CALLS = [
    (r"trsm", "triangular_solve"), (r"getrf", "lu"), (r"potrf", "cholesky"), (r"geqrf|orgqr|ungqr", "qr"),
    (r"syevd|heevd", "eigh"), (r"gesdd|gesvd", "svd"), (r"geev", "eig"), (r"gees", "schur"),
    (r"gehrd", "hessenberg"), (r"sytrd|hetrd", "tridiagonal"), (r"ducc_fft|fft", "fft"),
    (r"callback", "pure_callback/io_callback/debug.print"),
]
_HOST_LIBRARY = re.compile(r"^(lapack_|cusolver|cublas|hipsolver|hipblas|cu_|hip_|ducc_|"
                           r"xla_python_|xla_ffi_python_|xla_ffi_partial_python_)")


def _jax_primitive_of_call(target: str) -> str | None:
    for pattern, primitive in _CUSTOM_CALLS:
        if re.search(pattern, target):
            return primitive
    return None


def _element_types(op) -> list[str]:
    types = [v.type for v in op.operands] + [r.type for r in op.results]
    out = []
    for t in types:
        try:
            out.append(str(ir.ShapedType(t).element_type))
        except (ValueError, TypeError):
            out.append(str(t))
    return out


def _has_elements(value) -> bool:
    """False only for a statically empty tensor (a zero-sized dimension)."""
    try:
        shaped = ir.ShapedType(value.type)
    except (ValueError, TypeError):
        return True
    return not any(not shaped.is_dynamic_dim(i) and shaped.get_dim_size(i) == 0
                   for i in range(shaped.rank)) if shaped.has_rank else True


def _int_array(attr) -> list[int]:
    try:
        return [int(v) for v in ir.DenseI64ArrayAttr(attr)]
    except (ValueError, TypeError):
        pass
    try:
        return [int(v) for v in ir.DenseIntElementsAttr(attr)]
    except (ValueError, TypeError):
        return []


def _dense_constant(op) -> bool:
    """A constant with elements that is not a splat (what IREE must materialize). Read
    from the printed op: the bindings cannot cast a complex or sub-byte dense attribute
    (a TypeError, or an abort through a NamedAttribute)."""
    text = op.get_asm(large_elements_limit=16)
    splat = re.search(r"dense<(?![\[\]>\"]|resource)", text) is not None
    return not splat and _has_elements(op.results[0])


# -- the facts: each ``when(op)`` returns the reason for this op, or None ----------------
def _complex_bitcast(op):
    if "complex<f64>" in _element_types(op):
        return "a bitcast to or from complex<f64> crashes IREE's compiler"
    return None  # (real <-> complex bitcasts are refused by StableHLO's verifier)


def _fft(op):
    lengths = _int_array(op.attributes["fft_length"]) if "fft_length" in op.attributes else []
    if not any(n & (n - 1) for n in lengths) or not _has_elements(op.operands[0]):
        return None
    return f"IREE lowers only power-of-two FFT lengths (this one is {'x'.join(map(str, lengths))})"


def _select_and_scatter(op):
    dims = _int_array(op.attributes["window_dimensions"]) if "window_dimensions" in op.attributes else []
    strides = (_int_array(op.attributes["window_strides"]) if "window_strides" in op.attributes
               else [1] * len(dims))
    if any(s < d for d, s in zip(dims, strides)):
        return ("IREE lowers select_and_scatter only when windows do not overlap "
                f"(window {list(dims)}, strides {list(strides)})")
    return None


def _custom_call(op):
    target = (ir.StringAttr(op.attributes["call_target_name"]).value
              if "call_target_name" in op.attributes else "")
    if not _HOST_LIBRARY.match(target):
        return None
    prim = _jax_primitive_of_call(target)
    what = f" (JAX's host-library call for '{prim}')" if prim else ""
    return f"custom call '{target}'{what} has no IREE lowering"


def _complex128_constant(op):
    if _element_types(op)[0] == "complex<f64>" and _dense_constant(op):
        return "complex128 constants (not splats) break IREE's f64-to-f32 demotion"
    return None


def _sub_byte_constant(op):
    (t,) = _element_types(op)
    m = re.fullmatch(r"[su]?i(\d+)|ui(\d+)", t)
    if m and int(m[1] or m[2]) not in (1, 8, 16, 32, 64) and _dense_constant(op):
        return f"{t} constants (sub-byte integers, not splats) are not supported by IREE"
    return None


@dataclass(frozen=True)
class Fact:
    """Something plain IREE 3.13 fails on, measured on ``probe`` (a whole program)."""
    op: str
    when: Callable
    probe: str
    crashes: bool = False  # IREE dies by a signal: refused before IREE runs


def _probe(sig: str, body: str, ret: str) -> str:
    return f"func.func @main({sig}) -> {ret.split(' : ')[1]} {{\n  {body}\n  return {ret}\n}}\n"


FACTS = (
    Fact("stablehlo.bitcast_convert", _complex_bitcast, crashes=True, probe=_probe(
        "%a: tensor<4xcomplex<f64>>",
        "%0 = stablehlo.bitcast_convert %a : (tensor<4xcomplex<f64>>) -> tensor<4x2xcomplex<f32>>",
        "%0 : tensor<4x2xcomplex<f32>>")),
    Fact("stablehlo.fft", _fft, probe=_probe(
        "%x: tensor<3x17xf32>",
        "%0 = stablehlo.fft %x, type = RFFT, length = [17] : (tensor<3x17xf32>) -> tensor<3x9xcomplex<f32>>\n"
        "  %1 = stablehlo.real %0 : (tensor<3x9xcomplex<f32>>) -> tensor<3x9xf32>", "%1 : tensor<3x9xf32>")),
    Fact("stablehlo.triangular_solve", lambda op: "IREE has no lowering for triangular_solve", probe=_probe(
        "%a: tensor<3x3xf32>, %b: tensor<3x2xf32>",
        '%0 = "stablehlo.triangular_solve"(%a, %b) {left_side = true, lower = true, unit_diagonal = false, '
        "transpose_a = #stablehlo<transpose NO_TRANSPOSE>} : (tensor<3x3xf32>, tensor<3x2xf32>) -> tensor<3x2xf32>",
        "%0 : tensor<3x2xf32>")),
    Fact("stablehlo.select_and_scatter", _select_and_scatter, probe=_probe(
        "%x: tensor<4x4xf32>, %s: tensor<3x3xf32>",
        "%z = stablehlo.constant dense<0.0> : tensor<f32>\n"
        '  %0 = "stablehlo.select_and_scatter"(%x, %s, %z) ({\n'
        "  ^bb0(%a: tensor<f32>, %b: tensor<f32>):\n"
        "    %c = stablehlo.compare GE, %a, %b : (tensor<f32>, tensor<f32>) -> tensor<i1>\n"
        "    stablehlo.return %c : tensor<i1>\n  }, {\n"
        "  ^bb0(%a: tensor<f32>, %b: tensor<f32>):\n"
        "    %c = stablehlo.add %a, %b : tensor<f32>\n    stablehlo.return %c : tensor<f32>\n"
        "  }) {window_dimensions = array<i64: 2, 2>, window_strides = array<i64: 1, 1>} : "
        "(tensor<4x4xf32>, tensor<3x3xf32>, tensor<f32>) -> tensor<4x4xf32>", "%0 : tensor<4x4xf32>")),
    Fact("stablehlo.custom_call", _custom_call, probe=_probe(
        "%a: tensor<3x3xf32>", "%0 = stablehlo.custom_call @lapack_spotrf_ffi(%a) : "
        "(tensor<3x3xf32>) -> tensor<3x3xf32>", "%0 : tensor<3x3xf32>")),
    Fact("stablehlo.constant", _complex128_constant, probe=_probe(
        "%x: tensor<2xf32>", "%c = stablehlo.constant dense<[(1.5, 2.0), (-3.0, 0.25)]> : tensor<2xcomplex<f64>>\n"
        "  %r = stablehlo.real %c : (tensor<2xcomplex<f64>>) -> tensor<2xf64>\n"
        "  %f = stablehlo.convert %r : (tensor<2xf64>) -> tensor<2xf32>\n"
        "  %0 = stablehlo.add %f, %x : tensor<2xf32>", "%0 : tensor<2xf32>")),
    Fact("stablehlo.constant", _sub_byte_constant, probe=_probe(
        "%x: tensor<4xi32>", "%c = stablehlo.constant dense<[1, -2, 3, 7]> : tensor<4xi4>\n"
        "  %e = stablehlo.convert %c : (tensor<4xi4>) -> tensor<4xi32>\n"
        "  %0 = stablehlo.add %e, %x : tensor<4xi32>", "%0 : tensor<4xi32>")),
)


def _reasons(op, crashes_only: bool = False) -> str | None:
    for fact in FACTS:
        if fact.op == op.name and (fact.crashes or not crashes_only):
            why = fact.when(op)
            if why:
                return why
    return None


def unsupported_ops(module, *, crashes_only: bool = False) -> list[tuple[str, object, str]]:
    """``(op name, location, reason)`` of every op a fact says IREE 3.13 fails on
    (``crashes_only``: the ones it crashes on)."""
    out = []
    for op in verifier.walk(module.operation):
        if op.name.startswith(_DIALECTS):
            why = _reasons(op, crashes_only)
            if why:
                out.append((op.name, op.location, why))
    return out


def _error(found, module, notes=()) -> UnsupportedOpError:
    diags = [at(loc, f"'{name}' cannot be compiled by IREE: {why}", display_name=module.name)
             for name, loc, why in found]
    return UnsupportedOpError(diags + [Diagnostic(d.message, "note", d.file, d.line, d.col)
                                       for d in notes], found)


def check_supported(module) -> None:
    """Raise :class:`UnsupportedOpError` naming each op that would crash IREE (the
    only facts checked before IREE runs: it must not refuse what IREE compiles)."""
    found = unsupported_ops(module, crashes_only=True)
    if found:
        raise _error(found, module)


def explain_failure(module, diagnostics) -> UnsupportedOpError | None:
    """After IREE failed with ``diagnostics``: an error naming the ops the facts say it
    fails on (those at a diagnostic's location, else all of them), IREE's lines as
    notes; None when no fact applies."""
    found = unsupported_ops(module)
    if not found:
        return None
    places = {(d.file, d.line) for d in diagnostics if d.line}
    named = [f for f in found if location_parts(f[1], module.name)[:2] in places]
    return _error(named or found, module, diagnostics)


# ---------------------------------------------------------------------------
# Naming the op behind a compiler crash.
_CRASH_OP = re.compile(r"mlir::(stablehlo|chlo|linalg|tensor|arith|math|iree_linalg_ext)::(\w+?)Op\b")
_CRASH_PASS = re.compile(r"mlir::iree_compiler::(?:\w+::)*\(anonymous namespace\)::(\w+)::runOnOperation"
                         r"|mlir::iree_compiler::(?:\w+::)*(\w+Pass)\w*::runOnOperation")


def op_name_from_class(dialect: str, cls: str) -> str:
    """``("stablehlo", "BitcastConvert")`` -> ``"stablehlo.bitcast_convert"``."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls).lower()
    return f"{dialect}.{snake}"


def crash_op(stderr: str) -> tuple[str | None, str | None]:
    """``(op name, pass)`` read from a crashed compiler's stack dump (None if unseen)."""
    op = None
    for m in _CRASH_OP.finditer(stderr):
        if m[2] not in ("Func", "Module", "Builtin"):
            op = op_name_from_class(m[1], m[2])
            break
    pm = _CRASH_PASS.search(stderr)
    return op, (pm[1] or pm[2]) if pm else None


def crash_diagnostics(stderr: str, module, target_spec: str, signal: int) -> list[Diagnostic]:
    """One error naming the op (located where it is in ``module``) that crashed IREE."""
    op_name, pass_name = crash_op(stderr)
    during = f" in {pass_name}" if pass_name else ""
    if op_name is not None:
        where = next((op for op in verifier.walk(module.operation) if op.name == op_name), None)
        msg = (f"iree-compile crashed (signal {signal}){during} while converting '{op_name}' "
               f"for '{target_spec}': IREE cannot compile this op here")
        if where is not None:
            return [at(where.location, msg, display_name=module.name)]
        return [Diagnostic(msg, "error", module.name)]
    return [Diagnostic(f"iree-compile crashed (signal {signal}){during} compiling for "
                       f"'{target_spec}'", "error", module.name)]
