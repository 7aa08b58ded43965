"""The LLM part of the bench report: tokens/s, the share of the memory-bandwidth limit,
and the goals of the LLM issue (decode and prefill against jax.jit with a cache,
int8/int4 decode against jax.jit f32, the cache against no cache)."""

from __future__ import annotations


def finish(doc: dict) -> None:
    """Each LLM result's share of the bandwidth limit: the time its bytes take at the
    probe's bandwidth over its measured time (1.0: bound by memory bandwidth)."""
    gbs = (doc.get("bandwidth") or {}).get("gbs")
    for w in doc["workloads"]:
        for r in w["results"].values():
            if gbs and r.get("bytes_per_call") and r.get("median_ms"):
                r["bandwidth_share"] = r["bytes_per_call"] / (gbs * 1e9) / (r["median_ms"] * 1e-3)


def _ratio(doc, workload: str, runner: str, base: str):
    w = next((w for w in doc["workloads"] if w["name"] == workload), None)
    if w is None:
        return None
    a, b = w["results"].get(runner, {}).get("median_ms"), w["results"].get(base, {}).get("median_ms")
    return b / a if a and b else None


def goals(doc: dict, make) -> list:
    """The LLM issue's goals (``make`` builds one goal record), per batch size."""
    names = [w["name"] for w in doc["workloads"] if w["group"] == "llm"]
    out = []
    wanted = [("f32 decode vs jax.jit (cache)", "decode", "stepwell", "jax", 1.0),
              ("f32 prefill vs jax.jit", "prefill", "stepwell", "jax", 1.0),
              ("int8 decode vs jax.jit f32", "decode", "stepwell-int8", "jax", 1.5),
              ("int4 decode vs jax.jit f32", "decode", "stepwell-int4", "jax", 2.0),
              ("decode with vs without the cache", "decode", "stepwell", "stepwell-nocache", 5.0),
              ("dynamic vs static export, decode", "decode", "stepwell", "stepwell-static", 0.9),
              ("dynamic vs static export, prefill", "prefill", "stepwell", "stepwell-static", 0.9)]
    for title, kind, runner, base, want in wanted:
        ws = [n for n in names if n.startswith(f"gpt2_{kind}_")]
        ratios = {n: _ratio(doc, n, runner, base) for n in ws}
        ratios = {n: r for n, r in ratios.items() if r}
        low = {n: r for n, r in ratios.items() if r < want}
        out.append(make(title, f">= {want:.1f}x on every batch",
                        ", ".join(f"{n} {r:.2f}x" for n, r in ratios.items()) or None,
                        (not low) if ratios else None,
                        "; ".join(f"{n} {want / r:.2f}x short" for n, r in low.items()), ", ".join(low)))
    return out


def table(doc: dict):
    """(title, header, rows): tokens/s and bandwidth share per LLM runner."""
    ws = [w for w in doc["workloads"] if w["group"] == "llm"]
    if not ws:
        return None
    runners = list(dict.fromkeys(n for w in ws for n in w["results"]))
    rows = []
    for w in ws:
        cells = []
        for n in runners:
            r = w["results"].get(n, {})
            if r.get("tokens_per_s"):
                share = r.get("bandwidth_share")
                cells.append(f"{r['tokens_per_s']:.1f}" + (f" ({100 * share:.0f}%)" if share else ""))
            else:
                cells.append({"skipped": "n/a", "failed": "FAIL"}.get(r.get("status"), "-"))
        rows.append([w["name"]] + cells)
    bw = (doc.get("bandwidth") or {}).get("gbs")
    title = ("LLM: tokens/s (share of the memory-bandwidth limit: bytes read per call at "
             + (f"{bw:.1f} GB/s" if bw else "the probe's bandwidth") + ")")
    return title, ["workload"] + runners, rows
