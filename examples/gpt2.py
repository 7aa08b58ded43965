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

With a KV cache (``decoder()``: two entry points over the same weights, batch and
prompt length dynamic)::

    prefill(params, ids [b, s], lengths [b]) -> {"logits": [b, vocab], "cache": ...}
    decode(params, token [b], position [b], cache) -> {"logits": [b, vocab], "cache": ...}

The cache is ``[layers, 2 (keys, values), b, cache_len, heads, head_dim]``. ``prefill``
writes the keys and values of every prompt position (padding after ``lengths`` too: a
later ``decode`` overwrites them before any query sees them) and returns the logits
after ``lengths - 1``; ``decode`` writes one token's keys and values at ``position``
(per row: prompts of different lengths decode side by side) and attends to the
positions up to it. ``stepwell export examples/gpt2.py:decoder --arg config=tiny -o out``
exports both; ``python examples/generate.py`` generates with them.
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
    cache_len: int = 0   # KV cache positions (prompt + new tokens); 0: the context


CONFIGS = {
    "small": Config(layers=12, width=768, heads=12, vocab=50257, context=1024, seq_len=128),
    "tiny": Config(layers=2, width=64, heads=4, vocab=512, context=64, seq_len=32, init_std=0.3),
}


def make_model(cfg: Config):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    init = nn.initializers.normal(cfg.init_std)
    proj_init = nn.initializers.normal(cfg.init_std / np.sqrt(2 * cfg.layers))
    heads, d = cfg.heads, cfg.width // cfg.heads

    class Attention(nn.Module):
        def setup(self):
            self.c_attn = nn.Dense(3 * cfg.width, kernel_init=init)
            self.c_proj = nn.Dense(cfg.width, kernel_init=proj_init)

        def qkv(self, x):
            b, t, c = x.shape
            q, k, v = jnp.split(self.c_attn(x).reshape(b, t, 3, heads, d), 3, axis=2)
            return q[:, :, 0], k[:, :, 0], v[:, :, 0]          # [b, t, heads, d]

        def __call__(self, x):
            """Causal self-attention; also returns the keys and values (for a cache)."""
            b, t, c = x.shape
            q, k, v = self.qkv(x)
            y = attend(q, k, v, jnp.tril(jnp.ones((t, t), bool)))
            return self.c_proj(y.reshape(b, t, c)), (k, v)

        def step(self, x, position, cache, layer: int):
            """One new token per row (``x`` [b, 1, c]) at ``position`` [b]: its keys and
            values go into the cache, its query attends to the positions up to it."""
            b, _, c = x.shape
            q, k, v = self.qkv(x)
            rows = jnp.arange(b)
            cache = cache.at[layer, 0, rows, position].set(k[:, 0])
            cache = cache.at[layer, 1, rows, position].set(v[:, 0])
            keep = jnp.arange(cache.shape[3])[None, :] <= position[:, None]   # [b, cache_len]
            y = attend(q, cache[layer, 0], cache[layer, 1], keep[:, None, None, :])
            return self.c_proj(y.reshape(b, 1, c)), cache

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.gelu(nn.Dense(4 * cfg.width, kernel_init=init, name="c_fc")(x), approximate=True)
            return nn.Dense(cfg.width, kernel_init=proj_init, name="c_proj")(h)

    class Block(nn.Module):
        def setup(self):
            self.ln_1 = nn.LayerNorm(epsilon=1e-5)
            self.attn = Attention()
            self.ln_2 = nn.LayerNorm(epsilon=1e-5)
            self.mlp = MLP()

        def __call__(self, x):
            a, kv = self.attn(self.ln_1(x))
            x = x + a
            return x + self.mlp(self.ln_2(x)), kv

        def step(self, x, position, cache, layer: int):
            a, cache = self.attn.step(self.ln_1(x), position, cache, layer)
            x = x + a
            return x + self.mlp(self.ln_2(x)), cache

    class GPT2(nn.Module):
        def setup(self):
            self.wte = nn.Embed(cfg.vocab, cfg.width, embedding_init=init)
            self.wpe = nn.Embed(cfg.context, cfg.width,
                                embedding_init=nn.initializers.normal(cfg.init_std / 2))
            self.h = [Block(name=f"h_{i}") for i in range(cfg.layers)]
            self.ln_f = nn.LayerNorm(epsilon=1e-5)

        def hidden(self, ids):
            x = self.wte(ids) + self.wpe(jnp.arange(ids.shape[1]))[None]
            kvs = []
            for block in self.h:
                x, kv = block(x)
                kvs.append(kv)
            return x, kvs

        def __call__(self, ids):
            """Every position's logits, ``[batch, seq, vocab]``."""
            return self.wte.attend(self.ln_f(self.hidden(ids)[0]))

        def last(self, h, lengths):
            """The logits after position ``lengths - 1`` of ``h`` [b, s, c]: a one-hot
            weighted sum over the positions (a gather with a batch index would stay
            StableHLO)."""
            pick = jnp.arange(h.shape[1])[None, :] == (lengths - 1)[:, None]
            return self.wte.attend(self.ln_f(jnp.einsum("bs,bsc->bc", pick.astype(h.dtype), h)))

        def next_token(self, ids, lengths):
            """The logits after position ``lengths - 1``, ``[batch, vocab]``."""
            return self.last(self.hidden(ids)[0], lengths)

        def prefill(self, ids, lengths):
            """The prompt's keys and values into a new cache, and the next logits."""
            h, kvs = self.hidden(ids)
            b, s = ids.shape
            kv = jnp.stack([jnp.stack([k, v]) for k, v in kvs])               # [L, 2, b, s, H, D]
            cache = jnp.zeros((cfg.layers, 2, b, cfg.cache_len or cfg.context, heads, d), h.dtype)
            cache = jax.lax.dynamic_update_slice(cache, kv, (0, 0, 0, 0, 0, 0))
            return {"logits": self.last(h, lengths), "cache": cache}

        def decode(self, token, position, cache):
            """One token per row at ``position``: the next logits and the updated cache."""
            x = (self.wte(token) + self.wpe(position))[:, None]                # [b, 1, c]
            for i, block in enumerate(self.h):
                x, cache = block.step(x, position, cache, i)
            return {"logits": self.wte.attend(self.ln_f(x[:, 0])), "cache": cache}

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


def decoder(config: str = "tiny", batch: int = 1, prompt_len: int | None = None,
            cache_len: int | None = None, seed: int = 0):
    """``(entry points, params, example args, export options)`` of the KV-cache decoder:
    ``prefill`` and ``decode`` (see the module docstring), batch and prompt length
    dynamic, the cache a state kept on the device. ``stepwell export`` takes it as it is."""
    import jax
    import jax.numpy as jnp
    cfg = CONFIGS[config]
    cfg = Config(**{**cfg.__dict__, "cache_len": int(cache_len or cfg.cache_len or cfg.context)})
    model, params = init_params(cfg, seed)
    s = int(prompt_len or cfg.seq_len)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.vocab, size=(batch, s)).astype(np.int32)
    lengths = np.full((batch,), s, np.int32)
    cache = jax.ShapeDtypeStruct(cache_shape(cfg, batch), jnp.float32)

    def prefill(params, ids, lengths):
        return model.apply(params, ids, lengths, method="prefill")

    def decode(params, token, position, cache):
        return model.apply(params, token, position, cache, method="decode")

    fns = {"prefill": prefill, "decode": decode}
    args = {"prefill": (ids, lengths), "decode": (ids[:, 0], lengths, cache)}
    options = {"dynamic_dims": {"prefill": ("b, s", "b"), "decode": ("b", "b", "_, _, b, _, _, _")},
               "dim_limits": {"s": cfg.cache_len}, "state": "cache", "name": f"gpt2-{config}",
               "metadata": {"decoder": {"prefill": "prefill", "decode": "decode", "vocab": cfg.vocab,
                                        "cache_len": cfg.cache_len, "state": "cache"}}}
    return fns, params, args, options


def cache_shape(cfg: Config, batch: int) -> tuple:
    return (cfg.layers, 2, batch, cfg.cache_len or cfg.context, cfg.heads, cfg.width // cfg.heads)


if __name__ == "__main__":
    from _common import main
    sys.exit(main(factory, __doc__.splitlines()[0], configs=tuple(CONFIGS), default_config="tiny"))
