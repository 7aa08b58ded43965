"""``sw.compile``: a module (or MLIR text) to an :class:`~stepwell.runtime.Executable`.

    exe = sw.compile(m, target="cpu")            # nn/prim lowered to linalg first
    exe = sw.compile(text, target="cuda:sm_80", flags=["--iree-opt-level=O3"])

The module goes down the stage ladder to ``linalg`` (when ``stepwell.stages`` can
do it), is checked for leftover custom ops (IREE crashes on them: we name them
instead), and is handed to ``iree-compile`` with the target's flags. Compiler
failures become :class:`StepwellError` with IREE's own error lines.

StableHLO (from JAX, or a file) goes to IREE as such: a module holding StableHLO
ops is compiled with ``--iree-input-type=stablehlo`` (IREE's StableHLO input
conversion leaves linalg alone, so raised ``nn``/``prim`` ops lowered to linalg and
leftover StableHLO compile together). An op IREE 3.13 is known to crash on is named
before IREE runs; one it is known to fail on is named after IREE failed, with the
reason (``stepwell.compiler.stablehlo_screen``); a compiler that still dies by a
signal is reported as one error naming the op from its stack dump.

``iree-compile`` runs as a subprocess (``iree.compiler.tools.compile_str``), so a
compiler crash never takes Python down. Results are cached in memory and on disk
(``stepwell.cache``: ``STEPWELL_CACHE_DIR``, ``STEPWELL_NO_CACHE=1``).
"""

from __future__ import annotations

import collections
import re
import threading

from stepwell.compiler import cache as disk_cache
from stepwell.compiler import devices
from stepwell.core import opspec, verifier
from stepwell.compiler import stablehlo_screen
from stepwell.compiler.link_errors import link_diagnostics
from stepwell.core import stablehlo
from stepwell.core.diagnostics import Diagnostic, StepwellError, at
from stepwell.core.ir import context, iree_tools, ir
from stepwell.core.module import Module, parse
from stepwell.core.pipeline import Pipeline
from stepwell.core.types import TensorType

__all__ = ["compile", "compile_to", "compile_vmfb", "check_compilable", "clear_cache",
           "input_type"]

# stage_input -> IREE --iree-input-type ("auto": StableHLO if the module holds any)
_INPUT_TYPES = {"auto": None, "linalg": "auto", "stablehlo": "stablehlo"}
# stepwell stage -> IREE --compile-to phase
_IREE_PHASES = {"dispatch": "flow", "stream": "stream"}

# Compiled modules by (IR, backend, flags): IREE takes 0.3-1.3 s per compile.
_CACHE: "collections.OrderedDict[str, bytes]" = collections.OrderedDict()
_CACHE_BYTES = 256 << 20   # total kept
_CACHE_ENTRY_MAX = 32 << 20  # larger modules (embedded weights) are not kept
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def compile(module, target="cpu", *, flags=(), stage_input: str = "auto", cache: bool | None = None,
            precision: str | None = None, mesh=None, tuning="auto"):
    """Compile ``module`` (a :class:`Module` or MLIR text) for ``target``.

    ``nn``/``prim`` ops are lowered to linalg first. ``stage_input`` says what IREE
    is handed: ``"auto"`` (default: StableHLO input when the module holds StableHLO
    ops, e.g. from JAX, else linalg), ``"linalg"`` or ``"stablehlo"``. ``flags`` are
    extra ``iree-compile`` flags, after the target's. ``cache``: use the on-disk
    compilation cache (None: yes, unless ``STEPWELL_NO_CACHE=1``). ``precision``: a
    policy applied to an nn-level module first (``"bf16"``, ``"f16"``, ``"int8"``,
    ``"int4"``, ``"bf16+int8"``: ``passes/nn_precision.py``, docs/low-precision.md).
    ``mesh`` (``{"model": 4}``, a ``jax.sharding.Mesh``...) sets the module's ``nn.mesh``:
    a module with a mesh is partitioned (``nn-partition``) into one module over that many
    devices, run by the Executable on as many runtime devices (docs/distributed.md).
    ``tuning``: the tuning database whose configurations are applied (``"auto"``:
    ``STEPWELL_TUNING_DB`` or the cache folder's; ``"off"``; a path: docs/tuning.md).
    """
    from stepwell import targets
    from stepwell.compiler.runtime import Executable
    tgt = targets.get(target)
    vmfb = compile_vmfb(module, tgt, flags=flags, stage_input=stage_input, cache=cache,
                        precision=precision, mesh=mesh, tuning=tuning)
    return Executable(vmfb, tgt)


def compile_vmfb(module, target="cpu", *, flags=(), stage_input: str = "auto",
                 cache: bool | None = None, precision: str | None = None, mesh=None,
                 tuning="auto") -> bytes:
    """Like :func:`compile`, returning the ``.vmfb`` bytes."""
    from stepwell import targets
    tgt = targets.get(target)
    m = prepare(module, stage_input, precision, tgt, mesh=mesh)
    return _run_tuned(m, tgt, _flags(flags), input_type(m, stage_input), tuning, cache=cache)


def _run_tuned(module: Module, target, flags: tuple, input_type: str, tuning, *, cache=None) -> bytes:
    """IREE on ``module`` with the tuning database's configurations and the target's data
    tiling (``compiler.tuning``); if IREE rejects the tuned module, the entries used are
    marked stale, a warning is given once, and the untuned module is compiled instead."""
    from stepwell.compiler import tuning as tuner
    tuned, applied = tuner.apply(module, target, tuning)
    try:
        return _run_iree(tuned, target, (*flags, *applied.flags), input_type, cache=cache,
                         extra_key=applied.cache_text())
    except StepwellError as e:
        if not applied.configs or applied.db is None:  # (explicit configurations: no fallback)
            raise
        tuner.mark_stale(applied)
        tuner.warn_once(f"rejected {applied.target_key}", "IREE rejected a tuned compile (%s); "
                        "compiling untuned, the tuning entries used are marked stale",
                        e.diagnostics[0].message if e.diagnostics else e)
    untuned, _ = tuner.apply(module, target, "off")
    return _run_iree(untuned, target, flags, input_type, cache=cache)


def input_type(module: Module, stage_input: str = "auto") -> str:
    """IREE's ``--iree-input-type`` for a prepared module."""
    if stage_input == "stablehlo" or stablehlo.has_stablehlo(module):
        return "stablehlo"
    return _INPUT_TYPES[stage_input] or "auto"


def compile_to(module, stage: str, *, target="cpu", flags=(), stage_input: str = "auto",
               precision: str | None = None, mesh=None, tuning="auto"):
    """IREE's view of a module at a stage past ``linalg``: ``"dispatch"`` gives the
    flow-level IR (dispatch regions) as text, ``"vmfb"`` the compiled bytes."""
    from stepwell import targets
    tgt = targets.get(target)
    if stage == "vmfb":
        return compile_vmfb(module, tgt, flags=flags, stage_input=stage_input, precision=precision,
                            mesh=mesh, tuning=tuning)
    if stage not in _IREE_PHASES:
        raise StepwellError(f"compile_to: stage '{stage}' is not an IREE stage "
                            f"(IREE stages: {', '.join([*_IREE_PHASES, 'vmfb'])})")
    m = prepare(module, stage_input, precision, tgt, mesh=mesh)
    extra = (*_flags(flags), f"--compile-to={_IREE_PHASES[stage]}")
    return _run_tuned(m, tgt, extra, input_type(m, stage_input), tuning).decode("utf-8")


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
def prepare(module, stage_input: str = "auto", precision: str | None = None, target=None, *,
            mesh=None) -> Module:
    """The module as IREE will get it: parsed, lowered to linalg if needed, checked
    (custom ops, Shardy annotations, StableHLO that IREE cannot compile)."""
    if stage_input not in _INPUT_TYPES:
        raise StepwellError(f"unknown stage_input '{stage_input}' "
                            f"(one of: {', '.join(_INPUT_TYPES)})")
    if isinstance(module, (str, bytes)):
        text = module.decode("utf-8") if isinstance(module, bytes) else module
        module = parse(text)
    elif not isinstance(module, Module):
        raise StepwellError(f"compile expects a stepwell Module or MLIR text, "
                            f"not {type(module).__name__}")
    if target is not None and (precision is not None or _has_custom_ops(module)):
        from stepwell.passes.nn_precision import check_target  # types/int4 the target lacks
        check_target(precision, target, module)
    if precision is not None:  # a precision policy (nn-precision / nn-quantize-weights)
        from stepwell.passes.nn_precision import apply_policy
        module = apply_policy(module, precision)
    lowered = owned = False
    if mesh is not None or devices.needs_partitioning(module):
        module, owned = devices.partition(module, mesh), True  # a copy over the mesh's devices
    if _has_custom_ops(module):
        stages = _stages()
        if stages is not None:
            module = stages.lower(module, to="linalg", target=target)
            lowered = owned = True
    if any(op.name.startswith("sdy.") for op in verifier.walk(module.operation)):
        if not owned:
            module, owned = module.clone(), True
        stablehlo.strip_shardy(module)
    rewrites = _stablehlo_rewrites(module)
    if rewrites:  # StableHLO that IREE 3.13 mishandles, written as linalg first
        module = module if owned else module.clone()
        Pipeline(",".join(rewrites)).run(module)
    check_compilable(module, lowered=lowered)
    return module


def _stablehlo_rewrites(module: Module) -> list[str]:
    """The passes the module needs before IREE: ``stablehlo-low-float-convert`` (an int
    -> bf16 convert leaves a __truncsfbf2 call on AVX2 CPUs; a float -> bf16 one can
    lose its rounding in a fusion), ``stablehlo-split-sum`` (IREE builds an invalid
    vector.contract for a sum of a broadcast product to one element)."""
    from stepwell.passes.stablehlo_low_float_convert import needs_rewrite
    from stepwell.passes._linalg_shapes import split_sum
    out = []
    for op in verifier.walk(module.operation):
        if op.name == "stablehlo.reduce" and "stablehlo-split-sum" not in out:
            x, r = (TensorType.from_mlir(v.type) for v in (op.operands[0], op.results[0]))
            if x and r and split_sum(x.shape, list(op.attributes["dimensions"])):
                out.append("stablehlo-split-sum")
        if op.name == "stablehlo.convert" and "stablehlo-low-float-convert" not in out:
            x, r = (TensorType.from_mlir(v.type) for v in (op.operands[0], op.results[0]))
            if x and r and needs_rewrite(x.dtype, r.dtype):
                out.append("stablehlo-low-float-convert")
    return out


def _stages():
    try:
        import stepwell.compiler.stages as stages
    except ModuleNotFoundError as e:
        if e.name == "stepwell.stages":
            return None
        raise
    return stages


def _has_custom_ops(module: Module) -> bool:
    return any(opspec.is_custom(op.name) for op in verifier.walk(module.operation))


def check_compilable(module: Module, *, lowered: bool = False) -> None:
    """Raise StepwellError naming every custom (``nn``/``prim``) or unregistered op left
    (IREE would crash on it) and every StableHLO op IREE is known to fail on.
    ``lowered``: the module already went through the lowering."""
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
    stablehlo_screen.check_supported(module)


# ---------------------------------------------------------------------------
def _run_iree(module: Module, target, flags: tuple, input_type: str, *, cache: bool | None = None,
              extra_key=()) -> bytes:
    text = module.print(debuginfo=True)
    from stepwell.compiler.quant_flags import iree_flags  # keeps a dequantized weight fused
    all_flags = [*target.flags, *iree_flags(module, target), *flags]
    # Locations do not change the code: a function moved in its file is the same key.
    backends, device_flags = devices.backends_and_flags(target, devices.device_count(module))
    all_flags += device_flags
    key = disk_cache.key(module.print(), target.spec, target.backend, input_type, [*all_flags, *extra_key])
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    use_disk = disk_cache.enabled(cache)
    out = disk_cache.get(key) if use_disk else None
    if out is None:
        try:
            out = iree_tools.compile_str(text, target_backends=backends,
                                         extra_args=all_flags, input_type=input_type)
        except iree_tools.CompilerToolError as e:
            diags = iree_diagnostics(str(e), module.name, target, module=module)
            crashed = any("iree-compile crashed" in d.message for d in diags)  # (names the op)
            explained = None if crashed else stablehlo_screen.explain_failure(module, diags)
            if explained is None and not crashed and not any(d.line for d in diags):
                diags = _located(module, diags, target, all_flags, input_type)
            raise (explained or StepwellError(diags)) from None
        if use_disk:
            disk_cache.put(key, out)
    if len(out) <= _CACHE_ENTRY_MAX:
        with _CACHE_LOCK:
            _CACHE[key] = out
            while sum(len(v) for v in _CACHE.values()) > _CACHE_BYTES:
                _CACHE.popitem(last=False)
    return out


def _located(module: Module, diags: list, target, flags, input_type: str) -> list:
    """IREE's unlocated failure, led by an error at the op that completes it (found by
    compiling prefixes of the entry function: ``stepwell.compiler.locate``)."""
    from stepwell.compiler.locate import first_failing_op

    def fails(m) -> bool:
        try:
            iree_tools.compile_str(m.print(debuginfo=True), target_backends=[target.backend],
                                   extra_args=list(flags), input_type=input_type)
        except iree_tools.CompilerToolError:
            return True
        return False
    op = first_failing_op(module, fails)
    if op is None:
        return diags
    what = f"'{op.name}'"
    if op.name == "func.call" and "callee" in op.attributes:
        what += f" of {ir.FlatSymbolRefAttr(op.attributes['callee']).value}"
    lead = at(op.location, f"iree-compile cannot compile {what} here (with the ops before it "
                           f"in this function; IREE's error names no op): {diags[0].message}",
              display_name=module.name)
    return [lead, *(Diagnostic(d.message, "note", d.file, d.line, d.col) for d in diags[1:])]


_DIAG_LINE = re.compile(r"^(?P<file>.*?):(?P<line>\d+)(?::(?P<col>\d+))?: "
                        r"(?P<sev>error|warning|note): (?P<msg>.*)$")
_MAX_ERRORS = 5


_ILLEGAL = re.compile(r"(failed to legalize operation '[\w.]+')(?: that was explicitly marked illegal)?:? .*")


def iree_diagnostics(stderr: str, name: str, target, *, module: Module | None = None) -> list[Diagnostic]:
    """IREE's first error lines (with their notes) as diagnostics, ``-``/``<stdin>``
    shown as ``name``; a crash is reported as one error naming the op (from the
    stack dump) where ``module`` is given."""
    code = re.search(r"Error code: (-?\d+)", stderr)
    if code and int(code[1]) < 0 and module is not None:
        return stablehlo_screen.crash_diagnostics(stderr, module, target.spec, -int(code[1]))
    body = stderr.split("Diagnostics:", 1)[-1].split("Invoked with:", 1)[0]
    linked = link_diagnostics(body, name, target, module)
    if linked:
        return linked
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
        msg = _ILLEGAL.sub(r"\1 (IREE has no lowering for it here)", m["msg"])
        diags.append(Diagnostic(f"iree-compile: {msg}", m["sev"], file, line_no, col))
    if diags:
        return diags
    tail = [ln.strip() for ln in body.splitlines() if ln.strip()][:3]
    what = (f"iree-compile crashed (signal {-int(code[1])})" if code and int(code[1]) < 0
            else f"iree-compile failed (exit code {code[1]})" if code else "iree-compile failed")
    detail = f": {' | '.join(tail)}" if tail else ""
    return [Diagnostic(f"{what} compiling for '{target.spec}'{detail}", "error", name)]
