"""StableHLO that IREE 3.13 cannot compile, named before IREE sees it.

IREE takes StableHLO directly (``--iree-input-type=stablehlo``) but fails, or
crashes, on a few programs (TOOLCHAIN.md). Those are named here before IREE sees
them, one located error per op, instead of a compiler signal or a page of IR:

=========================================  ==========================================
op                                         what IREE 3.13 does
=========================================  ==========================================
``stablehlo.bitcast_convert`` on complex   segfaults (``BitcastConvertConverter``)
``stablehlo.fft`` of a non-power-of-2      "failed to legalize"
``stablehlo.triangular_solve``             "failed to legalize"
``stablehlo.select_and_scatter``,          "failed to legalize" (the gradient of a max
overlapping windows                        pool whose windows overlap)
``stablehlo.custom_call`` to host          "failed to legalize" (LAPACK, cuSOLVER,
libraries                                  DUCC FFT, Python callbacks)
``stablehlo.constant`` of complex128 or    invalid IR after f64 demotion / sub-byte
sub-byte integers                          emulation
``sdy.*`` (Shardy) ops                     rejected
=========================================  ==========================================

Reading StableHLO text (Shardy stripping, bytecode) is ``stepwell.core.stablehlo``;
this module is what the compiler screens for before IREE, and how it names the op
behind a compiler crash.
"""

from __future__ import annotations

import re

from stepwell.core import verifier
from stepwell.core.diagnostics import Diagnostic, StepwellError, at
from stepwell.core.ir import ir
from stepwell.core.stablehlo import DIALECTS

__all__ = ["unsupported_ops", "check_supported", "UnsupportedOpError", "JAX_PRIMITIVES",
           "op_name_from_class", "crash_op", "crash_diagnostics"]

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


def _int_array(attr) -> list[int]:
    try:
        return [int(v) for v in ir.DenseI64ArrayAttr(attr)]
    except (ValueError, TypeError):
        pass
    try:
        return [int(v) for v in ir.DenseIntElementsAttr(attr)]
    except (ValueError, TypeError):
        return []


def _reason(op) -> str | None:
    """Why IREE 3.13 cannot compile ``op``, or None."""
    name = op.name
    if name.startswith("sdy."):
        return ("it is a Shardy (sdy) sharding op: IREE rejects them; lower the function for "
                "one device without shard_map")
    if name == "stablehlo.bitcast_convert":
        if any(t.startswith("complex") for t in _element_types(op)):
            return "a bitcast to or from a complex type crashes IREE's compiler"
        return None
    if name == "stablehlo.fft":
        lengths = _int_array(op.attributes["fft_length"]) if "fft_length" in op.attributes else []
        bad = [n for n in lengths if n & (n - 1)]
        if bad:
            return (f"IREE lowers only power-of-two FFT lengths (this one is "
                    f"{'x'.join(map(str, lengths))})")
        return None
    if name == "stablehlo.triangular_solve":
        return "IREE has no lowering for triangular_solve"
    if name == "stablehlo.select_and_scatter":
        dims = _int_array(op.attributes["window_dimensions"]) if "window_dimensions" in op.attributes else []
        strides = (_int_array(op.attributes["window_strides"]) if "window_strides" in op.attributes
                   else [1] * len(dims))
        if any(s < d for d, s in zip(dims, strides)):
            return ("IREE lowers select_and_scatter only when windows do not overlap "
                    f"(window {list(dims)}, strides {list(strides)})")
        return None
    if name == "stablehlo.custom_call":
        target = (ir.StringAttr(op.attributes["call_target_name"]).value
                  if "call_target_name" in op.attributes else "")
        if _HOST_LIBRARY.match(target):
            prim = _jax_primitive_of_call(target)
            what = f" (JAX's host-library call for '{prim}')" if prim else ""
            return f"custom call '{target}'{what} has no IREE lowering"
        return None
    if name == "stablehlo.constant":
        (t,) = _element_types(op)
        if t == "complex<f64>":
            return "complex128 constants break IREE's f64-to-f32 demotion"
        m = re.fullmatch(r"[su]?i(\d+)|ui(\d+)", t)
        if m and int(m[1] or m[2]) not in (1, 8, 16, 32, 64):
            return f"{t} constants (sub-byte integers) are not supported by IREE"
    return None


def unsupported_ops(module) -> list[tuple[str, object, str]]:
    """``(op name, location, reason)`` of every op IREE 3.13 is known to fail on."""
    out = []
    for op in verifier.walk(module.operation):
        if op.name.startswith(_DIALECTS + ("sdy.",)):
            why = _reason(op)
            if why:
                out.append((op.name, op.location, why))
    return out


def check_supported(module) -> None:
    """Raise :class:`UnsupportedOpError` naming each op IREE cannot compile."""
    found = unsupported_ops(module)
    if found:
        diags = [at(loc, f"'{name}' cannot be compiled by IREE: {why}", display_name=module.name)
                 for name, loc, why in found]
        raise UnsupportedOpError(diags, found)


# ---------------------------------------------------------------------------

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
