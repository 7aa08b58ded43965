"""``sw.compile``: a module (or MLIR text) to an :class:`~stepwell.runtime.Executable`.

    exe = sw.compile(m, target="cpu")            # nn/prim lowered to linalg first
    exe = sw.compile(text, target="cuda:sm_80", flags=["--iree-opt-level=O3"])

The module goes down the stage ladder to ``linalg`` (when ``stepwell.stages`` can
do it), is checked for leftover custom ops (IREE crashes on them: we name them
instead), and is handed to ``iree-compile`` with the target's flags. Compiler
failures become :class:`StepwellError` with IREE's own error lines.
"""

from __future__ import annotations

import collections
import hashlib
import re
import threading

from stepwell import opspec, verifier
from stepwell.diagnostics import Diagnostic, StepwellError, at
from stepwell.ir import context, iree_tools
from stepwell.module import Module, parse

__all__ = ["compile", "compile_to", "compile_vmfb", "check_compilable", "clear_cache"]

# stage_input -> IREE --iree-input-type
_INPUT_TYPES = {"linalg": "auto", "stablehlo": "stablehlo"}
# stepwell stage -> IREE --compile-to phase
_IREE_PHASES = {"dispatch": "flow"}

# Compiled modules by (IR, backend, flags): IREE takes 0.3-1.3 s per compile.
_CACHE: "collections.OrderedDict[str, bytes]" = collections.OrderedDict()
_CACHE_BYTES = 256 << 20   # total kept
_CACHE_ENTRY_MAX = 32 << 20  # larger modules (embedded weights) are not kept
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def compile(module, target="cpu", *, flags=(), stage_input: str = "linalg"):
    """Compile ``module`` (a :class:`Module` or MLIR text) for ``target``.

    ``stage_input`` says what is handed to IREE: ``"linalg"`` (default: ``nn``/``prim``
    ops are lowered to linalg first) or ``"stablehlo"`` (StableHLO, e.g. from JAX,
    passed as is). ``flags`` are extra ``iree-compile`` flags, after the target's.
    """
    from stepwell import targets
    from stepwell.runtime import Executable
    tgt = targets.get(target)
    vmfb = compile_vmfb(module, tgt, flags=flags, stage_input=stage_input)
    return Executable(vmfb, tgt)


def compile_vmfb(module, target="cpu", *, flags=(), stage_input: str = "linalg") -> bytes:
    """Like :func:`compile`, returning the ``.vmfb`` bytes."""
    from stepwell import targets
    tgt = targets.get(target)
    m = prepare(module, stage_input)
    return _run_iree(m, tgt, _flags(flags), _INPUT_TYPES[stage_input])


def compile_to(module, stage: str, *, target="cpu", flags=(), stage_input: str = "linalg"):
    """IREE's view of a module at a stage past ``linalg``: ``"dispatch"`` gives the
    flow-level IR (dispatch regions) as text, ``"vmfb"`` the compiled bytes."""
    from stepwell import targets
    tgt = targets.get(target)
    if stage == "vmfb":
        return compile_vmfb(module, tgt, flags=flags, stage_input=stage_input)
    if stage not in _IREE_PHASES:
        raise StepwellError(f"compile_to: stage '{stage}' is not an IREE stage "
                            f"(IREE stages: {', '.join([*_IREE_PHASES, 'vmfb'])})")
    m = prepare(module, stage_input)
    extra = (*_flags(flags), f"--compile-to={_IREE_PHASES[stage]}")
    return _run_iree(m, tgt, extra, _INPUT_TYPES[stage_input]).decode("utf-8")


def _flags(flags) -> tuple[str, ...]:
    if isinstance(flags, str):
        flags = flags.split()
    flags = tuple(flags)
    for f in flags:
        if not isinstance(f, str) or not f.startswith("-"):
            raise StepwellError(f"compiler flags are strings such as '--iree-opt-level=O3', "
                                f"not {f!r}")
    return flags


# ---------------------------------------------------------------------------
def prepare(module, stage_input: str = "linalg") -> Module:
    """The module as IREE will get it: parsed, lowered to linalg if needed, checked."""
    if stage_input not in _INPUT_TYPES:
        raise StepwellError(f"unknown stage_input '{stage_input}' "
                            f"(one of: {', '.join(_INPUT_TYPES)})")
    if isinstance(module, (str, bytes)):
        text = module.decode("utf-8") if isinstance(module, bytes) else module
        module = parse(text)
    elif not isinstance(module, Module):
        raise StepwellError(f"compile expects a stepwell Module or MLIR text, "
                            f"not {type(module).__name__}")
    lowered = False
    if stage_input == "linalg" and _has_custom_ops(module):
        stages = _stages()
        if stages is not None:
            module = stages.lower(module, to="linalg")
            lowered = True
    check_compilable(module, lowered=lowered)
    return module


def _stages():
    try:
        import stepwell.stages as stages
    except ModuleNotFoundError as e:
        if e.name == "stepwell.stages":
            return None
        raise
    return stages


def _has_custom_ops(module: Module) -> bool:
    return any(opspec.is_custom(op.name) for op in verifier.walk(module.operation))


def check_compilable(module: Module, *, lowered: bool = False) -> None:
    """Raise StepwellError naming every custom (``nn``/``prim``) or unregistered op left:
    IREE would crash on it. ``lowered``: the module already went through the lowering."""
    ctx = context()
    diags = []
    for op in verifier.walk(module.operation):
        name = op.name
        if opspec.is_custom(name):
            how = ("it remains after lowering to linalg" if lowered
                   else "lower it with sw.lower(m, to=\"linalg\")")
            msg = (f"'{name}' is not lowered to the linalg stage: IREE cannot compile "
                   f"{name.split('.', 1)[0]} ops ({how})")
        elif not ctx.is_registered_operation(name):
            msg = f"'{name}' is not an op IREE knows (unregistered dialect): it cannot be compiled"
        else:
            continue
        diags.append(at(op.location, msg, display_name=module.name))
    if diags:
        raise StepwellError(diags)


# ---------------------------------------------------------------------------
def _run_iree(module: Module, target, flags: tuple, input_type: str) -> bytes:
    text = module.print(debuginfo=True)
    all_flags = [*target.flags, *flags]
    key = hashlib.sha256("\0".join([text, target.backend, input_type, *all_flags])
                         .encode()).hexdigest()
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    try:
        out = iree_tools.compile_str(text, target_backends=[target.backend],
                                     extra_args=all_flags, input_type=input_type)
    except iree_tools.CompilerToolError as e:
        raise StepwellError(iree_diagnostics(str(e), module.name, target)) from None
    if len(out) <= _CACHE_ENTRY_MAX:
        with _CACHE_LOCK:
            _CACHE[key] = out
            while sum(len(v) for v in _CACHE.values()) > _CACHE_BYTES:
                _CACHE.popitem(last=False)
    return out


_DIAG_LINE = re.compile(r"^(?P<file>.*?):(?P<line>\d+)(?::(?P<col>\d+))?: "
                        r"(?P<sev>error|warning|note): (?P<msg>.*)$")
_MAX_ERRORS = 5


def iree_diagnostics(stderr: str, name: str, target) -> list[Diagnostic]:
    """IREE's first error lines (with their notes) as diagnostics, ``-``/``<stdin>``
    shown as ``name``; a crash is reported as one."""
    body = stderr.split("Diagnostics:", 1)[-1].split("Invoked with:", 1)[0]
    diags: list[Diagnostic] = []
    errors = 0
    for line in body.splitlines():
        m = _DIAG_LINE.match(line.strip())
        if not m or m["sev"] == "warning":
            continue
        if m["sev"] == "error":
            errors += 1
            if errors > _MAX_ERRORS:
                break
        elif not diags:
            continue
        file, line_no, col = m["file"], int(m["line"]), int(m["col"]) if m["col"] else None
        if file == "<unknown>":
            file, line_no, col = name, None, None
        elif file in ("-", "<stdin>"):
            file = name
        diags.append(Diagnostic(f"iree-compile: {m['msg']}", m["sev"], file, line_no, col))
    if diags:
        return diags
    code = re.search(r"Error code: (-?\d+)", stderr)
    tail = [ln.strip() for ln in body.splitlines() if ln.strip()][:3]
    what = (f"iree-compile crashed (signal {-int(code[1])})" if code and int(code[1]) < 0
            else f"iree-compile failed (exit code {code[1]})" if code else "iree-compile failed")
    detail = f": {' | '.join(tail)}" if tail else ""
    return [Diagnostic(f"{what} compiling for '{target.spec}'{detail}", "error", name)]
