"""The runners a workload is measured with, side by side in one process.

===============  ==========================================================================
``stepwell``     the workload's ``nn`` module through stepwell's ``to-linalg`` pipeline,
                 then IREE with the target's flags (``sw.compile``), untuned
``stepwell-tuned`` the same with the tuning database applied, after the bench tuned the
                 suite's ops within its budget (``bench/tuned.py``; the report says how long)
``stepwell-jax`` the JAX function through ``sw.jax.jit``
``stepwell-params`` the JAX function through ``sw.jax.export``: weights become IREE
                 parameters (globals), so IREE packs them once at load, not per call
``iree``         plain IREE on JAX's StableHLO (``jax.jit(f).lower(*args).as_text()``),
                 compiled with the same target flags: the compiler stepwell feeds
``jax``          ``jax.jit`` (XLA), inputs placed on the device once
``numpy``        numpy (its BLAS) where it applies (f32 matmuls, the MLP)
===============  ==========================================================================

Inputs are placed on each runner's device once (IREE device arrays, JAX arrays), as
weights would be: a call measures the computation, not the host-to-device copy of
the weights. Results stay on the device (IREE calls are synchronous; JAX results
are waited for with ``block_until_ready``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from stepwell.bench.workloads import Workload
from stepwell.export import export, load


class Skip(Exception):
    """The runner does not apply to this workload (the reason says why)."""


@dataclass
class Prepared:
    """A compiled workload, ready to call."""
    call: Callable[[], object]            # one blocking call
    output: Callable[[], np.ndarray]      # one call's result on the host (for the check)
    compile: dict = field(default_factory=dict)  # seconds: passes, iree, export, total, ...
    info: dict = field(default_factory=dict)     # dispatches, vmfb bytes, ...
    runnable: bool = True                 # False: compile-only (the target cannot run here)
    reason: str = ""
    # seconds to wait after this runner's sample before the next runner's: OpenBLAS's idle
    # threads spin for 2^28 cycles (~0.1 s) after a call and slowed the runner timed next
    # by a quarter (measured: stepwell 2048^3 matmul 82 ms alone, 108 ms right after numpy)
    settle_s: float = 0.0


class Runner:
    name = ""
    description = ""

    def prepare(self, w: Workload, target, options) -> Prepared:
        raise NotImplementedError


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _cpu_timed(fn):
    """(result, wall s, CPU s of this process and of the subprocesses it waited for):
    CPU time is what a pass or ``iree-compile`` (a subprocess) costs, whatever else
    the machine runs meanwhile."""
    import resource

    def cpu():
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime

    own0, kids0 = cpu()
    out, wall = _timed(fn)
    own1, kids1 = cpu()
    return out, wall, (own1 - own0) + (kids1 - kids0)


def _host(x) -> np.ndarray:
    from stepwell.compiler.runtime import to_host
    if isinstance(x, tuple):
        x = x[0]
    return np.asarray(to_host(x))


class _IreeExecutable:
    """Call an Executable's ``main`` with device-resident inputs (no per-call copies)."""

    def __init__(self, exe, args):
        import iree.runtime as rt

        from stepwell.compiler import runtime
        self.exe = exe
        fn = exe.function("main")
        fn.check_inputs(args)  # shapes and dtypes, with stepwell's messages
        self.invoker = exe._invoker(fn)
        dev, _ = runtime.device(exe.target.driver)
        self.args = [rt.asdevicearray(dev, np.ascontiguousarray(a)) for a in args]

    def __call__(self):
        return self.invoker(*self.args)

    def output(self) -> np.ndarray:
        return _host(self())


def dispatch_names(flow_text: str) -> list[str]:
    """The dispatches a flow-level module runs, in order (``pack_f32``, ``mmt4d_...``)."""
    import re
    return [m[2] for m in re.finditer(r"flow\.dispatch @(\w+)::@(\w+)\(", flow_text)]


def _compile_only(target) -> str:
    from stepwell import targets
    ok = targets.available(target)
    return "" if ok else ok.reason


def _cold_vmfb(module, target, **kw) -> bytes:
    """Compile with IREE, bypassing stepwell's compile caches (in memory, on disk) so
    that the time is IREE's; the result lands in the in-memory cache."""
    import inspect

    from stepwell.compiler import driver as compiler
    compiler.clear_cache()
    if "cache" in inspect.signature(compiler.compile_vmfb).parameters:
        kw["cache"] = False
    return compiler.compile_vmfb(module, target, **kw)


def _dispatches(module, target, **kw) -> dict:
    kw.setdefault("tuning", "off")
    """``dispatches`` (how many) and ``dispatch_kinds`` (their names less the
    ``main_dispatch_N_`` prefix) of the module as IREE's flow stage sees it."""
    import re

    from stepwell.compiler import driver as compiler
    names = dispatch_names(compiler.compile_to(module, "dispatch", target=target, **kw))
    return {"dispatches": len(names), "dispatch_kinds": [re.sub(r"^\w+?_dispatch_\d+_", "", n) for n in names]}


class StepwellNN(Runner):
    name = "stepwell"
    description = "nn module -> stepwell to-linalg pipeline -> IREE (target flags), untuned"

    def tuning(self, options):
        return "off"

    def prepare(self, w, target, options) -> Prepared:
        if w.nn_module is None:
            raise Skip("no nn version of this workload")
        from stepwell.compiler import driver as compiler
        from stepwell.compiler.runtime import Executable
        module, build_s = _timed(w.build_nn)
        linalg, vmfb, compile, info = _lower_and_compile(module, target, options, self.tuning(options))
        compile["build_s"] = build_s

        def load():
            # A cached compile: sw.compile of the same nn module again (the passes, then
            # the compile cache instead of IREE) and loading the module, ready to call.
            start = time.perf_counter()
            exe = compiler.compile(module, target, tuning=self.tuning(options)) \
                if options.pipeline == DEFAULT_PIPELINE else Executable(vmfb, target)
            exe._invoker(exe.function("main"))
            compile["cached_s"] = time.perf_counter() - start
            return exe
        return _ready(load, w.args, target, compile, info)


def _ready(load, args, target, compile: dict, info: dict) -> Prepared:
    """The Prepared call of the executable ``load()`` returns, on device-resident
    ``args()``; compile-only (nothing loaded) when ``target`` cannot run here."""
    reason = _compile_only(target)
    if reason:
        return Prepared(lambda: None, lambda: None, compile, info, False, reason)
    call = _IreeExecutable(load(), args())
    _, compile["first_call_s"] = _timed(call)
    return Prepared(call, call.output, compile, info)


def _lower_and_compile(module, target, options, tuning="off"):
    """(linalg module, vmfb, compile times, info): stepwell's passes (by default what
    ``sw.compile`` runs: ``to-linalg`` with the target's pass options), then IREE cold."""
    from stepwell.compiler import stages
    from stepwell.core.pipeline import Pipeline
    linalg = module.clone()
    pipeline = Pipeline(stages.pipeline_text("linalg", target) if options.pipeline == DEFAULT_PIPELINE
                        else options.pipeline)
    _, passes_s, passes_cpu = _cpu_timed(lambda: pipeline.run(linalg))
    vmfb, iree_s, iree_cpu = _cpu_timed(lambda: _cold_vmfb(linalg, target, tuning=tuning))
    compile = {"passes_s": passes_s, "iree_s": iree_s, "total_s": passes_s + iree_s,
               "passes_cpu_s": passes_cpu, "iree_cpu_s": iree_cpu,
               "passes": _group_timings(pipeline.timings)}
    info = {"vmfb_bytes": len(vmfb)}
    if options.dispatches:
        info.update(_dispatches(linalg, target, tuning=tuning))
    return linalg, vmfb, compile, info


def _group_timings(timings) -> dict:
    """Seconds per pass name (a pass that runs twice is summed)."""
    out: dict[str, float] = {}
    for name, seconds in timings:
        out[name] = out.get(name, 0.0) + seconds
    return out


DEFAULT_PIPELINE = "to-linalg"


class StepwellJax(Runner):
    name = "stepwell-jax"
    description = ("the JAX function through sw.jax.jit's import (raised to nn), the to-linalg "
                   "pipeline and IREE; called with device-resident inputs")

    def prepare(self, w, target, options) -> Prepared:
        from stepwell.compiler.runtime import Executable
        from stepwell.frontends.jax.jit import jit
        args = w.args()
        module, import_s = _timed(lambda: jit(w.jax_fn, target=str(target)).lower(*args))
        linalg, vmfb, compile, info = _lower_and_compile(module, target, options)
        compile["import_s"] = import_s
        compile["total_s"] += import_s
        info.update(raised=bool(getattr(module, "raised", False)),
                    stablehlo_ops_left=sum(1 for line in str(linalg).splitlines() if "stablehlo." in line))
        # The executable, called with device-resident inputs like the other IREE runners
        # (sw.jax.jit itself also copies inputs and results between numpy and JAX per call).
        return _ready(lambda: Executable(vmfb, target), lambda: args, target, compile, info)


def _block(x):
    if hasattr(x, "block_until_ready"):
        x.block_until_ready()
    elif isinstance(x, (tuple, list)):
        for y in x:
            _block(y)
    return x


class PlainIree(Runner):
    name = "iree"
    description = "plain IREE on jax.jit(f).lower(*args).as_text() (StableHLO), target flags"

    def prepare(self, w, target, options) -> Prepared:
        import jax

        from stepwell.compiler.runtime import Executable
        args = w.args()
        text, export_s = _timed(lambda: jax.jit(w.jax_fn).lower(*args).as_text())
        vmfb, iree_s, iree_cpu = _cpu_timed(lambda: _cold_vmfb(text, target, stage_input="stablehlo"))
        compile = {"export_s": export_s, "iree_s": iree_s, "total_s": export_s + iree_s,
                   "iree_cpu_s": iree_cpu}
        info = {"vmfb_bytes": len(vmfb)}
        if options.dispatches:
            info.update(_dispatches(text, target, stage_input="stablehlo"))
        return _ready(lambda: Executable(vmfb, target), lambda: args, target, compile, info)


class StepwellExport(Runner):
    name = "stepwell-params"
    description = ("the JAX function exported with sw.jax.export (weights as IREE parameters, "
                   "globals packed once at load) and loaded with sw.load; inputs device-resident")

    def prepare(self, w, target, options) -> Prepared:
        if not w.inputs:
            raise Skip("no weights: every argument is an input")
        import shutil
        import tempfile
        args = w.args()
        inputs, params = args[:w.inputs], list(args[w.inputs:])
        jax_fn = w.jax_fn

        def fn(params, *inputs):
            return jax_fn(*inputs, *params)

        folder = tempfile.mkdtemp(prefix="stepwell-bench-")
        try:
            reason = _compile_only(target)
            _, export_s = _timed(lambda: export(fn, params, *inputs, path=f"{folder}/m",
                                                target=str(target), cache=False, tuning="off"))
            compile = {"total_s": export_s, "export_s": export_s}
            if reason:
                return Prepared(lambda: None, lambda: None, compile, {}, False, reason)
            model, load_s = _timed(lambda: load(f"{folder}/m"))
            call = _IreeExecutable(model.executable, inputs)
            _, compile["first_call_s"] = _timed(call)
            compile["load_s"] = load_s
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # loaded: the runtime holds its data
        return Prepared(call, call.output, compile)


class Jax(Runner):
    name = "jax"
    description = "jax.jit (XLA), inputs placed on the device once"

    def prepare(self, w, target, options) -> Prepared:
        import jax
        args = w.args()
        placed = [jax.device_put(a) for a in args]
        fn = jax.jit(w.jax_fn)
        _, first = _timed(lambda: fn(*placed).block_until_ready())
        return Prepared(lambda: fn(*placed).block_until_ready(), lambda: np.asarray(fn(*placed)),
                        {"first_call_s": first, "total_s": first})


class Numpy(Runner):
    name = "numpy"
    description = "numpy (its BLAS, see the report's BLAS line)"

    def prepare(self, w, target, options) -> Prepared:
        if w.numpy_fn is None:
            raise Skip("no numpy version of this workload")
        args = w.args()
        return Prepared(lambda: w.numpy_fn(*args), lambda: np.asarray(w.numpy_fn(*args)),
                        settle_s=0.25)


class StepwellTuned(StepwellNN):
    name = "stepwell-tuned"
    description = ("the stepwell runner with the tuning database applied (the bench tunes the "
                   "suite's ops first, within --tune-budget)")

    def tuning(self, options):
        import os

        from stepwell.compiler.tuning_db import default_path
        path = options.tuning_db or default_path()
        return path if os.path.exists(path) else "off"  # (compile-only targets: never tuned)


RUNNERS: dict[str, Runner] = {r.name: r for r in (StepwellNN(), StepwellTuned(), StepwellJax(), StepwellExport(),
                                                   PlainIree(), Jax(), Numpy())}
