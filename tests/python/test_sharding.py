"""Meshes and partition specs in the IR (``nn.mesh``, ``nn.sharding``), ``sw.shard``,
``sw.compile(..., mesh=)``, and running a module over several devices: the device
count at load, ``stepwell run --devices``, CUDA compile-only."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import stepwell as sw
from stepwell.core import sharding as sh
from stepwell.core.ir import context, func, ir
from stepwell.core.types import TensorType
from distributed_cases import max_rel, sharded

F32 = lambda *s: TensorType(s, "f32").to_mlir()  # noqa: E731


def _mlp_module(hidden: int = 16):
    """x @ w1 -> relu -> @ w2, with sw.shard on w1, w2 and the hidden activation."""
    with context(), ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            @func.FuncOp.from_py_func(F32(4, 8), F32(8, hidden), F32(hidden, 8), name="main")
            def main(x, w1, w2):
                sw.shard(w1, (None, "model"))
                sw.shard(w2, sw.distributed.plans.spec_for("w2", 2))
                h = sw.shard(sw.nn.relu(sw.nn.linear(x, w1)), (None, "model"))
                return sw.nn.linear(h, w2)
    return sw.Module(module, "mlp")


def test_shard_on_builders_round_trips_through_text():
    m = _mlp_module()
    text = str(m)
    assert '%arg1: tensor<8x16xf32> {nn.sharding = [unit, "model"]}' in text
    assert '%arg2: tensor<16x8xf32> {nn.sharding = ["model", unit]}' in text
    assert '"nn.relu"(%0) {nn.sharding = [unit, "model"]}' in text
    again = sw.parse(text)
    assert str(again) == text


def test_shard_rejects_a_spec_longer_than_the_rank():
    with context(), ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body), pytest.raises(sw.StepwellError) as e:
            @func.FuncOp.from_py_func(F32(4), name="main")
            def main(x):
                return sw.shard(x, ("model", None))
    assert "sw.shard: spec P('model', None) has 2 entries for a value of rank 1" in str(e.value)


def test_mesh_coordinates_groups_and_blocks():
    mesh = sh.Mesh.of({"data": 2, "model": 4})
    assert mesh.size == 8 and mesh.coords(6) == {"data": 1, "model": 2}
    assert mesh.group(6, ("model",)) == [4, 5, 6, 7]
    assert mesh.group(6, ("data",)) == [2, 6]
    assert mesh.block(6, ("data", "model")) == 6 and mesh.block(6, ("model", "data")) == 5
    assert sh.normalize(("data", None, ("data", "model"))) == (("data",), (), ("data", "model"))
    assert sh.show((("data",), (), ("data", "model"))) == "P('data', None, ('data', 'model'))"
    assert sh.shard_index((8, 4), (("model",), ()), mesh, 6) == (slice(4, 6), slice(0, 4))


def test_mesh_forms_and_errors():
    want = sh.Mesh(("data", "model"), (2, 4))
    assert sh.Mesh.of([("data", 2), ("model", np.int64(4))]) == want
    jax = pytest.importorskip("jax")
    one = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    assert sh.Mesh.of(one) == sh.Mesh(("data", "model"), (1, 1))
    for bad, message in [({"model": 0}, "mesh axis 'model' must have a positive size, found 0"),
                         ({"model": 2.5}, "a mesh is {axis: size, ...}, not {'model': 2.5}"),
                         ("model", "a mesh is {axis: size, ...}, not 'model'"),
                         ({}, "a mesh needs as many sizes as axes")]:
        with pytest.raises(sh.ShardingError, match=re.escape(message)):
            sh.Mesh.of(bad)


def test_verifier_errors_name_the_spec_and_the_location():
    text = ('module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 4>}} {\n'
            'func.func @f(%x: tensor<6x8xf32> {nn.sharding = ["model", unit]}) -> tensor<6x8xf32> {\n'
            '  %0 = "nn.exp"(%x) {nn.sharding = [unit, "mdl"]} : (tensor<6x8xf32>) -> tensor<6x8xf32>\n'
            '  return %0 : tensor<6x8xf32>\n}\n}\n')
    with pytest.raises(sw.VerifyError) as e:
        sw.parse(text, name="in.mlir")
    lines = str(e.value).splitlines()
    assert lines[0] == ("in.mlir:2:14: error: argument #0: spec P('model', None) splits dimension 0 "
                        "(size 6) into 4 parts over model: 4 does not divide 6")
    assert lines[1].startswith("in.mlir:3:8: error: 'nn.exp': spec P(None, 'mdl') names axis 'mdl'")


def test_compile_with_a_mesh_checks_the_specs_against_it():
    m = _mlp_module()
    with pytest.raises(sw.VerifyError, match=r"splits dimension 1 \(size 16\) into 32 parts over model"):
        sw.compile(m, "cpu", mesh={"model": 32})


def test_compile_with_a_mesh_matches_one_device():
    m = _mlp_module()
    rng = np.random.default_rng(0)
    x, w1, w2 = (rng.standard_normal(s, dtype=np.float32) for s in [(4, 8), (8, 16), (16, 8)])
    exe = sw.compile(m, "cpu", mesh={"model": 2})
    assert exe.function("main").arg_types == ["tensor<4x8xf32>", "tensor<8x16xf32>", "tensor<16x8xf32>"]
    assert max_rel(exe(x, w1, w2), np.maximum(x @ w1, 0) @ w2) < 1e-5
    assert exe.device_count == 2


@pytest.fixture(scope="module")
def two_device_vmfb(tmp_path_factory):
    m, args, mesh = sharded("mlp", 2)
    path = tmp_path_factory.mktemp("md") / "mlp2.vmfb"
    sw.compile(m, "cpu", mesh=mesh).save(path)
    return path, args


def test_too_few_devices_is_an_error_at_load(two_device_vmfb):
    path, _ = two_device_vmfb
    with pytest.raises(sw.StepwellError) as e:
        sw.Executable.load(path, "cpu", devices=1)
    assert str(e.value) == ("error: the module is partitioned over 2 devices, but the runtime has 1 "
                            "(devices=1): run it with at least 2 devices, or compile it for a smaller mesh")
    assert sw.Executable.load(path, "cpu", devices=2).device_count == 2


def test_stepwell_run_devices(two_device_vmfb, tmp_path):
    path, args = two_device_vmfb
    files = []
    for i, a in enumerate(args):
        files.append(tmp_path / f"a{i}.npy")
        np.save(files[-1], a)
    cmd = [sys.executable, "-m", "stepwell.tools.main", "run", str(path), "--devices"]
    inputs = [f"--input={f}" for f in files]
    ok = subprocess.run(cmd + ["2", *inputs, f"--output={tmp_path / 'y.npz'}"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    y = np.load(tmp_path / "y.npz")
    want = sw.compile(sharded("mlp", 2)[0], "cpu", mesh={"model": 2})(*args)
    assert np.array_equal(y[y.files[0]], want)
    bad = subprocess.run(cmd + ["1", *inputs], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: the module is partitioned over 2 devices, but the runtime has 1 (devices=1): run it "
        "with at least 2 devices, or compile it for a smaller mesh"]


def test_cuda_multi_device_compiles_without_a_gpu():
    m, _, mesh = sharded("mlp", 2)
    vmfb = sw.compiler.compile_vmfb(m, "cuda:sm_80", mesh=mesh)
    assert sw.targets.detect(vmfb).name == "cuda"
    exe = sw.Executable(vmfb, "cuda:sm_80")
    assert exe.function_names == ["main"] and exe.device_count == 2  # (read without a GPU)


def test_one_executable_per_local_shape():
    """Executables do not multiply with the devices: on 2, 4 and 8 devices with the same
    local shapes (the hidden layer grows with N) the module holds the same executables,
    while the dispatches (each device's own) grow with N."""
    from stepwell.compiler import driver
    counts, dispatches = [], []
    for n in (2, 4, 8):
        flow = driver.compile_to(_mlp_module(8 * n), "dispatch", target="cpu", mesh={"model": n})
        counts.append(len(re.findall(r"^\s*flow\.executable (?:private )?@", flow, re.M)))
        dispatches.append(len(re.findall(r"flow\.dispatch @", flow)))
    assert counts[0] == counts[1] == counts[2], counts
    assert dispatches[0] < dispatches[1] < dispatches[2], dispatches


def test_reshard_moves_data_and_keeps_values():
    """``nn.reshard``: its reference is the identity; on one device it compiles away; over
    a 2 x 2 mesh it moves a [rows over data, columns over model] value to [columns over
    (data, model)]: gathers, then slices, and the values stay."""
    from stepwell.core import opspec
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    assert np.array_equal(opspec.lookup("nn.reshard").evaluate([x])[0], x)
    text = ('module attributes {nn.mesh = {axes = ["data", "model"], shape = array<i64: 2, 2>}} {\n'
            'func.func @main(%x: tensor<4x8xf32> {nn.sharding = ["data", "model"]}) -> tensor<4x8xf32> {\n'
            '  %0 = "nn.reshard"(%x) {nn.sharding = [unit, ["data", "model"]]} : (tensor<4x8xf32>) -> tensor<4x8xf32>\n'
            '  %1 = "nn.exp"(%0) : (tensor<4x8xf32>) -> tensor<4x8xf32>\n'
            '  return %1 : tensor<4x8xf32>\n}\n}\n')
    m = sw.parse(text)
    exe = sw.compile(m, "cpu")
    parts = exe.function("main").shards(x)[0]
    assert [p.shape for p in parts] == [(4, 2)] * 4
    for d, p in enumerate(parts):  # device d holds columns [2d, 2d + 2) of exp(x)
        np.testing.assert_allclose(p, np.exp(x[:, 2 * d:2 * d + 2]), rtol=1e-6)
    one = sw.parse(text.replace('module attributes {nn.mesh = {axes = ["data", "model"], '
                                'shape = array<i64: 2, 2>}} {', "module {"))
    np.testing.assert_allclose(sw.compile(one, "cpu")(x), np.exp(x), rtol=1e-6)
