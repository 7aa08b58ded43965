"""The tuning phase of ``stepwell bench``: before anything is timed, the ``stepwell-tuned``
runner's ops are tuned into the tuning database within one budget.

The workloads' ``nn`` modules are tuned in suite order, each with what is left of the
budget divided among the workloads still to go (a workload that finishes early leaves
its time to the next). The report's ``tuning`` section says how long it took, against
which budget, how many ops were tuned, how many trials were new and how many an earlier
run had recorded (a rerun resumes), and the database used.
"""

from __future__ import annotations

import time

__all__ = ["tune_suite", "BUDGETS"]

# seconds by mode: "Tuning the whole suite within 15 minutes on 2 cores"
BUDGETS = {"full": 900.0, "quick": 90.0, "tiny": 5.0}
_CANDIDATES = {"full": 24, "quick": 16, "tiny": 2}


def tune_suite(workloads, target, options, progress) -> dict:
    """Tune the workloads' nn modules; the report's ``tuning`` section."""
    from stepwell.compiler.tuning_db import TuningDB
    from stepwell.tuner import tune
    budget = options.tune_budget_s if options.tune_budget_s is not None else BUDGETS[options.mode]
    db = TuningDB(options.tuning_db)
    start = time.monotonic()
    out = {"budget_s": budget, "db": db.path, "workloads": {}, "errors": {}}
    todo = [w for w in workloads if w.nn_module is not None]
    for i, w in enumerate(todo):
        left = budget - (time.monotonic() - start)
        if left <= 0:
            out["workloads"][w.name] = {"status": "budget"}
            continue
        progress.step(f"tuning {w.name} ({left:.0f} s left)")
        try:
            rep = tune(w.build_nn(), target, budget=left / (len(todo) - i), db=db, quiet=True,
                       max_candidates=_CANDIDATES[options.mode], rounds=3 if options.mode == "tiny" else 5)
        except Exception as e:  # noqa: BLE001  (a failed tuning leaves the runner untuned)
            out["errors"][w.name] = f"{type(e).__name__}: {e}"[:300]
            continue
        out["workloads"][w.name] = {
            "seconds": round(rep.seconds, 1), "ops": len(rep.results),
            "trials": sum(r.trials for r in rep.results), "resumed": sum(r.resumed for r in rep.results),
            "unfinished": sum(r.status in ("budget", "interrupted") for r in rep.results),
            "speedups": {r.task.describe: round(r.speedup, 3) for r in rep.results}}
    out["seconds"] = round(time.monotonic() - start, 1)
    out["trials"] = sum(v.get("trials", 0) for v in out["workloads"].values())
    out["resumed"] = sum(v.get("resumed", 0) for v in out["workloads"].values())
    out["ops"] = sum(v.get("ops", 0) for v in out["workloads"].values())
    # ops whose search the budget cut short (a workload never reached: all of its ops)
    out["unfinished"] = sum(v.get("unfinished", 0) for v in out["workloads"].values())
    out["unreached"] = [name for name, v in out["workloads"].items() if v.get("status") == "budget"]
    return out


MATMUL_BOUND = ("matmul", "mlp")


def goals(doc: dict) -> list[dict]:
    """The autotuning issue's goals on this run (``stepwell-tuned`` against ``stepwell``,
    ``jax.jit`` and the probe's peak); empty when the tuned runner did not run."""
    from stepwell.bench.report import _geomean, _goal, _result
    runner, base = "stepwell-tuned", "stepwell"
    ws = [w for w in doc["workloads"] if w["results"].get(runner, {}).get("median_ms")]
    if not ws:
        return []
    out = []
    geo = (doc.get("summary", {}).get(runner) or {}).get("geomean_vs_jax")
    out.append(_goal("tuned geomean vs jax.jit", ">= 1.00x (stretch 1.30x)", geo and f"{geo:.2f}x",
                     None if geo is None else geo >= 1.0, geo and f"{1.0 / geo:.2f}x short"))
    gains = {w["name"]: _result(doc, w["name"], base)["median_ms"] / w["results"][runner]["median_ms"]
             for w in ws if w["group"] in MATMUL_BOUND and _result(doc, w["name"], base).get("median_ms")}
    g = _geomean(list(gains.values()))
    out.append(_goal("tuned vs untuned, matmul-bound", ">= 1.30x (geomean of matmul, mlp)",
                     g and f"{g:.2f}x", None if g is None else g >= 1.3, g and f"{1.3 / g:.2f}x short"))
    frac = _result(doc, "matmul_f32_2048", runner).get("fraction_of_peak")
    out.append(_goal("tuned matmul_f32_2048 fraction of peak", ">= 80% of the probe's peak",
                     frac and f"{100 * frac:.0f}%", None if frac is None else frac >= 0.8,
                     frac and f"{100 * (0.8 - frac):.0f} points short", "matmul_f32_2048"))
    slower = [w["name"] for w in ws if _result(doc, w["name"], base).get("q1_ms")
              and w["results"][runner]["q1_ms"] > _result(doc, w["name"], base)["q3_ms"]]
    out.append(_goal("tuned never slower than untuned", "no workload slower beyond the IQRs",
                     f"{len(slower)} slower", not slower, ", ".join(slower), ", ".join(slower)))
    t = doc.get("tuning") or {}
    if t.get("seconds") is not None:  # done means every op searched, not the budget spent
        cut = t.get("unfinished", 0) + len(t.get("unreached", []))
        left = (f"{t.get('unfinished', 0)} of {t.get('ops', 0)} ops cut short by the budget"
                + (f", not reached: {', '.join(t['unreached'])}" if t.get("unreached") else ""))
        resumed = t.get("resumed", 0)
        measured = f"{t['seconds'] / 60:.1f} min" + (f"; {left}" if cut else "")
        if resumed and not cut:  # an earlier run did part of the work: no from-scratch time
            measured += f" ({resumed} of {resumed + t.get('trials', 0)} trials from earlier runs)"
        out.append(_goal("tuning the suite", "<= 15 min on 2 cores, every op searched, from scratch",
                         measured, False if cut or t["seconds"] > 900 else (None if resumed else True),
                         left if cut else f"{(t['seconds'] - 900) / 60:.1f} min over"))
    return out
