"""The MoE ops (dialects/nn_moe.py): builders round-trip through text, the verifier
rejects bad ops with located messages, and the numpy references match JAX
(``lax.top_k``, the MoE layer written densely and with capacity einsums,
``lax.ragged_dot``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stepwell as sw
from stepwell.core import opspec
from stepwell.core.ir import context, func, ir
from stepwell.core.types import TensorType
from stepwell.dialects.nn_moe import keep_mask

T = TensorType.parse


def _module(arg_types, body):
    with context(), ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            func.FuncOp.from_py_func(*[T(a).to_mlir() for a in arg_types], name="main")(body)
    return module


# -- builders round-trip ----------------------------------------------------------------------
BUILD = [
    ("top_k", ["4x8xf32"], {"k": 2}, ["4x2xf32", "4x2xi32"]),
    ("top_k-int", ["2x3x5xi32"], {"k": 5}, ["2x3x5xi32", "2x3x5xi32"]),
    ("moe_ffn", ["6x4xf32", "6x2xf32", "6x2xi32", "3x4x5xf32", "3x4x5xf32", "3x5x4xf32"], {}, ["6x4xf32"]),
    ("moe_ffn-noup", ["6x4xbf16", "6x2xbf16", "6x2xi64", "3x4x5xbf16", "3x5x4xbf16"],
     {"activation": "relu", "capacity": 3, "priority": "choice"}, ["6x4xbf16"]),
    ("grouped_matmul", ["10x4xf32", "3x4x6xf32", "3xi32"], {}, ["10x6xf32"]),
]


@pytest.mark.parametrize("case", BUILD, ids=[c[0] for c in BUILD])
def test_builder_round_trip(case):
    name, operands, attrs, results = case
    op_name = name.split("-")[0]
    module = _module(operands, lambda *args: getattr(sw.nn, op_name)(*args, **attrs))
    text = str(module)
    assert f'"nn.{op_name}"' in text
    assert "-> " + (str(T(results[0])) if len(results) == 1 else
                    "(" + ", ".join(str(T(r)) for r in results) + ")") in text
    parsed = sw.parse(text, name="built.mlir")  # verifies
    assert str(parsed) == text and str(sw.parse(str(parsed))) == text


def test_moe_ffn_binds_w_up_between_required_operands():
    spec = opspec.lookup("nn.moe_ffn")
    types = [T(t) for t in ("6x4xf32", "6x2xf32", "6x2xi32", "3x4x5xf32", "3x5x4xf32")]
    sig = spec.bind(types, {})
    assert sig.w_up is None and sig.w_down == types[4]
    sig = spec.bind(types[:4] + [T("3x4x5xf32"), types[4]], {})
    assert sig.w_up == T("3x4x5xf32") and sig.w_down == types[4]


# -- verifier: located errors -------------------------------------------------------------------
MOE_ARGS = ["6x4xf32", "6x2xf32", "6x2xi32", "3x4x5xf32", "3x4x5xf32", "3x5x4xf32"]
NEGATIVE = [
    ("top_k", ["4x3xf32"], "(tensor<4x4xf32>, tensor<4x4xi32>)", "{k = 4 : i64}",
     "k = 4 exceeds the last axis size 3 of x tensor<4x3xf32>"),
    ("top_k", ["4x3xf32"], "(tensor<4x2xf32>, tensor<4x2xf32>)", "{k = 2 : i64}",
     "result #1 type mismatch: expected tensor<4x2xi32>, found tensor<4x2xf32>"),
    ("top_k", ["4x3xf32"], "tensor<4x2xf32>", "{k = 2 : i64}", "expects 2 results, found 1"),
    ("moe_ffn", ["6x4xf32", "6x4xf32", "6x4xi32", "3x4x5xf32", "3x4x5xf32", "3x5x4xf32"], "tensor<6x4xf32>", "",
     "k = 4 choices per token exceed the 3 experts of w_gate tensor<3x4x5xf32>"),
    ("moe_ffn", MOE_ARGS[:4] + ["3x4x6xf32", "3x5x4xf32"], "tensor<6x4xf32>", "",
     "w_up tensor<3x4x6xf32> must have the shape of w_gate tensor<3x4x5xf32>"),
    ("moe_ffn", MOE_ARGS[:5] + ["2x5x4xf32"], "tensor<6x4xf32>", "",
     "w_down must be [experts, d_ff, d_model] = [3, 5, 4] to match w_gate tensor<3x4x5xf32>, found tensor<2x5x4xf32>"),
    ("moe_ffn", MOE_ARGS[:2] + ["6x2xf32"] + MOE_ARGS[3:], "tensor<6x4xf32>", "",
     "ids must have element type i32 or i64, found tensor<6x2xf32>"),
    ("moe_ffn", MOE_ARGS, "tensor<6x4xf32>", "{capacity = -1 : i64}", "capacity must be >= 0 (0: dropless), found -1"),
    ("moe_ffn", MOE_ARGS, "tensor<6x4xf32>", '{priority = "random"}',
     "attribute 'priority' must be one of 'token', 'choice', found 'random'"),
    ("moe_ffn", MOE_ARGS[:3] + ["3x4x5xf16", "3x4x5xf16", "3x5x4xf16"], "tensor<6x4xf32>", "",
     "x and the expert weights must share one float type, found tensor<6x4xf32>, "
     "tensor<3x4x5xf16>, tensor<3x5x4xf16>, tensor<3x4x5xf16>"),
    ("moe_ffn", ["6x4xbf16", "6x2xf16", "6x2xi32", "3x4x5xbf16", "3x4x5xbf16", "3x5x4xbf16"], "tensor<6x4xbf16>", "",
     "weights must have x's element type or f32, found tensor<6x2xf16>"),
    ("moe_ffn", ["6x4xf32", "5x2xf32", "5x2xi32"] + MOE_ARGS[3:], "tensor<6x4xf32>", "",
     "weights tensor<5x2xf32> and ids tensor<5x2xi32> must both be [6, k] (x tensor<6x4xf32>)"),
    ("grouped_matmul", ["10x4xf32", "3x4x6xf32", "3xf32"], "tensor<10x6xf32>", "",
     "group_sizes must have element type i32 or i64, found tensor<3xf32>"),
    ("grouped_matmul", ["10x4xf32", "3x4x6xf32", "2xi32"], "tensor<10x6xf32>", "",
     "group_sizes tensor<2xi32> must have one entry per group of w tensor<3x4x6xf32>"),
]


def _op_text(name, operands, result, attrs):
    args = ", ".join(f"%a{i}: {T(t)}" for i, t in enumerate(operands))
    results = "%r:2 = " if result.startswith("(") and result.count("tensor") == 2 else "%r = "
    return (f"func.func @f({args}) {{\n  {results}\"nn.{name}\"({', '.join(f'%a{i}' for i in range(len(operands)))})"
            f"{' ' + attrs if attrs else ''} : ({', '.join(str(T(t)) for t in operands)}) -> {result}\n  return\n}}\n")


@pytest.mark.parametrize("case", NEGATIVE, ids=[f"{c[0]}-{i}" for i, c in enumerate(NEGATIVE)])
def test_verifier_rejects_with_location(case):
    name, operands, result, attrs, message = case
    with pytest.raises(sw.VerifyError) as e:
        sw.parse(_op_text(name, operands, result, attrs), name="in.mlir")
    col = 10 if "%r:2" in _op_text(name, operands, result, attrs) else 8
    assert str(e.value) == f"in.mlir:2:{col}: error: 'nn.{name}' {message}"


def test_every_moe_op_has_cases():
    names = {s.mnemonic for s in opspec.specs("nn")} & {"top_k", "moe_ffn", "grouped_matmul"}
    assert {c[0].split("-")[0] for c in BUILD} == names == {c[0] for c in NEGATIVE}


# -- references against JAX ---------------------------------------------------------------------


def _eval(name, arrays, **attrs):
    return opspec.lookup(f"nn.{name}").evaluate(arrays, attrs)


@pytest.mark.parametrize("x", [
    np.array([[1.0, np.nan, 3.0, 3.0, -np.inf, np.inf, 0.0, -0.0]], np.float32),
    np.random.default_rng(0).integers(-3, 3, (4, 6)).astype(np.float32),  # many ties
    np.random.default_rng(1).standard_normal((2, 3, 9)).astype(np.float32),
    np.random.default_rng(2).integers(-5, 5, (5, 7)).astype(np.int32),
], ids=["nan-inf-zero", "ties", "rank3", "int"])
@pytest.mark.parametrize("k", [1, 3])
def test_top_k_matches_lax(x, k):
    values, indices = _eval("top_k", [x], k=k)
    want_v, want_i = jax.lax.top_k(jnp.asarray(x), k)
    np.testing.assert_array_equal(indices, np.asarray(want_i))
    np.testing.assert_array_equal(values, np.asarray(want_v))


def _layer(seed=0, t=16, d=8, h=12, e=4, k=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, d)).astype(np.float32)
    wr = rng.standard_normal((d, e)).astype(np.float32)
    wg, wu = ((rng.standard_normal((e, d, h)) / np.sqrt(d)).astype(np.float32) for _ in range(2))
    wd = (rng.standard_normal((e, h, d)) / np.sqrt(h)).astype(np.float32)
    vals, ids = jax.lax.top_k(jnp.asarray(x @ wr), k)
    return x, np.asarray(jax.nn.softmax(vals, axis=-1)), np.asarray(ids), wg, wu, wd


def _dense_jax(x, w, ids, wg, wu, wd, act=jax.nn.silu):
    """Every expert on every token, combined with one-hot weights (the dense form)."""
    comb = jnp.sum(jax.nn.one_hot(ids, wg.shape[0]) * w[..., None], axis=1)
    g, u = jnp.einsum("td,edh->teh", x, wg), jnp.einsum("td,edh->teh", x, wu)
    return jnp.einsum("ted,te->td", jnp.einsum("teh,ehd->ted", act(g) * u, wd), comb)


def _capacity_jax(x, w, ids, wg, wu, wd, c, priority):
    """The Switch/MaxText capacity einsums; choice priority counts first choices first."""
    t, k = ids.shape
    e = wg.shape[0]
    order = ids if priority == "token" else ids.T
    oh = jax.nn.one_hot(order.reshape(-1), e, dtype=jnp.int32)
    pos = jnp.sum((jnp.cumsum(oh, axis=0) - 1) * oh, axis=1).reshape(order.shape)
    pos = pos if priority == "token" else pos.T
    keep = (pos < c).astype(x.dtype)
    oh_e, oh_c = jax.nn.one_hot(ids, e), jax.nn.one_hot(pos, c)
    combine = jnp.einsum("tk,tke,tkc->tec", w * keep, oh_e, oh_c)
    dispatch = jnp.einsum("tke,tkc->tec", oh_e * keep[..., None], oh_c)
    xe = jnp.einsum("td,tec->ecd", x, dispatch)
    ye = jnp.einsum("ech,ehd->ecd", jax.nn.silu(jnp.einsum("ecd,edh->ech", xe, wg)) * jnp.einsum("ecd,edh->ech", xe, wu), wd)
    return jnp.einsum("ecd,tec->td", ye, combine)


def test_moe_ffn_dropless_matches_the_dense_jax_layer():
    args = _layer()
    got = _eval("moe_ffn", list(args))[0]
    np.testing.assert_allclose(got, np.asarray(_dense_jax(*args)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("priority", ["token", "choice"])
def test_moe_ffn_capacity_matches_the_capacity_einsums(priority):
    args = _layer(seed=1, t=24, e=4)
    ids = args[2]
    assert (~keep_mask(ids, 4, 5, priority)).sum() > 0  # some assignments are dropped
    got = _eval("moe_ffn", list(args), capacity=5, priority=priority)[0]
    np.testing.assert_allclose(got, np.asarray(_capacity_jax(*args, 5, priority)), rtol=1e-5, atol=1e-5)


def test_choice_priority_keeps_first_choices_first():
    ids = np.array([[0, 1], [1, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(keep_mask(ids, 2, 2, "token"), [[1, 1], [1, 1], [0, 0], [0, 0]])
    # first choices in token order (t0 e0, t1 e1, t2 e0; t3 e0 is full), then t0 e1; the rest is full
    np.testing.assert_array_equal(keep_mask(ids, 2, 2, "choice"), [[1, 1], [1, 0], [1, 0], [0, 0]])


def test_moe_ffn_drops_out_of_range_ids():
    x, w, ids, wg, wu, wd = _layer(seed=2, t=6)
    bad = ids.copy()
    bad[0, 1], bad[3, 0], bad[5, :] = 4, -1, [99, -7]
    got = _eval("moe_ffn", [x, w, bad, wg, wu, wd])[0]
    # an out-of-range id contributes nothing: the same as a zero routing weight
    w0 = np.where((bad >= 0) & (bad < 4), w, 0).astype(np.float32)
    want = np.asarray(_dense_jax(x, w0, np.clip(bad, 0, 3), wg, wu, wd))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[5], 0)


def test_moe_ffn_without_w_up_and_activations():
    x, w, ids, wg, wu, wd = _layer(seed=3)
    for name, act in (("relu", jax.nn.relu), ("gelu", lambda v: jax.nn.gelu(v, approximate=False)),
                      ("gelu_tanh", lambda v: jax.nn.gelu(v, approximate=True))):
        got = _eval("moe_ffn", [x, w, ids, wg, None, wd], activation=name)[0]
        comb = jnp.sum(jax.nn.one_hot(ids, 4) * w[..., None], axis=1)
        want = jnp.einsum("ted,te->td", jnp.einsum("teh,ehd->ted", act(jnp.einsum("td,edh->teh", x, wg)), wd), comb)
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("sizes", [[3, 0, 4, 2], [1, 2, 1, 0], [5, 5, 5, 5], [0, 0, 0, 9]],
                         ids=["exact", "short", "over", "one-group"])
def test_grouped_matmul_matches_ragged_dot(sizes):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 5)).astype(np.float32)
    w = rng.standard_normal((4, 5, 3)).astype(np.float32)
    sizes = np.array(sizes, np.int32)
    got = _eval("grouped_matmul", [x, w, sizes])[0]
    np.testing.assert_allclose(got, np.asarray(jax.lax.ragged_dot(x, w, sizes)), rtol=1e-5, atol=1e-5)


def test_bad_input_is_a_located_error_on_the_command_line(tmp_path):
    """k > E from the CLI: one located error, exit 1, no traceback, no output file; and a
    dynamic token count, which the layouts cannot size, fails the lowering likewise."""
    import subprocess
    import sys
    out = tmp_path / "out.vmfb"
    bad = tmp_path / "bad.mlir"
    bad.write_text(_op_text("moe_ffn", ["6x4xf32", "6x4xf32", "6x4xi32"] + MOE_ARGS[3:], "tensor<6x4xf32>", ""))
    dyn = tmp_path / "dyn.mlir"
    dyn.write_text("func.func @f(%x: tensor<?x4xf32>, %w: tensor<?x2xf32>, %i: tensor<?x2xi32>, "
                   "%wg: tensor<3x4x5xf32>, %wd: tensor<3x5x4xf32>) -> tensor<?x4xf32> {\n"
                   '  %y = "nn.moe_ffn"(%x, %w, %i, %wg, %wd) : (tensor<?x4xf32>, tensor<?x2xf32>, tensor<?x2xi32>, '
                   "tensor<3x4x5xf32>, tensor<3x5x4xf32>) -> tensor<?x4xf32>\n  return %y : tensor<?x4xf32>\n}\n")
    for path, message in ((bad, "'nn.moe_ffn' k = 4 choices per token exceed the 3 experts"),
                          (dyn, "'nn.moe_ffn' needs static shapes to be lowered, found tensor<?x4xf32>")):
        r = subprocess.run([sys.executable, "-m", "stepwell.tools.main", "compile", str(path), "-o", str(out)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and f"{path}:2:" in r.stderr and message in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and not out.exists()
