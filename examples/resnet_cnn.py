"""A small ResNet-style CNN (Flax, NHWC): residual blocks, batch norm, global pooling.

    python examples/resnet_cnn.py [--config tiny|small]
    stepwell export examples/resnet_cnn.py:factory --arg config=small -o out/resnet

The exported function is inference: ``BatchNorm`` reads the running statistics of
the ``batch_stats`` collection, which goes into ``params.irpa`` with the weights
(``batch_stats/...`` next to ``params/...``). Weights are random with a fixed seed,
and the running statistics are set to random values too, so they matter.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {
    # image size, channels per stage, blocks per stage, classes
    "tiny": dict(image=16, widths=(8, 16), blocks=(1, 1), classes=10),
    "small": dict(image=32, widths=(16, 32, 64), blocks=(2, 2, 2), classes=10),  # ResNet-20-like
}


def make_model(widths, blocks, classes, **_):
    import flax.linen as nn
    import jax.numpy as jnp

    class Block(nn.Module):
        width: int
        stride: int

        @nn.compact
        def __call__(self, x):
            norm = lambda: nn.BatchNorm(use_running_average=True)  # noqa: E731
            y = nn.Conv(self.width, (3, 3), strides=self.stride, use_bias=False)(x)
            y = nn.relu(norm()(y))
            y = nn.Conv(self.width, (3, 3), use_bias=False)(y)
            y = norm()(y)
            if x.shape[-1] != self.width or self.stride != 1:
                x = norm()(nn.Conv(self.width, (1, 1), strides=self.stride, use_bias=False)(x))
            return nn.relu(x + y)

    class ResNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(widths[0], (3, 3), use_bias=False)(x)
            x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
            for stage, (width, n) in enumerate(zip(widths, blocks)):
                for i in range(n):
                    x = Block(width, 2 if stage > 0 and i == 0 else 1)(x)
            x = jnp.mean(x, axis=(1, 2))
            return nn.Dense(classes)(x)

    return ResNet()


def factory(config: str = "tiny", batch: int = 2, seed: int = 0):
    """``(model.apply, {"params", "batch_stats"}, (images,))``."""
    import jax

    cfg = CONFIGS[config]
    model = make_model(**cfg)
    x = np.random.default_rng(seed).normal(size=(batch, cfg["image"], cfg["image"], 3)).astype(np.float32)
    variables = jax.jit(model.init)(jax.random.PRNGKey(seed), x)
    rng = np.random.default_rng(seed + 1)
    stats = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(np.float32),
                         variables["batch_stats"])
    # running variances must be positive
    stats = jax.tree_util.tree_map_with_path(
        lambda p, a: np.abs(a) + 0.5 if p[-1].key == "var" else 0.1 * a, stats)
    variables = {"params": variables["params"], "batch_stats": stats}
    return model.apply, variables, (x,)


if __name__ == "__main__":
    from _common import main
    sys.exit(main(factory, __doc__.splitlines()[0], configs=tuple(CONFIGS)))
