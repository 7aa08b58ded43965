"""``sw.jax.jit(f, in_shardings=..., out_shardings=...)``: JAX's shardings, Shardy's
propagation, stepwell's partitioning, one IREE module over the mesh's CPU devices. Each
device's block equals JAX's own sharded execution. JAX's CPU devices exist only if
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` is set before JAX starts, so each
check runs in a fresh Python process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import stepwell as sw

def compare(f, j, args, placed):
    '''Each device's block of sw's result against JAX's; returns the largest relative error.'''
    ours = f.shards(*args)
    theirs = jax.tree.leaves(j(*placed))
    mesh = f._entries[next(iter(f._entries))].mesh
    worst = 0.0
    for parts, y in zip(ours, theirs):
        blocks = {s.device: np.asarray(s.data) for s in y.addressable_shards}
        for d, part in enumerate(parts):
            want = blocks[mesh.devices.flat[d]]
            assert part.shape == want.shape, (part.shape, want.shape)
            worst = max(worst, float(np.abs(part - want).max() / max(1.0, np.abs(want).max())))
    return worst, jax.tree.leaves(f(*args)), theirs
"""


def _run(body: str, timeout: int = 600) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "examples"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", PRELUDE + body], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_megatron_mlp_on_a_2x2_mesh_matches_jax_shard_for_shard():
    out = _run("""
mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("data", "model"))
S = lambda *s: NamedSharding(mesh, P(*s))
def mlp(x, w1, b1, w2):
    return jax.nn.gelu(x @ w1 + b1) @ w2
ins, out = (S("data", None), S(None, "model"), S("model"), S("model", None)), S("data", None)
rng = np.random.default_rng(0)
args = [rng.standard_normal(s, dtype=np.float32) / 4 for s in [(8, 16), (16, 32), (32,), (32, 16)]]
f = sw.jax.jit(mlp, in_shardings=ins, out_shardings=out)
j = jax.jit(mlp, in_shardings=ins, out_shardings=out)
err, (y,), (yj,) = compare(f, j, args, [jax.device_put(a, s) for a, s in zip(args, ins)])
assert err < 1e-5, err
assert y.sharding.spec == yj.sharding.spec == P("data", None), (y.sharding, yj.sharding)
m = f.lower(*args)
assert 'nn.mesh = {axes = ["data", "model"], shape = array<i64: 2, 2>}' in str(m)
print("ok", err)
""")
    assert out.startswith("ok")


def test_partition_specs_under_set_mesh_and_propagated_outputs():
    """PartitionSpecs under ``jax.set_mesh``; no out_shardings: Shardy decides the result's
    layout, and it is JAX's."""
    out = _run("""
mesh = Mesh(np.array(jax.devices()).reshape(4), ("model",))
def f(x, w):
    return jnp.tanh(x @ w) * 2.0
rng = np.random.default_rng(1)
args = [rng.standard_normal((8, 16), dtype=np.float32), rng.standard_normal((16, 32), dtype=np.float32)]
with jax.set_mesh(mesh):
    ins = (P(), P(None, "model"))
    g = sw.jax.jit(f, in_shardings=ins)
    j = jax.jit(f, in_shardings=ins)
    placed = [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(args, ins)]
    err, (y,), (yj,) = compare(g, j, args, placed)
assert err < 1e-5, err
assert yj.sharding.spec == P(None, "model") and y.sharding.spec == yj.sharding.spec, (y.sharding, yj.sharding)
print("ok", err)
""")
    assert out.startswith("ok")


@pytest.mark.slow
def test_gpt2_tiny_tensor_parallel_matches_jax_shard_for_shard():
    out = _run("""
import gpt2
fn, params, (ids, lengths) = gpt2.factory("tiny")
mesh = Mesh(np.array(jax.devices()).reshape(4), ("model",))
rep = NamedSharding(mesh, P())
ins = (sw.distributed.tensor_parallel(params, mesh=mesh), rep, rep)
f = sw.jax.jit(fn, in_shardings=ins, out_shardings=rep)
j = jax.jit(fn, in_shardings=ins, out_shardings=rep)
placed = [jax.device_put(params, ins[0]), jax.device_put(ids, rep), jax.device_put(lengths, rep)]
err, _, _ = compare(f, j, (params, ids, lengths), placed)
assert err < 1e-5, err
print("ok", err)
""", timeout=900)
    assert out.startswith("ok")


def test_sharded_export_loads_on_its_devices_in_a_fresh_process(tmp_path):
    """``sw.jax.export(..., in_shardings=...)``: one module over 4 devices, each device's
    weights in the archive; ``sw.load`` in a process without JAX runs it; too few devices
    is an error at load."""
    folder = tmp_path / "mlp-tp"
    out = _run(f"""
mesh = Mesh(np.array(jax.devices()).reshape(4), ("model",))
rng = np.random.default_rng(2)
params = {{"w1": rng.standard_normal((16, 64), dtype=np.float32) / 4,
          "b1": rng.standard_normal((64,), dtype=np.float32),
          "w2": rng.standard_normal((64, 16), dtype=np.float32) / 8}}
x = rng.standard_normal((4, 16), dtype=np.float32)
def mlp(p, x):
    return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"]
rep = NamedSharding(mesh, P())
specs = sw.distributed.tensor_parallel(params, mesh=mesh)
m = sw.jax.export(mlp, params, x, path={str(folder)!r}, in_shardings=(specs, rep), out_shardings=rep)
assert m["devices"] == 4 and m["mesh"] == {{"axes": ["model"], "shape": [4]}}
shapes = {{p["name"]: p["shape"] for p in m["parameters"]}}
assert shapes["w1#0,16"] == [16, 16] and shapes["w2#48,0"] == [16, 16] and shapes["b1#32"] == [16]
np.save({str(tmp_path / "x.npy")!r}, x)
np.save({str(tmp_path / "y.npy")!r}, np.asarray(jax.jit(mlp)(params, x)))
print("ok")
""")
    assert out.startswith("ok")
    check = f"""
import sys, numpy as np, stepwell as sw
model = sw.load({str(folder)!r})
x, want = np.load({str(tmp_path / "x.npy")!r}), np.load({str(tmp_path / "y.npy")!r})
got = model(x)
assert np.abs(got - want).max() / np.abs(want).max() < 1e-5, np.abs(got - want).max()
assert model.executable.device_count == 4
assert "jax" not in sys.modules
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr
    bad = subprocess.run([sys.executable, "-m", "stepwell.tools.main", "run", str(folder), "--devices", "2",
                          "--input", str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.strip() == ("error: the module is partitioned over 4 devices, but the runtime has 2 "
                                  "(devices=2): run it with at least 4 devices, or compile it for a "
                                  "smaller mesh")
