"""One regression test per bug the fuzzers found (docs/reliability.md lists them)."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stepwell as sw

# programs fuzzer, seed 1 #29: a depthwise conv whose last strided window ends before
# the padded input does failed in IREE ("inferred input/output operand #1 has shape's
# dimension #0 to be 3, but found 2"); plain and grouped convs too.
CONVS = [  # x, w, strides, padding, groups
    ((4, 2, 2, 6), (1, 2, 1, 6), (1, 2), (1, 1, 0, 1), 6),
    ((1, 8, 8, 2), (3, 3, 2, 4), (2, 2), (0, 0, 1, 1), 1),
    ((2, 7, 5, 4), (2, 2, 2, 6), (3, 2), (0, 2, 1, 1), 2),
    ((1, 6, 6, 3), (3, 1, 1, 6), (2, 3), (1, 1, 0, 2), 3),
]


def test_strided_convs_that_read_short_of_their_input():
    texts, args, want = [], [], []
    rng = np.random.default_rng(29)
    for i, (xs, ws, st, pad, g) in enumerate(CONVS):
        x, w = (rng.standard_normal(s).astype(np.float32) for s in (xs, ws))
        y = np.asarray(jax.lax.conv_general_dilated(x, w, st, [pad[:2], pad[2:]], dimension_numbers=(
            "NHWC", "HWIO", "NHWC"), feature_group_count=g))
        t = lambda s: "tensor<" + "x".join(map(str, s)) + "xf32>"  # noqa: E731
        texts.append(f"func.func @c{i}(%x: {t(xs)}, %w: {t(ws)}) -> {t(y.shape)} {{\n"
                     f'  %0 = "nn.conv2d"(%x, %w) {{strides = array<i64: {st[0]}, {st[1]}>, '
                     f"padding = array<i64: {', '.join(map(str, pad))}>, groups = {g} : i64}} : "
                     f"({t(xs)}, {t(ws)}) -> {t(y.shape)}\n  return %0 : {t(y.shape)}\n}}\n")
        args.append((x, w))
        want.append(y)
    exe = sw.compile(sw.parse("".join(texts)), target="cpu")
    for i, (a, y) in enumerate(zip(args, want)):
        np.testing.assert_allclose(exe.function(f"c{i}")(*a), y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("depth", [300, 5000])
def test_deep_nesting_is_a_located_error(tmp_path, depth):
    """text fuzzer: 5000 nested modules crashed stepwell-opt (SIGSEGV), 1000 raised a
    RecursionError (an unlocated internal error)."""
    src = tmp_path / "deep.mlir"
    src.write_text("module {\n" * depth + "}\n" * depth)
    r = subprocess.run([os.path.join(os.path.dirname(sys.executable), "stepwell-opt"), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"{src}:257:8: error: regions or attribute dictionaries nested deeper "
                               "than 256 levels"), r.stderr


def test_unlocated_iree_failure_names_the_op():
    """jax fuzzer, seed 1 #10: IREE 3.13 fails on a gather from a strided slice feeding
    a reduction with an unlocated error (LLVM translation of an
    unrealized_conversion_cast); the error now points at the op and its line."""
    def f(x):
        x = x[..., ::2]
        x = jnp.take(x, jnp.array([0, 0, 1]) % x.shape[0], axis=0)
        return jnp.sum(x, axis=-1, keepdims=True) + x

    x = np.ones((3, 4), np.float32)
    try:
        got = sw.jax.jit(f)(x)
    except sw.StepwellError as e:
        first = e.diagnostics[0]
        assert first.file == __file__ and first.line is not None, str(e)
        assert "cannot compile '" in first.message and "IREE's error names no op" in first.message
    else:  # a newer IREE compiles it: then it must be right
        np.testing.assert_allclose(got, jax.jit(f)(x), rtol=1e-6)


def test_reverse_before_a_narrowing_round_trip_keeps_the_rounding():
    """jax fuzzer, seed 17 #8: IREE 3.13 dropped the bf16 rounding of
    ``x[::-1].astype(bf16).astype(f32)`` (conversions to bf16 now round in integer ops
    before IREE: passes/stablehlo_low_float_convert.py, prim-to-linalg's convert)."""
    def f(x):
        return x[::-1].astype(jnp.bfloat16).astype(jnp.float32)

    x = np.random.default_rng(709650485).standard_normal((3, 3)).astype(np.float32)
    want = np.asarray(jax.jit(f)(x))
    for raise_ops in (True, False):
        np.testing.assert_array_equal(sw.jax.jit(f, raise_ops=raise_ops)(x), want)


BF16_ROUND_TRIPS = {  # jax fuzzer, seed 100: #12, #53, #153, #163
    "tanh-gelu-reverse": lambda x: jnp.flip(jax.nn.gelu(jnp.tanh(jnp.round(x)).astype(jnp.bfloat16)
                                                        .astype(jnp.float32)), 0),
    "flip-reverse-silu": lambda x: jnp.minimum(jax.nn.silu(jnp.flip(x, -1).astype(jnp.bfloat16)
                                                           .astype(jnp.float32)[::-1]), 0.5),
    "log1p-tile": lambda x: jnp.tile(jnp.tanh(jnp.log1p(jnp.abs(x.astype(jnp.bfloat16).astype(jnp.float32)))), 2),
    "cumprod-sqrt": lambda x: jnp.sqrt(jnp.abs(-jnp.cumprod(jnp.tanh(x), axis=-1)
                                                .astype(jnp.bfloat16).astype(jnp.float32)) + 1),
}


@pytest.mark.parametrize("name", BF16_ROUND_TRIPS)
def test_bf16_round_trips_keep_their_rounding(name):
    """IREE 3.13 lost arith.truncf's rounding to bf16 when the value was extended again
    inside some fusions; prim-to-linalg and stablehlo-low-float-convert now round in
    integer ops. Exact agreement with jax.jit (the same roundings, in f32)."""
    f = BF16_ROUND_TRIPS[name]
    x = np.random.default_rng(12).standard_normal((3, 4)).astype(np.float32)
    want = np.asarray(jax.jit(f)(x))
    for raise_ops in (True, False):
        np.testing.assert_allclose(sw.jax.jit(f, raise_ops=raise_ops)(x), want, rtol=2e-6, atol=2e-6)


SUM_OF_A_PRODUCT = """func.func @main(%x: tensor<{shape}xf32>, %s: tensor<{last}xf32>) -> tensor<{out}xf32> {{
  %0 = "nn.rms_norm"(%x, %s) {{epsilon = 1.000000e-05 : f32}} : (tensor<{shape}xf32>, tensor<{last}xf32>) -> tensor<{shape}xf32>
  %1 = "nn.reduce_sum"(%0) {{axes = array<i64: {axes}>, keepdims = true}} : (tensor<{shape}xf32>) -> tensor<{out}xf32>
  return %1 : tensor<{out}xf32>
}}
"""


@pytest.mark.parametrize("shape, axes", [((5, 1, 1, 3), (0, 1, 3)),    # seed 100 #1476
                                         ((5, 1, 3, 2), (2, 3)),       # seed 100 #4482
                                         ((4, 2, 6, 4), (0, 1, 2, 3))])  # seed 100 #5167
def test_sum_of_a_broadcast_product(shape, axes):
    """programs fuzzer: IREE 3.13 builds an invalid vector.contract for a sum over two
    or more wide axes of ``x * rsqrt(...)[row] * scale[col]`` (rms_norm, then
    reduce_sum). prim-to-linalg now sums the last wide axis first and the others in a
    second reduce; it compiles and matches a float64 numpy reference."""
    out = [1 if i in axes else d for i, d in enumerate(shape)]
    text = SUM_OF_A_PRODUCT.format(shape="x".join(map(str, shape)), last=shape[-1],
                                   out="x".join(map(str, out)), axes=", ".join(map(str, axes)))
    m = sw.parse(text, name="reduce.mlir")
    x = np.random.default_rng(1476).standard_normal(shape).astype(np.float32)
    s = np.linspace(0.5, 1.5, shape[-1], dtype=np.float32)
    got = sw.compile(m)(x, s)
    x64 = x.astype(np.float64)
    y = x64 / np.sqrt((x64 ** 2).mean(-1, keepdims=True) + 1e-5) * s
    np.testing.assert_allclose(got, y.sum(axis=axes, keepdims=True), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("raise_ops", [False, True])
def test_jax_sum_of_a_broadcast_product(raise_ops):
    """The same IREE 3.13 failure reached from JAX: ``jnp.sum(x * s)`` (plain IREE
    refuses it), also keeping a dim. ``stablehlo-split-sum`` splits the reduce before
    IREE; with raising, prim-to-linalg does. Checked against jax.jit."""
    def f(x, s):
        y = x[:, None, :] * s
        return jnp.sum(x * s), jnp.sum(y, axis=(0, 2), keepdims=True), jnp.sum(x[:, :, None] * y, axis=(1, 2))
    x = np.random.default_rng(17).standard_normal((5, 3)).astype(np.float32)
    s = np.linspace(0.5, 1.5, 3, dtype=np.float32)
    got = sw.jax.jit(f, raise_ops=raise_ops)(x, s)
    for g, w in zip(got, jax.jit(f)(x, s)):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-6)
