"""A Flax MLP classifier: train it, save a checkpoint, load it, export, deploy.

    python examples/mlp_classifier.py            # the whole story, ~10 s
    stepwell export examples/mlp_classifier.py:factory -o out/mlp
    stepwell export examples/mlp_classifier.py:factory --arg checkpoint=mlp.msgpack -o out/mlp

The data are ten Gaussian clusters in 64 dimensions (fixed seed), so the example
needs no download: a few hundred Adam steps reach ~100% accuracy, the weights are
saved as a Flax msgpack checkpoint, read back with ``stepwell.checkpoints``, exported
with ``sw.jax.export``, loaded with ``sw.load`` in a fresh process, and checked
against JAX (same logits, same accuracy).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FEATURES, CLASSES = 64, 10


def make_model(hidden=(128, 64)):
    import flax.linen as nn

    class MLPClassifier(nn.Module):
        hidden: tuple = (128, 64)
        classes: int = CLASSES

        @nn.compact
        def __call__(self, x):
            for width in self.hidden:
                x = nn.gelu(nn.Dense(width)(x))
            return nn.Dense(self.classes)(x)

    return MLPClassifier(hidden=tuple(hidden))


def dataset(n: int, seed: int = 0):
    """``n`` points of ten Gaussian clusters (fixed centres) and their labels."""
    centres = np.random.default_rng(1234).normal(size=(CLASSES, FEATURES)).astype(np.float32)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, size=n)
    x = centres[labels] + rng.normal(scale=1.5, size=(n, FEATURES)).astype(np.float32)
    return x.astype(np.float32), labels.astype(np.int32)


def train(model, steps: int = 300, seed: int = 0):
    """Adam on cross-entropy; returns the trained ``variables``."""
    import jax
    import jax.numpy as jnp
    import optax

    x, y = dataset(2048, seed=seed)
    variables = model.init(jax.random.PRNGKey(seed), x[:1])
    opt = optax.adam(3e-3)
    state = opt.init(variables)

    @jax.jit
    def step(variables, state, xb, yb):
        def loss(v):
            logits = model.apply(v, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        value, grads = jax.value_and_grad(loss)(variables)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(variables, updates), state, value

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.integers(0, len(x), size=128)
        variables, state, _ = step(variables, state, x[idx], y[idx])
    return variables


def factory(config: str = "tiny", checkpoint: str | None = None, batch: int = 8):
    """``(model.apply, variables, (x,))``: random weights (fixed seed),
    or the weights of ``checkpoint`` (.msgpack, .npz, .safetensors or Orbax folder)."""
    import jax

    from stepwell import checkpoints
    model = make_model()
    x, _ = dataset(batch, seed=7)
    if checkpoint is None:
        variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    else:
        template = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
        variables = checkpoints.load(checkpoint, template)
    return model.apply, variables, (x,)


def main() -> int:
    import tempfile
    import time

    import jax

    import stepwell as sw
    from _common import max_error, run_fresh
    from stepwell import checkpoints

    model = make_model()
    t = time.perf_counter()
    variables = train(model)
    print(f"trained in {time.perf_counter() - t:.1f} s")
    x_test, y_test = dataset(256, seed=99)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "mlp.msgpack")
        checkpoints.save_msgpack(ckpt, variables)
        fn, params, (x,) = factory(checkpoint=ckpt, batch=len(x_test))
        sw.jax.export(fn, params, x_test, path=os.path.join(tmp, "mlp"), dynamic_batch=True)
        (got,), (small,) = run_fresh([(os.path.join(tmp, "mlp"), [x_test]),
                                      (os.path.join(tmp, "mlp"), [x_test[:3]])])
        want = np.asarray(jax.jit(model.apply)(variables, x_test))
        print(f"max relative error against JAX: {max_error(got, want):.2e} "
              f"(batch 3 too: {max_error(small, want[:3]):.2e})")
        acc_sw = float(np.mean(np.argmax(got, -1) == y_test))
        acc_jax = float(np.mean(np.argmax(want, -1) == y_test))
        print(f"test accuracy: exported {acc_sw:.3f}, JAX {acc_jax:.3f}")
        return 0 if max_error(got, want) < 1e-4 and acc_sw == acc_jax else 1


if __name__ == "__main__":
    sys.exit(main())
