"""``sw.tune``: search per-dispatch configurations on this machine into the tuning database.

    import stepwell as sw
    report = sw.tune(m, target="cpu", budget=120)     # m: nn/linalg Module or MLIR text
    f = sw.jax.jit(fn); f.tune(*args)                 # the same for a JAX function
    exe = sw.compile(m)                               # compiles apply what was found

The module is lowered as ``sw.compile`` lowers it; each distinct contraction and
convolution becomes a task (``tasks``) with its own small module, for which
configurations are generated and pruned (``space``), compiled in parallel and timed
against the untuned compile, interleaved (``trial``), on a local process pool or Ray
(``backends``), within a budget (``search``). Every trial is recorded in the tuning
database (``stepwell.compiler.tuning_db``) as it ends; the best configuration of each
op is what later compiles apply. docs/tuning.md tells the whole story.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from stepwell.core.diagnostics import StepwellError

__all__ = ["tune", "TuneReport", "check_target"]

log = logging.getLogger("stepwell.tuner")


@dataclass
class TuneReport:
    """What :func:`tune` found: one result per task, the untunable roots, the time taken."""
    results: list = field(default_factory=list)
    untunable: list = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    db_path: str = ""
    target_key: str = ""

    @property
    def speedups(self) -> dict[str, float]:
        """Op description -> speed-up of its best configuration."""
        return {r.task.describe: r.speedup for r in self.results}

    def table(self):
        from stepwell.tuner.report import summary_table
        return summary_table(self.results, title=f"stepwell tune: {self.target_key} "
                                                 f"({self.seconds:.0f} s)")


def check_target(target):
    """The resolved target if it can be tuned here: a CPU target whose code runs on this
    machine. StepwellError otherwise (GPUs, cross-compiled CPUs)."""
    from stepwell import targets
    t = targets.get(target)
    if t.backend != "llvm-cpu":
        raise StepwellError(f"cannot tune for target '{t.spec}': tuning measures candidates on this "
                            "machine's CPU, and only CPU targets (cpu, cpu-generic) are searched")
    ok = targets.available(t)
    if not ok:
        raise StepwellError(f"cannot tune for target '{t.spec}' here: {ok.reason}; tune on that "
                            "machine and share the database (stepwell tune --export/--import)")
    return t


def tune(module, target="cpu", *, budget: float = 300.0, db=None, max_candidates: int = 24,
         rounds: int = 5, jobs: int | None = None, ray: str | None = None, precision: str | None = None,
         quiet: bool = False, console=None, seed: int = 0) -> TuneReport:
    """Tune ``module`` (any stage ``sw.compile`` takes) for ``target`` within ``budget``
    seconds; results go to ``db`` (a path; default: ``STEPWELL_TUNING_DB`` or the cache
    folder's). ``max_candidates`` per op, ``rounds`` of interleaved timing, ``jobs``
    parallel compiles, ``ray``: ``"auto"``, an address or ``"local"`` to run trials on
    Ray. ``quiet``: no progress bar or table. Ctrl-C stops early, keeping the results."""
    from rich.console import Console

    from stepwell.compiler import tuning_keys
    from stepwell.compiler.tuning_db import TuningDB
    from stepwell.targets import iree_cpu
    from stepwell.tuner import backends, report, search, space
    from stepwell.tuner.tasks import tasks

    start = time.monotonic()
    tgt = check_target(target)
    console = console or Console(stderr=True, quiet=quiet)
    database = db if isinstance(db, TuningDB) else TuningDB(db)
    task_list, untunable = tasks(module, tgt, precision=precision)
    report.print_untunable(console, untunable)
    out = TuneReport(untunable=untunable, db_path=database.path,
                     target_key=tuning_keys.target_key(tgt))
    if not task_list:
        console.print("nothing to tune: no contraction or convolution with static shapes")
        out.seconds = time.monotonic() - start
        return out
    info = iree_cpu.info(tgt)
    total = sum(len(space.candidates(t, info, max_candidates, tgt)) for t in task_list)
    backend = backends.make_backend(ray, jobs)
    ctx = search._Ctx(database, backend, tgt, out.target_key, tuning_keys.iree_version(), info,
                      max_candidates, rounds, start + budget, seed, console.print)
    try:
        with report.Progress(total, budget, quiet, console) as progress:
            ctx.log = progress.log
            out.results, out.interrupted = search.run_search(task_list, ctx, progress)
    finally:
        backend.close()
    out.seconds = time.monotonic() - start
    console.print(out.table())
    if out.interrupted:
        console.print("interrupted: the trials measured so far are in the database; run again to resume")
    return out
