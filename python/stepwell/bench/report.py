"""The bench report: one JSON document (``SCHEMA``), rendered as tables (rich in a
terminal, plain text otherwise), Markdown and a plot of the ratios to ``jax.jit``.

Document layout (``schema = "stepwell-bench/1"``)::

    {schema, created, mode, target, runnable, options, machine, versions, blas,
     probe: {method, start_gflops, end_gflops, peak_gflops, contended, reasons},
     runners: [{name, description}],
     workloads: [{name, group, shapes, dtype, gflop, notes,
                  results: {runner: {status: ok|skipped|failed|compile-only, reason?,
                                     median_ms, q1_ms, q3_ms, min_ms, max_ms, samples,
                                     gflops, vs_jax, vs_iree, fraction_of_peak,
                                     compile: {passes_s, iree_s, export_s, total_s,
                                               first_call_s, cached_s, ...},
                                     dispatches?, vmfb_bytes?, peak_mem_mib, mem_method,
                                     max_rel_err, matches}}}],
     summary: {runner: {geomean_vs_jax, min_vs_jax, geomean_vs_iree, min_vs_iree, workloads}},
     targets: [{name, goal, measured, holds, shortfall, where}],
     elapsed_s}

``targets`` checks the performance goals of the benchmark issue on this run (``goals``):
``holds`` is None where the run lacks the numbers (a workload filtered out, a
compile-only target); ``shortfall`` says by how much a goal is missed.

``vs_jax`` is jax.jit's median time over the runner's (above 1: faster than jax.jit);
``vs_iree`` likewise against plain IREE on the same JAX program.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess

SCHEMA = "stepwell-bench/1"
RESULT_KEYS = ("status",)
TIMED_KEYS = ("median_ms", "q1_ms", "q3_ms", "min_ms", "max_ms", "samples", "gflops", "vs_jax")


# ---------------------------------------------------------------------------
# machine and versions
# ---------------------------------------------------------------------------
_FLAG_SUMMARY = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                 "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


def machine() -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        for key in ("Model name", "Vendor ID", "CPU(s)", "Thread(s) per core", "Core(s) per socket",
                    "Socket(s)", "CPU max MHz", "L1d cache", "L2 cache", "L3 cache", "Hypervisor vendor"):
            if key in fields:
                info[key.lower().replace(" ", "_").replace("(s)", "s")] = fields[key]
        flags = set(fields.get("Flags", "").split())
        info["flags"] = [f for f in _FLAG_SUMMARY if f in flags]
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    try:
        with open("/proc/meminfo") as f:
            total = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
        info["memory_gib"] = round(total / 2 ** 20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def versions() -> dict:
    from importlib import metadata
    out = {}
    for dist in ("stepwell", "jax", "jaxlib", "iree-base-compiler", "iree-base-runtime", "numpy",
                 "ml_dtypes", "flax"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            out["stepwell_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def blas() -> dict:
    """numpy's BLAS as threadpoolctl sees it, and OPENBLAS_CORETYPE if set."""
    info: dict = {"openblas_coretype": os.environ.get("OPENBLAS_CORETYPE")}
    try:
        import numpy  # noqa: F401  (load the BLAS first)
        from threadpoolctl import threadpool_info
        libs = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
        info["libraries"] = [{k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                                       "num_threads", "threading_layer")} for lib in libs]
        if libs:
            lib = libs[0]
            info["kernel"] = (f"{lib.get('internal_api')} {lib.get('version')} "
                              f"({lib.get('architecture') or 'unknown'} kernels, "
                              f"{lib.get('num_threads')} threads)")
    except ImportError:
        info["kernel"] = "unknown (threadpoolctl is not installed)"
    if info["openblas_coretype"]:
        info["kernel"] = info.get("kernel", "") + f"; OPENBLAS_CORETYPE={info['openblas_coretype']}"
    return info


def threads() -> dict:
    return {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS",
                                        "IREE_TASK_TOPOLOGY_MAX_GROUP_COUNT") if k in os.environ}


def header(options, target, runnable: bool) -> dict:
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": options.mode, "target": target.spec, "target_flags": list(target.flags),
        "runnable": runnable,
        "options": {"repeat": options.repeat, "warmup": options.warmup,
                    "min_sample_s": options.min_sample_s, "budget_s": options.budget_s,
                    "filter": list(options.filter), "runners": list(options.runners),
                    "pipeline": options.pipeline, "dispatches": options.dispatches},
        "machine": machine(), "versions": versions(), "blas": blas(), "environment": threads(),
        "workloads": [],
    }


# ---------------------------------------------------------------------------
# derived numbers
# ---------------------------------------------------------------------------
def _geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def finish(doc: dict) -> dict:
    """Ratios, fractions of peak and the per-runner summary."""
    peak = (doc.get("probe") or {}).get("peak_gflops")
    for w in doc["workloads"]:
        res = w["results"]
        base = {k: res.get(k, {}).get("median_ms") for k in ("jax", "iree")}
        for r in res.values():
            if r.get("median_ms"):
                for key, ref in base.items():
                    if ref:
                        r[f"vs_{key}"] = ref / r["median_ms"]
                if peak and w["group"] == "matmul" and w["dtype"] == "f32":
                    r["fraction_of_peak"] = r["gflops"] / peak
    summary = {}
    names = [r["name"] for r in doc.get("runners", [])]
    for name in names:
        vs_jax = [w["results"][name]["vs_jax"] for w in doc["workloads"]
                  if w["results"].get(name, {}).get("vs_jax")]
        vs_iree = [w["results"][name]["vs_iree"] for w in doc["workloads"]
                   if w["results"].get(name, {}).get("vs_iree")]
        summary[name] = {"workloads": len(vs_jax),
                         "geomean_vs_jax": _geomean(vs_jax), "min_vs_jax": min(vs_jax, default=None),
                         "geomean_vs_iree": _geomean(vs_iree), "min_vs_iree": min(vs_iree, default=None)}
    doc["summary"] = summary
    from stepwell.bench import llm_report
    from stepwell.bench.tuned import goals as tuning_goals
    llm_report.finish(doc)
    doc["targets"] = goals(doc) + tuning_goals(doc) + llm_report.goals(doc, _goal)
    return doc


def _result(doc: dict, workload: str, runner: str) -> dict:
    w = next((w for w in doc["workloads"] if w["name"] == workload), None)
    return (w or {}).get("results", {}).get(runner, {})


def _goal(name, goal, measured, holds, shortfall="", where=""):
    return {"name": name, "goal": goal, "measured": measured, "holds": holds,
            "shortfall": "" if holds else shortfall, "where": where}


def goals(doc: dict, runner: str = "stepwell") -> list[dict]:
    """The benchmark issue's performance goals, checked on this run's numbers."""
    ws = [w for w in doc["workloads"] if w["results"].get(runner, {}).get("median_ms")]
    out = []
    # every workload at least as fast as plain IREE on the same JAX program; slower
    # only where the two don't overlap (runner's first quartile above IREE's third)
    vs_iree = {w["name"]: w["results"][runner].get("vs_iree") for w in ws}
    vs_iree = {k: v for k, v in vs_iree.items() if v}
    slow = {k: v for k, v in vs_iree.items()
            if v < 1.0 and _result(doc, k, runner).get("q1_ms", 0) > _result(doc, k, "iree").get("q3_ms", 0)}
    out.append(_goal("never slower than plain IREE",
                     "every workload >= 1.00x plain IREE (or their IQRs overlap)",
                     f"min {min(vs_iree.values()):.2f}x, {len(slow)} slower beyond the IQRs" if vs_iree else None,
                     (not slow) if vs_iree else None,
                     "; ".join(f"{k} {v:.2f}x" for k, v in sorted(slow.items(), key=lambda kv: kv[1])),
                     ", ".join(slow)))
    # the geometric mean over the suite at least 1.3x jax.jit
    geo = (doc.get("summary", {}).get(runner) or {}).get("geomean_vs_jax")
    out.append(_goal("geomean vs jax.jit", ">= 1.30x", geo and f"{geo:.2f}x",
                     None if geo is None else geo >= 1.3, geo and f"{1.3 / geo:.2f}x short"))
    # no workload under 1.0x jax.jit
    vs_jax = {w["name"]: w["results"][runner].get("vs_jax") for w in ws}
    vs_jax = {k: v for k, v in vs_jax.items() if v}
    under = {k: v for k, v in vs_jax.items() if v < 1.0}
    out.append(_goal("no workload under jax.jit", "every workload >= 1.00x jax.jit",
                     f"min {min(vs_jax.values()):.2f}x" if vs_jax else None,
                     (not under) if vs_jax else None,
                     f"{len(under)} of {len(vs_jax)} under: " + "; ".join(
                         f"{k} {v:.2f}x" for k, v in sorted(under.items(), key=lambda kv: kv[1])),
                     ", ".join(under)))
    # f32 matmul 2048^3 at 80% of the measured peak or more
    frac = _result(doc, "matmul_f32_2048", runner).get("fraction_of_peak")
    out.append(_goal("matmul_f32_2048 fraction of peak", ">= 80% of the probe's peak",
                     frac and f"{100 * frac:.0f}%", None if frac is None else frac >= 0.8,
                     frac and f"{100 * (0.8 - frac):.0f} points short", "matmul_f32_2048"))
    # stepwell's passes under 10% of the GPT-2 compile (CPU time: passes + iree-compile)
    c = _result(doc, "gpt2", runner).get("compile", {})
    share = (c["passes_cpu_s"] / (c["passes_cpu_s"] + c["iree_cpu_s"])
             if c.get("passes_cpu_s") is not None and c.get("iree_cpu_s") else None)
    out.append(_goal("passes' share of the gpt2 compile", "< 10% of passes + iree-compile CPU time",
                     share is not None and f"{100 * share:.1f}%" or None,
                     None if share is None else share < 0.10,
                     share is not None and f"{100 * (share - 0.10):.1f} points over", "gpt2"))
    # a cached compile faster than jax.jit's first call (the largest workload run)
    big = max(ws, key=lambda w: w["gflop"], default=None)
    cached = big and big["results"][runner].get("compile", {}).get("cached_s")
    first = big and big["results"].get("jax", {}).get("compile", {}).get("first_call_s")
    out.append(_goal("cached compile vs jax.jit first call", "cached compile < jax.jit first call",
                     cached and first and f"{cached:.2f} s vs {first:.2f} s",
                     None if not (cached and first) else cached < first,
                     cached and first and f"{cached - first:.2f} s slower", big and big["name"]))
    from stepwell.bench.moe_goals import moe_goals
    return out + moe_goals(doc)


def write_json(doc: dict, path: str) -> None:
    _atomic_write(path, json.dumps(doc, indent=1, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def _atomic_write(path: str, text: str | bytes) -> None:
    from stepwell.core.files import atomic_file
    with atomic_file(path) as f:
        f.write(text.encode() if isinstance(text, str) else text)


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------
def _fmt(x, spec: str, none: str = "-") -> str:
    return none if x is None else format(x, spec)


def _cell(r: dict | None) -> str:
    """A runner's cell in the speed table: ratio to jax.jit, or its status."""
    if not r:
        return "-"
    if r.get("status") == "ok" and r.get("vs_jax"):
        bad = "" if r.get("matches", True) else " !"
        return f"{r['vs_jax']:.2f}x{bad}"
    if r.get("status") == "ok" and r.get("median_ms"):
        return f"{r['median_ms']:.2f} ms"
    return {"skipped": "n/a", "failed": "FAIL", "compile-only": "compiled"}.get(r.get("status"), "-")


def tables(doc: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the report's tables."""
    names = [r["name"] for r in doc["runners"]]
    out = []
    if doc.get("runnable", True):
        head = ["workload", "GFLOP", "jax.jit ms (IQR)"] + [f"{n} vs jax" for n in names if n != "jax"] + [
            "stepwell GFLOP/s", "% peak"]
        rows = []
        for w in doc["workloads"]:
            res = w["results"]
            j = res.get("jax", {})
            jcell = (f"{j['median_ms']:.2f} ({j['q1_ms']:.2f}-{j['q3_ms']:.2f})" if j.get("median_ms")
                     else _cell(j))
            sw_ = res.get("stepwell", {})
            frac = sw_.get("fraction_of_peak")
            rows.append([w["name"], f"{w['gflop']:.3g}", jcell]
                        + [_cell(res.get(n)) for n in names if n != "jax"]
                        + [_fmt(sw_.get("gflops"), ".0f"), _fmt(frac and 100 * frac, ".0f")])
        summ = doc.get("summary", {})
        rows.append(["geomean", "", ""] + [_fmt(summ.get(n, {}).get("geomean_vs_jax"), ".2f") + "x"
                                           if summ.get(n, {}).get("geomean_vs_jax") else "-"
                                           for n in names if n != "jax"] + ["", ""])
        out.append(("speed: jax.jit median time / runner median time (above 1: faster than jax.jit; "
                    "! = result differs from jax.jit)", head, rows))

    head = ["workload", "stepwell passes s", "stepwell IREE s", "passes % (CPU)", "stepwell cached s",
            "iree s", "jax first call s", "dispatches sw/iree", "peak MiB sw/iree/jax"]
    rows = []
    for w in doc["workloads"]:
        res = w["results"]
        s, i, j = (res.get(n, {}) for n in ("stepwell", "iree", "jax"))
        sc, ic, jc = (x.get("compile", {}) for x in (s, i, j))
        mem = "/".join(_fmt(x.get("peak_mem_mib"), ".0f") for x in (s, i, j))
        share = (100 * sc["passes_cpu_s"] / (sc["passes_cpu_s"] + sc["iree_cpu_s"])
                 if sc.get("passes_cpu_s") is not None and sc.get("iree_cpu_s") else None)
        rows.append([w["name"], _fmt(sc.get("passes_s"), ".2f"), _fmt(sc.get("iree_s"), ".2f"),
                     _fmt(share, ".1f"), _fmt(sc.get("cached_s"), ".2f"), _fmt(ic.get("iree_s"), ".2f"),
                     _fmt(jc.get("first_call_s"), ".2f"),
                     f"{_fmt(s.get('dispatches'), 'd')}/{_fmt(i.get('dispatches'), 'd')}", mem])
    out.append(("compile: wall seconds, stepwell's passes as a share of the CPU time of passes + "
                "iree-compile, dispatches, peak memory per call (MiB of RSS growth)",
                head, rows))
    from stepwell.bench import llm_report
    if (llm := llm_report.table(doc)) is not None:
        out.append(llm)
    verdict = {True: "holds", False: "MISSED", None: "not measured"}
    rows = [[g["name"], g["goal"], g["measured"] or "-", verdict[g["holds"]], g["shortfall"] or ""]
            for g in doc.get("targets", [])]
    if rows:
        out.append(("goals of the benchmark issue on this run", ["goal", "wanted", "measured", "verdict",
                                                                 "shortfall"], rows))
    return out


def notes(doc: dict) -> list[str]:
    lines = []
    p = doc.get("probe") or {}
    if p.get("peak_gflops"):
        lines.append(f"peak probe: start {_fmt(p.get('start_gflops'), '.0f')}, end "
                     f"{_fmt(p.get('end_gflops'), '.0f')} GFLOP/s ({p['method']})")
        if p.get("contended"):
            lines.append("CONTENDED RUN: " + "; ".join(p["reasons"]))
    elif doc.get("probe_error"):
        lines.append(f"peak probe failed: {doc['probe_error']}")
    t = doc.get("tuning")
    if t:
        lines.append(f"tuning (stepwell-tuned): {t['seconds']:.0f} s of a {t['budget_s']:.0f} s budget, "
                     f"{t['trials']} new trials, {t['resumed']} from earlier runs, "
                     f"{t.get('unfinished', 0)} of {t.get('ops', 0)} ops cut short by the budget, database {t['db']}"
                     + (f"; not reached: {', '.join(t['unreached'])}" if t.get("unreached") else "")
                     + (f"; failed: {', '.join(t['errors'])}" if t.get("errors") else ""))
    lines.append(f"numpy BLAS: {doc['blas'].get('kernel', 'unknown')}")
    problems = [f"{w['name']}/{n}: {r['status']}: {r.get('reason', '')}" for w in doc["workloads"]
                for n, r in w["results"].items() if r.get("status") in ("failed",)]
    problems += [f"{w['name']}/{n}: result differs from jax.jit (max rel err {r['max_rel_err']:.2e})"
                 for w in doc["workloads"] for n, r in w["results"].items() if r.get("matches") is False]
    lines += problems
    return lines


def render(doc: dict, console=None) -> None:
    """Print the tables: rich in a terminal, plain aligned text otherwise."""
    import sys
    if console is None:
        from rich.console import Console
        console = Console(highlight=False)
    title = (f"stepwell bench ({doc['mode']}, target {doc['target']}"
             f"{'' if doc.get('runnable', True) else ', compile only'})")
    if console.is_terminal:
        from rich.table import Table
        console.print(f"[bold]{title}[/bold]")
        for caption, head, rows in tables(doc):
            t = Table(title=caption, title_justify="left")
            for i, h in enumerate(head):
                t.add_column(h, justify="left" if i == 0 else "right")
            for row in rows:
                t.add_row(*row)
            console.print(t)
        for line in notes(doc):
            console.print(line)
    else:
        out = console.file if console.file is not None else sys.stdout
        out.write(plain(doc, title))


def plain(doc: dict, title: str | None = None) -> str:
    parts = [title or f"stepwell bench ({doc['mode']}, target {doc['target']})", ""]
    for caption, head, rows in tables(doc):
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        parts.append(caption)
        parts.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths))))
        for row in rows:
            parts.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(row, widths))))
        parts.append("")
    parts += notes(doc)
    return "\n".join(parts) + "\n"


def markdown(doc: dict) -> str:
    m, v = doc["machine"], doc["versions"]
    lines = [f"# stepwell bench: {doc['mode']} run, target `{doc['target']}`", "",
             f"Created {doc['created']}; {doc.get('elapsed_s', 0):.0f} s of measuring.", "",
             "## Machine", "",
             f"- CPU: {m.get('model_name', '?')} ({m.get('cpus', '?')} CPUs, "
             f"{m.get('threads_per_core', '?')} thread(s) per core, "
             f"{m.get('hypervisor_vendor', 'bare metal')} {'guest' if m.get('hypervisor_vendor') else ''})".rstrip(),
             f"- caches: L1d {m.get('l1d_cache', '?')}, L2 {m.get('l2_cache', '?')}, L3 {m.get('l3_cache', '?')}; "
             f"memory {m.get('memory_gib', '?')} GiB",
             f"- flags: {', '.join(m.get('flags', []))}",
             f"- {m.get('platform', '')}, Python {m.get('python', '')}; load average at start "
             f"{m.get('load_average', '?')}",
             "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
             f"- numpy BLAS: {doc['blas'].get('kernel', 'unknown')}",
             f"- target flags: `{' '.join(doc.get('target_flags', []))}`", ""]
    p = doc.get("probe") or {}
    if p.get("peak_gflops"):
        lines += ["## Peak", "",
                  f"Probe: {p['method']}. Start {_fmt(p.get('start_gflops'), '.0f')} GFLOP/s, end "
                  f"{_fmt(p.get('end_gflops'), '.0f')} GFLOP/s; fractions of peak use "
                  f"{p['peak_gflops']:.0f} GFLOP/s.", ""]
        if p.get("contended"):
            lines += ["**Contended run**: " + "; ".join(p["reasons"]) + ".", ""]
    for caption, head, rows in tables(doc):
        lines += [f"## {caption[0].upper()}{caption[1:]}", "",
                  "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    extra = [ln for ln in notes(doc) if not ln.startswith(("peak probe", "numpy BLAS"))]
    if extra:
        lines += ["## Notes", ""] + [f"- {ln}" for ln in extra] + [""]
    lines += ["## Runners", ""] + [f"- `{r['name']}`: {r['description']}" for r in doc["runners"]] + [""]
    return "\n".join(lines)


def plot(doc: dict, path: str) -> None:
    """A bar chart of each runner's ratio to jax.jit per workload (PNG, Agg backend)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    names = [r["name"] for r in doc["runners"] if r["name"] != "jax"]
    workloads = [w["name"] for w in doc["workloads"]]
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 0.75 * len(workloads) + 2)), 5.0))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        ys = [w["results"].get(name, {}).get("vs_jax") or 0.0 for w in doc["workloads"]]
        xs = [k + (i - (len(names) - 1) / 2) * width for k in range(len(workloads))]
        ax.bar(xs, ys, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(workloads, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("speed vs jax.jit (jax time / runner time)")
    title = f"stepwell bench, target {doc['target']} ({doc['mode']})"
    if (doc.get("probe") or {}).get("contended"):
        title += " [contended]"
    ax.set_title(title)
    if names:
        ax.legend(fontsize=8)
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    _atomic_write(path, buf.getvalue())
