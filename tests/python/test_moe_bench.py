"""The MoE bench workloads (stepwell/bench/workloads_moe.py) and their goal rows
(stepwell/bench/moe_goals.py): the nn version of each tiny workload computes what its
JAX function computes (numpy references, no compile), and the goals read a run."""

from __future__ import annotations

import numpy as np
import pytest

from stepwell.bench import moe_goals, workloads, workloads_moe
from stepwell.numerics import interpreter


@pytest.mark.parametrize("name", ["moe", "moe_capacity", "moe_decode_1", "moe_decode_8"])
def test_tiny_workload_nn_matches_jax(name):
    import jax
    w = next(w for w in workloads.suite("tiny") if w.name == name)
    got = interpreter.run(w.build_nn(), *w.args())[0]
    want = np.asarray(jax.jit(w.jax_fn)(*w.args()))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert "nn.moe_ffn" in str(w.build_nn())


def test_capacity_drops_tokens_at_the_full_size():
    w = next(w for w in workloads.suite("full") if w.name == "moe_capacity")
    assert workloads_moe.capacity(512, 8, 2) == 160 and "capacity = 160" in str(w.build_nn())


def test_decode_note_gives_the_weight_bytes():
    note = workloads_moe.weight_bytes_note(1, 256, 512, 8, 2)
    assert note == ("expert weights read routed: 2 of 8 experts, 3.15 MB of 12.58 MB (dense reads all)")


def _doc(ms: dict) -> dict:
    return {"workloads": [{"name": n, "notes": "bytes", "results": {r: {"median_ms": v} for r, v in rs.items()}}
                          for n, rs in ms.items()]}


def test_moe_goals_verdicts():
    doc = _doc({"moe": {"stepwell-jax": 10.0, "iree": 30.0, "jax": 25.0},
                "moe_capacity": {"jax": 11.0}, "moe_decode_1": {"stepwell-jax": 1.0, "jax": 0.9}})
    rows = {r["name"].split(" (")[0] + r["name"].split(")")[-1]: r for r in moe_goals.moe_goals(doc)}
    assert rows["moe vs plain IREE"]["measured"] == "3.00x" and rows["moe vs plain IREE"]["holds"]
    assert rows["moe vs jax.jit"]["holds"] and rows["moe vs jax.jit"]["measured"] == "2.50x"
    capacity = rows["moe vs jax.jit, capacity einsums"]
    assert capacity["measured"] == "1.10x" and capacity["holds"] is False and capacity["shortfall"] == "1.09x short"
    assert rows["moe_decode_1 vs jax.jit"]["holds"] is False and rows["moe_decode_1 vs jax.jit"]["goal"].endswith("bytes")
    assert moe_goals.moe_goals(_doc({"mlp": {"jax": 1.0}})) == []
