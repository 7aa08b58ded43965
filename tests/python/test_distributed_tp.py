"""Tensor parallelism over N CPU devices (one IREE module, ``nn-partition``) matches one
device: the Megatron MLP, an attention block and GPT-2 tiny on 2, 4 and 8 devices (8: a
2 x 4 mesh, the batch over "data"). One of each size runs by default; the whole matrix is
``-m slow``."""

from __future__ import annotations

import numpy as np
import pytest

import stepwell as sw
from distributed_cases import max_rel, sharded, single

DEFAULT = [("mlp", 2), ("attention", 4), ("gpt2", 8)]
MATRIX = [(c, n) for c in ("mlp", "attention", "gpt2") for n in (2, 4, 8) if (c, n) not in DEFAULT]


def _check(case, devices):
    m, args, mesh = sharded(case, devices)
    exe = sw.compile(m, "cpu", mesh=mesh)
    want = single(case)
    got = exe(*args)
    assert got.shape == want.shape
    assert max_rel(got, want) <= 1e-5, (case, devices, max_rel(got, want))
    # every device holds its block of the result: the parts join to the whole
    parts = exe.function("main").shards(*args)[0]
    assert len(parts) == devices
    assert sum(p.size for p in parts) >= want.size


@pytest.mark.parametrize("case,devices", DEFAULT, ids=[f"{c}-{n}" for c, n in DEFAULT])
def test_tensor_parallel_matches_one_device(case, devices):
    _check(case, devices)


@pytest.mark.slow
@pytest.mark.parametrize("case,devices", MATRIX, ids=[f"{c}-{n}" for c, n in MATRIX])
def test_tensor_parallel_matrix(case, devices):
    _check(case, devices)


def test_gpt2_is_split_not_replicated():
    """The propagated GPT-2 runs attention on local heads and the MLP on local columns:
    the SPMD bodies hold 1/4 of the heads on a 2 x 4 mesh (not the whole model per device)."""
    m, _, mesh = sharded("gpt2", 8)
    from stepwell.compiler import devices
    text = str(devices.partition(m, mesh))
    assert '"nn.attention"' in text and "tensor<1x1x32x16xf32>" in text  # batch 2/2, heads 4/4
    assert "nn.partitioned" in text
    assert text.count("flow.tensor.transfer") > 0


def test_results_are_equal_on_every_device():
    """Collectives are symmetric: a replicated result is the same bits on every device."""
    m, args, mesh = sharded("mlp", 2)
    parts = sw.compile(m, "cpu", mesh=mesh).function("main").shards(*args)[0]
    assert np.array_equal(parts[0], parts[1])
