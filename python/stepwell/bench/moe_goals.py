"""The MoE issue's goals, checked on a run's numbers (rows of the report's goal table):

* ``moe`` (the layer written densely in JAX) through stepwell at least 2.5x plain IREE
  and 2.0x ``jax.jit`` on that program, and 1.2x ``jax.jit`` running the fastest JAX
  formulation (``moe_capacity``'s capacity einsums), all measured in the same run;
* ``moe_decode_1``/``moe_decode_8`` at least 1.0x ``jax.jit``, the routed layer reading
  only the selected experts' weights (the workload's note gives the bytes).
"""

from __future__ import annotations


def _median(doc: dict, workload: str, runner: str):
    w = next((w for w in doc["workloads"] if w["name"] == workload), None)
    return ((w or {}).get("results", {}).get(runner) or {}).get("median_ms")


def _row(name, goal, ours, ref, want: float, where: str) -> dict:
    ratio = ref / ours if ours and ref else None
    return {"name": name, "goal": goal, "measured": ratio and f"{ratio:.2f}x", "where": where,
            "holds": None if ratio is None else ratio >= want,
            "shortfall": "" if ratio is None or ratio >= want else f"{want / ratio:.2f}x short"}


def moe_goals(doc: dict) -> list[dict]:
    """Goal rows for the MoE workloads of ``doc`` (none when they did not run)."""
    names = {w["name"]: w for w in doc["workloads"]}
    if "moe" not in names:
        return []
    runner = "stepwell-jax" if _median(doc, "moe", "stepwell-jax") else "stepwell"
    ours = _median(doc, "moe", runner)
    rows = [_row(f"moe ({runner}) vs plain IREE", ">= 2.50x on the dense JAX layer", ours,
                 _median(doc, "moe", "iree"), 2.5, "moe"),
            _row(f"moe ({runner}) vs jax.jit", ">= 2.00x on the dense JAX layer", ours,
                 _median(doc, "moe", "jax"), 2.0, "moe"),
            _row(f"moe ({runner}) vs jax.jit, capacity einsums", ">= 1.20x jax.jit on moe_capacity", ours,
                 _median(doc, "moe_capacity", "jax"), 1.2, "moe, moe_capacity")]
    for name in ("moe_decode_1", "moe_decode_8"):
        if name in names:
            row = _row(f"{name} ({runner}) vs jax.jit", ">= 1.00x", _median(doc, name, runner),
                       _median(doc, name, "jax"), 1.0, name)
            row["goal"] += f"; {names[name].get('notes', '')}"
            rows.append(row)
    return rows
