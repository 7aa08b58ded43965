"""The search: tasks largest first, candidates in waves, every trial recorded as it ends.

For each task: the candidates (``space.candidates``) not yet measured for this op,
target and IREE (a rerun resumes) are compiled in waves of about two per worker, in
parallel; each wave is benchmarked with the baseline, interleaved (``trial.benchmark``);
each trial goes to the database as soon as it is known (rejected compiles at once).
The fastest *faster* candidates are then run again, longer (:func:`confirm`); the task's
best is the fastest *confirmed* one (from this run or an earlier one), else, when every
candidate was measured, ``{"kind": "default"}``: the untuned compile wins. The budget (seconds) is checked before each wave and within a benchmark;
Ctrl-C stops the search, keeping every trial recorded so far.
"""

from __future__ import annotations

import json
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


def _rows(db, task, ctx, status: str) -> list[dict]:
    """Recorded trials of the task with ``status``, fastest first."""
    rows = [r for r in db.trials(task.key, ctx.target_key, ctx.iree).values()
            if r["status"] == status and r["speedup"]]
    return sorted(rows, key=lambda r: -r["speedup"])


def _compile_one(ctx, task, config):
    (got,) = list(ctx.backend.compile_many(task, [config], ctx.target.spec))
    return got.vmfb


def confirm(task, ctx, kept: dict, baseline) -> None:
    """Run the fastest *faster* candidates again, longer, paired with the baseline; one
    that is faster again is *confirmed* (what compiles apply), else *unconfirmed*. The
    best of many noisy candidates is chosen for its luck as much as for its speed: on a
    busy machine the first run alone let through candidates that were not faster."""
    for row in _rows(ctx.db, task, ctx, "faster")[:ctx.confirmations]:
        done = _rows(ctx.db, task, ctx, "confirmed")
        if done and done[0]["speedup"] >= row["speedup"]:
            break
        config = json.loads(row["config"])
        vmfb = kept.get(row["config"]) or _compile_one(ctx, task, config)
        baseline = baseline or _compile_one(ctx, task, None)
        if vmfb is None or baseline is None:
            continue
        host_key, m = ctx.backend.benchmark(task, {"baseline": baseline, "cand": vmfb}, ctx.target.spec,
                                            rounds=2 * ctx.rounds, seed=ctx.seed + 1)
        status, speedup, spread = trial.verdict(m["baseline"], m["cand"])
        _record(ctx.db, task, host_key, ctx.iree, config, "confirmed" if status == "faster" else "unconfirmed",
                base_s=min(m["baseline"].times) if m["baseline"].times else None,
                cand_s=min(m["cand"].times) if m["cand"].times else None, speedup=speedup, spread=spread,
                detail=f"first run {row['speedup']:.2f}x")


def tune_task(task, ctx, progress) -> TaskResult:
    """Search one task; ``ctx`` holds db, backend, target, keys, settings, deadline."""
    res = TaskResult(task)
    done = ctx.db.trials(task.key, ctx.target_key, ctx.iree)
    configs = space.candidates(task, ctx.info, ctx.limit, ctx.target)
    todo = [c for c in configs if config_text(c) not in done]
    res.resumed = len(configs) - len(todo)
    progress.advance(res.resumed)
    wave = max(2, 2 * ctx.backend.jobs)
    baseline = None
    kept: dict[str, bytes] = {}  # this run's compiled candidates, for the confirmation
    while todo:
        if time.monotonic() + ctx.wave_s > ctx.deadline:  # a wave that would not end in time
            res.status = "budget"
            break
        started = time.monotonic()
        batch, todo = todo[:wave], todo[wave:]
        compiled = {}
        for got in ctx.backend.compile_many(task, ([None] if baseline is None else []) + batch, ctx.target.spec):
            if got.config is None:
                baseline = got.vmfb
                if baseline is None:
                    ctx.log(f"{task.describe}: the untuned compile failed ({got.error}); skipped")
            elif got.vmfb is None:
                res.rejected += 1
                res.trials += 1
                _record(ctx.db, task, ctx.target_key, ctx.iree, got.config, "rejected", detail=got.error)
                progress.advance(1)
            else:
                compiled[config_text(got.config)] = got
        if baseline is None:
            res.status = "baseline failed"
            return res
        if not compiled:
            continue
        vmfbs = {"baseline": baseline} | {k: c.vmfb for k, c in compiled.items()}
        host_key, measured = ctx.backend.benchmark(task, vmfbs, ctx.target.spec, rounds=ctx.rounds,
                                                   deadline=ctx.deadline, seed=ctx.seed)
        base = measured["baseline"]
        if base.error or not base.times:
            res.status = "baseline failed"
            ctx.log(f"{task.describe}: the untuned module did not run ({base.error}); skipped")
            return res
        res.baseline_s = min(base.times + ([res.baseline_s] if res.baseline_s else []))
        for key, c in compiled.items():
            cand = measured[key]
            status, speedup, spread = trial.verdict(base, cand)
            _record(ctx.db, task, host_key, ctx.iree, c.config, status, base_s=min(base.times),
                    cand_s=min(cand.times) if cand.times else None, speedup=speedup, spread=spread,
                    detail=cand.error or cand.mismatch)
            if status == "faster":
                kept[key] = c.vmfb
            res.trials += 1
            progress.advance(1)
        ctx.wave_s = 0.5 * (time.monotonic() - started)  # the next wave's likely length, cautiously
    confirm(task, ctx, kept, baseline)
    best = next(iter(_rows(ctx.db, task, ctx, "confirmed")), None)
    if best is not None:
        res.config, res.speedup = json.loads(best["config"]), float(best["speedup"])
        res.best_s, res.baseline_s = best["cand_s"], best["base_s"]
        ctx.db.set_best(task.key, ctx.target_key, ctx.iree, task.signature, res.config, res.speedup,
                        base_s=res.baseline_s, best_s=res.best_s)
    elif res.status == "tuned":  # every candidate measured, none faster: the default wins
        res.best_s = res.baseline_s
        ctx.db.set_best(task.key, ctx.target_key, ctx.iree, task.signature, res.config, 1.0,
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
    confirmations: int = 2
    wave_s: float = 0.0      # half the last wave's seconds: no wave starts that would overrun


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
