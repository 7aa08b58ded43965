"""A BERT-style encoder in Flax with mean pooling: sentence embeddings.

    python examples/bert.py [--config tiny|base]
    stepwell export examples/bert.py:factory --arg config=tiny -o out/bert --dynamic-batch

BERT's architecture: word, position and token-type embeddings, LayerNorm, then
post-LayerNorm encoder layers (bidirectional multi-head attention that ignores padding,
a GELU MLP), and a mean over the real tokens (``attention_mask``) as the embedding.
``base`` is BERT-base (12 layers, 768 wide, 12 heads, vocabulary 30522, 110M
parameters); ``tiny`` is for tests. Weights are random with a fixed seed.

The exported function is ``embed(params, input_ids, attention_mask) -> [batch, width]``.
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
    positions: int = 512


CONFIGS = {
    "base": Config(layers=12, width=768, heads=12, vocab=30522, positions=512, seq_len=128),
    "tiny": Config(layers=2, width=64, heads=4, vocab=1000, positions=64, seq_len=16),
}


def make_model(cfg: Config):
    import flax.linen as nn
    import jax.numpy as jnp

    init = nn.initializers.normal(0.02)

    class Layer(nn.Module):
        @nn.compact
        def __call__(self, x, mask):
            b, t, c = x.shape
            d = c // cfg.heads
            q, k, v = (nn.Dense(c, kernel_init=init, name=n)(x).reshape(b, t, cfg.heads, d)
                       for n in ("query", "key", "value"))
            y = attend(q, k, v, mask[:, None, None, :] > 0).reshape(b, t, c)
            x = nn.LayerNorm(epsilon=1e-12, name="attention_norm")(
                x + nn.Dense(c, kernel_init=init, name="attention_out")(y))
            h = nn.gelu(nn.Dense(4 * c, kernel_init=init, name="intermediate")(x), approximate=False)
            return nn.LayerNorm(epsilon=1e-12, name="output_norm")(
                x + nn.Dense(c, kernel_init=init, name="output")(h))

    class Bert(nn.Module):
        @nn.compact
        def __call__(self, ids, mask):
            t = ids.shape[1]
            x = (nn.Embed(cfg.vocab, cfg.width, embedding_init=init, name="word_embeddings")(ids)
                 + nn.Embed(cfg.positions, cfg.width, embedding_init=init,
                            name="position_embeddings")(jnp.arange(t))[None]
                 + nn.Embed(2, cfg.width, embedding_init=init,
                            name="token_type_embeddings")(jnp.zeros_like(ids)))
            x = nn.LayerNorm(epsilon=1e-12, name="embeddings_norm")(x)
            for i in range(cfg.layers):
                x = Layer(name=f"layer_{i}")(x, mask)
            m = mask.astype(x.dtype)[:, :, None]
            return (x * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1.0)   # mean pooling

    return Bert()


def factory(config: str = "tiny", batch: int = 2, seed: int = 0):
    """``(embed, params, (input_ids, attention_mask))``; the example batch has a padded row."""
    import jax

    cfg = CONFIGS[config]
    model = make_model(cfg)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.vocab, size=(batch, cfg.seq_len)).astype(np.int32)
    mask = np.ones((batch, cfg.seq_len), np.int32)
    mask[-1, cfg.seq_len // 2:] = 0   # the last sentence is half padding
    ids[mask == 0] = 0
    params = jax.jit(model.init)(jax.random.PRNGKey(seed), ids, mask)

    def embed(params, input_ids, attention_mask):
        return model.apply(params, input_ids, attention_mask)

    return embed, params, (ids, mask)


if __name__ == "__main__":
    from _common import main
    sys.exit(main(factory, __doc__.splitlines()[0], configs=tuple(CONFIGS)))
