"""sw.jax.export / sw.load: the folder, the manifest, dynamic batch, and every way a
folder can be broken (each a clear StepwellError naming the file or input)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import jax
import jax.numpy as jnp  # noqa: E402

import stepwell as sw  # noqa: E402
from stepwell import export as ex  # noqa: E402
from stepwell.export import integrity
from stepwell.export.manifest import sha256
from stepwell.core.diagnostics import StepwellError  # noqa: E402


def mlp(params, x):
    h = jax.nn.relu(x @ params["dense"]["w"] + params["dense"]["b"])
    return {"logits": h @ params["out"]["w"], "hidden": h}


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return {"dense": {"w": rng.normal(size=(16, 32)).astype(np.float32),
                      "b": rng.normal(size=(32,)).astype(np.float32)},
            "out": {"w": rng.normal(size=(32, 10)).astype(np.float32)}}


def reference(params, x):
    return jax.tree.map(np.asarray, jax.jit(mlp)(params, x))


def assert_close(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    params = make_params()
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    path = str(tmp_path_factory.mktemp("export") / "mlp")
    manifest = sw.jax.export(mlp, params, x, path=path)
    return path, params, x, manifest


@pytest.fixture
def broken(exported, tmp_path):
    """A copy of the export to break."""
    path = str(tmp_path / "copy")
    shutil.copytree(exported[0], path)
    return path


def rewrite_manifest(path, edit, reseal=True):
    """Edit the manifest; ``reseal``: as a writer would (a consistent folder), else as
    a hand edit (its seal no longer matches)."""
    file = os.path.join(path, ex.MANIFEST)
    with open(file) as f:
        manifest = json.load(f)
    edit(manifest)
    if reseal:
        integrity.seal(manifest)
    with open(file, "w") as f:
        json.dump(manifest, f)


def rehash(path):
    """Make the manifest agree with the files again (a consistent but broken folder)."""
    def edit(m):
        for name in (ex.VMFB, ex.PARAMS):
            file = os.path.join(path, name)
            m["files"][name] = {"bytes": os.path.getsize(file), "sha256": sha256(file)}
    rewrite_manifest(path, edit)


# ---------------------------------------------------------------------------
def test_folder_and_manifest(exported):
    path, params, x, manifest = exported
    assert sorted(os.listdir(path)) == ["manifest.json", "model.vmfb", "params.irpa"]
    with open(os.path.join(path, "manifest.json")) as f:
        on_disk = json.load(f)
    assert on_disk == manifest
    assert manifest["format"] == "stepwell-export" and manifest["schema"] == 1
    assert manifest["raised"] is True and "raise_failure" not in manifest
    assert manifest["target"] == "cpu" and manifest["driver"] == "local-task"
    assert set(manifest["versions"]) >= {"stepwell", "iree_compiler", "iree_runtime", "jax"}
    main = manifest["entry_points"]["main"]
    assert main["inputs"] == [{"name": "x", "shape": [4, 16], "dtype": "float32",
                               "type": "tensor<4x16xf32>"}]
    assert [o["name"] for o in main["outputs"]] == ["output/hidden", "output/logits"]
    assert [o["shape"] for o in main["outputs"]] == [[4, 32], [4, 10]]
    assert [(p["name"], p["shape"]) for p in manifest["parameters"]] == [
        ("dense/b", [32]), ("dense/w", [16, 32]), ("out/w", [32, 10])]
    for name in ("model.vmfb", "params.irpa"):
        assert manifest["files"][name]["sha256"] == sha256(os.path.join(path, name))
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".")]  # no temp left


def test_weights_are_parameters_not_constants(exported):
    path, params, _, manifest = exported
    with open(os.path.join(path, "model.vmfb"), "rb") as f:
        vmfb = f.read()
    assert params["dense"]["w"].tobytes()[:256] not in vmfb   # not inlined
    assert b"dense/w" in vmfb                                  # referenced by name
    import iree.runtime as rt
    index = rt.ParameterIndex()
    index.load(os.path.join(path, "params.irpa"))
    entries = dict(index.items())
    assert sorted(entries) == ["dense/b", "dense/w", "out/w"]
    got = rt.parameter_index_entry_as_numpy_ndarray(entries["dense/w"])
    np.testing.assert_array_equal(got, params["dense"]["w"])


def test_load_runs_and_matches_jax(exported):
    path, params, x, _ = exported
    model = sw.load(path)
    assert "x: float32[4, 16]" in repr(model)
    assert_close(model(x), reference(params, x))
    # another input, JAX arrays and plain lists work too
    x2 = np.random.default_rng(5).normal(size=(4, 16)).astype(np.float32)
    assert_close(model(jnp.asarray(x2)), reference(params, x2))
    assert_close(model(x2.tolist()), reference(params, x2))


def test_wrong_inputs_are_clear_errors(exported):
    model = sw.load(exported[0])
    with pytest.raises(StepwellError, match=r"input 'x' expects shape \[4, 16\] \(float32\), got \[3, 16\]"):
        model(np.zeros((3, 16), np.float32))
    with pytest.raises(StepwellError, match=r"input 'x' expects float32, got int32"):
        model(np.zeros((4, 16), np.int32))
    with pytest.raises(StepwellError, match=r"the model takes 1 input \(x\), got 2"):
        model(np.zeros((4, 16), np.float32), np.zeros((4, 16), np.float32))


def test_dynamic_batch(tmp_path):
    params = make_params(3)
    x = np.zeros((4, 16), np.float32)
    path = str(tmp_path / "dyn")
    manifest = sw.jax.export(mlp, params, x, path=path, dynamic_batch=True)
    assert manifest["dynamic_batch"]
    assert manifest["entry_points"]["main"]["inputs"][0]["shape"] == [None, 16]
    assert manifest["entry_points"]["main"]["outputs"][1]["shape"] == [None, 10]
    model = sw.load(path)
    for batch in (1, 7):
        xb = np.random.default_rng(batch).normal(size=(batch, 16)).astype(np.float32)
        assert_close(model(xb), reference(params, xb))
    with pytest.raises(StepwellError, match=r"expects shape \[\?, 16\]"):
        model(np.zeros((2, 15), np.float32))


def test_dynamic_batch_inputs_share_the_batch(tmp_path):
    def fn(params, x, y):
        return x * params["s"] + y
    path = str(tmp_path / "two")
    sw.jax.export(fn, {"s": np.float32(2.0)}, np.ones((2, 3), np.float32),
                  np.ones((2, 3), np.float32), path=path, dynamic_batch=True, raise_ops=False)
    model = sw.load(path)
    np.testing.assert_allclose(model(np.ones((5, 3), np.float32), np.ones((5, 3), np.float32)),
                               np.full((5, 3), 3.0))
    with pytest.raises(StepwellError, match=r"input .y. has b = 4 \(dimension 0\), input .x. has b = 5"):
        model(np.ones((5, 3), np.float32), np.ones((4, 3), np.float32))
    with pytest.raises(StepwellError, match="leading dimensions differ"):
        sw.jax.export(fn, {"s": np.float32(2.0)}, np.ones((2, 3), np.float32),
                      np.ones((3, 3), np.float32), path=str(tmp_path / "bad"), dynamic_batch=True)


# ---------------------------------------------------------------------------
# Broken folders: a clear error naming the file, never a crash.
def test_corrupt_parameters_fail_the_hash_check(broken):
    file = os.path.join(broken, "params.irpa")
    with open(file, "r+b") as f:
        f.seek(os.path.getsize(file) - 100)
        f.write(b"\xff" * 8)
    with pytest.raises(StepwellError, match=r"params\.irpa' does not match the SHA-256"):
        sw.load(broken)


def test_truncated_parameters(broken):
    file = os.path.join(broken, "params.irpa")
    with open(file, "r+b") as f:
        f.truncate(os.path.getsize(file) // 2)
    with pytest.raises(StepwellError, match=r"params\.irpa' has \d+ bytes, the manifest says"):
        sw.load(broken)


@pytest.mark.parametrize("keep", [10, 100, "half"])
def test_truncated_parameters_with_matching_manifest(broken, keep):
    """Truncated in the header (IREE raises IndexError/ValueError) or in the data,
    with a manifest rewritten to agree: still an error naming the archive."""
    file = os.path.join(broken, "params.irpa")
    size = os.path.getsize(file)
    with open(file, "r+b") as f:
        f.truncate(size // 2 if keep == "half" else keep)  # half: inside the last weights
    rehash(broken)
    with pytest.raises(StepwellError, match=r"params\.irpa"):
        sw.load(broken)


def test_manifest_hash_mismatch(broken):
    rewrite_manifest(broken, lambda m: m["files"]["model.vmfb"].update(sha256="0" * 64))
    with pytest.raises(StepwellError, match=r"model\.vmfb' does not match the SHA-256 in its manifest"):
        sw.load(broken)
    sw.load(broken, verify=False)  # sizes only: loads


def test_missing_parameter(broken, exported):
    """An archive without one of the module's parameters."""
    params = exported[1]
    ex.write_parameters(os.path.join(broken, "params.irpa"),
                        [(None, params["dense"]["w"]), (None, params["out"]["w"])],
                        ["dense/w", "out/w"],
                        [sw.TensorType((16, 32), "f32"), sw.TensorType((32, 10), "f32")])
    rehash(broken)
    with pytest.raises(StepwellError, match=r"parameter 'dense/b' is missing from '.*params\.irpa'"):
        sw.load(broken)


def test_corrupt_module(broken):
    with open(os.path.join(broken, "model.vmfb"), "wb") as f:
        f.write(b"not a module" * 10)
    rehash(broken)
    with pytest.raises(StepwellError, match=r"model\.vmfb' is not a valid IREE module"):
        sw.load(broken)


def test_not_an_export(tmp_path, broken):
    with pytest.raises(StepwellError, match="no such export folder"):
        sw.load(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StepwellError, match="has no manifest.json"):
        sw.load(str(tmp_path / "empty"))
    with open(os.path.join(broken, "manifest.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(StepwellError, match="not a readable manifest"):
        sw.load(broken)
    with open(os.path.join(broken, "manifest.json"), "w") as f:
        json.dump({"format": "stepwell-export", "schema": 99}, f)
    with pytest.raises(StepwellError, match="schema 99; this stepwell reads schema 1"):
        sw.load(broken)


def test_overwrite_rules(exported, tmp_path):
    path, params, x, _ = exported
    other = tmp_path / "busy"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(StepwellError, match="not empty and holds no stepwell export"):
        sw.jax.export(mlp, params, x, path=str(other))
    assert (other / "notes.txt").read_text() == "mine"
    # an export folder is replaced whole (the compile comes from the cache)
    again = str(tmp_path / "again")
    shutil.copytree(path, again)
    sw.jax.export(mlp, make_params(9), x, path=again)
    assert_close(sw.load(again)(x), reference(make_params(9), x))
    assert sorted(os.listdir(tmp_path)) == ["again", "busy"]


# ---------------------------------------------------------------------------
def test_stepwell_run_on_an_export_folder(exported, tmp_path):
    path, params, x, _ = exported
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    proc = subprocess.run([sys.executable, "-m", "stepwell.tools.main", "run", path,
                           "--input", f"@{tmp_path / 'x.npy'}", "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("result[0]: 4x32xf32=")
    want = reference(params, x)
    saved = np.load(out)
    np.testing.assert_allclose(saved["output0"], want["hidden"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(saved["output1"], want["logits"], rtol=1e-5, atol=1e-5)
    bad = subprocess.run([sys.executable, "-m", "stepwell.tools.main", "run", path,
                          "--input", "3x16xf32=0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip() == ("error: input 'x' expects shape [4, 16] (float32), got [3, 16]")


def test_stepwell_export_errors(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "stepwell.tools.main", "export", *args],
                              capture_output=True, text=True, timeout=120)
    r = run(str(tmp_path / "nope.py:factory"), "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and r.stderr.startswith("error: no such file:")
    (tmp_path / "m.py").write_text("def factory(n=1):\n    return n\n")
    r = run(f"{tmp_path / 'm.py'}:missing", "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and "has no function 'missing'" in r.stderr
    r = run(str(tmp_path / "m.py"), "-o", str(tmp_path / "out"), "--arg", "n=3")
    assert r.returncode == 1 and "must return (fn, params, example_args) or (fns, params, example_args, export_options), got int" in r.stderr
    assert not (tmp_path / "out").exists()


def test_bfloat16_parameters_and_odd_names(tmp_path):
    import ml_dtypes
    params = {"w": np.random.default_rng(0).normal(size=(8, 4)).astype(ml_dtypes.bfloat16),
              "bias é/1": np.ones(4, np.float32)}

    def fn(p, x):
        return (x.astype(jnp.bfloat16) @ p["w"]).astype(jnp.float32) + p["bias é/1"]
    x = np.random.default_rng(1).normal(size=(2, 8)).astype(np.float32)
    manifest = sw.jax.export(fn, params, x, path=str(tmp_path / "bf16"))
    assert [(p["name"], p["dtype"]) for p in manifest["parameters"]] == [
        ("bias é/1", "float32"), ("w", "bfloat16")]
    got = sw.load(str(tmp_path / "bf16"))(x)
    np.testing.assert_allclose(got, np.asarray(jax.jit(fn)(params, x)), rtol=2e-2, atol=2e-2)


def test_raising_fallback_is_recorded(tmp_path, monkeypatch, caplog):
    """raise_ops=None falls back to plain StableHLO when raising fails: the manifest
    says so (``raised`` false, ``raise_failure`` why), not only a log line."""
    from stepwell.frontends.jax import importer

    def broken(module):
        raise StepwellError("stablehlo-to-nn: simulated failure")
    monkeypatch.setattr(importer, "raise_stablehlo", broken)
    params = make_params()
    x = np.ones((2, 16), np.float32)
    manifest = sw.jax.export(mlp, params, x, path=str(tmp_path / "plain"))
    assert manifest["raised"] is False
    assert manifest["raise_failure"] == "stablehlo-to-nn: simulated failure"
    assert "raised module did not compile" in caplog.text
    assert_close(sw.load(str(tmp_path / "plain"))(x), reference(params, x))
    with pytest.raises(StepwellError, match="simulated failure"):
        sw.jax.export(mlp, params, x, path=str(tmp_path / "strict"), raise_ops=True)
