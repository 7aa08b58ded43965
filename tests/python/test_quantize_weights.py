"""The ``nn-quantize-weights`` pass: constant weights of nn.linear/nn.matmul become int8 or
int4 ``nn.quantized_linear`` operands (scales from stepwell.quantize), on nn modules and on
models imported from JAX with their weights closed over; the compiled result equals the
dequantized model, stays close to f32 JAX, and stores its weights quantized."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import stepwell as sw
from stepwell.numerics import interpreter
from stepwell.core import quantize as qz

RNG = np.random.default_rng(0)
K, H, N = 128, 256, 64
W1 = (RNG.standard_normal((K, H)) * K ** -0.5).astype(np.float32)
B1 = (RNG.standard_normal(H) * 0.1).astype(np.float32)
W2 = (RNG.standard_normal((H, N)) * H ** -0.5).astype(np.float32)
X = RNG.standard_normal((4, K)).astype(np.float32)


def mlp(x):
    return jax.nn.gelu(x @ W1 + B1) @ W2


def mlp_numpy(x, w1, w2):
    h = x @ w1 + B1
    h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
    return h @ w2


@pytest.fixture(scope="module")
def imported():
    return sw.jax.import_function(mlp, X)


# (bits, group_size, symmetric): per-channel and per-group, symmetric and asymmetric
CONFIGS = [(8, 0, True), (8, 64, False), (4, 32, True), (4, 0, False)]


def _quantized(imported, bits, group_size, symmetric):
    m = imported.clone()
    sw.Pipeline(f"nn-quantize-weights{{bits={bits} group_size={group_size} "
                f"symmetric={'true' if symmetric else 'false'}}}").run(m)
    return m


@pytest.mark.parametrize("bits,group_size,symmetric", CONFIGS)
def test_rewrites_both_layers_with_numpy_scales(imported, bits, group_size, symmetric):
    m = _quantized(imported, bits, group_size, symmetric)
    counts = m.op_counts()
    assert counts.get("nn.quantized_linear") == 2 and "nn.linear" not in counts and "nn.matmul" not in counts
    text = str(m)
    assert "tensor<128x256xf32>" not in text and "tensor<256x64xf32>" not in text  # no float weight left
    packed = 256 // (2 if bits == 4 else 1)
    assert f"tensor<128x{packed}xi8>" in text
    # the interpreter runs exactly the dequantized model
    w1 = qz.dequantize_weight(*_operands(W1, bits, group_size, symmetric), bits, group_size)
    w2 = qz.dequantize_weight(*_operands(W2, bits, group_size, symmetric), bits, group_size)
    np.testing.assert_allclose(interpreter.run(m, X)[0], mlp_numpy(X, w1, w2), rtol=2e-5, atol=2e-5)


def _operands(w, bits, group_size, symmetric):
    return qz.quantize_weight(w, bits, group_size, symmetric)


@pytest.fixture(scope="module")
def compiled(imported):
    """f32, int8 and int4 executables of the imported MLP (one compile each)."""
    return {p: sw.compile(imported, target="cpu", precision=p) for p in ("f32", "int8", "int4")}


@pytest.mark.parametrize("policy,bits,max_rel", [("int8", 8, 2e-2), ("int4", 4, 0.25)])
def test_compiled_quantized_model(compiled, policy, bits, max_rel):
    got = compiled[policy](X)
    # equal to the dequantized model (the default group size 128 divides 128 and 256)
    w1 = qz.dequantize_weight(*_operands(W1, bits, 128, True), bits, 128)
    w2 = qz.dequantize_weight(*_operands(W2, bits, 128, True), bits, 128)
    np.testing.assert_allclose(got, mlp_numpy(X, w1, w2), rtol=1e-4, atol=1e-4)
    # and close to the f32 JAX model
    want = np.asarray(mlp(X))
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel < max_rel, rel


def test_weights_are_stored_quantized(imported, compiled):
    from stepwell.passes.nn_precision import apply_policy
    from stepwell.core.verifier import walk
    f32, int8, int4 = (len(compiled[p].vmfb) for p in ("f32", "int8", "int4"))
    weights = W1.nbytes + W2.nbytes  # 192 KiB in f32
    assert f32 - int8 > 0.7 * weights and f32 - int4 > 0.7 * weights  # no f32 weight in the module
    # the constants themselves: i8 weights (int4: two per byte), f32 scales, the f32 bias
    def constants(m):
        return sum(int(np.prod(t.shape)) * t.numpy_dtype().itemsize for t in (
            sw.TensorType.from_mlir(op.results[0].type) for op in walk(m.operation)
            if op.name == "arith.constant"))
    scales = 4 * (256 // 128 * 256 + 256 // 128 * 64 + 128 // 128 * 256)
    assert constants(apply_policy(imported, "int8")) <= weights / 4 + B1.nbytes + scales
    assert constants(apply_policy(imported, "int4")) <= weights / 8 + B1.nbytes + scales


def test_nn_module_and_unquantizable_layers():
    w_odd = RNG.standard_normal((6, 3)).astype(np.float32)
    text = f"""func.func @main(%x: tensor<2x6xf32>, %w: tensor<6x4xf32>) -> (tensor<2x3xf32>, tensor<2x4xf32>) {{
  %c = arith.constant dense<{w_odd.tolist()}> : tensor<6x3xf32>
  %0 = "nn.linear"(%x, %c) : (tensor<2x6xf32>, tensor<6x3xf32>) -> tensor<2x3xf32>
  %1 = "nn.matmul"(%x, %w) : (tensor<2x6xf32>, tensor<6x4xf32>) -> tensor<2x4xf32>
  return %0, %1 : tensor<2x3xf32>, tensor<2x4xf32>
}}"""
    m = sw.parse(text)
    # int4 needs an even out size: the 6x3 weight stays f32; the argument weight is left alone
    m4 = sw.Pipeline("nn-quantize-weights{bits=4}").run(m.clone())
    assert "nn.quantized_linear" not in m4.op_counts()
    m8 = sw.Pipeline("nn-quantize-weights{bits=8 group_size=4}").run(m.clone())  # 4 does not divide 6
    assert "nn.quantized_linear" not in m8.op_counts()
    m8 = sw.Pipeline("nn-quantize-weights{bits=8 group_size=3}").run(m.clone())
    assert m8.op_counts()["nn.quantized_linear"] == 1 and m8.op_counts()["nn.matmul"] == 1
    x, w = RNG.standard_normal((2, 6)).astype(np.float32), RNG.standard_normal((6, 4)).astype(np.float32)
    q, s, _ = qz.quantize_weight(w_odd, 8, 3)
    got = interpreter.run(m8, x, w)
    np.testing.assert_allclose(got[0], x @ qz.dequantize_weight(q, s, None, 8, 3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], x @ w, rtol=1e-5)


def test_bad_options():
    with pytest.raises(sw.StepwellError, match="bits must be 8 or 4, found 3") as e:
        sw.Pipeline("nn-quantize-weights{bits=3}").run(sw.parse("module {}"))
    assert "internal error" not in str(e.value)
    with pytest.raises(sw.StepwellError, match="option 'bits' expects int"):
        sw.Pipeline("nn-quantize-weights{bits=eight}")
