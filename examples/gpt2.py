"""A GPT-2-style decoder in Flax: the GPT-2 small configuration and a tiny one for CI.

    python examples/gpt2.py --config tiny              # export, reload in a fresh process, compare
    stepwell export examples/gpt2.py:factory -o out/gpt2            # GPT-2 small (124M parameters)
    stepwell export examples/gpt2.py:factory --arg config=tiny -o out/gpt2-tiny
    python examples/generate.py --config tiny          # greedy generation, exported vs JAX

The architecture is GPT-2's: learned token and position embeddings, pre-LayerNorm
blocks of causal multi-head attention and a GELU (tanh) MLP, a final LayerNorm, and
the output projection tied to the token embedding (``logits = h @ wte.T``). GPT-2
small: 12 layers, width 768, 12 heads, vocabulary 50257, context 1024: 124,439,808
parameters. Weights are random with a fixed seed (std 0.02, residual projections
scaled by 1/sqrt(2 * layers), as GPT-2 initialises); no checkpoint ships with the
example, but ``stepwell.checkpoints.load`` fills the same pytree from one.

The exported function is ``next_token_logits(params, ids, lengths)``: ``ids`` is a
``[batch, seq_len]`` int32 buffer (the prompt, then anything), ``lengths[b]`` how many
of its tokens are real; it returns the ``[batch, vocab]`` logits of the token after
position ``lengths - 1``. Causal attention makes the padding after it irrelevant, so
one compiled sequence length serves every prompt up to ``seq_len`` (no KV cache:
each step recomputes the whole prefix). ``logits(params, ids)`` gives every position's.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import TransformerConfig, attend  # noqa: E402


@dataclass(frozen=True)
class Config(TransformerConfig):
    context: int = 1024  # the positions the model has (seq_len <= context)
    init_std: float = 0.02  # GPT-2's; the tiny model uses more, so its random text varies


CONFIGS = {
    "small": Config(layers=12, width=768, heads=12, vocab=50257, context=1024, seq_len=128),
    "tiny": Config(layers=2, width=64, heads=4, vocab=512, context=64, seq_len=32, init_std=0.3),
}


def make_model(cfg: Config):
    import flax.linen as nn
    import jax.numpy as jnp

    init = nn.initializers.normal(cfg.init_std)
    proj_init = nn.initializers.normal(cfg.init_std / np.sqrt(2 * cfg.layers))

    class Attention(nn.Module):
        @nn.compact
        def __call__(self, x):
            b, t, c = x.shape
            d = c // cfg.heads
            qkv = nn.Dense(3 * c, kernel_init=init, name="c_attn")(x)
            q, k, v = jnp.split(qkv.reshape(b, t, 3, cfg.heads, d), 3, axis=2)
            q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]          # [b, t, heads, d]
            y = attend(q, k, v, jnp.tril(jnp.ones((t, t), bool)))
            return nn.Dense(c, kernel_init=proj_init, name="c_proj")(y.reshape(b, t, c))

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.gelu(nn.Dense(4 * cfg.width, kernel_init=init, name="c_fc")(x), approximate=True)
            return nn.Dense(cfg.width, kernel_init=proj_init, name="c_proj")(h)

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = x + Attention(name="attn")(nn.LayerNorm(epsilon=1e-5, name="ln_1")(x))
            return x + MLP(name="mlp")(nn.LayerNorm(epsilon=1e-5, name="ln_2")(x))

    class GPT2(nn.Module):
        def setup(self):
            self.wte = nn.Embed(cfg.vocab, cfg.width, embedding_init=init)
            self.wpe = nn.Embed(cfg.context, cfg.width,
                                embedding_init=nn.initializers.normal(cfg.init_std / 2))
            self.h = [Block(name=f"h_{i}") for i in range(cfg.layers)]
            self.ln_f = nn.LayerNorm(epsilon=1e-5)

        def hidden(self, ids):
            x = self.wte(ids) + self.wpe(jnp.arange(ids.shape[1]))[None]
            for block in self.h:
                x = block(x)
            return x

        def __call__(self, ids):
            """Every position's logits, ``[batch, seq, vocab]``."""
            return self.wte.attend(self.ln_f(self.hidden(ids)))

        def next_token(self, ids, lengths):
            """The logits after position ``lengths - 1``, ``[batch, vocab]``."""
            h = self.hidden(ids)
            last = jnp.take_along_axis(h, (lengths - 1)[:, None, None].astype(jnp.int32), axis=1)[:, 0]
            return self.wte.attend(self.ln_f(last))

    return GPT2()


def init_params(cfg: Config, seed: int = 0):
    import jax
    import jax.numpy as jnp
    model = make_model(cfg)
    ids = jnp.zeros((1, cfg.seq_len), jnp.int32)
    return model, jax.jit(model.init)(jax.random.PRNGKey(seed), ids)


def parameter_count(params) -> int:
    import jax
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))


def factory(config: str = "small", batch: int = 1, seq_len: int | None = None, seed: int = 0):
    """``(next_token_logits, params, (ids, lengths))`` for ``config`` ("small": GPT-2
    small, 124M parameters; "tiny": for tests)."""
    cfg = CONFIGS[config]
    if seq_len is not None:
        cfg = Config(**{**cfg.__dict__, "seq_len": int(seq_len)})
    model, params = init_params(cfg, seed)

    def next_token_logits(params, ids, lengths):
        return model.apply(params, ids, lengths, method="next_token")

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.vocab, size=(batch, cfg.seq_len)).astype(np.int32)
    lengths = np.full((batch,), cfg.seq_len // 2, np.int32)
    return next_token_logits, params, (ids, lengths)


if __name__ == "__main__":
    from _common import main
    sys.exit(main(factory, __doc__.splitlines()[0], configs=tuple(CONFIGS), default_config="tiny"))
