"""nn-to-prim: every nn op decomposes into prim ops with unchanged numerics."""

import numpy as np
import pytest

import stepwell as sw
from stepwell.numerics import interpreter

from nn_cases import CASES, inputs, module


@pytest.fixture(scope="module")
def lowered():
    before = sw.parse(module())
    after = before.clone()
    sw.Pipeline("nn-to-prim").run(after)
    return before, after


def test_no_nn_op_remains(lowered):
    _, after = lowered
    assert not [n for n in after.op_counts() if n.startswith("nn.")]
    assert any(n.startswith("prim.") for n in after.op_counts())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_decomposition_matches_reference(lowered, case):
    before, after = lowered
    args = inputs(case)
    want = interpreter.run(before, *args, function=case[0])[0]
    got = interpreter.run(after, *args, function=case[0])[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=2e-5, atol=2e-5)


def test_low_precision_norm_computes_in_f32():
    m = sw.parse("""
    func.func @main(%x: tensor<2x8xbf16>, %s: tensor<8xbf16>) -> tensor<2x8xbf16> {
      %0 = "nn.rms_norm"(%x, %s) : (tensor<2x8xbf16>, tensor<8xbf16>) -> tensor<2x8xbf16>
      return %0 : tensor<2x8xbf16>
    }""")
    sw.Pipeline("nn-to-prim").run(m)
    text = str(m)
    assert "tensor<2x8xbf16>) -> tensor<2x8xf32>" in text  # cast up before reducing
    assert '"prim.reduce"' in text and "tensor<2xf32>" in text


def test_softmax_subtracts_max():
    m = sw.parse("""
    func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
      %0 = "nn.softmax"(%x) {axis = 1 : i64} : (tensor<2x8xf32>) -> tensor<2x8xf32>
      return %0 : tensor<2x8xf32>
    }""")
    sw.Pipeline("nn-to-prim").run(m)
    big = np.full((2, 8), 1000.0, np.float32)
    out = interpreter.run(m, big)[0]
    np.testing.assert_allclose(out, np.full((2, 8), 1 / 8), rtol=1e-6)
