"""The search: tasks largest first, candidates in waves, every trial recorded as it ends.

For each task: the candidates (``space.candidates``) not yet measured for this op,
target and IREE (a rerun resumes) are compiled in waves of about two per worker, in
parallel; each wave is benchmarked with the baseline, interleaved (``trial.benchmark``);
each trial goes to the database as soon as it is known (rejected compiles at once).
The task's best is then written: the fastest candidate whose verdict was *faster*
(from this run or an earlier one), else ``{"kind": "default"}``: the untuned compile
wins. The budget (seconds) is checked before each wave and within a benchmark;
Ctrl-C stops the search, keeping every trial recorded so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from stepwell.compiler.tuning_db import config_text
from stepwell.tuner import space, trial

__all__ = ["TaskResult", "run_search"]


@dataclass
class TaskResult:
    task: object
    baseline_s: float | None = None
    best_s: float | None = None
    speedup: float = 1.0
    config: dict = field(default_factory=lambda: {"kind": "default"})
    trials: int = 0            # measured in this run
    resumed: int = 0           # found in the database
    rejected: int = 0
    status: str = "tuned"      # tuned, skipped (budget), baseline failed, interrupted


def _record(db, task, target_key, iree, config, status, **kw) -> None:
    db.record_trial(task.key, target_key, iree, config, status, **kw)


def _best(db, task, target_key, iree):
    """The fastest *faster* trial recorded for the task (any run), or None."""
    rows = [r for r in db.trials(task.key, target_key, iree).values()
            if r["status"] == "faster" and r["speedup"]]
    return max(rows, key=lambda r: r["speedup"], default=None)


def tune_task(task, ctx, progress) -> TaskResult:
    """Search one task; ``ctx`` holds db, backend, target, keys, settings, deadline."""
    import json
    res = TaskResult(task)
    done = ctx.db.trials(task.key, ctx.target_key, ctx.iree)
    configs = space.candidates(task, ctx.info, ctx.limit)
    todo = [c for c in configs if config_text(c) not in done]
    res.resumed = len(configs) - len(todo)
    progress.advance(res.resumed)
    wave = max(2, 2 * ctx.backend.jobs)
    baseline = None
    while todo:
        if time.monotonic() > ctx.deadline:
            res.status = "budget"
            break
        batch, todo = todo[:wave], todo[wave:]
        compiled = {}
        jobs = ([None] if baseline is None else []) + batch
        for got in ctx.backend.compile_many(task, jobs, ctx.target.spec):
            if got.config is None:
                baseline = got
                continue
            if got.vmfb is None:
                res.rejected += 1
                res.trials += 1
                _record(ctx.db, task, ctx.target_key, ctx.iree, got.config, "rejected", detail=got.error)
                progress.advance(1)
            else:
                compiled[config_text(got.config)] = got
        if baseline is None or baseline.vmfb is None:
            res.status = "baseline failed"
            res.config = {"kind": "default"}
            ctx.log(f"{task.describe}: the untuned compile failed ({baseline.error if baseline else '?'}); skipped")
            return res
        if not compiled:
            continue
        vmfbs = {"baseline": baseline.vmfb} | {k: c.vmfb for k, c in compiled.items()}
        host_key, measured = ctx.backend.benchmark(task, vmfbs, ctx.target.spec, rounds=ctx.rounds,
                                                   deadline=ctx.deadline, seed=ctx.seed)
        base = measured["baseline"]
        if base.error or not base.times:
            res.status = "baseline failed"
            ctx.log(f"{task.describe}: the untuned module did not run ({base.error}); skipped")
            return res
        res.baseline_s = min(base.times) if res.baseline_s is None else min(res.baseline_s, min(base.times))
        for key, c in compiled.items():
            status, speedup, spread = trial.verdict(base, measured[key])
            cand = measured[key]
            detail = cand.error or cand.mismatch
            _record(ctx.db, task, host_key, ctx.iree, c.config, status, base_s=min(base.times),
                    cand_s=min(cand.times) if cand.times else None, speedup=speedup, spread=spread,
                    detail=detail)
            res.trials += 1
            progress.advance(1)
    best = _best(ctx.db, task, ctx.target_key, ctx.iree)
    if best is not None:
        res.config, res.speedup = json.loads(best["config"]), float(best["speedup"])
        res.best_s = best["cand_s"]
        res.baseline_s = res.baseline_s or best["base_s"]
    else:
        res.best_s = res.baseline_s
    if res.status == "tuned" or best is not None:
        ctx.db.set_best(task.key, ctx.target_key, ctx.iree, task.signature, res.config, res.speedup,
                        base_s=res.baseline_s, best_s=res.best_s)
    return res


@dataclass
class _Ctx:
    db: object
    backend: object
    target: object
    target_key: str
    iree: str
    info: object
    limit: int
    rounds: int
    deadline: float
    seed: int
    log: object


def run_search(task_list, ctx: _Ctx, progress) -> tuple[list[TaskResult], bool]:
    """(results, interrupted): every task in order, until the budget ends or Ctrl-C."""
    results = []
    interrupted = False
    for task in task_list:
        if time.monotonic() > ctx.deadline:
            results.append(TaskResult(task, status="budget"))
            continue
        progress.task(task.describe)
        try:
            results.append(tune_task(task, ctx, progress))
        except KeyboardInterrupt:
            interrupted = True
            results.append(TaskResult(task, status="interrupted"))
            break
    return results, interrupted
