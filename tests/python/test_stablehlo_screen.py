"""The StableHLO screen is measured, not assumed (issue 17).

Every :data:`stablehlo_screen.FACTS` entry carries a probe program. Plain IREE 3.13
must fail on it (crash where the fact says so): when IREE starts compiling a probe,
its test fails and the entry must go. Look-alike programs that plain IREE compiles
and runs correctly (zero-element or power-of-two FFTs, splat or empty complex128
and i4 constants, non-overlapping select_and_scatter) must compile through stepwell
and match numpy: the screen must never accept less than the compiler it feeds.
"""

from __future__ import annotations

import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import stablehlo_screen as screen
from stepwell.core.ir import iree_tools

CPU = sw.targets.get("cpu")


def _plain_iree(text: str):
    """Plain IREE on ``text`` (no stepwell screen): None if it compiled, else the exit code."""
    try:
        iree_tools.compile_str(text, target_backends=[CPU.backend], extra_args=list(CPU.flags),
                               input_type="stablehlo")
    except iree_tools.CompilerToolError as e:
        import re
        code = re.search(r"Error code: (-?\d+)", str(e))
        return int(code[1]) if code else 1
    return None


@pytest.mark.parametrize("fact", screen.FACTS, ids=[f"{f.op}-{f.when.__name__}-{i}"
                                                   for i, f in enumerate(screen.FACTS)])
def test_each_fact_is_what_plain_iree_does(fact):
    m = sw.parse(fact.probe, name="probe.mlir")
    found = [f for f in screen.unsupported_ops(m) if f[0] == fact.op]
    assert found, f"the fact does not recognize its own probe:\n{fact.probe}"
    code = _plain_iree(fact.probe)
    assert code is not None, f"IREE now compiles {fact.op} ({found[0][2]}): drop the fact"
    if fact.crashes:
        assert code < 0, f"IREE no longer crashes on the probe (exit {code}): crashes=False"
        with pytest.raises(screen.UnsupportedOpError, match=f"probe.mlir:2:\\d+: error: '{fact.op}'"):
            sw.compile(m)  # refused before IREE runs
    else:
        assert code > 0, f"IREE crashed on the probe (signal {-code}): crashes=True"
        with pytest.raises(screen.UnsupportedOpError) as info:
            sw.compile(m)  # IREE ran, failed, and the error says why, at the op
        first, *notes = info.value.diagnostics
        assert first.file == "probe.mlir" and first.line is not None
        assert f"'{fact.op}' cannot be compiled by IREE: {found[0][2]}" in first.message
        assert any(n.severity == "note" and "iree-compile" in n.message for n in notes), notes


RNG = np.random.default_rng(17)
X17 = RNG.standard_normal((0, 17)).astype(np.float32)
X8 = RNG.standard_normal((3, 8)).astype(np.float32)
POOL = RNG.permutation(16).astype(np.float32).reshape(4, 4)


def _max_pool_grad(x, src, win=2, stride=2):
    out = np.zeros_like(x)
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            w = x[i * stride:i * stride + win, j * stride:j * stride + win]
            k = int(np.argmax(w))
            out[i * stride + k // win, j * stride + k % win] += src[i, j]
    return out


LOOK_ALIKES = {
    "fft-length-17-no-elements": (
        "%x: tensor<0x17xf32>",
        "%0 = stablehlo.fft %x, type = RFFT, length = [17] : (tensor<0x17xf32>) -> tensor<0x9xcomplex<f32>>\n"
        "  %1 = stablehlo.real %0 : (tensor<0x9xcomplex<f32>>) -> tensor<0x9xf32>", "%1 : tensor<0x9xf32>",
        [X17], np.zeros((0, 9))),
    "fft-length-8": (
        "%x: tensor<3x8xf32>",
        "%0 = stablehlo.fft %x, type = RFFT, length = [8] : (tensor<3x8xf32>) -> tensor<3x5xcomplex<f32>>\n"
        "  %1 = stablehlo.imag %0 : (tensor<3x5xcomplex<f32>>) -> tensor<3x5xf32>", "%1 : tensor<3x5xf32>",
        [X8], np.fft.rfft(X8).imag),
    "complex128-splat-constant": (
        "%x: tensor<2xf32>",
        "%c = stablehlo.constant dense<(1.5, 2.5)> : tensor<2xcomplex<f64>>\n"
        "  %r = stablehlo.imag %c : (tensor<2xcomplex<f64>>) -> tensor<2xf64>\n"
        "  %f = stablehlo.convert %r : (tensor<2xf64>) -> tensor<2xf32>\n"
        "  %0 = stablehlo.add %f, %x : tensor<2xf32>", "%0 : tensor<2xf32>",
        [np.array([1, 2], np.float32)], np.array([3.5, 4.5])),
    "complex128-empty-constant": (
        "%x: tensor<0xf32>",
        "%c = stablehlo.constant dense<> : tensor<0xcomplex<f64>>\n"
        "  %r = stablehlo.real %c : (tensor<0xcomplex<f64>>) -> tensor<0xf64>\n"
        "  %f = stablehlo.convert %r : (tensor<0xf64>) -> tensor<0xf32>\n"
        "  %0 = stablehlo.add %f, %x : tensor<0xf32>", "%0 : tensor<0xf32>",
        [np.zeros(0, np.float32)], np.zeros(0)),
    "i4-splat-constant": (
        "%x: tensor<4xi32>",
        "%c = stablehlo.constant dense<-3> : tensor<4xi4>\n"
        "  %e = stablehlo.convert %c : (tensor<4xi4>) -> tensor<4xi32>\n"
        "  %0 = stablehlo.add %e, %x : tensor<4xi32>", "%0 : tensor<4xi32>",
        [np.arange(4, dtype=np.int32)], np.arange(4) - 3),
    "select-and-scatter-without-overlap": (
        "%x: tensor<4x4xf32>, %s: tensor<2x2xf32>",
        "%z = stablehlo.constant dense<0.0> : tensor<f32>\n"
        '  %0 = "stablehlo.select_and_scatter"(%x, %s, %z) ({\n'
        "  ^bb0(%a: tensor<f32>, %b: tensor<f32>):\n"
        "    %c = stablehlo.compare GE, %a, %b : (tensor<f32>, tensor<f32>) -> tensor<i1>\n"
        "    stablehlo.return %c : tensor<i1>\n  }, {\n"
        "  ^bb0(%a: tensor<f32>, %b: tensor<f32>):\n"
        "    %c = stablehlo.add %a, %b : tensor<f32>\n    stablehlo.return %c : tensor<f32>\n"
        "  }) {window_dimensions = array<i64: 2, 2>, window_strides = array<i64: 2, 2>} : "
        "(tensor<4x4xf32>, tensor<2x2xf32>, tensor<f32>) -> tensor<4x4xf32>", "%0 : tensor<4x4xf32>",
        [POOL, np.array([[1, 2], [3, 4]], np.float32)],
        _max_pool_grad(POOL, np.array([[1, 2], [3, 4]], np.float32))),
}


@pytest.mark.parametrize("name", LOOK_ALIKES)
def test_look_alikes_that_iree_compiles_are_not_refused(name):
    sig, body, ret, inputs, want = LOOK_ALIKES[name]
    m = sw.parse(screen._probe(sig, body, ret), name=f"{name}.mlir")
    assert screen.unsupported_ops(m) == []
    got = sw.compile(m)(*inputs)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-4, atol=1e-4)
