"""Raising MoE code from JAX (passes/_stablehlo_moe.py, _stablehlo_moe_layers.py):
``chlo.top_k``/``chlo.ragged_dot`` and their composites, ``jax.lax.ragged_dot``'s masked
CPU form, and the dense and capacity-einsum MoE layers become ``nn`` ops; the results
match ``jax.jit``. The layers of several formulations share one function, so one IREE
compile checks them all."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import stepwell as sw
from stepwell.numerics.testing import assert_close

T, D, H, E, K = 16, 8, 12, 4, 2


def _params(seed=0, t=T):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, D)).astype(np.float32)
    wr = rng.standard_normal((D, E)).astype(np.float32)
    wg, wu = (rng.standard_normal((E, D, H)).astype(np.float32) * np.float32(D ** -0.5) for _ in range(2))
    wd = rng.standard_normal((E, H, D)).astype(np.float32) * np.float32(H ** -0.5)
    return x, wr, wg, wu, wd


def _route(x, wr, sigmoid=False):
    vals, ids = jax.lax.top_k(x @ wr, K)
    return (jax.nn.sigmoid(vals) if sigmoid else jax.nn.softmax(vals, axis=-1)), ids


def _experts(x, wg, wu, wd):
    g, u = jnp.einsum("td,edh->teh", x, wg), jnp.einsum("td,edh->teh", x, wu)
    return jnp.einsum("teh,ehd->ted", jax.nn.silu(g) * u, wd)


def dense_scatter(x, wr, wg, wu, wd):
    """MaxText's dense path: combine weights by a scatter of the top-k weights."""
    w, ids = _route(x, wr)
    comb = jnp.zeros((x.shape[0], E), x.dtype).at[jnp.arange(x.shape[0])[:, None], ids].set(w)
    return jnp.einsum("ted,te->td", _experts(x, wg, wu, wd), comb)


def dense_onehot(x, wr, wg, wu, wd):
    """Combine weights as a one-hot sum; a sigmoid router; experts without w_up (gelu)."""
    w, ids = _route(x, wr, sigmoid=True)
    comb = jnp.sum(jax.nn.one_hot(ids, E, dtype=x.dtype) * w[..., None], axis=1)
    y = jnp.einsum("teh,ehd->ted", jax.nn.gelu(jnp.einsum("td,edh->teh", x, wg)), wd)
    return jnp.einsum("ted,te->td", y, comb)


def _capacity(x, wr, wg, wu, wd, c, priority):
    w, ids = _route(x, wr)
    order = ids if priority == "token" else ids.T
    oh = jax.nn.one_hot(order.reshape(-1), E, dtype=jnp.int32)
    pos = jnp.sum((jnp.cumsum(oh, axis=0) - 1) * oh, axis=1).reshape(order.shape)
    pos = pos if priority == "token" else pos.T
    keep = (pos < c).astype(x.dtype)
    oh_e, oh_c = jax.nn.one_hot(ids, E, dtype=x.dtype), jax.nn.one_hot(pos, c, dtype=x.dtype)
    combine = jnp.einsum("tk,tke,tkc->tec", w * keep, oh_e, oh_c)
    dispatch = jnp.einsum("tke,tkc->tec", oh_e * keep[..., None], oh_c)
    xe = jnp.einsum("td,tec->ecd", x, dispatch)
    ye = jnp.einsum("ech,ehd->ecd", jax.nn.silu(jnp.einsum("ecd,edh->ech", xe, wg))
                    * jnp.einsum("ecd,edh->ech", xe, wu), wd)
    return jnp.einsum("ecd,tec->td", ye, combine)


def capacity_token(x, wr, wg, wu, wd):
    return _capacity(x, wr, wg, wu, wd, 5, "token")


def capacity_choice(x, wr, wg, wu, wd):
    return _capacity(x, wr, wg, wu, wd, 5, "choice")


def sparse_ragged(x, wr, wg, wu, wd):
    """MaxText's sparse path: sort by expert, jax.lax.ragged_dot (masked on CPU), unsort."""
    w, ids = _route(x, wr)
    flat = ids.reshape(-1)
    order = jnp.argsort(flat)
    xs = jnp.take(x, order // K, axis=0)
    sizes = jnp.bincount(flat, length=E).astype(jnp.int32)
    h = jax.nn.silu(jax.lax.ragged_dot(xs, wg, sizes)) * jax.lax.ragged_dot(xs, wu, sizes)
    ys = jnp.take(jax.lax.ragged_dot(h, wd, sizes), jnp.argsort(order), axis=0).reshape(x.shape[0], K, -1)
    return jnp.einsum("tkd,tk->td", ys, w)


def not_a_moe(x, wr, wg, wu, wd):
    """A combine that is not a routing (an added constant): stays dense, still correct."""
    w, ids = _route(x, wr)
    comb = jnp.sum(jax.nn.one_hot(ids, E, dtype=x.dtype) * w[..., None], axis=1) + 0.125
    return jnp.einsum("ted,te->td", _experts(x, wg, wu, wd), comb)


LAYERS = [dense_scatter, dense_onehot, capacity_token, capacity_choice, sparse_ragged, not_a_moe]


def all_layers(*args):
    return tuple(f(*args) for f in LAYERS)


@pytest.fixture(scope="module")
def raised():
    args = _params()
    return args, sw.jax.import_function(all_layers, *args)


def test_layers_raise_to_moe_ops(raised):
    _, m = raised
    text = str(m)
    moe = [line for line in text.splitlines() if '"nn.moe_ffn"' in line]
    assert len(moe) == 4, text  # dense_scatter, dense_onehot, capacity_token, capacity_choice
    assert sum('activation = "gelu_tanh"' in line for line in moe) == 1  # jax.nn.gelu's default
    assert sum('capacity = 5 : i64, priority = "token"' in line for line in moe) == 1
    assert sum('capacity = 5 : i64, priority = "choice"' in line for line in moe) == 1
    assert text.count('"nn.grouped_matmul"') == 3  # the three ragged dots of sparse_ragged
    assert "nn.top_k" in text and "chlo.top_k" not in text
    assert m.raise_report.composites.get("nn.moe_ffn") == 4


def test_raised_layers_match_jax(raised):
    args, m = raised
    got = sw.compile(m, "cpu")(*args)
    want = jax.jit(all_layers)(*args)
    for f, g, w in zip(LAYERS, got, want):
        assert_close(g, np.asarray(w), rtol=2e-5, atol=2e-5, what=f.__name__)


def test_top_k_forms_raise():
    x = np.random.default_rng(1).integers(-2, 3, (6, 5)).astype(np.float32)  # ties
    f = lambda x: jax.lax.top_k(x, 3)  # noqa: E731
    texts = {"chlo.top_k": jax.jit(f).lower(x).as_text(),
             "composite": export.export(jax.jit(f))(x).mlir_module()}
    assert 'stablehlo.composite "chlo.top_k"' in texts["composite"]
    for form, text in texts.items():
        m = sw.parse(text)
        sw.raising.raise_stablehlo(m)
        assert '"nn.top_k"' in str(m) and "chlo" not in str(m) and "top_k.impl" not in str(m), form
        got = sw.compile(m, "cpu")(x)
        for g, w in zip(got, jax.jit(f)(x)):
            np.testing.assert_array_equal(g, np.asarray(w), err_msg=form)


def test_ragged_dot_forms_raise():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((9, 4)).astype(np.float32), rng.standard_normal((3, 4, 5)).astype(np.float32)
    sizes = np.array([2, 0, 4], np.int32)  # rows 6..8 in no group
    f = lambda x, w, s: jax.lax.ragged_dot(x, w, s)  # noqa: E731
    texts = {"chlo.ragged_dot": jax.jit(f).trace(x, w, sizes).lower(lowering_platforms=("cuda",)).as_text(),
             "composite": export.export(jax.jit(f), platforms=["cuda"])(x, w, sizes).mlir_module(),
             "masked (CPU)": jax.jit(f).lower(x, w, sizes).as_text()}
    want = np.asarray(jax.jit(f)(x, w, sizes))
    for form, text in texts.items():
        m = sw.parse(text)
        sw.raising.raise_stablehlo(m)
        assert '"nn.grouped_matmul"(%arg0, %arg1, %arg2)' in str(m) and "chlo" not in str(m), form
        assert_close(sw.compile(m, "cpu")(x, w, sizes), want, what=form)


def test_cumsum_is_a_scan():
    x = np.arange(12, dtype=np.int32).reshape(4, 3)
    m = sw.jax.import_function(lambda a: jnp.cumsum(a, axis=0), x)
    assert '"prim.scan"(%arg0) {axis = 0 : i64}' in str(m) and "reduce_window" not in str(m)


def test_capacity_dispatch_einsum_compiles():
    """Regression: through sw.jax.jit, the dispatch einsum "td,tec->ecd" of one-hot
    products failed in IREE ("large vector sizes ... vector<8x8x8xf32>"): its two
    row dimensions became one linalg.generic; they are now a matmul."""
    rng = np.random.default_rng(3)
    t, e, c, d = 64, 8, 20, 32
    x = rng.standard_normal((t, d)).astype(np.float32)
    ids, pos = rng.integers(0, e, (t, K)).astype(np.int32), rng.integers(0, c, (t, K)).astype(np.int32)

    def dispatch(x, ids, pos):
        return jnp.einsum("td,tec->ecd", x, jnp.einsum("tke,tkc->tec", jax.nn.one_hot(ids, e), jax.nn.one_hot(pos, c)))
    got = sw.jax.jit(dispatch)(x, ids, pos)
    assert_close(np.asarray(got), np.asarray(jax.jit(dispatch)(x, ids, pos)), what="dispatch einsum")


def test_capacity_layer_at_the_failing_size_compiles():
    """The capacity layer at the size that failed (T=64, E=8, C=20), raised and not."""
    x, wr, wg, wu, wd = _params(seed=4, t=64)
    c = math.ceil(64 * K / E * 1.25)

    def layer(*a):
        return _capacity(*a, c, "token")
    want = np.asarray(jax.jit(layer)(x, wr, wg, wu, wd))
    for raise_ops in (True, False):
        got = sw.jax.jit(layer, raise_ops=raise_ops)(x, wr, wg, wu, wd)
        assert_close(np.asarray(got), want, rtol=2e-5, atol=2e-5, what=f"raise_ops={raise_ops}")


def test_combines_that_only_agree_on_distinct_ids_stay_dense():
    """A max over the choices equals their sum for distinct ids but not for repeated
    ones, which nn.moe_ffn sums: the probing routings tell them apart; T = 1 raises."""
    def max_combine(x, wr, wg, wu, wd):
        w, ids = _route(x, wr)
        comb = jnp.max(jax.nn.one_hot(ids, E, dtype=x.dtype) * w[..., None], axis=1)
        return jnp.einsum("ted,te->td", _experts(x, wg, wu, wd), comb)
    assert '"nn.moe_ffn"' not in str(sw.jax.import_function(max_combine, *_params()))
    assert str(sw.jax.import_function(dense_scatter, *_params(t=1))).count('"nn.moe_ffn"') == 1
