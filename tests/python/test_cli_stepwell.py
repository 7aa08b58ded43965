"""The `stepwell` command: compile (each stage), run (each input syntax), demo, bad inputs."""

import os
import subprocess
import sys

import numpy as np
import pytest

import stepwell as sw

MLP = """
func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>, %b: tensor<16xf32>) -> tensor<4x16xf32> {
  %0 = "nn.linear"(%x, %w, %b) : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  %1 = "nn.relu"(%0) : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %1 : tensor<4x16xf32>
}
func.func @double(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "nn.add"(%x, %x) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
"""

BIN = os.path.dirname(sys.executable)


def stepwell(*args, cwd=None):
    return subprocess.run([os.path.join(BIN, "stepwell"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "mlp.mlir").write_text(MLP)
    r = stepwell("compile", str(d / "mlp.mlir"), "--target", "cpu", "-o", str(d / "mlp.vmfb"))
    assert r.returncode == 0, r.stderr
    return d


@pytest.mark.parametrize("stage,marker", [("nn", '"nn.linear"'), ("prim", '"prim.contract"'),
                                          ("linalg", "linalg.matmul"), ("vector", "vector."),
                                          ("dispatch", "flow.dispatch")])
def test_compile_to_each_stage_prints_valid_ir(files, stage, marker):
    r = stepwell("compile", str(files / "mlp.mlir"), "--compile-to", stage)
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout
    if stage in ("nn", "prim", "linalg", "vector"):
        sw.parse(r.stdout)  # re-parses and verifies


def test_run_with_each_input_syntax(files):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    np.save(files / "x.npy", x)
    w = np.arange(8 * 16, dtype=np.float32).reshape(8, 16) / 100
    w_text = "8x16xf32=" + ",".join(str(v) for v in w.reshape(-1))
    r = stepwell("run", str(files / "mlp.vmfb"), "--input", str(files / "x.npy"), "--input", w_text,
                 "--input", "16xf32=0.5", "--output", str(files / "out.npz"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("result[0]: 4x16xf32=")
    got = np.load(files / "out.npz")["output0"]
    np.testing.assert_allclose(got, np.maximum(x @ w + 0.5, 0), rtol=1e-5, atol=1e-5)
    r = stepwell("run", str(files / "mlp.vmfb"), "--function", "double", "--input", "@" + str(files / "x.npy"))
    assert r.returncode == 1 and "expects tensor<2x3xf32>" in r.stderr
    r = stepwell("run", str(files / "mlp.vmfb"), "--function", "double", "--input", "2x3xf32=1,2,3,4,5,6")
    assert r.returncode == 0 and "2x3xf32=[2 4 6][8 10 12]" in r.stdout


def test_run_mlir_directly(files):
    r = stepwell("run", str(files / "mlp.mlir"), "--function", "double", "--input", "2x3xf32=1")
    assert r.returncode == 0, r.stderr
    assert "[2 2 2][2 2 2]" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "{d}/mlp.vmfb", "--function", "nope"], "nope"),
    (["run", "{d}/mlp.vmfb", "--input", "4x8xf32=1"], "expects 3 arguments"),
    (["run", "{d}/mlp.vmfb", "--function", "double", "--input", "2x3xi32=1"], "expects tensor<2x3xf32>"),
    (["run", "{d}/mlp.vmfb", "--function", "double", "--input", "2x3xf32=1,2"], "error:"),
    (["run", "{d}/missing.vmfb"], "no such file"),
    (["compile", "{d}/custom.mlir", "-o", "{d}/custom.vmfb"], "nn.frobnicate"),
    (["compile", "{d}/mlp.mlir", "--target", "tpu"], "tpu"),
])
def test_bad_inputs_give_one_clear_error(files, args, message):
    (files / "custom.mlir").write_text(
        'func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {\n'
        '  %0 = "nn.frobnicate"(%x) : (tensor<2xf32>) -> tensor<2xf32>\n'
        '  return %0 : tensor<2xf32>\n}\n')
    r = stepwell(*[a.format(d=files) for a in args])
    assert r.returncode == 1
    assert message in r.stderr and "error:" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (files / "custom.vmfb").exists()


def test_unlowerable_custom_op_is_named_with_location(files):
    (files / "custom.mlir").write_text(
        'func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {\n'
        '  %0 = "nn.frobnicate"(%x) : (tensor<2xf32>) -> tensor<2xf32>\n'
        '  return %0 : tensor<2xf32>\n}\n')
    r = stepwell("compile", str(files / "custom.mlir"))
    assert r.returncode == 1
    assert f"{files / 'custom.mlir'}:2:8: error: unknown op 'nn.frobnicate'" in r.stderr


def test_demo_agrees_with_jax():
    r = stepwell("demo", "--repeat", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agrees with JAX" in r.stdout
    rows = {cells[0] for line in r.stdout.splitlines()  # (the table's first column)
            for cells in [line.replace("│", " ").replace("|", " ").split()] if cells}
    for stage in ("nn", "prim", "linalg", "vector", "dispatch", "vmfb"):  # every stage of the ladder
        assert stage in rows, (stage, r.stdout)
    assert "dispatches" in r.stdout and "KiB" in r.stdout
    err = float(r.stdout.split("largest error against JAX: ")[1].split()[0])
    assert err < 1e-4
