"""A Mixtral-style decoder in Flax: mixture-of-experts FFNs (8 experts, top-2, SwiGLU).

    python examples/mixtral.py --config tiny --steps 12   # export (f32, int8), generate in a fresh process
    stepwell export examples/mixtral.py:factory --arg config=tiny -o out/mixtral-tiny
    python examples/generate.py --model out/mixtral-tiny --prompt 5,17,30 --steps 8

The architecture follows Mixtral's: RMSNorm pre-normalization, causal multi-head
attention with rotary position embeddings, and in every block a sparse MoE FFN: a
router scores the token for each of 8 experts, the top 2 are kept and their scores
softmax-normalized, and each chosen expert is a SwiGLU FFN
``(silu(x @ w_gate[e]) * (x @ w_up[e])) @ w_down[e]``. The layer is written the way
MaxText's dense path writes it (every expert on every token, the top-2 weights
scattered into the combine weights), which is what JAX code usually looks like;
stepwell raises it to ``nn.moe_ffn`` and runs only the chosen experts (docs/moe.md).
Weights are random with a fixed seed; ``stepwell.checkpoints.load`` fills the same
pytree from a checkpoint.

The exported function is ``next_token_logits(params, ids, lengths)`` as in
``gpt2.py``: a fixed-length token buffer and the number of real tokens per row
(``examples/generate.py`` drives it). Run as a script, this file exports the model
twice, with f32 weights and with int8 ones (``quantize="int8"``: the linear layers and
the stacked expert weights), generates greedily with each in a fresh process (stepwell
and numpy only) and compares the tokens with JAX's, for int8 with JAX running the same
int8-rounded weights.
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
    experts: int = 8
    top_k: int = 2
    hidden: int = 128       # each expert's SwiGLU width
    init_std: float = 0.3   # large enough that the tiny model's random text varies


CONFIGS = {
    "small": Config(layers=4, width=256, heads=8, vocab=2048, seq_len=64, hidden=512, init_std=0.1),
    "tiny": Config(layers=2, width=64, heads=4, vocab=256, seq_len=24, hidden=96),
}


def rotary(x, seq: int):
    """Rotary position embeddings on ``[batch, seq, heads, head_dim]`` (rotating halves)."""
    import jax.numpy as jnp
    d = x.shape[-1]
    freq = 1.0 / (10000.0 ** (np.arange(0, d, 2, dtype=np.float32) / d))
    angle = np.arange(seq, dtype=np.float32)[:, None] * freq[None]
    cos, sin = (np.concatenate([f(angle)] * 2, axis=-1)[None, :, None, :] for f in (np.cos, np.sin))
    half = jnp.concatenate([-x[..., d // 2:], x[..., :d // 2]], axis=-1)
    return x * cos + half * sin


def make_model(cfg: Config):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    init = nn.initializers.normal(cfg.init_std)
    out_init = nn.initializers.normal(cfg.init_std / np.sqrt(2 * cfg.layers))

    class Attention(nn.Module):
        @nn.compact
        def __call__(self, x):
            b, t, c = x.shape
            d = c // cfg.heads
            q, k, v = (nn.Dense(c, use_bias=False, kernel_init=init, name=n)(x).reshape(b, t, cfg.heads, d)
                       for n in ("wq", "wk", "wv"))
            y = attend(rotary(q, t), rotary(k, t), v, jnp.tril(jnp.ones((t, t), bool)))
            return nn.Dense(c, use_bias=False, kernel_init=out_init, name="wo")(y.reshape(b, t, c))

    class SparseMoE(nn.Module):
        """Top-k routing over SwiGLU experts, written densely (MaxText's dense path)."""

        @nn.compact
        def __call__(self, x):
            b, t, c = x.shape
            e, h = cfg.experts, cfg.hidden
            router = self.param("router", init, (c, e))
            w_gate = self.param("w_gate", init, (e, c, h))
            w_up = self.param("w_up", init, (e, c, h))
            w_down = self.param("w_down", out_init, (e, h, c))
            xs = x.reshape(b * t, c)
            scores, ids = jax.lax.top_k(xs @ router, cfg.top_k)
            weights = jax.nn.softmax(scores, axis=-1)
            combine = jnp.zeros((b * t, e), x.dtype).at[jnp.arange(b * t)[:, None], ids].set(weights)
            g, u = jnp.einsum("td,edh->teh", xs, w_gate), jnp.einsum("td,edh->teh", xs, w_up)
            y = jnp.einsum("teh,ehd->ted", jax.nn.silu(g) * u, w_down)
            return jnp.einsum("ted,te->td", y, combine).reshape(b, t, c)

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = x + Attention(name="attn")(nn.RMSNorm(epsilon=1e-5, name="attn_norm")(x))
            return x + SparseMoE(name="moe")(nn.RMSNorm(epsilon=1e-5, name="moe_norm")(x))

    class Mixtral(nn.Module):
        def setup(self):
            self.embed = nn.Embed(cfg.vocab, cfg.width, embedding_init=init)
            self.blocks = [Block(name=f"block_{i}") for i in range(cfg.layers)]
            self.norm = nn.RMSNorm(epsilon=1e-5)
            self.lm_head = nn.Dense(cfg.vocab, use_bias=False, kernel_init=init)

        def hidden(self, ids):
            x = self.embed(ids)
            for block in self.blocks:
                x = block(x)
            return x

        def __call__(self, ids):
            """Every position's logits, ``[batch, seq, vocab]``."""
            return self.lm_head(self.norm(self.hidden(ids)))

        def next_token(self, ids, lengths):
            """The logits after position ``lengths - 1``, ``[batch, vocab]``."""
            h = self.hidden(ids)
            last = jnp.take_along_axis(h, (lengths - 1)[:, None, None].astype(jnp.int32), axis=1)[:, 0]
            return self.lm_head(self.norm(last))

    return Mixtral()


def factory(config: str = "small", batch: int = 1, seed: int = 0):
    """``(next_token_logits, params, (ids, lengths))`` for ``config`` ("small", "tiny")."""
    import jax
    import jax.numpy as jnp
    cfg = CONFIGS[config]
    model = make_model(cfg)
    params = jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros((1, cfg.seq_len), jnp.int32))

    def next_token_logits(params, ids, lengths):
        return model.apply(params, ids, lengths, method="next_token")

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.vocab, size=(batch, cfg.seq_len)).astype(np.int32)
    lengths = np.full((batch,), cfg.seq_len // 2, np.int32)
    return next_token_logits, params, (ids, lengths)


def int8_params(params, manifest: dict):
    """``params`` with every weight the export quantized replaced by its int8 rounding
    (the values the exported model computes with), for a JAX reference."""
    import jax

    from stepwell.core import quantize as qz
    q = manifest.get("quantization") or {}
    done = {w["name"]: w for w in q.get("weights", [])}

    def rounded(path, leaf):
        w = done.get("/".join(str(getattr(k, "key", k)) for k in path))
        if w is None:
            return leaf
        a = np.asarray(leaf, np.float32)
        axis = 1 if a.ndim == 3 else 0
        s, z = qz.compute_scales(a.T if w["transposed"] else a, q["bits"], w["group_size"], axis, q["symmetric"])
        r = qz.dequantize(qz.quantize(a.T if w["transposed"] else a, s, z, q["bits"], w["group_size"], axis),
                          s, z, q["bits"], w["group_size"], axis)
        return (r.T if w["transposed"] else r).astype(a.dtype)
    return jax.tree_util.tree_map_with_path(rounded, params)


def main() -> int:
    import argparse
    import tempfile
    import time

    import recompute_generate as generate

    import stepwell as sw
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", choices=tuple(CONFIGS))
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--out", help="a folder to keep the exports in (default: a temporary one)")
    a = p.parse_args()
    cfg = CONFIGS[a.config]
    fn, params, (ids, lengths) = factory(config=a.config)
    prompt = np.random.default_rng(42).integers(0, cfg.vocab, 6).tolist()
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        for quantize in (None, "int8"):
            label = quantize or "f32"
            folder = os.path.join(a.out or tmp, f"mixtral-{a.config}-{label}")
            t = time.perf_counter()
            manifest = sw.jax.export(fn, params, ids, lengths, path=folder, quantize=quantize)
            print(f"[{label}] exported in {time.perf_counter() - t:.1f} s: "
                  f"{manifest['parameter_bytes'] / 1e6:.2f} MB of weights")
            ours = generate.generate_fresh(folder, prompt, a.steps)
            ref = params if quantize is None else int8_params(params, manifest)
            theirs = generate.generate_jax(fn, ref, prompt, a.steps, cfg.seq_len)
            print(f"[{label}] stepwell (fresh process): {ours}\n[{label}] JAX:                      {theirs}")
            same = same and ours == theirs
    print("same tokens" if same else "the tokens differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
