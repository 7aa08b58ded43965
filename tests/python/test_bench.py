"""The bench harness on toy sizes: it runs, its JSON has the documented schema, the
plot is a PNG, the CLI checks its arguments. No test asserts a time."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from stepwell.bench import Options, harness, report, runners, workloads

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_doc():
    """One tiny run: an f32 matmul (numpy applies) and the attention layer."""
    opts = Options(mode="tiny", filter=("matmul_f32_32", "attention"), probe=False, dispatches=True)
    return harness.run(opts)


def test_every_mode_builds_its_workloads():
    for mode in workloads.MODES:
        names = [w.name for w in workloads.suite(mode)]
        assert len(names) == len(set(names))
        assert {"mlp", "cnn", "attention", "transformer_block", "gpt2"} <= set(names)
    full = {w.name: w for w in workloads.suite("full")}
    assert {f"matmul_{dt}_{n}" for dt in ("f32", "bf16", "f16") for n in (512, 1024, 2048)} <= set(full)
    assert full["matmul_f32_1024"].flops == 2 * 1024 ** 3


def test_tiny_workloads_agree_with_numpy_and_jax():
    import jax
    for w in workloads.suite("tiny"):
        if w.group == "llm":  # (their own runners: test_llm_workloads)
            continue
        want = np.asarray(jax.jit(w.jax_fn)(*w.args()))
        assert np.all(np.isfinite(want.astype(np.float32))), w.name
        if w.numpy_fn is not None:
            assert harness.rel_error(w.numpy_fn(*w.args()), want) < 1e-4, w.name
        assert w.build_nn() is not None, w.name


def _expected_skip(w, runner: str) -> str | None:
    """The reason a runner must skip a workload on a CPU host, else None."""
    if runner == "numpy" and w.numpy_fn is None:
        return "no numpy version"
    if runner == "stepwell" and w.nn_module is None:
        return "no nn version"
    if runner == "stepwell-params" and not w.inputs:
        return "no weights"
    return None


def test_json_schema(tiny_doc, tmp_path):
    path = tmp_path / "out.json"
    report.write_json(tiny_doc, str(path))
    doc = json.loads(path.read_text())
    assert doc["schema"] == report.SCHEMA
    for key in ("created", "mode", "target", "runnable", "options", "machine", "versions", "blas",
                "probe", "runners", "workloads", "summary", "targets", "elapsed_s"):
        assert key in doc, key
    assert {g["name"] for g in doc["targets"]} >= {"geomean vs jax.jit", "never slower than plain IREE"}
    assert doc["mode"] == "tiny" and doc["target"] == "cpu" and doc["runnable"] is True
    assert [r["name"] for r in doc["runners"]] == list(runners.RUNNERS)
    assert [w["name"] for w in doc["workloads"]] == ["matmul_f32_32", "attention"]
    assert "kernel" in doc["blas"] and "openblas_coretype" in doc["blas"]
    mm, att = doc["workloads"]
    defs = {w.name: w for w in workloads.suite("tiny")}
    for w in doc["workloads"]:
        assert set(w) >= {"name", "group", "shapes", "dtype", "gflop", "results"}
        assert set(w["results"]) == set(runners.RUNNERS), w["name"]
        for name, r in w["results"].items():
            # A skip only where the workload lacks what the runner needs (from its
            # definition); every other runner must run here: a runner that fails to
            # import or to compile fails this test instead of passing as "skipped".
            why = _expected_skip(defs[w["name"]], name)
            if why:
                assert r["status"] == "skipped" and why in r["reason"], (w["name"], name, r)
            else:
                assert r["status"] == "ok", (w["name"], name, r.get("status"), r.get("reason"))
            if r["status"] == "ok":
                for key in ("median_ms", "q1_ms", "q3_ms", "min_ms", "max_ms", "samples", "gflops",
                            "vs_jax", "peak_mem_mib", "max_rel_err", "matches"):
                    assert key in r, (w["name"], name, key)
                assert r["min_ms"] <= r["median_ms"] <= r["max_ms"]
                assert r["matches"], (w["name"], name, r["max_rel_err"])
    assert mm["results"]["numpy"]["status"] == "ok"
    assert att["results"]["numpy"]["status"] == "skipped"
    sw_ = mm["results"]["stepwell"]
    assert set(sw_["compile"]) >= {"passes_s", "iree_s", "total_s", "cached_s", "passes_cpu_s", "iree_cpu_s"}
    assert sw_["dispatches"] == len(sw_["dispatch_kinds"]) > 0
    assert mm["results"]["iree"]["compile"]["iree_s"] > 0
    assert "fraction_of_peak" not in sw_  # no probe in this run
    assert doc["summary"]["stepwell"]["workloads"] == 2


def _synthetic(vs_jax: dict, vs_iree: dict, frac: float, passes_cpu: float, cached: float) -> dict:
    def res(name):
        t = 1.0 / vs_iree[name]  # plain IREE takes 1 ms, each with a 1% spread
        r = {"median_ms": t, "q1_ms": 0.99 * t, "q3_ms": 1.01 * t, "vs_jax": vs_jax[name],
             "vs_iree": vs_iree[name]}
        if name == "matmul_f32_2048":
            r["fraction_of_peak"] = frac
        if name == "gpt2":
            r["compile"] = {"passes_cpu_s": passes_cpu, "iree_cpu_s": 9.0, "cached_s": cached}
        return r
    gflop = {"matmul_f32_2048": 17.2, "attention": 1.6, "gpt2": 32.2}
    return {"workloads": [{"name": n, "gflop": gflop[n], "results": {
        "stepwell": res(n), "iree": {"median_ms": 1.0, "q1_ms": 0.99, "q3_ms": 1.01},
        "jax": {"median_ms": 1.0, "compile": {"first_call_s": 2.0}}}} for n in vs_jax],
        "summary": {"stepwell": {"geomean_vs_jax": report._geomean(list(vs_jax.values()))}}}


def test_goals_verdicts_and_shortfalls():
    names = ("matmul_f32_2048", "attention", "gpt2")
    missed = {g["name"]: g for g in report.goals(_synthetic(
        dict(zip(names, (0.5, 0.8, 2.0))), dict(zip(names, (1.1, 0.9, 1.0))), 0.6, 1.0, 3.0))}
    assert all(g["holds"] is False for g in missed.values()), missed
    assert missed["never slower than plain IREE"]["where"] == "attention"
    assert missed["no workload under jax.jit"]["shortfall"].startswith("2 of 3 under: matmul_f32_2048 0.50x")
    assert missed["geomean vs jax.jit"]["measured"] == "0.93x"
    assert missed["matmul_f32_2048 fraction of peak"]["shortfall"] == "20 points short"
    assert missed["passes' share of the gpt2 compile"]["measured"] == "10.0%"
    assert missed["cached compile vs jax.jit first call"]["shortfall"] == "1.00 s slower"
    held = report.goals(_synthetic(dict(zip(names, (1.5, 1.4, 1.3))), dict(zip(names, (1.0, 1.2, 1.1))),
                                   0.85, 0.5, 1.0))
    assert [g["holds"] for g in held] == [True] * 6 and not any(g["shortfall"] for g in held)
    # 0.995x of plain IREE with overlapping spreads is even, not slower
    even = report.goals(_synthetic(dict(zip(names, (1.5, 1.4, 1.3))), dict(zip(names, (0.995, 1.2, 1.1))),
                                   0.85, 0.5, 1.0))
    assert even[0]["holds"] is True and even[0]["measured"] == "min 0.99x, 0 slower beyond the IQRs"


def test_llm_workloads_tokens_per_s_and_goals():
    """One tiny decode workload with stepwell's KV-cache export and jax.jit: the same
    logits, tokens/s, the bytes a step reads, the LLM goals in the report."""
    runners = ("stepwell", "stepwell-nocache", "jax")   # (the first two: the workload's own runners)
    doc = harness.run(Options(mode="tiny", filter=("gpt2_decode_b2",), runners=runners, probe=False, repeat=2))
    (w,) = doc["workloads"]
    assert w["group"] == "llm" and set(w["results"]) == set(runners)
    for name, r in w["results"].items():
        assert r["status"] == "ok" and r["matches"], (name, r)
        assert r["tokens_per_s"] == pytest.approx(2 / (r["median_ms"] * 1e-3))
        assert r["bytes_per_call"] > 0
    assert w["results"]["stepwell"]["bytes_per_call"] == w["results"]["jax"]["bytes_per_call"]
    goals = {g["name"]: g for g in doc["targets"]}
    assert goals["f32 decode vs jax.jit (cache)"]["measured"].startswith("gpt2_decode_b2 ")
    assert goals["decode with vs without the cache"]["measured"].startswith("gpt2_decode_b2 ")
    assert goals["int8 decode vs jax.jit f32"]["holds"] is None      # not run: not measured
    doc["bandwidth"] = {"gbs": 10.0}
    report.finish(doc)
    r = doc["workloads"][0]["results"]["stepwell"]
    assert r["bandwidth_share"] == pytest.approx(r["bytes_per_call"] / 10e9 / (r["median_ms"] * 1e-3))
    assert "LLM: tokens/s" in report.plain(doc)


def test_tables_plain_and_markdown(tiny_doc):
    text = report.plain(tiny_doc)
    assert "matmul_f32_32" in text and "geomean" in text and "stepwell vs jax" in text
    md = report.markdown(tiny_doc)
    assert md.startswith("# stepwell bench") and "| workload |" in md and "## Machine" in md


def test_plot_is_a_png(tiny_doc, tmp_path):
    path = tmp_path / "ratios.png"
    report.plot(tiny_doc, str(path))
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_probe_verdict():
    from stepwell.bench.probe import verdict as v
    ok = v(500.0, 480.0)
    assert not ok["contended"] and ok["peak_gflops"] == 500.0
    assert v(500.0, 300.0)["contended"]
    assert v(300.0, 310.0, reference=515.0)["contended"]


def test_probe_kernel_compiles_and_runs():
    from stepwell.bench import probe
    p = probe.Probe(size=1 << 12)
    assert p.measure(rounds=3, seconds=0.1) > 0


def test_compile_only_target(tmp_path):
    """A target that cannot run here is compiled only; jax/numpy are skipped."""
    doc = harness.run(Options(mode="tiny", target="cpu-aarch64", filter=("matmul_f32_32",),
                              runners=("stepwell", "iree", "jax"), probe=False))
    assert doc["runnable"] is False
    res = doc["workloads"][0]["results"]
    assert res["stepwell"]["status"] == "compile-only" and res["stepwell"]["compile"]["iree_s"] > 0
    assert res["iree"]["status"] == "compile-only"
    assert res["jax"]["status"] == "skipped"
    report.plot(doc, str(tmp_path / "p.png"))
    assert "compile: wall seconds" in report.plain(doc)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stepwell.tools.main", "bench", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_writes_json_md_and_png(tmp_path):
    out = tmp_path / "b.json"
    r = _cli("--tiny", "--filter", "mlp", "--runners", "stepwell,jax,numpy", "--no-probe",
             "--repeat", "2", "--json", str(out), "--plot", str(tmp_path / "b.png"),
             "--md", str(tmp_path / "b.md"))
    assert r.returncode == 0, r.stderr
    assert "mlp" in r.stdout and "geomean" in r.stdout
    assert "\x1b[" not in r.stdout  # plain text when not a terminal
    doc = json.loads(out.read_text())
    assert [w["name"] for w in doc["workloads"]] == ["mlp"]
    assert doc["options"]["repeat"] == 2
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "b.md").read_text().startswith("# stepwell bench")


@pytest.mark.parametrize("args, message", [
    (["--filter", "nosuchworkload"], "no workload matches"),
    (["--target", "nosuchtarget"], "unknown target"),
    (["--runners", "stepwell,xla"], "unknown runner 'xla'"),
    (["--runners", "stepwell-int9"], "stepwell-int8, stepwell-int4, stepwell-nocache, stepwell-static"),
    (["--json", "/nonexistent-dir/x.json"], "no such directory"),
])
def test_cli_errors(args, message):
    r = _cli("--tiny", *args)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_cli_list():
    r = _cli("--list")
    assert r.returncode == 0 and "gpt2" in r.stdout and "matmul_bf16_2048" in r.stdout


def test_tuning_the_suite_holds_only_when_every_op_was_searched():
    from stepwell.bench import tuned
    result = {"median_ms": 1.0, "q1_ms": 0.9, "q3_ms": 1.1}
    doc = {"summary": {}, "workloads": [{"name": "mlp", "group": "mlp",
                                         "results": {"stepwell": dict(result), "stepwell-tuned": dict(result)}}]}
    suite = lambda **t: next(g for g in tuned.goals({**doc, "tuning": t}) if g["name"] == "tuning the suite")  # noqa: E731
    assert suite(seconds=300, ops=4, unfinished=0, unreached=[])["holds"] is True
    cut = suite(seconds=300, ops=4, unfinished=1, unreached=["gpt2"])  # within time only because the budget cut it
    assert cut["holds"] is False and "1 of 4 ops cut short" in cut["shortfall"] and "gpt2" in cut["shortfall"]
    assert suite(seconds=1000, ops=4, unfinished=0, unreached=[])["holds"] is False
    resumed = suite(seconds=100, ops=4, unfinished=0, unreached=[], resumed=30, trials=10)
    assert resumed["holds"] is None and "30 of 40 trials from earlier runs" in resumed["measured"]
