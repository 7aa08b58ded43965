"""Shared by the examples: export, reload in a fresh process, compare with JAX.

The fresh process imports only stepwell and numpy (``sw.load`` never imports JAX),
as a deployment would.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

# In the fresh process: load each folder, run it on its inputs, save the outputs.
_RUNNER = r"""
import json, sys
import numpy as np
import stepwell as sw
jobs = json.loads(sys.argv[1])
for job in jobs:
    model = sw.load(job["model"])
    data = np.load(job["inputs"])
    args = [data[f"arg{i}"] for i in range(len(data.files))]
    out = model(*args)
    leaves = list(out) if isinstance(out, (tuple, list)) else [out]
    np.savez(job["outputs"], **{f"out{i}": np.asarray(a) for i, a in enumerate(leaves)})
assert "jax" not in sys.modules, "sw.load imported JAX"
print("ok")
"""


def run_fresh(jobs: list[tuple[str, list]], timeout: float = 300) -> list[list[np.ndarray]]:
    """Run each ``(export folder, [input arrays])`` in ONE new Python process with
    ``sw.load``; returns each model's outputs (flat list of arrays)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = []
        for i, (folder, args) in enumerate(jobs):
            inp = os.path.join(tmp, f"in{i}.npz")
            np.savez(inp, **{f"arg{j}": np.asarray(a) for j, a in enumerate(args)})
            spec.append({"model": os.path.abspath(folder), "inputs": inp,
                         "outputs": os.path.join(tmp, f"out{i}.npz")})
        proc = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"the fresh process failed:\n{proc.stdout}\n{proc.stderr}")
        results = []
        for job in spec:
            data = np.load(job["outputs"])
            results.append([data[f"out{i}"] for i in range(len(data.files))])
        return results


@dataclass(frozen=True)
class TransformerConfig:
    """What every transformer example is sized by (each adds its own fields)."""
    layers: int
    width: int
    heads: int
    vocab: int
    seq_len: int  # the exported sequence length


def attend(q, k, v, keep):
    """Multi-head scaled dot-product attention on ``[batch, seq, heads, head_dim]``
    queries, keys and values; ``keep`` (broadcast to ``[batch, heads, q, k]``) is true
    where a query may attend to a key. Returns ``[batch, seq, heads, head_dim]``."""
    import jax
    import jax.numpy as jnp
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1]).astype(np.float32)
    scores = jnp.where(keep, scores, jnp.finfo(scores.dtype).min)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)


def max_error(got, want) -> float:
    """Largest |got - want| relative to the largest |want| (1 when want is all 0)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def jax_reference(fn, params, args) -> list[np.ndarray]:
    import jax
    out = jax.jit(fn)(params, *args)
    return [np.asarray(a) for a in jax.tree.leaves(out)]


def main(factory, description: str, configs=("tiny",), default_config="tiny", tol=1e-4) -> int:
    """``python examples/X.py [--config C] [--out DIR] [--target T]``: export the
    example, load it in a fresh process, compare it with JAX."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", default=default_config, choices=configs)
    p.add_argument("--out", default=None, help="export folder (default: a temporary one)")
    p.add_argument("--target", default="cpu")
    p.add_argument("--dynamic-batch", action="store_true")
    a = p.parse_args()
    import time

    import stepwell as sw
    fn, params, args = factory(config=a.config)
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or os.path.join(tmp, "model")
        t = time.perf_counter()
        manifest = sw.jax.export(fn, params, *args, path=out, target=a.target,
                                 dynamic_batch=a.dynamic_batch)
        print(f"exported to {out} in {time.perf_counter() - t:.1f} s: "
              f"{len(manifest['parameters'])} parameters, "
              f"{manifest['parameter_bytes'] / 1e6:.1f} MB of weights, "
              f"model.vmfb {manifest['files']['model.vmfb']['bytes'] / 1e3:.0f} KB")
        t = time.perf_counter()
        (got,) = run_fresh([(out, [np.asarray(x) for x in args])])
        print(f"loaded and ran in a fresh process in {time.perf_counter() - t:.1f} s")
        want = jax_reference(fn, params, args)
        errs = [max_error(g, w) for g, w in zip(got, want)]
        print(f"max relative error against JAX: {max(errs):.2e}")
        return 0 if max(errs) < tol else 1
