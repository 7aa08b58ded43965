"""stablehlo-to-nn on real JAX and Flax functions: which nn ops it recognizes, that the
raised module computes what ``jax.jit`` does (numpy interpreter; compiled for a few
batched cases), its statistics, and that what it cannot raise stays intact.
"""

from __future__ import annotations

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stepwell as sw
from stepwell.numerics import interpreter
from stepwell.passes.stablehlo_to_nn import StablehloToNn
from stepwell.numerics.testing import assert_close

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def lower(fn, *args) -> sw.Module:
    return sw.parse(jax.jit(fn).lower(*args).as_text())


def raised(fn, *args, **options):
    """(module, pass) after stablehlo-to-nn on ``fn`` lowered at ``args``."""
    m = lower(fn, *args)
    p = StablehloToNn(**options)
    p.run(m)
    m.verify()
    return m, p


def leaves(*args):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(args)]


def assert_interprets_like_jax(m, fn, *args, rtol=2e-5, atol=2e-5):
    got = interpreter.run(m, *leaves(*args))
    want = jax.tree_util.tree_leaves(jax.jit(fn)(*args))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, np.asarray(w), rtol=rtol, atol=atol, what=f"result {i}")


def flax_fn(module, *shape, perturb=True):
    """(apply fn, params, x) for a Flax module on a random input (params made non-trivial)."""
    x = rand(*shape)
    params = module.init(jax.random.PRNGKey(0), x)
    if perturb:
        params = jax.tree_util.tree_map(lambda a: a + rand(*a.shape), params)
    return (lambda p, x: module.apply(p, x)), params, x


# -- composites -----------------------------------------------------------------------------


def _dpa(**kw):
    return lambda q, k, v: jax.nn.dot_product_attention(q, k, v, **kw)


def _hand_attention(q, k, v):
    return jax.nn.softmax(q @ jnp.swapaxes(k, -1, -2) / jnp.sqrt(q.shape[-1]), axis=-1) @ v


QKV = [rand(2, 8, 4, 16) for _ in range(3)]
MASK = RNG.random((2, 4, 8, 8)) > 0.3

COMPOSITES = {
    "softmax": (lambda x: jax.nn.softmax(x, axis=-1), [rand(2, 8, 16)], {"nn.softmax": 1}),
    "softmax_axis1": (lambda x: jax.nn.softmax(x, axis=1), [rand(2, 8, 16)], {"nn.softmax": 1}),
    "gelu_tanh": (jax.nn.gelu, [rand(4, 32)], {"nn.gelu": 1}),
    "gelu_erf": (lambda x: jax.nn.gelu(x, approximate=False), [rand(4, 32)], {"nn.gelu": 1}),
    "silu": (jax.nn.silu, [rand(4, 32)], {"nn.silu": 1}),
    "sigmoid": (jax.nn.sigmoid, [rand(4, 32)], {"nn.sigmoid": 1}),
    "relu": (jax.nn.relu, [rand(4, 32)], {"nn.relu": 1}),
    "relu6": (jax.nn.relu6, [rand(4, 32)], {"nn.relu": 1}),
    "dpa": (_dpa(), QKV, {"nn.attention": 1}),
    "dpa_causal": (_dpa(is_causal=True), QKV, {"nn.attention": 1}),
    "dpa_mask": (lambda q, k, v, m: jax.nn.dot_product_attention(q, k, v, mask=m), QKV + [MASK],
                 {"nn.attention": 1}),
    "dpa_head_mask": (lambda q, k, v, m: jax.nn.dot_product_attention(q, k, v, mask=m), QKV + [MASK[:, :1]],
                      {"nn.attention": 1}),
    "dpa_scale": (_dpa(scale=0.3), QKV, {"nn.attention": 1}),
    "attention_by_hand": (_hand_attention, [rand(2, 4, 8, 16), rand(2, 4, 6, 16), rand(2, 4, 6, 8)],
                          {"nn.attention": 1}),
    "softmax_bf16": (jax.nn.softmax, [rand(2, 8, 16).astype(jnp.bfloat16)], {"nn.softmax": 1}),
    "gelu_f16": (jax.nn.gelu, [rand(4, 32).astype(np.float16)], {"nn.gelu": 1}),
    "dpa_bf16": (_dpa(), [q.astype(jnp.bfloat16) for q in QKV], {"nn.attention": 1}),
    "attention_3d": (lambda q, k, v: jax.nn.softmax(jnp.einsum("bqd,bkd->bqk", q, k) * 0.2, -1) @ v,
                     [rand(3, 5, 8), rand(3, 7, 8), rand(3, 7, 4)], {"nn.attention": 1}),
}


@pytest.mark.parametrize("name", list(COMPOSITES))
def test_composite_recognized_and_matches_jax(name):
    fn, args, expected = COMPOSITES[name]
    m, p = raised(fn, *args)
    counts = m.op_counts()
    for op, n in expected.items():
        assert counts.get(op) == n, f"{op}: {counts}"
    assert p.stats["left"] == {}, p.format_stats()
    assert p.stats["composites"] == expected
    tol = {"bf16": 5e-2, "f16": 1e-2}.get(name.rsplit("_", 1)[-1], 2e-5)
    assert_interprets_like_jax(m, fn, *args, rtol=tol, atol=tol)


@given(b=st.integers(1, 2), t=st.integers(1, 5), s=st.integers(2, 5), n=st.integers(1, 3),
       h=st.integers(1, 6), kind=st.sampled_from(["plain", "causal", "mask"]))
def test_attention_any_shape(b, t, s, n, h, kind):
    """Unit batch/head/query/dim sizes give JAX's einsums unit dims in odd places."""
    q, k, v = rand(b, t, n, h), rand(b, s, n, h), rand(b, s, n, h)
    args = [q, k, v]
    if kind == "mask":
        args.append(RNG.random((b, n, t, s)) > 0.3)
        fn = lambda q, k, v, m: jax.nn.dot_product_attention(q, k, v, mask=m)  # noqa: E731
    else:
        fn = _dpa(is_causal=kind == "causal")
    m, p = raised(fn, *args)
    assert p.stats["composites"] == {"nn.attention": 1} and p.stats["left"] == {}
    assert ("causal = true" in str(m)) == (kind == "causal" and t > 1)  # t = 1: a plain mask
    assert_interprets_like_jax(m, fn, *args)


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data())
def test_softmax_and_layer_norm_any_axis(shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    # a spread along the axis: Flax's E[x^2] - E[x]^2 cancels for near-constant rows, where
    # nn.layer_norm's (x - mean)^2 stays exact; they differ there by design
    spread = np.arange(shape[axis], dtype=np.float32).reshape([-1 if i == axis else 1 for i in range(len(shape))])
    x = rand(*shape) * 0.1 + spread
    fn = lambda x: (jax.nn.softmax(x, axis=axis),  # noqa: E731
                    fnn.LayerNorm(reduction_axes=axis, feature_axes=axis).apply(
                        {"params": {"scale": np.full(shape[axis], 1.5, np.float32),
                                    "bias": np.full(shape[axis], 0.5, np.float32)}}, x))
    m, p = raised(fn, x)
    if shape[axis] > 1:
        assert p.stats["composites"] == {"nn.softmax": 1, "nn.layer_norm": 1}, p.format_stats()
    assert p.stats["left"] == {}
    assert_interprets_like_jax(m, fn, x, rtol=1e-4, atol=1e-4)


def test_causal_attention_is_the_causal_flag():
    m, _ = raised(_dpa(is_causal=True), *QKV)
    assert '{causal = true}' in str(m)
    assert "prim.iota" not in str(m) and "nn.softmax" not in str(m)


def test_flax_causal_mask_is_the_causal_flag():
    x = rand(2, 8, 32)
    mha = fnn.MultiHeadDotProductAttention(num_heads=4)
    params = mha.init(jax.random.PRNGKey(0), x)
    fn = lambda p, x: mha.apply(p, x, mask=fnn.make_causal_mask(x[..., 0]))  # noqa: E731
    m, p = raised(fn, params, x)
    assert "causal = true" in str(m) and "prim.iota" not in str(m), str(m)
    assert_interprets_like_jax(m, fn, params, x, rtol=1e-4, atol=1e-4)


def test_attention_mask_is_passed_through():
    m, _ = raised(lambda q, k, v, mask: jax.nn.dot_product_attention(q, k, v, mask=mask), *QKV, MASK)
    att = [op for op in m.body.operations[0].regions[0].blocks[0].operations if op.name == "nn.attention"]
    assert len(att) == 1 and len(att[0].operands) == 4
    assert att[0].operands[3] == m.body.operations[0].arguments[3]


FLAX = {
    "layer_norm": (fnn.LayerNorm(), (2, 8, 16), {"nn.layer_norm": 1}),
    "layer_norm_plain": (fnn.LayerNorm(use_bias=False, use_scale=False), (2, 8, 16), {"nn.layer_norm": 1}),
    "layer_norm_axis1": (fnn.LayerNorm(reduction_axes=1, feature_axes=1), (4, 16, 3), {"nn.layer_norm": 1}),
    "rms_norm": (fnn.RMSNorm(), (2, 8, 16), {"nn.rms_norm": 1}),
    "layer_norm_bf16": (fnn.LayerNorm(dtype=jnp.bfloat16), (2, 8, 16), {"nn.layer_norm": 1}),
    "rms_norm_f16": (fnn.RMSNorm(dtype=jnp.float16), (2, 8, 16), {"nn.rms_norm": 1}),
    "dense": (fnn.Dense(16), (4, 8), {"nn.linear": 1}),
    "mha": (fnn.MultiHeadDotProductAttention(num_heads=4), (2, 8, 32), {"nn.attention": 1, "nn.linear": 4}),
}


@pytest.mark.parametrize("name", list(FLAX))
def test_flax_module_recognized_and_matches_jax(name):
    module, shape, expected = FLAX[name]
    fn, params, x = flax_fn(module, *shape)
    m, p = raised(fn, params, x)
    for op, n in expected.items():
        assert m.op_counts().get(op) == n, m.op_counts()
    assert p.stats["left"] == {}
    tol = {"bf16": 5e-2, "f16": 1e-2}.get(name.rsplit("_", 1)[-1], 1e-4)
    assert_interprets_like_jax(m, fn, params, x, rtol=tol, atol=tol)


def test_flax_conv_and_embed():
    conv, pc, xc = flax_fn(fnn.Conv(8, (3, 3), strides=(2, 2), padding="SAME"), 2, 16, 16, 3)
    m, _ = raised(conv, pc, xc)
    assert m.op_counts() == {"nn.conv2d": 1}  # the bias add folds into the conv
    assert_interprets_like_jax(m, conv, pc, xc)
    emb = fnn.Embed(100, 16)
    ids = RNG.integers(0, 100, (2, 8)).astype(np.int32)
    pe = emb.init(jax.random.PRNGKey(0), ids)
    fe = lambda p, i: emb.apply(p, i)  # noqa: E731
    m, _ = raised(fe, pe, ids)
    assert m.op_counts().get("nn.embedding") == 1
    assert_interprets_like_jax(m, fe, pe, ids)


class Block(fnn.Module):
    """A pre-norm transformer block: LayerNorm, self-attention, LayerNorm, Dense-gelu-Dense."""

    heads: int = 4

    @fnn.compact
    def __call__(self, x):
        h = fnn.LayerNorm()(x)
        x = x + fnn.MultiHeadDotProductAttention(num_heads=self.heads)(h, h)
        h = fnn.LayerNorm()(x)
        h = fnn.Dense(4 * x.shape[-1])(h)
        return x + fnn.Dense(x.shape[-1])(fnn.gelu(h))


@pytest.fixture(scope="module")
def block():
    return flax_fn(Block(), 2, 8, 32, perturb=False)


def test_transformer_block_composites(block):
    fn, params, x = block
    m, p = raised(fn, params, x)
    counts = m.op_counts()
    assert counts.get("nn.attention") == 1 or counts.get("nn.softmax") == 1, counts
    assert counts.get("nn.layer_norm") == 2 and counts.get("nn.gelu") == 1, counts
    assert counts.get("nn.attention") == 1 and counts.get("nn.linear") == 6, counts  # q, k, v, out, 2 MLP
    assert "prim.contract" not in counts and "nn.softmax" not in counts
    assert p.stats["left"] == {} and p.stats["raised"] == p.stats["total"]
    assert_interprets_like_jax(m, fn, params, x, rtol=1e-4, atol=1e-4)


# -- equal-sized dims ------------------------------------------------------------------------
# Dims of equal size must be told apart by structure (contraction letters, transpose
# permutations, broadcast positions), never by size: with seq == heads, Flax MHA's
# [b, h, q, d] -> [b, q, h, d] output transpose keeps its type, and folding it as an
# identity (fixed in 824ada6) gave errors of ~2 against JAX.

EQ_RNG = np.random.default_rng(7)  # its own stream: the cases below do not shift RNG's


def _eq_rand(*shape):
    return EQ_RNG.standard_normal(shape).astype(np.float32)


def _eq_flax(module, *inputs):
    """(apply fn, perturbed params) of a Flax module initialised on ``inputs``."""
    params = module.init(jax.random.PRNGKey(0), *inputs)
    params = jax.tree_util.tree_map(lambda a: a + _eq_rand(*a.shape), params)
    return (lambda p, *xs: module.apply(p, *xs)), params


def _assert_attention_raised(m, p, linears=4):
    counts = m.op_counts()
    assert counts.get("nn.attention") == 1 and counts.get("nn.linear") == linears, counts
    # nothing left as the primitives of attention
    assert not {"nn.softmax", "prim.contract", "nn.matmul", "prim.reduce"} & set(counts), counts
    assert p.stats["left"] == {}, p.format_stats()


# (batch, seq, heads, head_dim): each has two or more dims of one size
EQUAL_MHA = {
    "seq_eq_heads": (1, 2, 2, 8),          # the reported case (max error 1.9)
    "seq_eq_heads_4": (1, 4, 4, 4),        # ... and head_dim too
    "head_dim_eq_seq": (2, 4, 2, 4),
    "batch_eq_heads": (2, 3, 2, 5),
    "batch_eq_seq_eq_heads": (2, 2, 2, 3),
    "all_equal": (3, 3, 3, 3),
}


@pytest.mark.parametrize("name", list(EQUAL_MHA))
def test_flax_mha_equal_sizes(name):
    b, s, h, d = EQUAL_MHA[name]
    x = _eq_rand(b, s, h * d)
    fn, params = _eq_flax(fnn.MultiHeadDotProductAttention(num_heads=h), x)
    m, p = raised(fn, params, x)
    _assert_attention_raised(m, p)
    assert_interprets_like_jax(m, fn, params, x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("b,t,s,h,d", [(1, 2, 3, 2, 3), (2, 2, 2, 2, 2), (2, 3, 2, 2, 3)])
def test_flax_cross_attention_equal_sizes_with_masks(b, t, s, h, d):
    """Queries and keys of different lengths, one of them equal to the heads; a padding
    mask; and a causal self-attention mask with seq == heads."""
    xq, xk = _eq_rand(b, t, h * d), _eq_rand(b, s, h * d)
    mha = fnn.MultiHeadDotProductAttention(num_heads=h)
    fn, params = _eq_flax(mha, xq, xk)
    m, p = raised(fn, params, xq, xk)
    _assert_attention_raised(m, p)
    assert_interprets_like_jax(m, fn, params, xq, xk, rtol=1e-4, atol=1e-4)
    mask = np.asarray(fnn.make_attention_mask(_eq_rand(b, t) > -0.5, _eq_rand(b, s) > -0.5))
    masked = lambda p, xq, xk, mask: mha.apply(p, xq, xk, mask=mask)  # noqa: E731
    m, p = raised(masked, params, xq, xk, mask)
    assert m.op_counts().get("nn.attention") == 1 and "nn.softmax" not in m.op_counts(), m.op_counts()
    assert_interprets_like_jax(m, masked, params, xq, xk, mask, rtol=1e-4, atol=1e-4)
    causal = lambda p, x: mha.apply(p, x, mask=fnn.make_causal_mask(x[..., 0]))  # noqa: E731
    m, p = raised(causal, params, xq)
    assert "causal = true" in str(m) and "nn.softmax" not in m.op_counts(), m.op_counts()
    assert_interprets_like_jax(m, causal, params, xq, rtol=1e-4, atol=1e-4)


# (batch, q len, kv len, heads, head_dim) for jax.nn.dot_product_attention ([b, s, n, h])
@pytest.mark.parametrize("shape", [(1, 2, 2, 2, 5), (2, 3, 3, 2, 3), (2, 2, 2, 2, 2), (3, 2, 4, 3, 4)])
def test_dot_product_attention_equal_sizes(shape):
    b, t, s, n, h = shape
    q, k, v = _eq_rand(b, t, n, h), _eq_rand(b, s, n, h), _eq_rand(b, s, n, h)
    mask = EQ_RNG.random((b, n, t, s)) > 0.3
    for fn, args in [(_dpa(), [q, k, v]), (_dpa(scale=0.3), [q, k, v]),
                     (lambda q, k, v, m: jax.nn.dot_product_attention(q, k, v, mask=m), [q, k, v, mask])]:
        m, p = raised(fn, *args)
        assert p.stats["composites"] == {"nn.attention": 1} and p.stats["left"] == {}, p.format_stats()
        assert_interprets_like_jax(m, fn, *args)


# einsum layouts of attention (the Flax one, heads-major, seq-major, keys pre-transposed)
# with batch == seq == heads
ATTENTION_LAYOUTS = [("bqhd,bkhd->bhqk", "bhqk,bkhd->bqhd"), ("bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd"),
                     ("bqhd,bkhd->bhkq", "bhkq,bkhd->bqhd"), ("qbhd,kbhd->bhqk", "bhqk,kbhd->qbhd"),
                     ("bqhd,bhdk->bhqk", "bhqk,bhkd->bhqd")]


@pytest.mark.parametrize("scores,out", ATTENTION_LAYOUTS)
def test_attention_einsum_layouts_equal_sizes(scores, out):
    sizes = {"b": 2, "q": 2, "k": 2, "h": 2, "d": 3}
    (ql, kl), vl = scores.split("->")[0].split(","), out.split("->")[0].split(",")[1]
    q, k, v = (_eq_rand(*[sizes[c] for c in spec]) for spec in (ql, kl, vl))
    axis = scores.split("->")[1].index("k")
    fn = lambda q, k, v: jnp.einsum(out, jax.nn.softmax(jnp.einsum(scores, q, k) * 0.3, axis=axis), v)  # noqa: E731
    m, p = raised(fn, q, k, v)
    assert p.stats["composites"] == {"nn.attention": 1} and p.stats["left"] == {}, p.format_stats()
    assert_interprets_like_jax(m, fn, q, k, v)


def test_square_transposes_are_kept():
    """A transpose of equal-sized dims keeps its type but still moves data."""
    fn = lambda x, y: (jnp.swapaxes(x, 1, 2) * 2.0, x.T + y, jnp.einsum("bqhd->bhqd", x) @ y)  # noqa: E731
    x, y = _eq_rand(2, 2, 2, 2), _eq_rand(2, 2, 2, 2)
    m, p = raised(fn, x, y)
    assert m.op_counts().get("prim.transpose", 0) >= 2, m.op_counts()
    assert_interprets_like_jax(m, fn, x, y)


def _spread(*shape, axis):
    """Small random values plus a centred ramp along ``axis``: no near-constant rows and
    means near 0 (where Flax's E[x^2] - E[x]^2 cancels, nn.layer_norm, exact, differs
    from it by design)."""
    axis %= len(shape)
    ramp = 2 * np.arange(shape[axis], dtype=np.float32) - (shape[axis] - 1)
    return _eq_rand(*shape) * 0.25 + ramp.reshape([-1 if i == axis else 1 for i in range(len(shape))])


# norms over one of several equal-sized dims, with per-feature scale and bias
@pytest.mark.parametrize("shape,axis", [((4, 4), -1), ((4, 4), 0), ((3, 3, 3), -1), ((3, 3, 3), 1),
                                        ((3, 3, 3), 0), ((2, 2, 2, 2), 2)])
def test_layer_norm_equal_sizes(shape, axis):
    x = _spread(*shape, axis=axis)
    fn, params = _eq_flax(fnn.LayerNorm(reduction_axes=axis, feature_axes=axis), x)
    m, p = raised(fn, params, x)
    assert p.stats["composites"] == {"nn.layer_norm": 1} and p.stats["left"] == {}, p.format_stats()
    assert f"axis = {axis % len(shape)} : i64" in str(m)
    assert_interprets_like_jax(m, fn, params, x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(4, 4), (3, 3, 3), (2, 2, 2, 2)])
def test_rms_norm_equal_sizes(shape):
    x = _eq_rand(*shape)
    fn, params = _eq_flax(fnn.RMSNorm(), x)
    m, p = raised(fn, params, x)
    assert p.stats["composites"] == {"nn.rms_norm": 1} and p.stats["left"] == {}, p.format_stats()
    assert_interprets_like_jax(m, fn, params, x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 3), (2, 2, 2), (3, 3, 3)])
def test_softmax_and_gelu_equal_sizes(shape):
    x = _eq_rand(*shape)
    for axis in range(len(shape)):
        fn = lambda x: jax.nn.softmax(x, axis=axis)  # noqa: E731
        m, p = raised(fn, x)
        assert p.stats["composites"] == {"nn.softmax": 1}, p.format_stats()
        assert f"axis = {axis} : i64" in str(m)
        assert_interprets_like_jax(m, fn, x)
    fn = lambda x: (jax.nn.gelu(x), jax.nn.gelu(x, approximate=False), jax.nn.silu(x))  # noqa: E731
    m, p = raised(fn, x)
    assert p.stats["composites"] == {"nn.gelu": 2, "nn.silu": 1}, p.format_stats()
    assert_interprets_like_jax(m, fn, x)


# Dense/DenseGeneral whose features equal the rows or the input size: the bias must be
# the one broadcast along the features
DENSE_EQUAL = {
    "dense_square": (lambda: fnn.Dense(4), (4, 4)),
    "dense_3d": (lambda: fnn.Dense(3), (3, 3, 3)),
    "dense_general_features": (lambda: fnn.DenseGeneral((2, 2)), (2, 2, 4)),
    "dense_general_axes": (lambda: fnn.DenseGeneral(2, axis=(-2, -1)), (2, 2, 2)),
}


@pytest.mark.parametrize("name", list(DENSE_EQUAL))
def test_dense_equal_sizes(name):
    make, shape = DENSE_EQUAL[name]
    x = _eq_rand(*shape)
    fn, params = _eq_flax(make(), x)
    m, p = raised(fn, params, x)
    assert p.stats["composites"] == {"nn.linear": 1} and p.stats["left"] == {}, p.format_stats()
    assert_interprets_like_jax(m, fn, params, x, rtol=1e-4, atol=1e-4)


def test_conv_bias_equal_sizes():
    x = _eq_rand(2, 4, 4, 4)
    fn, params = _eq_flax(fnn.Conv(4, (3, 3)), x)
    m, _ = raised(fn, params, x)
    assert m.op_counts() == {"nn.conv2d": 1}
    assert_interprets_like_jax(m, fn, params, x, rtol=1e-4, atol=1e-4)


# -- primitive rules ---------------------------------------------------------------------------

PRIMITIVES = {
    "matmul": (lambda a, b: a @ b, [rand(2, 4, 8), rand(8, 3)], "nn.matmul"),
    "batch_matmul": (lambda a, b: a @ b, [rand(2, 4, 8), rand(2, 8, 3)], "nn.matmul"),
    "matvec": (lambda a, b: (a @ b, b @ a.T), [rand(4, 8), rand(8)], "nn.matmul"),
    "dense_general": (lambda a, b: jnp.einsum("abc,cde->abde", a, b), [rand(2, 3, 4), rand(4, 5, 6)],
                      "nn.matmul"),
    "einsum": (lambda a, b: jnp.einsum("bij,bkj->bik", a, b), [rand(2, 3, 4), rand(2, 5, 4)], "prim.contract"),
    "outer": (lambda a, b: jnp.einsum("ij,kl->ikjl", a, b), [rand(2, 3), rand(4, 5)], "prim.contract"),
    "broadcast": (lambda x, y: x + y + 2.0, [rand(4, 1), rand(3, 4, 8)], "prim.broadcast"),
    "transpose_reshape": (lambda x: x.T.reshape(2, 16), [rand(4, 8)], "prim.reshape"),
    "reductions": (lambda x: (jnp.mean(x, 0), jnp.min(x, 1), jnp.prod(x, 1), jnp.max(x), jnp.sum(x)),
                   [rand(4, 8)], "prim.reduce"),
    "int_reductions": (lambda x: (jnp.max(x, 1), jnp.min(x, 0), jnp.sum(x)),
                       [RNG.integers(-50, 50, (4, 8)).astype(np.int32)], "prim.reduce"),
    "unary": (lambda x: (jnp.exp(x), jnp.log(jnp.abs(x) + 1), jnp.tanh(x), jnp.sqrt(jnp.abs(x)),
                         jax.lax.rsqrt(jnp.abs(x) + 1), -x, jnp.sin(x), jnp.cos(x), jnp.floor(x),
                         jnp.ceil(x), jax.lax.erf(x), jnp.round(x)), [rand(4, 8)], "prim.map"),
    "binary": (lambda x, y: (x / (y + 3), jnp.abs(x) ** y, jnp.maximum(x, y), jnp.minimum(x, y),
                             jnp.fmod(x, y + 3)), [rand(4, 8), rand(4, 8)], "prim.map"),
    "compare_select": (lambda x, y: (jnp.where(x > y, x, 0.5 * y), (x == y).astype(np.int32),
                                     (x <= 0) & (y != 0)), [rand(4, 8), rand(4, 8)], "prim.map"),
    "clip": (lambda x: jnp.clip(x, -1, 1), [rand(4, 8)], "prim.map"),
    "iota_convert": (lambda x: (jnp.arange(8, dtype=np.float32) + x, x.astype(np.int32)), [rand(4, 8)],
                     "prim.iota"),
    "concat_slice_pad": (lambda x: (jnp.concatenate([x, x], 1), x[1:3, ::2], jnp.pad(x, ((1, 2), (0, 1))),
                                    jax.lax.pad(x, -1.5, ((0, 1, 0), (2, 0, 0)))), [rand(4, 8)], "prim.pad"),
    "gather_axis1": (lambda t, i: jnp.take(t, i, axis=1), [rand(16, 100), RNG.integers(0, 100, (2, 8)).astype(np.int32)],
                     "prim.gather"),
    "conv_nchw": (lambda x, w: jax.lax.conv(x, w, (1, 1), "SAME"), [rand(2, 3, 8, 8), rand(4, 3, 3, 3)],
                  "nn.conv2d"),
    "conv_grouped": (lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 2), [(1, 0), (2, 1)], rhs_dilation=(2, 1), feature_group_count=2,
        dimension_numbers=("NHWC", "HWIO", "NHWC")), [rand(2, 9, 9, 4), rand(3, 3, 2, 6)], "nn.conv2d"),
    "bf16_matmul": (lambda a, b: a @ b, [rand(4, 8).astype(jnp.bfloat16), rand(8, 4).astype(jnp.bfloat16)],
                    "nn.matmul"),
    "log_softmax": (jax.nn.log_softmax, [rand(4, 8)], "prim.reduce"),
}


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_primitive_rules_match_jax(name):
    fn, args, op = PRIMITIVES[name]
    m, p = raised(fn, *args)
    assert op in m.op_counts(), m.op_counts()
    assert p.stats["left"] == {}, p.format_stats()
    tol = 2e-2 if name.startswith("bf16") else 2e-5
    assert_interprets_like_jax(m, fn, *args, rtol=tol, atol=tol)


def test_unraised_ops_stay_intact():
    fn = lambda x: (jnp.sort(jax.nn.softmax(x)), jnp.argmax(x, 1), jnp.log1p(jnp.abs(x)),  # noqa: E731
                    jnp.cumsum(x, 0))
    x = rand(4, 8)
    m, p = raised(fn, x)
    assert p.stats["left"] == {"stablehlo.log_plus_one": 1, "stablehlo.reduce": 1, "stablehlo.sort": 1}
    assert m.op_counts().get("prim.scan") == 1  # (cumsum is raised: the MoE routing's prefix sum)
    assert p.stats["composites"] == {"nn.softmax": 1}
    text = str(m)
    # the bodies of the ops left behind are untouched StableHLO
    assert "stablehlo.compare  LT" in text or "TOTALORDER" in text
    assert "stablehlo.return" in text and "prim.map" in text


def test_unsupported_types_are_left():
    fn = lambda x: (x + x) * jnp.uint32(3)  # noqa: E731
    m, p = raised(fn, RNG.integers(0, 9, (4,)).astype(np.uint32))
    assert p.stats["raised"] == 0 and "stablehlo.add" in p.stats["left"]
    assert not any(n.startswith(("prim.", "nn.")) for n in m.op_counts())


def test_options_and_idempotence():
    fn, args = lambda x, w: jax.nn.relu(jax.nn.softmax(x) @ w), [rand(4, 8), rand(8, 3)]
    m, p = raised(fn, *args, composites=False)
    counts = m.op_counts()
    assert "nn.softmax" not in counts and "nn.relu" not in counts and counts.get("nn.matmul") == 1
    assert p.stats["composites"] == {} and p.stats["left"] == {}
    assert_interprets_like_jax(m, fn, *args)
    m, p = raised(fn, *args)
    text = str(m)
    again = StablehloToNn()
    again.run(m)
    assert str(m) == text and again.stats["total"] == 0


def test_calls_are_inlined_unless_asked():
    m, p = raised(jax.nn.silu, rand(4, 8), inline=False)  # silu is a private function
    assert m.function_names() == ["main", "silu"] and m.op_counts() == {"func.call": 1, "nn.silu": 1}
    m, p = raised(jax.nn.silu, rand(4, 8))
    assert m.op_counts() == {"nn.silu": 1}


# -- statistics ------------------------------------------------------------------------------


def test_stats_and_report():
    fn = lambda x, w: (jnp.sort(jax.nn.gelu(x @ w)), jax.nn.softmax(x), jax.nn.softmax(x, 0))  # noqa: E731
    m = lower(fn, rand(4, 8), rand(8, 8))
    before = sw.raising.report(m)
    assert before.total is None and before.composites == {} and sum(before.left.values()) > 20
    r = sw.raising.raise_stablehlo(m)
    assert r.composites == {"nn.softmax": 2, "nn.gelu": 1}
    assert r.left == {"stablehlo.sort": 1} and r.raised == r.total - 1
    assert str(r) == (f"raised {r.raised} of {r.total} StableHLO ops (3 composites: nn.softmax x2, "
                      "nn.gelu x1); left: stablehlo.sort x1")
    after = sw.raising.report(m)
    assert after.left == {"stablehlo.sort": 1} and after.composites == r.composites


def test_cli_stats(tmp_path, capsys):
    from stepwell.tools import opt
    src = tmp_path / "in.mlir"
    src.write_text(jax.jit(lambda x: (jnp.sort(x), jax.nn.relu(x))).lower(rand(4, 8)).as_text())
    assert opt.main([str(src), "--stablehlo-to-nn", "--stats", "-o", str(tmp_path / "out.mlir")]) == 0
    err = capsys.readouterr().err
    assert "stablehlo-to-nn: raised 4 of 5 StableHLO ops (1 composites: nn.relu x1); " \
           "left: stablehlo.sort x1" in err
    assert '"nn.relu"' in (tmp_path / "out.mlir").read_text()


def test_pass_is_listed_with_its_options():
    from stepwell.tools import opt
    text = opt.list_passes()
    assert "stablehlo-to-nn" in text and "composites: bool = true" in text and "inline: bool = true" in text
    assert str(StablehloToNn(composites=False)) == "stablehlo-to-nn{composites=false}"


# -- compiled ------------------------------------------------------------------------------------


def _many(x, w, q, k, v, img, kern, table, ids):
    """Many patterns in one function: one IREE compile checks them all."""
    y = jax.nn.gelu(x @ w)
    return (jax.nn.softmax(y, axis=-1), jax.nn.silu(y), jax.nn.gelu(y, approximate=False),
            jax.nn.dot_product_attention(q, k, v, is_causal=True),
            jax.lax.conv_general_dilated(img, kern, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")),
            table[ids], jnp.sort(y, axis=0))


def _many_args():
    return [rand(4, 8), rand(8, 16), *[rand(2, 8, 4, 16) for _ in range(3)], rand(2, 8, 8, 3),
            rand(3, 3, 3, 4), rand(50, 16), RNG.integers(0, 50, (2, 5)).astype(np.int32)]


def test_compiled_matches_jax():
    args = _many_args()
    m, p = raised(_many, *args)
    assert p.stats["left"] == {"stablehlo.sort": 1}  # a mixed module: IREE takes the rest
    assert {"nn.softmax", "nn.silu", "nn.gelu", "nn.attention", "nn.conv2d", "nn.embedding"} <= set(m.op_counts())
    exe = sw.compile(m, target="cpu")
    got = exe(*args)
    want = jax.jit(_many)(*args)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4, what=f"result {i}")


def test_compiled_transformer_block(block):
    fn, params, x = block
    m, _ = raised(fn, params, x)
    got = sw.compile(m, target="cpu")(*leaves(params, x))
    got = got[0] if isinstance(got, (list, tuple)) else got
    assert_close(np.asarray(got), np.asarray(jax.jit(fn)(params, x)), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMPOSITES) + list(PRIMITIVES))
def test_each_pattern_compiled(name):
    fn, args, _ = COMPOSITES.get(name) or PRIMITIVES[name]
    m, p = raised(fn, *args)
    got = sw.compile(m, target="cpu")(*leaves(*args))
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    tol = {"bf16": 5e-2, "f16": 1e-2}.get(name.rsplit("_", 1)[-1], 2e-2 if name.startswith("bf16") else 1e-4)
    for g, w in zip(got, jax.tree_util.tree_leaves(jax.jit(fn)(*args))):
        assert_close(np.asarray(g), np.asarray(w), rtol=tol, atol=tol)


def test_dynamic_shape_ops_are_raised_and_run_at_any_batch():
    from jax import export
    b = export.symbolic_shape("b")[0]
    exp = export.export(jax.jit(lambda x: jax.nn.relu(x) * 2.0))(jax.ShapeDtypeStruct((b, 8), jnp.float32))
    m = sw.parse(str(exp.mlir_module()))
    r = sw.raising.raise_stablehlo(m)
    text = str(m)
    # the dynamic broadcasts are prim.broadcast with run-time sizes; their shape computations are gone
    assert "stablehlo.dynamic_" not in text and "stepwell.shape_computation" not in text
    assert "stablehlo.concatenate" not in text and '"prim.broadcast"(%' in text
    assert not any(n.startswith("stablehlo.dynamic") for n in r.left)
    exe = sw.compile(m, target="cpu")
    for batch in (3, 5):
        x = np.random.default_rng(batch).normal(size=(batch, 8)).astype(np.float32)
        assert_close(exe(x), np.maximum(x, 0) * 2, rtol=1e-6, atol=1e-6)
