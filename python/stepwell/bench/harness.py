"""The measuring loop: compile every runner, check its result, then time the runners
round-robin in one process.

Per workload: each runner compiles (times split as its runner reports them), its
result is compared with ``jax.jit``'s, it is warmed up, and the number of calls per
sample is chosen so that a sample lasts at least ``min_sample_s``. Then ``repeat``
rounds each take one sample of every runner, in an order shuffled afresh each round
(seeded), so that a noisy stretch of the machine hits them all alike and no runner
always runs right after another (a runner whose idle threads keep spinning after its
call, OpenBLAS's, also waits ``settle_s`` before the next sample). Each sample starts
with one untimed call, which wakes the runner's worker threads: a sample measures
steady-state calls, not the hand-over from the runner before it. A workload
stops early (after at least 3 rounds) when it has used its time budget.

Peak memory per runner and workload: the growth of the process's resident set
(``VmHWM`` over the ``VmRSS`` just before; Linux resets the high-water mark through
``/proc/self/clear_refs``) during one call: the temporaries and results a call
allocates on top of what is already resident (inputs, weights, compiled code).
Where the mark cannot be reset it falls back to the growth of ``ru_maxrss``
(``resource.getrusage``), which only sees new process-wide highs.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import time
from dataclasses import dataclass

import numpy as np

from stepwell.bench import probe as probe_mod
from stepwell.bench.memory import peak_memory_mib
from stepwell.bench.runners import DEFAULT_PIPELINE, RUNNERS, Skip
from stepwell.bench.workloads import Workload, suite

REFERENCE = "jax"
QUICK_SKIPS = ("stepwell-params",)  # one more IREE compile per workload: full runs only


@dataclass
class Options:
    mode: str = "full"              # full, quick, tiny
    target: str = "cpu"
    repeat: int | None = None       # rounds (default by mode)
    filter: tuple = ()              # workload name substrings (any)
    runners: tuple | None = None    # default: all (--quick: all but stepwell-params)
    warmup: int | None = None
    min_sample_s: float | None = None
    budget_s: float | None = None   # per workload, timed rounds
    dispatches: bool = False        # count IREE dispatches (an extra compile to flow)
    probe: bool = True
    peak_gflops: float | None = None  # a reference peak for the contention check
    pipeline: str = DEFAULT_PIPELINE
    tune_budget_s: float | None = None  # the stepwell-tuned runner's tuning phase (default by mode)
    tuning_db: str | None = None        # its database (default: STEPWELL_TUNING_DB or the cache's)

    def defaults(self) -> "Options":
        table = {"full": (20, 2, 0.02, 30.0), "quick": (5, 1, 0.005, 5.0), "tiny": (2, 1, 0.0, 1.0)}
        repeat, warmup, sample, budget = table[self.mode]
        if self.runners is None:
            self.runners = tuple(n for n in RUNNERS if self.mode != "quick" or n not in QUICK_SKIPS)
        self.repeat = self.repeat or repeat
        self.warmup = warmup if self.warmup is None else self.warmup
        self.min_sample_s = sample if self.min_sample_s is None else self.min_sample_s
        self.budget_s = budget if self.budget_s is None else self.budget_s
        return self


def select(mode: str, patterns=()) -> list[Workload]:
    ws = suite(mode)
    if patterns:
        ws = [w for w in ws if any(p in w.name for p in patterns)]
    return ws


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------
def summarize(samples: list[float]) -> dict:
    s = sorted(samples)
    q = statistics.quantiles(s, n=4, method="inclusive") if len(s) >= 2 else [s[0]] * 3
    return {"median_ms": statistics.median(s) * 1e3, "q1_ms": q[0] * 1e3, "q3_ms": q[2] * 1e3,
            "min_ms": s[0] * 1e3, "max_ms": s[-1] * 1e3, "samples": len(s)}


def rel_error(got, want) -> float:
    got = np.asarray(got, dtype=np.float32)
    want = np.asarray(want, dtype=np.float32)
    if got.shape != want.shape:
        return float("inf")
    scale = float(np.max(np.abs(want))) or 1.0
    return float(np.max(np.abs(got - want))) / scale


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
class Progress:
    """What the harness reports while it runs (the CLI shows a rich progress bar)."""

    def start(self, total: int) -> None: ...
    def step(self, text: str) -> None: ...
    def advance(self) -> None: ...


def run(options: Options, progress: Progress | None = None) -> dict:
    """Run the suite; returns the report (the JSON document, see ``report.SCHEMA``)."""
    from stepwell import targets
    from stepwell.bench import report
    chosen = options.runners  # (None: all; an LLM workload then runs all of its own)
    options.defaults()
    progress = progress or Progress()
    target = targets.get(options.target)
    workloads = select(options.mode, options.filter)
    runners = [RUNNERS[n] for n in options.runners if n in RUNNERS]  # (others: an LLM workload's own)
    runnable = bool(targets.available(target))
    own = {w.name: [r for n, r in w.runners.items() if chosen is None or n in chosen]
           for w in workloads if w.runners}
    progress.start(sum(len(own.get(w.name, runners)) + 1 for w in workloads) + (2 if options.probe else 0))

    doc = report.header(options, target, runnable)
    listed = {r.name: r for r in runners}
    for rs in own.values():
        listed.update({r.name: r for r in rs if r.name not in listed})
    doc["runners"] = [{"name": r.name, "description": r.description} for r in listed.values()]
    probe = None
    start_gflops = end_gflops = None
    if options.probe:
        progress.step("peak probe (start)")
        try:
            probe = probe_mod.Probe()
            start_gflops = probe.measure()
        except Exception as e:  # noqa: BLE001  (the probe must not stop a run)
            doc["probe_error"] = f"{type(e).__name__}: {e}"
        progress.advance()

    if own and options.probe and runnable:
        try:
            doc["bandwidth"] = {"gbs": probe_mod.BandwidthProbe().measure(),
                                "method": probe_mod.BANDWIDTH_METHOD}
        except Exception as e:  # noqa: BLE001  (the probe must not stop a run)
            doc["bandwidth"] = {"error": f"{type(e).__name__}: {e}"}

    if "stepwell-tuned" in options.runners and runnable:  # tune first, within its budget
        from stepwell.bench.tuned import tune_suite
        doc["tuning"] = tune_suite(workloads, target, options, progress)

    started = time.perf_counter()
    for w in workloads:
        doc["workloads"].append(_run_workload(w, own.get(w.name, runners), target, runnable, options,
                                              progress))
        w.release()
        gc.collect()
    doc["elapsed_s"] = time.perf_counter() - started

    if probe is not None:
        progress.step("peak probe (end)")
        end_gflops = probe.measure()
        progress.advance()
    doc["probe"] = probe_mod.verdict(start_gflops, end_gflops, options.peak_gflops)
    report.finish(doc)
    return doc


def _run_workload(w: Workload, runners, target, runnable: bool, options: Options, progress) -> dict:
    entry = {"name": w.name, "group": w.group, "shapes": w.shapes, "dtype": w.dtype,
             "gflop": w.flops / 1e9, "notes": w.notes, "results": {}}
    prepared = {}
    reference = None
    caps = target.capabilities
    for r in runners:
        progress.step(f"{w.name}: compile {r.name}")
        res: dict = {}
        try:
            if w.dtype in ("f16", "bf16") and not getattr(caps, w.dtype, True) and r.name.startswith(
                    ("stepwell", "iree")):
                raise Skip(f"target '{target.spec}' has no {w.dtype} support")
            if not runnable and r.name in ("jax", "numpy"):
                raise Skip(f"target '{target.spec}' cannot run here: no host reference")
            p = r.prepare(w, target, options)
            res["compile"] = p.compile
            res.update(p.info)
            if not p.runnable:
                res["status"] = "compile-only"
                res["reason"] = p.reason
            else:
                res["status"] = "ok"
                prepared[r.name] = p
        except Skip as e:
            res = {"status": "skipped", "reason": str(e)}
        except Exception as e:  # noqa: BLE001  (one runner's failure is a result, not the end)
            from stepwell.core.diagnostics import StepwellError
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if not isinstance(e, StepwellError):
                msg = f"{type(e).__name__}: {msg}"
            res = {"status": "failed", "reason": msg[:500]}
        entry["results"][r.name] = res
        progress.advance()

    # correctness against jax.jit (or the first runner that ran)
    outputs = {}
    for name, p in prepared.items():
        try:
            outputs[name] = p.output()
        except Exception as e:  # noqa: BLE001
            entry["results"][name].update(status="failed", reason=f"{type(e).__name__}: {e}"[:500])
    prepared = {n: p for n, p in prepared.items() if n in outputs}
    ref_name = REFERENCE if REFERENCE in outputs else next(iter(outputs), None)
    if ref_name is not None:
        reference = outputs[ref_name]
        for name, out in outputs.items():
            err = rel_error(out, reference)
            entry["results"][name]["max_rel_err"] = err
            entry["results"][name]["matches"] = bool(err <= w.rtol)
    del outputs

    progress.step(f"{w.name}: timing {', '.join(prepared)}")
    if prepared:
        _time_round_robin(w, prepared, entry, options)
    progress.advance()
    return entry


def _time_round_robin(w: Workload, prepared: dict, entry: dict, options: Options) -> None:
    inner = {}
    for name, p in prepared.items():  # warm-up, and calls per sample
        for _ in range(max(1, options.warmup)):
            start = time.perf_counter()
            p.call()
            once = time.perf_counter() - start
        inner[name] = max(1, math.ceil(options.min_sample_s / max(once, 1e-7))) if options.min_sample_s else 1
        entry["results"][name]["calls_per_sample"] = inner[name]
    samples = {n: [] for n in prepared}
    names = list(prepared)
    deadline = time.perf_counter() + options.budget_s
    shuffle = random.Random(0).shuffle  # a fresh order each round: no runner always follows another
    for rnd in range(options.repeat):
        order = list(names)
        shuffle(order)
        for name in order:
            call, k = prepared[name].call, inner[name]
            call()  # untimed: wakes the runner's threads after the previous runner's sample
            start = time.perf_counter()
            for _ in range(k):
                call()
            samples[name].append((time.perf_counter() - start) / k)
            time.sleep(prepared[name].settle_s)
        if rnd >= 2 and time.perf_counter() > deadline:
            break
    for name, p in prepared.items():
        res = entry["results"][name]
        res.update(summarize(samples[name]))
        res["gflops"] = w.flops / (res["median_ms"] * 1e-3) / 1e9
        if w.tokens:
            res["tokens_per_s"] = w.tokens / (res["median_ms"] * 1e-3)
        res["peak_mem_mib"], res["mem_method"] = peak_memory_mib(p.call)
