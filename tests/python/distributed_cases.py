"""Models for the multi-device tests, built with the nn builders, and their Megatron specs.

``mlp``: x @ w1 + b1 -> gelu -> @ w2 + b2; ``attention``: projections, 8 heads, output
projection (bench's attention workload); ``gpt2``: GPT-2 tiny (bench's GPT-2 workload:
2 layers, width 64, 4 heads, vocabulary 512), batch 2 so that a 2 x 4 mesh can split it.
Specs come from ``sw.distributed.tensor_parallel`` by argument name.
"""

from __future__ import annotations

import numpy as np

import stepwell as sw
from stepwell.bench import workloads as W
from stepwell.distributed import plans

MESHES = {2: {"model": 2}, 4: {"model": 4}, 8: {"data": 2, "model": 4}}


def mlp_case():
    w = W.mlp(8, 32, 64)
    return w, ["x", "w1", "b1", "w2", "b2"]


def attention_case():
    w = W.attention(16, 64, 8, batch=2)
    return w, ["x", "wq", "wk", "wv", "wo"]


GPT2_TINY = W.GPT2Config(layers=2, width=64, heads=4, vocab=512, seq=32, positions=64, batch=2)


def gpt2_case():
    w = W.gpt2(GPT2_TINY)
    names = ["ids", "pos", "wte", "wpe"]
    for _ in range(GPT2_TINY.layers):
        names += list(W._GPT2_LAYER)
    return w, names + ["ln_f_s", "ln_f_b"]


CASES = {"mlp": mlp_case, "attention": attention_case, "gpt2": gpt2_case}


def sharded(case: str, devices: int):
    """(module with Megatron specs on its arguments, the inputs, the mesh)."""
    w, names = CASES[case]()
    m = w.build_nn()
    args = w.args()
    specs = plans.tensor_parallel([(n, a.ndim) for n, a in zip(names, args)])
    mesh = MESHES[devices]
    if "data" in mesh:  # the batch of the inputs over "data"
        specs = [(("data",),) + s[1:] if i < (w.inputs or 1) else s for i, s in enumerate(specs)]
    plans.shard_arguments(m, specs)
    return m, args, mesh


def single(case: str):
    """The same model on one device (no specs), and its inputs."""
    w, _ = CASES[case]()
    return sw.compile(w.build_nn(), "cpu")(*w.args())


def max_rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b))))
