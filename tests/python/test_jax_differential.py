"""Differential suite: jax.numpy / jax.lax / jax.nn functions and Flax linen modules run
through ``sw.jax.jit`` and compared with ``jax.jit`` (``sw.testing.assert_matches_jax``,
the per-dtype tolerance table), with StableHLO raised to ``nn`` (``raise_ops=True``, once
the ``stablehlo-to-nn`` pass is installed; plain StableHLO before) and without it.

Every distinct (function, shapes, raise_ops) is one IREE compile (0.5-3 s on 2 cores),
so the default run keeps to ~35 of them: each function once with raising, a few also
without, a handful of hypothesis-drawn shapes (2 examples per property under the
``ci`` profile), and the Flax modules once. ``-m slow`` runs everything both ways
and more examples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import stepwell as sw
from stepwell.numerics.testing import assert_matches_jax

slow = pytest.mark.slow


def _examples(ci: int, slow_run: bool = False):
    """Hypothesis settings: ``ci`` examples under the (default) ci profile, the profile's
    own count under ``dev``, at least 6 in the slow variants."""
    profile = settings.default.max_examples
    n = profile if profile > 10 else (max(ci, 6) if slow_run else ci)
    return settings(max_examples=n)


def _arrays(seed: int, *specs):
    """Random arrays for ``specs``: a shape tuple (f32) or ``(shape, dtype, high)`` (ints)."""
    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        if len(spec) == 3 and isinstance(spec[0], tuple):
            shape, dtype, high = spec
            out.append(rng.integers(0, high, size=shape).astype(dtype))
        else:
            out.append(rng.standard_normal(spec).astype(np.float32))
    return out


# ---------------------------------------------------------------------------
# jax.numpy / jax.lax / jax.nn functions at fixed small shapes.
def _layer_norm(x, g, b):
    mean = x.mean(-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * g + b


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_strided(x, w):
    return jax.lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (0, 1)), rhs_dilation=(1, 2),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _shapes(a, b):
    t = jnp.transpose(a, (1, 0)).reshape(2, 16)
    return jnp.concatenate([t, b.reshape(2, 16), t[:, ::2].reshape(2, 8, 1).squeeze(-1)], axis=1)


CASES = {
    # name: (function, argument specs, also run with raise_ops=False by default)
    "matmul": (lambda a, b: a @ b, [(4, 8), (8, 16)], True),
    "batched_matmul": (jnp.matmul, [(2, 4, 8), (2, 8, 5)], False),
    "einsum": (lambda q, k: jnp.einsum("bhqd,bhkd->bhqk", q, k), [(1, 2, 4, 8), (1, 2, 6, 8)], False),
    "elementwise": (lambda a, b: jnp.exp(a) * jnp.tanh(b) - jnp.maximum(a, b) / (1 + jnp.abs(b)),
                    [(4, 8), (4, 8)], False),
    "broadcasting": (lambda a, b: (a + b) * 2.0 - b, [(4, 8), (8,)], False),
    "reductions": (lambda a: (a.sum(0), a.mean(-1), a.max(1), jnp.min(a), jnp.var(a, 0)), [(4, 8)], False),
    "softmax": (lambda a: jax.nn.softmax(a, axis=-1), [(4, 16)], True),
    "gelu_tanh": (lambda a: jax.nn.gelu(a, approximate=True), [(4, 16)], False),
    "gelu_erf": (lambda a: jax.nn.gelu(a, approximate=False), [(4, 16)], False),
    "silu": (jax.nn.silu, [(4, 16)], False),
    "layer_norm": (_layer_norm, [(4, 16), (16,), (16,)], False),
    "conv": (_conv, [(1, 8, 8, 3), (3, 3, 3, 4)], True),
    "attention": (lambda q, k, v: jax.nn.dot_product_attention(q, k, v),
                  [(1, 8, 2, 4), (1, 8, 2, 4), (1, 8, 2, 4)], True),
    "shapes": (_shapes, [(4, 8), (4, 8)], False),
    "where_compare": (lambda a, b: jnp.where(a > b, a, b * 2) + (a <= 0).astype(jnp.float32),
                      [(4, 8), (4, 8)], False),
    "iota": (lambda a: a * jnp.arange(8, dtype=jnp.float32)
             + jax.lax.broadcasted_iota(jnp.float32, (4, 8), 0), [(4, 8)], False),
    "embedding": (lambda table, ids: jnp.take(table, ids, axis=0), [(10, 4), ((6,), np.int32, 10)], False),
}

# Further cases, only in the slow run.
SLOW_CASES = {
    "unary_math": (lambda a: (jnp.sin(a), jnp.log1p(jnp.abs(a)), jnp.sqrt(jnp.abs(a)), jax.nn.sigmoid(a),
                              jnp.cos(a), jnp.floor(a)), [(4, 8)]),
    "log_softmax": (lambda a: jax.nn.log_softmax(a, axis=0), [(6, 5)]),
    "relu6_clip": (lambda a: jnp.clip(jax.nn.relu6(a * 4), 1.0, 5.0), [(4, 8)]),
    "conv_strided_dilated": (_conv_strided, [(1, 9, 9, 2), (3, 2, 2, 3)]),
    "attention_causal": (lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True),
                         [(2, 8, 2, 4), (2, 8, 2, 4), (2, 8, 2, 4)]),
    "attention_masked": (lambda q, k, v, m: jax.nn.dot_product_attention(q, k, v, mask=m > 0),
                         [(1, 6, 2, 4), (1, 6, 2, 4), (1, 6, 2, 4), (1, 2, 6, 6)]),
    "int_arith": (lambda a, b: (a * b + 3, a // (b + 1), jnp.maximum(a, b)),
                  [((6,), np.int32, 9), ((6,), np.int32, 9)]),
    "cumsum_argmax": (lambda a: (jnp.cumsum(a, 0), jnp.argmax(a, -1)), [(4, 8)]),
    "rms_norm": (lambda x, g: x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6) * g,
                 [(3, 16), (16,)]),
}


def _fixed_params():
    out = []
    for name, (_, _, both) in CASES.items():
        out.append(pytest.param(name, True, id=f"{name}-raise"))
        out.append(pytest.param(name, False, id=f"{name}-stablehlo", marks=() if both else slow))
    return out


@pytest.mark.parametrize("name, raise_ops", _fixed_params())
def test_function(name, raise_ops):
    fn, specs, _ = CASES[name]
    assert_matches_jax(fn, *_arrays(len(name), *specs), raise_ops=raise_ops)


@slow
@pytest.mark.parametrize("raise_ops", [True, False], ids=["raise", "stablehlo"])
@pytest.mark.parametrize("name", list(SLOW_CASES))
def test_function_slow(name, raise_ops):
    fn, specs = SLOW_CASES[name]
    assert_matches_jax(fn, *_arrays(len(name), *specs), raise_ops=raise_ops)


def test_raising_finds_the_composites():
    """What sw.jax.jit compiles for these is nn, not StableHLO (no compile here)."""
    for name, op in [("softmax", "nn.softmax"), ("gelu_erf", "nn.gelu"), ("gelu_tanh", "nn.gelu"),
                     ("silu", "nn.silu"), ("attention", "nn.attention"), ("conv", "nn.conv2d")]:
        fn, specs, _ = CASES[name]
        m = sw.jax.jit(fn).lower(*_arrays(0, *specs))
        assert op in m.op_counts(), (name, m.op_counts())


# ---------------------------------------------------------------------------
# Shapes drawn with hypothesis.
dims = st.integers(1, 12)


def _matmul_property(raise_ops):
    @given(m=dims, k=dims, n=dims, batch=st.sampled_from([(), (2,)]))
    def prop(m, k, n, batch):
        a, b = _arrays(m * 100 + k * 10 + n, (*batch, m, k), (k, n))
        assert_matches_jax(jnp.matmul, a, b, raise_ops=raise_ops)
    return prop


def _broadcast_property(raise_ops):
    @given(shape=st.lists(dims, min_size=1, max_size=3), drop=st.integers(0, 2))
    def prop(shape, drop):
        # the second operand is a suffix of the first's shape (numpy broadcasting)
        a, b = _arrays(sum(shape), tuple(shape), tuple(shape[min(drop, len(shape) - 1):]))
        assert_matches_jax(lambda x, y: jax.nn.gelu(x * y + x, approximate=False), a, b, raise_ops=raise_ops)
    return prop


def _softmax_norm_property(raise_ops):
    @given(rows=dims, cols=st.integers(2, 24))
    def prop(rows, cols):
        x, g, b = _arrays(rows * cols, (rows, cols), (cols,), (cols,))
        assert_matches_jax(lambda x, g, b: (jax.nn.softmax(x, axis=-1), _layer_norm(x, g, b)),
                           x, g, b, raise_ops=raise_ops)
    return prop


PROPERTIES = {"matmul": _matmul_property, "broadcast_gelu": _broadcast_property,
              "softmax_layer_norm": _softmax_norm_property}


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property(name):
    _examples(2)(PROPERTIES[name](True))()


@slow
@pytest.mark.parametrize("raise_ops", [True, False], ids=["raise", "stablehlo"])
@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property_slow(name, raise_ops):
    _examples(6, slow_run=True)(PROPERTIES[name](raise_ops))()


# ---------------------------------------------------------------------------
# Flax linen modules.
try:
    import flax.linen as nn
except ImportError:  # the test extra is not installed: those tests skip
    nn = None

needs_flax = pytest.mark.skipif(nn is None, reason="flax is not installed (pip install -e '.[test]')")

if nn is not None:
    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(32)(x))
            return nn.Dense(8)(x)

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(8, (3, 3))(x))
            x = nn.avg_pool(x, (2, 2), (2, 2))
            x = nn.relu(nn.Conv(8, (3, 3), strides=2)(x))
            return nn.Dense(10)(x.reshape(x.shape[0], -1))

    class TransformerBlock(nn.Module):
        heads: int = 2

        @nn.compact
        def __call__(self, x):
            h = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(h, h)
            h = nn.LayerNorm()(x)
            h = nn.Dense(x.shape[-1])(nn.gelu(nn.Dense(4 * x.shape[-1])(h)))
            return x + h

    class SelfAttention(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.MultiHeadDotProductAttention(num_heads=2)(x, x)


FLAX = {
    "Dense": (lambda: nn.Dense(16), (4, 8)),
    "Conv": (lambda: nn.Conv(4, (3, 3)), (1, 8, 8, 3)),
    "LayerNorm": (lambda: nn.LayerNorm(), (4, 16)),
    "RMSNorm": (lambda: nn.RMSNorm(), (4, 16)),
    "MultiHeadDotProductAttention": (lambda: SelfAttention(), (2, 6, 16)),
    "MLP": (lambda: MLP(), (4, 16)),
    "CNN": (lambda: CNN(), (2, 16, 16, 3)),
    "TransformerBlock": (lambda: TransformerBlock(), (2, 8, 16)),
}


def _flax_case(name):
    make, shape = FLAX[name]
    module = make()
    (x,) = _arrays(len(name), shape)
    params = module.init(jax.random.key(0), x)
    return module, params, x


@needs_flax
@pytest.mark.parametrize("raise_ops", [True, pytest.param(False, marks=slow)], ids=["raise", "stablehlo"])
@pytest.mark.parametrize("name", list(FLAX))
def test_flax_module(name, raise_ops):
    module, params, x = _flax_case(name)
    assert_matches_jax(module.apply, params, x, raise_ops=raise_ops)


@slow
@needs_flax
@given(batch=st.integers(1, 3), seq=st.integers(2, 9))
@example(batch=1, seq=2)  # seq == heads: the attention output transpose keeps its type
@_examples(2, slow_run=True)
def test_flax_transformer_block_shapes(batch, seq):
    module = TransformerBlock()
    (x,) = _arrays(batch * seq, (batch, seq, 16))
    params = module.init(jax.random.key(1), x)
    assert_matches_jax(module.apply, params, x)
