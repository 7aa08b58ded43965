"""Small models written with the ``nn`` builders, and the same models in JAX.

``transformer_block()`` is what ``stepwell demo`` compiles: embedding, layer norm,
causal multi-head attention and a gelu MLP, with residual connections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stepwell.core.ir import context, func, ir
from stepwell.core.module import Module
from stepwell.core.opspec import Builders
from stepwell.core.types import TensorType

nn = Builders("nn")


@dataclass(frozen=True)
class BlockConfig:
    vocab: int = 64
    seq: int = 16
    width: int = 32
    heads: int = 4
    hidden: int = 64


def block_params(cfg: BlockConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Random parameters (fixed seed) in the order the block's function takes them."""
    rng = np.random.default_rng(seed)
    d, h = cfg.width, cfg.hidden

    def w(*shape, scale=None):
        return (rng.standard_normal(shape) * (scale or shape[0] ** -0.5)).astype(np.float32)

    return {
        "table": w(cfg.vocab, d, scale=1.0), "ln1_scale": 1 + w(d, scale=0.1), "ln1_bias": w(d, scale=0.1),
        "wq": w(d, d), "wk": w(d, d), "wv": w(d, d), "wo": w(d, d),
        "ln2_scale": 1 + w(d, scale=0.1), "ln2_bias": w(d, scale=0.1),
        "w1": w(d, h), "b1": w(h, scale=0.1), "w2": w(h, d), "b2": w(d, scale=0.1),
    }


def block_inputs(cfg: BlockConfig, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, cfg.vocab, (1, cfg.seq)).astype(np.int32)


def transformer_block(cfg: BlockConfig = BlockConfig()) -> Module:
    """The block as an nn-level module: ``@main(ids, *params) -> [1, seq, width]``."""
    d, s, nh = cfg.width, cfg.seq, cfg.heads
    hd = d // nh
    params = block_params(cfg)
    with context(), ir.Location.unknown():
        module = ir.Module.create()
        arg_types = [TensorType((1, s), "i32").to_mlir()] + [
            TensorType(p.shape, "f32").to_mlir() for p in params.values()]
        with ir.InsertionPoint(module.body):
            @func.FuncOp.from_py_func(*arg_types, name="main")
            def main(ids, table, ln1_s, ln1_b, wq, wk, wv, wo, ln2_s, ln2_b, w1, b1, w2, b2):
                def heads(x):  # [1, s, d] -> [1, nh, s, hd]
                    x = nn.reshape(x, result_type=TensorType((1, s, nh, hd), "f32"))
                    return nn.transpose(x, permutation=[0, 2, 1, 3])

                x = nn.embedding(table, ids)
                h = nn.layer_norm(x, ln1_s, ln1_b)
                a = nn.attention(heads(nn.linear(h, wq)), heads(nn.linear(h, wk)),
                                 heads(nn.linear(h, wv)), causal=True)
                a = nn.reshape(nn.transpose(a, permutation=[0, 2, 1, 3]),
                               result_type=TensorType((1, s, d), "f32"))
                x = nn.add(x, nn.linear(a, wo))
                h = nn.layer_norm(x, ln2_s, ln2_b)
                return nn.add(x, nn.linear(nn.gelu(nn.linear(h, w1, b1)), w2, b2))
    return Module(module, "transformer_block")


def transformer_block_jax(cfg: BlockConfig = BlockConfig()):
    """The same block in JAX: ``fn(ids, *params)``."""
    import jax
    import jax.numpy as jnp

    d, s, nh = cfg.width, cfg.seq, cfg.heads

    def layer_norm(x, scale, bias, eps=1e-5):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + eps) * scale + bias

    def fn(ids, table, ln1_s, ln1_b, wq, wk, wv, wo, ln2_s, ln2_b, w1, b1, w2, b2):
        def heads(x):
            return x.reshape(1, s, nh, d // nh).transpose(0, 2, 1, 3)

        x = table[ids]
        h = layer_norm(x, ln1_s, ln1_b)
        q, k, v = heads(h @ wq), heads(h @ wk), heads(h @ wv)
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // nh)
        scores = jnp.where(jnp.tril(jnp.ones((s, s), bool)), scores, -jnp.inf)
        a = jax.nn.softmax(scores, axis=-1) @ v
        x = x + a.transpose(0, 2, 1, 3).reshape(1, s, d) @ wo
        h = layer_norm(x, ln2_s, ln2_b)
        return x + jax.nn.gelu(h @ w1 + b1) @ w2 + b2

    return fn
