"""The MoE lowerings (passes/_moe_lowering.py, passes/_linalg_moe.py) compiled by IREE,
against the ops' numpy references: every strategy on the edge cases (T = 1, k = 1,
k = E, empty experts, every token on one expert, out-of-range ids, capacities in both
priorities, no w_up, bf16, int8 expert weights through the low-precision policy).

One module per strategy holds every case as its own function (one IREE compile each).
"""

from __future__ import annotations

import numpy as np
import pytest

import stepwell as sw
from stepwell.core.pipeline import Pipeline
from stepwell.numerics import interpreter
from stepwell.numerics.testing import assert_close
from stepwell.passes import _moe_lowering as moe

D, H = 8, 12


def _ids(name, t, k, e, rng):
    """The expert ids of a case (distinct per token, like top-k's)."""
    ids = np.stack([rng.permutation(e)[:k] for _ in range(t)]).astype(np.int32)
    if name == "empty":      # experts 1 and 3 get nothing
        ids = np.stack([rng.permutation([0, 2])[:k] for _ in range(t)]).astype(np.int32)
    elif name == "one":      # every token on expert 1 (first choice), the rest spread
        ids[:, 0] = 1
        ids[:, 1] = rng.choice([0, 2, 3], t)
    elif name == "one_k1":   # every token on one expert, k = 1
        ids[:] = e - 1
    elif name == "drop":     # out-of-range ids: never read, dropped
        ids[0, 1], ids[2, 0], ids[5] = e, -1, [100, -7]
    return ids


# name: (T, k, E, w_up, activation, capacity, priority, dtype)
CASES = {
    "t1": (1, 2, 4, True, "silu", 0, "token", "f32"),
    "k1": (8, 1, 4, True, "silu", 0, "token", "f32"),
    "kE": (4, 4, 4, True, "silu", 0, "token", "f32"),
    "empty": (8, 2, 4, True, "silu", 0, "token", "f32"),
    "one": (12, 2, 4, True, "silu", 0, "token", "f32"),
    "one_k1": (9, 1, 3, True, "silu", 0, "token", "f32"),
    "drop": (6, 2, 4, True, "silu", 0, "token", "f32"),
    "cap_token": (8, 2, 4, True, "silu", 3, "token", "f32"),
    "cap_choice": (8, 2, 4, True, "silu", 3, "choice", "f32"),
    "cap_one": (12, 2, 4, True, "silu", 5, "choice", "f32"),
    "noup_gelu": (8, 2, 4, False, "gelu", 0, "token", "f32"),
    "relu_cap": (8, 2, 4, False, "relu", 2, "token", "f32"),
    "bf16": (8, 2, 4, True, "silu", 0, "token", "bf16"),
}


def _t(*shape, dtype="f32"):
    return "tensor<" + "".join(f"{d}x" for d in shape) + dtype + ">"


def _function(name, case) -> str:
    t, k, e, up, act, cap, prio, dt = case
    names = ["%x", "%w", "%ids", "%wg"] + (["%wu"] if up else []) + ["%wd"]
    types = [_t(t, D, dtype=dt), _t(t, k, dtype=dt), _t(t, k, dtype="i32"), _t(e, D, H, dtype=dt)] \
        + ([_t(e, D, H, dtype=dt)] if up else []) + [_t(e, H, D, dtype=dt)]
    out = _t(t, D, dtype=dt)
    return (f"func.func @{name}({', '.join(f'{n}: {ty}' for n, ty in zip(names, types))}) -> {out} {{\n"
            f'  %y = "nn.moe_ffn"({", ".join(names)}) {{activation = "{act}", capacity = {cap} : i64, '
            f'priority = "{prio}"}} : ({", ".join(types)}) -> {out}\n  return %y : {out}\n}}\n')


def _inputs(name, case, seed=0):
    t, k, e, up, act, cap, prio, dt = case
    rng = np.random.default_rng(seed)
    npdt = sw.TensorType((), dt).numpy_dtype()
    f = lambda *s, scale=1.0: (rng.standard_normal(s) * scale).astype(npdt)  # noqa: E731
    args = [f(t, D), rng.random((t, k)).astype(npdt), _ids(name, t, k, e, rng), f(e, D, H, scale=D ** -0.5)]
    return args + ([f(e, D, H, scale=D ** -0.5)] if up else []) + [f(e, H, D, scale=H ** -0.5)]


EXTRA = """
func.func @top_k(%x: tensor<5x6xf32>) -> (tensor<5x3xf32>, tensor<5x3xi32>) {
  %v, %i = "nn.top_k"(%x) {k = 3 : i64} : (tensor<5x6xf32>) -> (tensor<5x3xf32>, tensor<5x3xi32>)
  return %v, %i : tensor<5x3xf32>, tensor<5x3xi32>
}
func.func @grouped(%x: tensor<10x8xf32>, %w: tensor<4x8x5xf32>, %s: tensor<4xi32>) -> tensor<10x5xf32> {
  %y = "nn.grouped_matmul"(%x, %w, %s) : (tensor<10x8xf32>, tensor<4x8x5xf32>, tensor<4xi32>) -> tensor<10x5xf32>
  return %y : tensor<10x5xf32>
}
"""


def _lowered(text: str, strategy: str, precision: str = ""):
    m = sw.parse(text)
    passes = ",".join(filter(None, [precision, f"nn-canonicalize,nn-to-prim{{moe={strategy}}},prim-simplify,"
                                    "canonicalize,cse,prim-to-linalg{widen=true},canonicalize,cse"]))
    Pipeline(passes).run(m)
    return m


@pytest.fixture(scope="module", params=["slots", "tiles"])
def compiled(request):
    text = "module {\n" + "".join(_function(n, c) for n, c in CASES.items()) + EXTRA + "}\n"
    nn_module = sw.parse(text)
    linalg = _lowered(text, request.param)
    return request.param, nn_module, linalg, sw.compile(linalg, "cpu")


@pytest.mark.parametrize("name", list(CASES))
def test_strategy_matches_reference(compiled, name):
    strategy, nn_module, _, exe = compiled
    args = _inputs(name, CASES[name])
    want = interpreter.run(nn_module, *args, function=name)[0]
    got = exe.function(name)(*args)
    tol = 3e-2 if CASES[name][-1] == "bf16" else 2e-5
    assert_close(got, want, rtol=tol, atol=tol, what=f"{strategy}/{name}")
    if name == "drop":
        assert np.all(got[5] == 0)  # both ids out of range: nothing added


def test_top_k_and_grouped_matmul_compiled(compiled):
    _, nn_module, _, exe = compiled
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, (5, 6)).astype(np.float32)  # ties: the lower index first
    x[1, 2] = np.nan
    for got, want in zip(exe.function("top_k")(x), interpreter.run(nn_module, x, function="top_k")):
        np.testing.assert_array_equal(got, want)
    xg, w = rng.standard_normal((10, 8)).astype(np.float32), rng.standard_normal((4, 8, 5)).astype(np.float32)
    for sizes in ([3, 0, 5, 1], [2, 2, 2, 1], [6, 6, 0, 0], [-2, 4, 9, 9]):
        s = np.array(sizes, np.int32)
        assert_close(exe.function("grouped")(xg, w, s), interpreter.run(nn_module, xg, w, s, function="grouped")[0],
                     what=f"grouped_matmul {sizes}")


def test_layouts_are_routed_not_dense(compiled):
    """slots: batched matmuls over [E, C, *] (C the capacity or T); tiles: one matmul per
    B-row tile in a loop; the bookkeeping is a scan and a scatter (linear), no [N, N] tensor."""
    strategy, _, linalg, _ = compiled
    text = str(linalg)
    assert "iree_linalg_ext.scan" in text and "iree_linalg_ext.scatter" in text
    assert "tensor<16x16xi" not in text and "tensor<24x24xi" not in text  # N = T*k = 16, 24
    if strategy == "slots":
        assert "linalg.batch_matmul" in text and "tensor<4x3x8xf32>" in text  # E=4, C=3 (cap_token)
    else:
        assert "scf.for" in text and "linalg.batch_matmul" not in text


def test_int8_expert_weights_through_the_precision_policy():
    """nn-quantize-weights stores constant expert weights as int8 (per expert, per group);
    both strategies match the reference of the quantized module."""
    name, case = "int8", (8, 2, 4, True, "silu", 0, "token", "f32")
    args = _inputs("k1", case, seed=3)
    weights = args[3:]

    def dense(a):
        return "dense<" + np.array2string(a, separator=", ", threshold=10 ** 6, floatmode="unique").replace("\n", "") + ">"
    text = _function(name, case)
    for nm, a in zip(["%wg", "%wu", "%wd"], weights):  # the expert weights become constants
        text = text.replace(f", {nm}: {_t(*a.shape)}", "", 1)
        text = text.replace("  %y =", f"  {nm} = arith.constant {dense(a)} : {_t(*a.shape)}\n  %y =", 1)
    quantized = sw.parse(text)
    Pipeline("nn-quantize-weights{bits=8 group_size=4}").run(quantized)
    assert str(quantized).count('"nn.dequantize"') == 3 and "xi8>" in str(quantized)
    want = interpreter.run(quantized, *args[:3], function=name)[0]
    exact = interpreter.run(sw.parse(_function(name, case)), *args, function=name)[0]
    assert 0 < np.abs(want - exact).max() < 0.05 * np.abs(exact).max()  # int8 rounding, small
    for strategy in ("slots", "tiles"):
        m = _lowered(text, strategy, precision="nn-quantize-weights{bits=8 group_size=4}")
        got = sw.compile(m, "cpu").function(name)(*args[:3])
        assert_close(got, want, what=f"int8 {strategy}")


def test_strategy_rule():
    assert moe.strategy(512, 2, 8, 0) == "tiles"
    assert moe.strategy(512, 2, 8, 160) == "slots"
    assert moe.strategy(1, 2, 8, 0, forced="slots") == "slots"
    assert [moe.block_size(n, 8) for n in (2, 16, 1024, 1 << 16)] == [1, 4, 64, 64]
    assert moe.layout_rows(1024, 8, 64) == 1536 and moe.layout_rows(2, 8, 1) == 2


def test_bf16_runs_on_the_portable_target():
    """bf16 through both lowerings on cpu-generic (baseline x86-64: no native bf16)."""
    name = "bf16"
    text = "module {\n" + _function(name, CASES[name]) + "}\n"
    args = _inputs(name, CASES[name], seed=5)
    want = interpreter.run(sw.parse(text), *args, function=name)[0]
    for strategy in ("slots", "tiles"):
        from stepwell import targets
        if not targets.available("cpu-generic"):
            pytest.skip("cpu-generic cannot run here")
        got = sw.compile(_lowered(text, strategy), "cpu-generic").function(name)(*args)
        assert_close(got, want, rtol=3e-2, atol=3e-2, what=f"bf16 {strategy} on cpu-generic")
