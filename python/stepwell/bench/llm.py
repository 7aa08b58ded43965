"""LLM inference workloads: GPT-2 prefill and decode with a KV cache (``gpt2_prefill_b1``,
``gpt2_prefill_b8``, ``gpt2_decode_b1``, ``gpt2_decode_b8``).

The model is the suite's GPT-2 (``workloads.gpt2_params``: separate q/k/v projections,
tied output embedding) written once in JAX with a cache, exactly as
``examples/gpt2.py:decoder`` lays it out: ``prefill(params, ids, lengths)`` and
``decode(params, token, position, cache)`` return ``{"logits", "cache"}``, the cache
``[layers, 2, batch, prompt + new, heads, head_dim]``. The same functions run under
``jax.jit`` (the cache donated, so XLA updates it in place) and through
``sw.jax.export`` (f32, int8 and int4 weights; the cache a device state updated in
place), and ``next_logits(params, ids, lengths)`` is the model without a cache.

One call of a prefill workload runs the ``prompt``-token prompts of the batch (tokens/s
= batch x prompt / time); one call of a decode workload is one decode step whose
attention covers the whole cache of ``prompt + new`` positions (tokens/s = batch /
time), against which "no cache" runs the whole ``prompt + new``-token context.
The share of the memory-bandwidth limit is (the bytes a call must read: every weight
matrix once, plus the cache) / (the probe's bandwidth) over the measured time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stepwell.bench.workloads import GPT2Config, Workload, _GPT2_LAYER, _layer_norm_jax, _rng, gpt2_params


@dataclass(frozen=True)
class LLM:
    cfg: GPT2Config          # layers, width, heads, vocab, positions
    prompt: int              # prompt tokens
    new: int                 # new tokens: the cache holds prompt + new positions

    @property
    def cache_len(self) -> int:
        return self.prompt + self.new

    @property
    def head_dim(self) -> int:
        return self.cfg.width // self.cfg.heads

    def cache_shape(self, batch: int) -> tuple:
        c = self.cfg
        return (c.layers, 2, batch, self.cache_len, c.heads, self.head_dim)

    def cache_bytes(self, batch: int) -> int:
        return 4 * math.prod(self.cache_shape(batch))


def _attend(q, k, v, keep):
    """softmax(q k^T / sqrt(d), masked) v on [b, t, heads, d]."""
    import jax
    import jax.numpy as jnp
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.float32(math.sqrt(q.shape[-1]))
    scores = jnp.where(keep, scores, jnp.finfo(scores.dtype).min)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)


def functions(m: LLM):
    """``(prefill, decode, next_logits)``: JAX functions of ``(params, ...)``."""
    import jax
    import jax.numpy as jnp
    c = m.cfg
    nh, hd = c.heads, m.head_dim

    def layer(params, i):
        return dict(zip(_GPT2_LAYER, params[2 + 16 * i:2 + 16 * (i + 1)]))

    def qkv(p, h):
        b, t, _ = h.shape
        return [(h @ p[w] + p[bias]).reshape(b, t, nh, hd) for w, bias in (("wq", "bq"), ("wk", "bk"),
                                                                           ("wv", "bv"))]

    def rest(p, x, a):
        b, t, _ = x.shape
        x = x + a.reshape(b, t, nh * hd) @ p["wo"] + p["bo"]
        h = _layer_norm_jax(x, p["ln2_s"], p["ln2_b"])
        return x + jax.nn.gelu(h @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def head(params, x):
        return _layer_norm_jax(x, params[-2], params[-1]) @ params[0].T

    def run(params, ids):
        wte, wpe = params[0], params[1]
        t = ids.shape[1]
        x = wte[ids] + wpe[jnp.arange(t)][None]
        kvs = []
        for i in range(c.layers):
            p = layer(params, i)
            q, k, v = qkv(p, _layer_norm_jax(x, p["ln1_s"], p["ln1_b"]))
            kvs.append(jnp.stack([k, v]))
            x = rest(p, x, _attend(q, k, v, jnp.tril(jnp.ones((t, t), bool))))
        return x, kvs

    def last(x, lengths):
        pick = jnp.arange(x.shape[1])[None, :] == (lengths - 1)[:, None]
        return jnp.einsum("bs,bsc->bc", pick.astype(x.dtype), x)

    def next_logits(params, ids, lengths):
        return head(params, last(run(params, ids)[0], lengths))

    def prefill(params, ids, lengths):
        x, kvs = run(params, ids)
        cache = jnp.zeros(m.cache_shape(ids.shape[0]), x.dtype)
        cache = jax.lax.dynamic_update_slice(cache, jnp.stack(kvs), (0, 0, 0, 0, 0, 0))
        return {"logits": head(params, last(x, lengths)), "cache": cache}

    def decode(params, token, position, cache):
        wte, wpe = params[0], params[1]
        b = token.shape[0]
        rows = jnp.arange(b)
        x = (wte[token] + wpe[position])[:, None]
        keep = (jnp.arange(m.cache_len)[None, :] <= position[:, None])[:, None, None, :]
        for i in range(c.layers):
            p = layer(params, i)
            q, k, v = qkv(p, _layer_norm_jax(x, p["ln1_s"], p["ln1_b"]))
            cache = cache.at[i, 0, rows, position].set(k[:, 0])
            cache = cache.at[i, 1, rows, position].set(v[:, 0])
            x = rest(p, x, _attend(q, cache[i, 0], cache[i, 1], keep))
        return {"logits": head(params, x[:, 0]), "cache": cache}

    return prefill, decode, next_logits


def export_options(m: LLM) -> dict:
    """``sw.jax.export`` options of the decoder (batch and prompt length dynamic; a copy of
    each entry point for batch 1, where IREE reads the weights as matrix-vector products)."""
    return {"dynamic_dims": {"prefill": ("b, s", "b"), "decode": ("b", "b", "_, _, b, _, _, _")},
            "dim_limits": {"s": m.cache_len}, "state": "cache", "specialize": {"b": [1]},
            "metadata": {"decoder": {"prefill": "prefill", "decode": "decode", "vocab": m.cfg.vocab,
                                     "cache_len": m.cache_len, "state": "cache"}}}


def inputs(m: LLM, batch: int, seed: int = 7) -> tuple:
    """The prompts ``[batch, prompt]`` and their lengths (all full)."""
    ids = _rng(seed).integers(0, m.cfg.vocab, (batch, m.prompt)).astype(np.int32)
    return ids, np.full((batch,), m.prompt, np.int32)


def weight_bytes(m: LLM, quantized_fraction: float = 1.0) -> int:
    """Bytes of the weights one token reads in full: every matrix and vector but the
    position table (the token table is read whole as the tied output projection);
    ``quantized_fraction`` scales the matrices (int8 ~0.25, int4 ~0.125 plus scales)."""
    c, d = m.cfg, m.cfg.width
    matrices = c.layers * (4 * d * d + 2 * 4 * d * d) + c.vocab * d
    vectors = c.layers * (4 * d + 4 * d + d + 4 * d) + 2 * d
    return int(4 * (matrices * quantized_fraction + vectors))


def flops(m: LLM, batch: int, tokens: int, context: int) -> float:
    """Matrix products of ``tokens`` new tokens per row attending over ``context`` keys."""
    c, d = m.cfg, m.cfg.width
    per_token = c.layers * (2 * 12 * d * d + 2 * 2 * context * d) + 2 * d * c.vocab
    return float(batch * tokens * per_token)


def configs(mode: str) -> LLM:
    if mode == "full":
        return LLM(GPT2Config(), prompt=128, new=128)
    if mode == "quick":
        return LLM(GPT2Config(layers=2), prompt=128, new=128)
    return LLM(GPT2Config(layers=1, width=32, heads=4, vocab=97, positions=32), prompt=8, new=8)


def suite(mode: str = "full") -> list[Workload]:
    """The prefill and decode workloads at batch 1 and 8 (tiny: 1 and 2)."""
    from stepwell.bench.llm_runners import llm_runners
    m = configs(mode)
    params = None
    out = []
    for kind in ("prefill", "decode"):
        for batch in ((1, 8) if mode != "tiny" else (1, 2)):
            tokens = batch * (m.prompt if kind == "prefill" else 1)
            context = m.prompt if kind == "prefill" else m.cache_len

            def make_args(batch=batch):
                nonlocal params
                params = params or gpt2_params(m.cfg)
                return [*inputs(m, batch), *params]

            out.append(Workload(
                f"gpt2_{kind}_b{batch}", "llm",
                f"GPT-2 {m.cfg.layers} layers, width {m.cfg.width}, batch {batch}, "
                + (f"{m.prompt}-token prompt" if kind == "prefill" else
                   f"one decode step over {m.cache_len} cached positions"),
                "f32", flops(m, batch, m.prompt if kind == "prefill" else 1, context), make_args,
                jax_fn=None, rtol=0.35, inputs=2, tokens=tokens, runners=llm_runners(m, kind, batch),
                notes="quantized runners differ from jax.jit by their rounding (up to ~30% of the "
                      "logits' range for int4): 'matches' uses a loose tolerance"))
    return out
