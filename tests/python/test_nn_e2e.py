"""End to end: every nn op and whole programs, compiled through IREE, against the numpy
reference semantics and JAX (tolerances: stepwell.testing). The per-op and program
tests run on every target of the ``run_target`` fixture (cpu, and vulkan on lavapipe
where it is installed: conftest.py); the drawn-shape tests run on the CPU."""

import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import stepwell as sw
from stepwell.numerics import interpreter
from stepwell.numerics.testing import assert_close

from nn_cases import CASES, inputs, module
from target_checks import missing_features, skip_unsupported

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "nn")


def _types(case) -> list[str]:
    return [*case[1], case[2]]


@pytest.fixture(scope="module")
def all_ops(run_target):
    """Every case the target supports, in one module compiled once per target."""
    m = sw.parse(module([c for c in CASES if not missing_features(run_target, _types(c))]))
    return m, sw.compile(m, target=run_target)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_nn_op_matches_reference(run_target, all_ops, case):
    skip_unsupported(run_target, _types(case), case[0])
    m, exe = all_ops
    args = inputs(case, seed=3)
    want = interpreter.run(m, *args, function=case[0])[0]
    assert_close(exe.function(case[0])(*args), want, what=case[0])


# -- hypothesis: shapes and dtypes drawn, one compiled module per example -----------
DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": jnp.bfloat16}


@st.composite
def programs(draw):
    dtype = draw(st.sampled_from(list(DTYPES)))
    m, k, n = (draw(st.integers(1, 9)) for _ in range(3))
    batch = draw(st.integers(1, 3))
    t = lambda *s: "tensor<" + "".join(f"{d}x" for d in s) + dtype + ">"  # noqa: E731
    fns = {
        "binary": (f'"nn.mul"(%0, %1) : ({t(batch, m, n)}, {t(n)}) -> {t(batch, m, n)}',
                   [(batch, m, n), (n,)], jnp.multiply),
        "matmul": (f'"nn.matmul"(%0, %1) : ({t(batch, m, k)}, {t(batch, k, n)}) -> {t(batch, m, n)}',
                   [(batch, m, k), (batch, k, n)], jnp.matmul),
        "softmax": (f'"nn.softmax"(%0) {{axis = 1 : i64}} : ({t(m, n)}) -> {t(m, n)}',
                    [(m, n)], lambda x: jax.nn.softmax(x, axis=1)),
        "gelu": (f'"nn.gelu"(%0) : ({t(m, n)}) -> {t(m, n)}', [(m, n)], jax.nn.gelu),
        "reduce": (f'"nn.reduce_sum"(%0) {{axes = array<i64: 0>}} : ({t(batch, m, n)}) -> {t(m, n)}',
                   [(batch, m, n)], lambda x: jnp.sum(x, axis=0)),
        "rms_norm": (f'"nn.rms_norm"(%0, %1) : ({t(m, n)}, {t(n)}) -> {t(m, n)}', [(m, n), (n,)],
                     lambda x, s: (x.astype(jnp.float32) * jax.lax.rsqrt(
                         jnp.mean(jnp.square(x.astype(jnp.float32)), -1, keepdims=True) + 1e-5)
                         * s.astype(jnp.float32)).astype(x.dtype)),
    }
    return dtype, fns


def _function(name, body, shapes, dtype):
    ty = lambda s: "tensor<" + "".join(f"{d}x" for d in s) + dtype + ">"  # noqa: E731
    params = ", ".join(f"%{i}: {ty(s)}" for i, s in enumerate(shapes))
    result = body.rsplit("-> ", 1)[1]
    return f"func.func @{name}({params}) -> {result} {{\n  %r = {body}\n  return %r : {result}\n}}\n"


@given(programs())
def test_drawn_shapes_and_dtypes_match_jax(program):
    dtype, fns = program
    text = "".join(_function(name, body, shapes, dtype) for name, (body, shapes, _) in fns.items())
    exe = sw.compile(sw.parse(text), target="cpu")
    rng = np.random.default_rng(0)
    for name, (_, shapes, ref) in fns.items():
        args = [rng.standard_normal(s).astype(DTYPES[dtype]) for s in shapes]
        want = np.asarray(ref(*args))
        assert_close(exe.function(name)(*args), want, what=f"{name} {dtype}")


# -- whole programs written in the nn dialect, against JAX ---------------------------
def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _layer_norm(x, s, b, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps) * s + b


def _mlp(x, w1, b1, w2, b2):
    return jax.nn.gelu(x @ w1 + b1, approximate=False) @ w2 + b2


def _cnn(x, w1, b1, w2, w3, b3):
    conv = lambda x, w, s, g: jax.lax.conv_general_dilated(  # noqa: E731
        x, w, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g)
    h = jax.nn.relu(conv(x, w1, 1, 1) + b1)
    h = jax.nn.relu(conv(h, w2, 2, 8))
    return h.mean(axis=(1, 2)) @ w3 + b3


def _attention(x, ln_s, ln_b, wq, wk, wv, wo):
    h = _layer_norm(x, ln_s, ln_b)
    heads = lambda t: t.reshape(2, 16, 4, 8).transpose(0, 2, 1, 3)  # noqa: E731
    a = jax.nn.dot_product_attention(heads(h @ wq).transpose(0, 2, 1, 3), heads(h @ wk).transpose(0, 2, 1, 3),
                                     heads(h @ wv).transpose(0, 2, 1, 3), is_causal=True)
    return x + a.reshape(2, 16, 32) @ wo


PROGRAMS = {
    "mlp": (_mlp, [(8, 32), (32, 64), (64,), (64, 16), (16,)]),
    "cnn": (_cnn, [(2, 16, 16, 3), (3, 3, 3, 8), (8,), (3, 3, 1, 8), (8, 10), (10,)]),
    "attention": (_attention, [(2, 16, 32), (32,), (32,), (32, 32), (32, 32), (32, 32), (32, 32)]),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_programs_match_jax(run_target, name):
    ref, shapes = PROGRAMS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # the same inputs in any order or run
    args = [_rand(rng, *s, scale=s[0] ** -0.5 if len(s) == 2 else 1.0) for s in shapes]
    exe = sw.compile(sw.parse_file(os.path.join(EXAMPLES, f"{name}.mlir")), target=run_target)
    got = exe(*args)
    want = np.asarray(jax.jit(ref)(*args))
    rel = np.max(np.abs(got - want)) / np.max(np.abs(want))
    assert rel < 1e-5, f"{name}: relative error {rel:.2e}"
