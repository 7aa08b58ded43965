"""Tensor-parallel specs by layer name (``sw.distributed.tensor_parallel``) and
``sw.distributed.shard_arguments``: Megatron's layout, and errors for bad calls."""

from __future__ import annotations

import numpy as np
import pytest

import stepwell as sw
from distributed_cases import GPT2_TINY, gpt2_case, mlp_case

COL, ROW, REP2, COL_BIAS, REP1 = ((), ("model",)), (("model",), ()), ((), ()), (("model",),), ((),)


def test_megatron_layout_by_argument_name():
    want = {"w1": COL, "b1": COL_BIAS, "w2": ROW, "b2": REP1, "wq": COL, "wo": ROW, "wte": ROW,
            "ln_s": REP1, "c_proj/bias": REP1, "c_attn": COL, "pos": REP2}
    ranks = [(n, len(s)) for n, s in want.items()]
    assert dict(zip(want, sw.distributed.tensor_parallel(ranks))) == want


def test_flax_pytree_paths_and_named_shardings():
    jax = pytest.importorskip("jax")
    params = {"params": {"h_0": {"mlp": {"c_fc": {"kernel": np.zeros((4, 8)), "bias": np.zeros(8)},
                                         "c_proj": {"kernel": np.zeros((8, 4)), "bias": np.zeros(4)}}},
                         "wte": {"embedding": np.zeros((16, 4))}, "ln_f": {"scale": np.zeros(4)}}}
    specs = sw.distributed.tensor_parallel(params, axis="tp")
    mlp = specs["params"]["h_0"]["mlp"]
    assert mlp["c_fc"]["kernel"] == ((), ("tp",)) and mlp["c_fc"]["bias"] == (("tp",),)
    assert mlp["c_proj"]["kernel"] == (("tp",), ()) and mlp["c_proj"]["bias"] == ((),)
    assert specs["params"]["wte"]["embedding"] == (("tp",), ())
    assert specs["params"]["ln_f"]["scale"] == ((),)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("tp",))
    named = sw.distributed.tensor_parallel(params, axis="tp", mesh=mesh)
    assert named["params"]["h_0"]["mlp"]["c_fc"]["kernel"].spec == jax.sharding.PartitionSpec(None, "tp")
    assert named["params"]["ln_f"]["scale"].spec == jax.sharding.PartitionSpec(None)


def test_shard_arguments_writes_specs_on_main():
    w, names = gpt2_case()
    m = w.build_nn()
    specs = sw.distributed.tensor_parallel([(n, a.ndim) for n, a in zip(names, w.args())])
    specs[0] = specs[1] = ("data", None)  # JAX's spelling works as well
    sw.distributed.shard_arguments(m, specs)
    text = str(m)
    assert text.count('{nn.sharding = ["data", unit]}') == 2
    # the token embedding by vocabulary rows, the per-layer MLP split by columns
    wte = GPT2_TINY.vocab, GPT2_TINY.width
    assert f'tensor<{wte[0]}x{wte[1]}xf32> {{nn.sharding = ["model", unit]}}' in text


def test_shard_arguments_errors():
    w, _ = mlp_case()
    m = w.build_nn()
    with pytest.raises(sw.StepwellError, match="no function @nope"):
        sw.distributed.shard_arguments(m, [None], function="nope")
    with pytest.raises(sw.StepwellError, match="6 specs for @main's 5 arguments"):
        sw.distributed.shard_arguments(m, [None] * 6)
