"""stepwell tune: tasks, the search space, trials, the search with its database, the CLI,
sw.jax.jit(f).tune and the Ray backend. Tiny shapes, budgets of seconds, few candidates."""

import json
import subprocess
import sys

import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import driver, tuning_keys
from stepwell.compiler.tuning_db import TuningDB
from stepwell.targets import iree_config, iree_cpu
from stepwell.tuner import space, tasks, trial

MODEL = """
func.func @main(%x: tensor<64x256xf32>, %w: tensor<256x192xf32>, %b: tensor<192xf32>,
                %q: tensor<2x32x16xf32>, %k: tensor<2x16x32xf32>,
                %img: tensor<1x10x10x8xf32>, %f: tensor<3x3x8x16xf32>)
    -> (tensor<64x192xf32>, tensor<2x32x32xf32>, tensor<1x8x8x16xf32>) {
  %0 = "nn.linear"(%x, %w, %b) : (tensor<64x256xf32>, tensor<256x192xf32>, tensor<192xf32>) -> tensor<64x192xf32>
  %1 = "nn.relu"(%0) : (tensor<64x192xf32>) -> tensor<64x192xf32>
  %2 = "nn.matmul"(%q, %k) : (tensor<2x32x16xf32>, tensor<2x16x32xf32>) -> tensor<2x32x32xf32>
  %3 = "nn.softmax"(%2) {axis = -1 : i64} : (tensor<2x32x32xf32>) -> tensor<2x32x32xf32>
  %4 = "nn.conv2d"(%img, %f) {padding = "VALID"} : (tensor<1x10x10x8xf32>, tensor<3x3x8x16xf32>) -> tensor<1x8x8x16xf32>
  return %1, %3, %4 : tensor<64x192xf32>, tensor<2x32x32xf32>, tensor<1x8x8x16xf32>
}"""
SMALL = """
func.func @main(%x: tensor<32x64xf32>, %w: tensor<64x48xf32>) -> tensor<32x48xf32> {
  %0 = "nn.matmul"(%x, %w) : (tensor<32x64xf32>, tensor<64x48xf32>) -> tensor<32x48xf32>
  return %0 : tensor<32x48xf32>
}"""


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "tuning.sqlite"
    monkeypatch.setenv("STEPWELL_TUNING_DB", str(path))
    return path


def test_tasks_cut_micro_modules_with_the_same_keys_and_list_untunable_roots():
    t = sw.targets.get("cpu")
    found, untunable = tasks.tasks(sw.parse(MODEL), t)
    kinds = sorted(task.kind for task in found)
    assert kinds == ["batch_matmul", "conv_2d_nhwc_hwcf", "matmul"]
    for task in found:
        micro = sw.parse(task.text)
        (root,) = [r for r in tuning_keys.roots(micro) if r.tunable]
        assert root.key == task.key, task.describe  # same signature: same database entry
    linear = next(task for task in found if task.kind == "matmul")
    assert "arith.maximumf" in linear.signature["epilogue"]  # bias + relu fused with it
    assert untunable and all(r.why for r in untunable)  # the softmax's reductions
    assert any(r.kind == "reduce" for r in untunable)


def test_stored_weights_become_parameters_of_the_micro_module():
    w = ", ".join(f"{v:.3f}" for v in np.random.default_rng(0).standard_normal(64 * 48))
    text = f"""
func.func @main(%x: tensor<32x64xf32>) -> tensor<32x48xf32> {{
  %w = arith.constant dense<[{w}]> : tensor<3072xf32>
  %w2 = "nn.reshape"(%w) : (tensor<3072xf32>) -> tensor<64x48xf32>
  %0 = "nn.matmul"(%x, %w2) : (tensor<32x64xf32>, tensor<64x48xf32>) -> tensor<32x48xf32>
  return %0 : tensor<32x48xf32>
}}"""
    (task,), _ = tasks.tasks(sw.parse(text), sw.targets.get("cpu"))
    assert task.signature["stored"] == [False, True]
    assert len(task.args) == 1 and len(task.params) == 1 and "flow.parameter.named" in task.text
    args, index = trial.inputs(task)
    assert index is not None and args[0].shape == (32, 64)
    compiled = trial.compile_candidate(task, None, "cpu")  # IREE takes the parameter globals
    assert compiled.error == "" and compiled.vmfb
    rng = np.random.default_rng(0)  # inputs() draws the arguments, then the parameters
    x, w = trial._data((32, 64), "f32", rng), trial._data((64, 48), "f32", rng)
    got = trial._Runner(compiled.vmfb, sw.targets.get("cpu"), args, index).output()
    np.testing.assert_allclose(got, x @ w, rtol=1e-4, atol=1e-4)


def test_candidates_are_pruned_ordered_and_leave_out_the_baseline():
    t = sw.targets.get("cpu")
    info = iree_cpu.info(t)
    found, _ = tasks.tasks(sw.parse(MODEL), t)
    for task in found:
        configs = space.candidates(task, info, 10)
        assert 0 < len(configs) <= 10 and len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs)
        for c in configs:
            if c["kind"] in ("double_tiling", "conv"):
                assert not iree_config.problems(task.loops, c["distribution"], c["parallel"], c["reduction"])
        if task.roles:
            default = space._default(task, info, t)
            assert (default is not None) == (task.flops >= 1 << 21)  # what the pass tiles
            assert default not in configs
            assert {c["kind"] for c in configs} >= {"mmt4d", "iree", "double_tiling"}
        else:
            assert {c["kind"] for c in configs} == {"conv"}


def test_search_records_every_trial_rejects_what_iree_refuses_and_resumes(db, monkeypatch):
    good = {"kind": "mmt4d", "distribution": [1, 1]}
    bad = {"kind": "double_tiling", "distribution": [32, 48, 0], "parallel": [32, 48, 0],
           "reduction": [0, 0, 64]}  # a 24 KB vector: iree-compile fails on it
    monkeypatch.setattr(space, "candidates", lambda *args, **kwargs: [good, bad])
    report = sw.tune(sw.parse(SMALL), budget=120, max_candidates=2, rounds=3, jobs=1, quiet=True)
    (res,) = report.results
    assert res.trials == 2 and res.rejected == 1 and res.status == "tuned"
    database = TuningDB(str(db))
    trials = database.trials(res.task.key, report.target_key, tuning_keys.iree_version())
    statuses = {json.loads(k)["kind"]: v["status"] for k, v in trials.items()}
    assert statuses["double_tiling"] == "rejected"
    assert statuses["mmt4d"] in ("slower", "confirmed", "unconfirmed")  # faster ones run twice
    assert trials[json.dumps(good, sort_keys=True, separators=(",", ":"))]["base_s"] > 0
    best = database.best(res.task.key, report.target_key, tuning_keys.iree_version())
    assert best["config"] == (good if statuses["mmt4d"] == "confirmed" else {"kind": "default"})
    again = sw.tune(sw.parse(SMALL), budget=60, max_candidates=2, jobs=1, quiet=True)
    assert again.results[0].trials == 0 and again.results[0].resumed == 2  # nothing measured twice


def test_verdict_needs_five_percent_beyond_the_spread_and_matching_results():
    base = trial.Measured(times=[1.0, 1.0, 1.0, 1.0])
    assert trial.verdict(base, trial.Measured(times=[0.8, 0.8, 0.8, 0.8]))[0] == "faster"
    assert trial.verdict(base, trial.Measured(times=[0.97, 0.97, 0.97, 0.97]))[0] == "slower"
    assert trial.verdict(base, trial.Measured(times=[0.5, 0.5, 1.2, 1.2]))[0] == "slower"  # noisy
    assert trial.verdict(base, trial.Measured(times=[0.5] * 4, mismatch="differs"))[0] == "mismatch"
    # paired samples: faster than each neighbouring baseline sample, but the least
    # disturbed baseline call was as fast as its best: not faster
    lucky = trial.Measured(times=[0.8, 0.8, 0.8, 0.8], paired=[1.0, 1.0, 1.0, 1.0])
    assert trial.verdict(trial.Measured(times=[1.0, 1.0, 1.0, 0.8]), lucky)[0] == "slower"
    assert trial.verdict(trial.Measured(times=[1.0] * 4), lucky)[0] == "faster"


@pytest.mark.parametrize("target, message", [
    ("cuda", "only CPU targets"), ("cpu-aarch64", "makes aarch64 code and this machine is")])
def test_tune_refuses_targets_that_cannot_run_here(tmp_path, target, message):
    if target == "cpu-aarch64" and sw.targets.host_arch() == "aarch64":
        pytest.skip("this machine is aarch64")
    path = tmp_path / "m.mlir"
    path.write_text(SMALL)
    r = subprocess.run([sys.executable, "-m", "stepwell.tools.main", "tune", str(path), "--target", target],
                       capture_output=True, text=True)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_cli_show_export_import(db, tmp_path):
    TuningDB(str(db)).set_best("k1", "cpu|z+1|threads=2", "3.13", {"kind": "matmul", "shapes": [[2, 2]]},
                               {"kind": "mmt4d", "distribution": [2, 2]}, 1.25)
    run = lambda *a, **kw: subprocess.run([sys.executable, "-m", "stepwell.tools.main", "tune", *a],  # noqa: E731
                                          capture_output=True, text=True, **kw)
    shown = run("--show")
    assert shown.returncode == 0 and "mmt4d 2x2" in shown.stdout and "1.25x" in shown.stdout
    out = tmp_path / "shared.json"
    assert run("--export", str(out)).returncode == 0
    other = tmp_path / "other.sqlite"
    imported = run("--import", str(out), "--db", str(other))
    assert imported.returncode == 0 and "imported 1 entries" in imported.stdout
    assert TuningDB(str(other)).best("k1", "cpu|z+1|threads=2", "3.13")["speedup"] == 1.25
    (tmp_path / "broken.json").write_text("{not json")
    broken = run("--import", str(tmp_path / "broken.json"))
    assert broken.returncode == 1 and "broken.json:1:2: not JSON" in broken.stderr
    missing = tmp_path / "none" / "tuning.sqlite"  # --show only reads: nothing is created
    absent = run("--show", "--db", str(missing))
    assert absent.returncode == 0 and "no tuning database yet" in absent.stdout
    assert not (tmp_path / "none").exists()


def test_jax_jit_tune_fills_the_database_and_the_function_still_runs(db):
    import jax.numpy as jnp

    def f(x, w):
        return jnp.tanh(x @ w)

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((32, 64), np.float32), rng.standard_normal((64, 48), np.float32)
    jf = sw.jax.jit(f)
    report = jf.tune(x, w, budget=60, max_candidates=1, rounds=3, jobs=1, quiet=True)
    assert [r.task.kind for r in report.results] == ["matmul"]
    assert TuningDB(str(db)).counts()["trials"] == 1
    np.testing.assert_allclose(np.asarray(jf(x, w)), np.tanh(x @ w), rtol=1e-4, atol=1e-4)


def test_trials_run_on_a_local_ray_cluster():
    ray = pytest.importorskip("ray")
    from stepwell.tuner.backends import RESOURCE, RayBackend
    (task,), _ = tasks.tasks(sw.parse(SMALL), sw.targets.get("cpu"))
    ray.init(num_cpus=2, resources={RESOURCE: 1}, include_dashboard=False, log_to_driver=False)
    try:
        backend = RayBackend(None)
        assert backend.hosts == 1
        compiled = list(backend.compile_many(task, [None, {"kind": "mmt4d", "distribution": [1, 1]}], "cpu"))
        assert all(c.vmfb for c in compiled), [c.error for c in compiled]
        vmfbs = {("baseline" if c.config is None else "cand"): c.vmfb for c in compiled}
        host_key, measured = backend.benchmark(task, vmfbs, "cpu", rounds=3)
        assert host_key == tuning_keys.target_key("cpu")
        assert len(measured["baseline"].times) == 3 and not measured["cand"].mismatch
    finally:
        ray.shutdown()


FACTORY = '''
import numpy as np
import jax.numpy as jnp


def factory(width=64):
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((48, width)).astype(np.float32)}

    def fn(params, x):
        return jnp.maximum(x @ params["w"], 0.0)

    return fn, params, (np.ones((32, 48), np.float32),)
'''


def test_cli_tunes_an_export_factory_with_its_weights_as_parameters(db, tmp_path):
    path = tmp_path / "model.py"
    path.write_text(FACTORY)
    from stepwell.tools.cmd_export import load_factory
    from stepwell.tuner.inputs import factory_module
    (task,), _ = tasks.tasks(factory_module(*load_factory(f"{path}:factory")(width=96)), sw.targets.get("cpu"))
    assert task.signature["stored"] == [False, True] and len(task.params) == 1  # as sw.jax.export has it
    r = subprocess.run([sys.executable, "-m", "stepwell.tools.main", "tune", f"{path}:factory", "--arg",
                        "width=96", "--budget", "60", "--max-candidates", "1", "--rounds", "3", "--jobs", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "matmul 32x48 * 48x96" in r.stderr and "speed-up" in r.stderr  # the final table
    trials = TuningDB(str(db)).trials(task.key, tuning_keys.target_key("cpu"), tuning_keys.iree_version())
    assert "baseline failed" not in r.stderr and any(t["base_s"] for t in trials.values()), r.stderr


def test_roots_inside_a_loop_are_listed_untunable_not_a_crash():
    """The dropless MoE layer lowers to a loop over row tiles: its contractions sit in the
    loop body, where no micro-module can be cut out (it raised StopIteration before)."""
    from stepwell.bench import workloads
    w = next(w for w in workloads.suite("tiny") if w.name == "moe")
    found, untunable = tasks.tasks(w.build_nn(), sw.targets.get("cpu"))
    assert any("loop body" in r.why for r in untunable), [r.why for r in untunable]
    assert found and all("loop" not in t.describe for t in found)  # the router's matmul stays
