"""Per-op tests of the ``nn`` dialect: builders round-trip through text, the verifier
rejects bad ops with located messages, and each numpy reference matches JAX."""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import stepwell as sw
from stepwell.core import opspec
from stepwell.core.ir import context, func, ir
from stepwell.core.types import TensorType

NN_OPS = sorted(
    ["matmul", "linear", "conv2d", "add", "sub", "mul", "div", "maximum", "minimum", "relu",
     "gelu", "silu", "sigmoid", "tanh", "exp", "softmax", "layer_norm", "rms_norm", "attention",
     "embedding", "reduce_sum", "reduce_mean", "reduce_max", "reshape", "transpose", "concat",
     "cast", "quantize", "dequantize", "quantized_linear",  # these three: dialects/nn_quant.py
     "reshard"])  # dialects/nn_shard.py
MOE_OPS = ["grouped_matmul", "moe_ffn", "top_k"]  # dialects/nn_moe.py: tests in test_moe_ops.py


def T(text: str) -> TensorType:
    return TensorType.parse(text)


def test_registry_holds_every_nn_op_with_a_summary():
    specs = {s.mnemonic: s for s in opspec.specs("nn")}
    assert sorted(specs) == sorted(NN_OPS + MOE_OPS)
    for spec in specs.values():
        assert spec.summary and "\n" not in spec.summary
        assert spec.reference is not None and spec.infer is not None


def test_unknown_op_suggests_the_closest():
    with pytest.raises(sw.VerifyError) as e:
        sw.parse('func.func @f(%a: tensor<4xf32>) {\n'
                 '  %0 = "nn.sofmax"(%a) : (tensor<4xf32>) -> tensor<4xf32>\n  return\n}\n', name="in.mlir")
    assert "in.mlir:2:8: error: unknown op 'nn.sofmax'; did you mean 'nn.softmax'?" in str(e.value)


# -- 1. builders round-trip through text ------------------------------------------------------
# (id, op, operand types, attrs, result_type for result_from_type ops, expected result type)
BUILD_CASES = [
    ("matmul", "matmul", ["2x4x8xf32", "8x16xf32"], {}, None, "2x4x16xf32"),
    ("linear", "linear", ["4x8xf32", "8x16xf32", "16xf32"], {}, None, "4x16xf32"),
    ("linear-nobias", "linear", ["3x4x8xbf16", "8x2xbf16"], {}, None, "3x4x2xbf16"),
    ("conv2d", "conv2d", ["1x8x8x4xf32", "3x3x4x8xf32", "8xf32"], {"strides": [2, 2]}, None, "1x4x4x8xf32"),
    ("conv2d-explicit", "conv2d", ["2x9x7x4xf32", "3x2x2x6xf32"],
     {"padding": [1, 0, 2, 1], "dilation": [2, 1], "groups": 2, "strides": [1, 2]}, None, "2x6x5x6xf32"),
    ("conv2d-valid", "conv2d", ["1x5x5x1xf16", "3x3x1x2xf16"], {"padding": "VALID"}, None, "1x3x3x2xf16"),
    *[(name, name, ["4x1x8xf32", "3x1xf32"], {}, None, "4x3x8xf32")
      for name in ("add", "sub", "mul", "div", "maximum", "minimum")],
    ("add-int", "add", ["4xi32", "4xi32"], {}, None, "4xi32"),
    *[(name, name, ["2x5xf32"], {}, None, "2x5xf32") for name in ("relu", "silu", "sigmoid", "tanh", "exp")],
    ("gelu", "gelu", ["2x5xf32"], {"approximate": False}, None, "2x5xf32"),
    ("softmax", "softmax", ["2x5xf32"], {"axis": 0}, None, "2x5xf32"),
    ("layer_norm", "layer_norm", ["2x16x3xf32", "16xf32", "16xf32"], {"axis": 1, "epsilon": 1e-6},
     None, "2x16x3xf32"),
    ("rms_norm", "rms_norm", ["2x16xbf16", "16xbf16"], {}, None, "2x16xbf16"),
    ("attention", "attention", ["2x4x8x16xf32", "2x4x6x16xf32", "2x4x6x32xf32", "1x1x8x6xi1"],
     {"causal": True, "scale": 0.5}, None, "2x4x8x32xf32"),
    ("attention-nomask", "attention", ["1x2x3x4xf16", "1x2x3x4xf16", "1x2x3x4xf16"], {}, None, "1x2x3x4xf16"),
    ("embedding", "embedding", ["100x16xf32", "2x7xi32"], {}, None, "2x7x16xf32"),
    ("reduce_sum", "reduce_sum", ["2x3x4xf32"], {"axes": [1], "keepdims": True}, None, "2x1x4xf32"),
    ("reduce_mean", "reduce_mean", ["2x3x4xf32"], {}, None, "f32"),
    ("reduce_max", "reduce_max", ["2x3x4xi32"], {"axes": [0, -1]}, None, "3xi32"),
    ("reshape", "reshape", ["2x3x4xf32"], {}, "6x4xf32", "6x4xf32"),
    ("transpose", "transpose", ["2x3x4xf32"], {"permutation": [1, 0, 2]}, None, "3x2x4xf32"),
    ("transpose-default", "transpose", ["2x3x4xf32"], {}, None, "4x3x2xf32"),
    ("concat", "concat", ["2x3xf32", "2x1xf32", "2x4xf32"], {"axis": 1}, None, "2x8xf32"),
    ("cast", "cast", ["2x3xf32"], {}, "2x3xi32", "2x3xi32"),
    ("reshard", "reshard", ["4x8xf32"], {}, None, "4x8xf32"),  # dialects/nn_shard.py
    ("matmul-acc", "matmul", ["4x8xbf16", "8x16xbf16"], {}, "4x16xf32", "4x16xf32"),
    ("linear-acc", "linear", ["4x8xf16", "8x16xf16", "16xf32"], {}, "4x16xf32", "4x16xf32"),
    # quantized ops (dialects/nn_quant.py)
    ("quantize", "quantize", ["64x16xf32", "2x16xf32"], {"group_size": 32}, None, "64x16xi8"),
    ("quantize-int4", "quantize", ["4x64xf32", "4x8xf32", "4x8xi8"],
     {"bits": 4, "group_size": 8, "axis": 1}, None, "4x32xi8"),
    ("dequantize", "dequantize", ["64x8xi8", "1x16xf32"], {"bits": 4}, None, "64x16xf32"),
    ("quantized_linear", "quantized_linear", ["3x4x64xf32", "64x16xi8", "2x16xf32", "2x16xi8", "16xf32"],
     {"group_size": 32}, None, "3x4x16xf32"),
    ("quantized_linear-int4-bias", "quantized_linear", ["4x64xbf16", "64x8xi8", "1x16xf32", "16xbf16"],
     {"bits": 4}, None, "4x16xbf16"),
]


def build_module(op_name, operand_types, attrs, result_type=None):
    """A module with one func applying the ``sw.nn`` builder to its arguments."""
    with context(), ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            arg_types = [T(t).to_mlir() for t in operand_types]

            @func.FuncOp.from_py_func(*arg_types, name="main")
            def main(*args):
                kwargs = dict(attrs)
                if result_type is not None:
                    kwargs["result_type"] = T(result_type)
                builder = getattr(sw.nn, op_name)
                if op_name == "concat":
                    return builder(list(args), **kwargs)
                return builder(*args, **kwargs)
    return module


@pytest.mark.parametrize("case", BUILD_CASES, ids=[c[0] for c in BUILD_CASES])
def test_builder_round_trip(case):
    _, name, operand_types, attrs, result_type, expected = case
    module = build_module(name, operand_types, attrs, result_type)
    text = str(module)
    assert f'"nn.{name}"' in text
    assert f"-> {T(expected)}" in text
    parsed = sw.parse(text, name="built.mlir")  # verifies
    assert str(parsed) == text
    assert str(sw.parse(str(parsed))) == text


def test_every_nn_op_has_a_build_case():
    assert sorted({c[1] for c in BUILD_CASES}) == NN_OPS


def test_builder_attrs_defaults_and_errors():
    # an attribute left at None is left out (defaults apply), not written as None
    module = build_module("attention", ["1x1x2x4xf32"] * 3, {"scale": None, "causal": False})
    assert "scale" not in str(module) and "causal = false" in str(module)
    module = build_module("reduce_sum", ["2x3xf32"], {"axes": None})
    assert "axes" not in str(module) and "-> tensor<f32>" in str(module)
    with pytest.raises(TypeError, match=r"'nn.softmax' axis 3 is out of range for rank 2"):
        build_module("softmax", ["2x3xf32"], {"axis": 3})
    with pytest.raises(TypeError, match=r"attribute 'axes' must be array<i64: ...>, found 1"):
        build_module("reduce_sum", ["2x3xf32"], {"axes": 1})
    with pytest.raises(TypeError, match=r"'nn.reshape' expects 1 result, found 0 .*builders take result_type="):
        build_module("reshape", ["2x3xf32"], {})
    with pytest.raises(TypeError, match=r"nn.relu has no attribute 'axis'"):
        build_module("relu", ["2x3xf32"], {"axis": 0})


# -- 2. verifier negatives -----------------------------------------------------------------------
# (op, operand types, result types ("" = no result), attribute text, expected message)
NEGATIVE_CASES = [
    ("matmul", ["4x8xf32", "7x16xf32"], "4x16xf32", "",
     "contracting dimensions differ: lhs tensor<4x8xf32> has 8, rhs tensor<7x16xf32> has 7"),
    ("matmul", ["4x8xf32"], "4x16xf32", "", "expects 2 operands, found 1"),
    ("matmul", ["4x8xf32", "8x16xf32"], "4x15xf32", "",
     "result #0 type mismatch: expected tensor<4x16xf32>, found tensor<4x15xf32>"),
    ("matmul", ["4x8xf32", "8x16xf16"], "4x16xf32", "", "operand element types differ: f32, f16"),
    ("linear", ["4x8xf32", "8x16xf32", "8xf32"], "4x16xf32", "",
     "bias must have shape [16] (w out size), found tensor<8xf32>"),
    ("linear", ["4x8xf32", "8x16x2xf32"], "4x16xf32", "", "w must have rank 2 [in, out], found tensor<8x16x2xf32>"),
    ("linear", ["4x8xf32", "8x16xf32", "16xf32", "16xf32"], "4x16xf32", "", "expects 2 to 3 operands, found 4"),
    ("conv2d", ["1x8x8x4xf32", "3x3x4x8xf32"], "1x8x8x8xf32", '{padding = "SAMEISH"}',
     'padding must be "SAME", "VALID" or array<i64: top, bottom, left, right>, found "SAMEISH"'),
    ("conv2d", ["1x8x8x4xf32", "3x3x4x8xf32"], "1x8x8x8xf32", "{padding = array<i64: 1, 1, 1>}",
     "padding must have 4 entries (top, bottom, left, right), found [1, 1, 1]"),
    ("conv2d", ["1x8x8x4xf32", "3x3x2x8xf32"], "1x8x8x8xf32", "",
     "w input channels must be 4 (x channels 4 / groups 1), found w tensor<3x3x2x8xf32>"),
    ("conv2d", ["1x8x8x4xf32", "3x3x4x8xf32"], "1x8x8x8xf32", "{strides = 2 : i64}",
     "attribute 'strides' must be array<i64: ...>, found 2 : i64"),
    ("conv2d", ["1x8x8x4xf32", "3x3x2x6xf32"], "1x8x8x6xf32", "{groups = 4 : i64}",
     "w input channels must be 1 (x channels 4 / groups 4), found w tensor<3x3x2x6xf32>"),
    ("conv2d", ["1x2x8x4xf32", "3x3x4x8xf32"], "1x1x6x8xf32", '{padding = "VALID"}',
     "kernel height 3 with dilation 1 spans 3, more than the padded input height 2"),
    ("conv2d", ["1x8x8x4xf32", "3x3x4x8xf32", "4xf32"], "1x8x8x8xf32", "",
     "bias must have shape [8] (w output channels), found tensor<4xf32>"),
    ("conv2d", ["1x8x8x4xf32", "3x3x4x8xf32"], "1x8x8x8xf32", "{strides = array<i64: 2, 2>}",  # SAME, stride 2 -> 4x4
     "result #0 type mismatch: expected tensor<1x4x4x8xf32>, found tensor<1x8x8x8xf32>"),
    ("add", ["4x3xf32", "5xf32"], "4x5xf32", "", "shapes [4, 3], [5] do not broadcast"),
    ("sub", ["4xf32", "4xi32"], "4xf32", "", "operand element types differ: f32, i32"),
    ("mul", ["4xf32", "4xf32", "4xf32"], "4xf32", "", "expects 2 operands, found 3"),
    ("div", ["4x1xf32", "3xf32"], "4x1xf32", "",
     "result #0 type mismatch: expected tensor<4x3xf32>, found tensor<4x1xf32>"),
    ("maximum", ["4xf16", "4xbf16"], "4xf16", "", "operand element types differ: f16, bf16"),
    ("minimum", ["2x4xf32", "3x1xf32"], "3x4xf32", "", "shapes [2, 4], [3, 1] do not broadcast"),
    ("relu", ["4xi32"], "4xi32", "", "x must have a float element type, found tensor<4xi32>"),
    ("relu", ["4xf32"], "4xf32", "{axis = 0 : i64}", "unknown attribute 'axis' (known: none)"),
    ("gelu", ["4xf32"], "4xf32", "{approximate = 1 : i64}",
     "attribute 'approximate' must be bool (true/false), found 1 : i64"),
    ("silu", ["4xi8"], "4xi8", "", "x must have a float element type, found tensor<4xi8>"),
    ("sigmoid", ["4xf32"], "4xf16", "", "result #0 type mismatch: expected tensor<4xf32>, found tensor<4xf16>"),
    ("tanh", ["4xi1"], "4xi1", "", "x must have a float element type, found tensor<4xi1>"),
    ("exp", [], "4xf32", "", "expects 1 operands, found 0"),
    ("softmax", ["2x4xf32"], "2x4xf32", "{axis = 2 : i64}", "axis 2 is out of range for rank 2"),
    ("softmax", ["2x4xf32"], "2x4xf32", "{axis = 1.0 : f32}", "attribute 'axis' must be i64 integer, found 1.000000e+00 : f32"),
    ("layer_norm", ["2x16xf32", "8xf32", "16xf32"], "2x16xf32", "",
     "scale must have shape [16] (x axis -1), found tensor<8xf32>"),
    ("layer_norm", ["2x16xf32", "2xf32", "2xf32"], "2x16xf32", "{axis = -3 : i64}",
     "axis -3 is out of range for rank 2"),
    ("layer_norm", ["2x16xf32", "16xf32", "16xf32"], "2x16xf32", "{epsilon = 1.0e-05 : f64}",
     "attribute 'epsilon' must be f32 float, found 1.000000e-05 : f64"),
    ("layer_norm", ["2x16xf32", "16xf32", "16xf16"], "2x16xf32", "",
     "bias element type must be f32 like the input, found tensor<16xf16>"),
    ("rms_norm", ["2x16xf32", "2xf32"], "2x16xf32", "", "scale must have shape [16] (x last axis), found tensor<2xf32>"),
    ("rms_norm", ["2x16xf32"], "2x16xf32", "", "expects 2 operands, found 1"),
    ("attention", ["2x8x16xf32"] * 3, "2x8x16xf32", "",
     "q must have rank 4 [batch, heads, seq, dim], found tensor<2x8x16xf32>"),
    ("attention", ["1x2x8x16xf32", "1x2x8x8xf32", "1x2x8x16xf32"], "1x2x8x16xf32", "",
     "q and k head dims differ: q tensor<1x2x8x16xf32> has 16, k tensor<1x2x8x8xf32> has 8"),
    ("attention", ["1x2x8x16xf32"] * 3 + ["1x1x8x8xf32"], "1x2x8x16xf32", "",
     "mask must have element type i1 (true = keep), found tensor<1x1x8x8xf32>"),
    ("attention", ["1x2x8x16xf32"] * 3 + ["3x8x8xi1"], "1x2x8x16xf32", "",
     "mask tensor<3x8x8xi1> does not broadcast to [1, 2, 8, 8] ([batch, heads, q seq, k seq])"),
    ("attention", ["1x2x8x16xf32"] * 3, "1x2x8x16xf32", "{scale = 1 : i64}",
     "attribute 'scale' must be f32 float, found 1 : i64"),
    ("attention", ["1x2x8x16xf32", "1x2x6x16xf32", "1x2x5x16xf32"], "1x2x8x16xf32", "",
     "k and v sequence lengths differ: k tensor<1x2x6x16xf32> has 6, v tensor<1x2x5x16xf32> has 5"),
    ("embedding", ["100x16xf32", "2x7xf32"], "2x7x16xf32", "",
     "ids must have element type i32 or i64, found tensor<2x7xf32>"),
    ("embedding", ["100xf32", "2x7xi32"], "2x7xf32", "", "table must have rank 2 [vocab, dim], found tensor<100xf32>"),
    ("reduce_sum", ["2x3xf32"], "2xf32", "{axes = array<i64: 2>}", "axis 2 is out of range for rank 2"),
    ("reduce_sum", ["2x3xf32"], "f32", "{axes = array<i64: 0, -2>}", "axes [0, -2] repeat an axis"),
    ("reduce_mean", ["2x3xi32"], "i32", "", "x must have a float element type, found tensor<2x3xi32>"),
    ("reduce_mean", ["2x3xf32"], "2xf32", "{axes = array<i64: 1>, keepdims = 1 : i64}",
     "attribute 'keepdims' must be bool (true/false), found 1 : i64"),
    ("reduce_max", ["2x3xf32"], "2xf32", "{axes = array<i64: 1>, keepdims = true}",
     "result #0 type mismatch: expected tensor<2x1xf32>, found tensor<2xf32>"),
    ("reshape", ["2x3xf32"], "7xf32", "", "element counts differ: x tensor<2x3xf32> has 6, result tensor<7xf32> has 7"),
    ("reshape", ["2x3xf32"], "6xf16", "", "result element type must be f32 like x, found tensor<6xf16>"),
    ("reshape", ["2x3xf32"], "", "",
     "expects 1 result, found 0 (the result type is an input: builders take result_type=)"),
    ("transpose", ["2x3xf32"], "3x2xf32", "{permutation = array<i64: 0, 0>}",
     "permutation [0, 0] must be a permutation of [0, 1] for rank 2"),
    ("transpose", ["2x3x4xf32"], "2x3x4xf32", "",
     "result #0 type mismatch: expected tensor<4x3x2xf32>, found tensor<2x3x4xf32>"),
    ("concat", [], "2x3xf32", "", "expects at least 1 operand, found 0"),
    ("concat", ["2x3xf32", "3x3xf32"], "2x6xf32", "{axis = 1 : i64}",
     "inputs differ off axis 1 (dimension 0): tensor<2x3xf32> and tensor<3x3xf32>"),
    ("concat", ["2x3xf32", "2x3xi32"], "4x3xf32", "", "operand element types differ: f32, i32"),
    ("concat", ["2x3xf32"], "2x3xf32", "{axis = -3 : i64}", "axis -3 is out of range for rank 2"),
    ("cast", ["2x3xf32"], "3x2xi32", "", "result shape must be [2, 3] like x tensor<2x3xf32>, found tensor<3x2xi32>"),
    ("reshard", ["4x8xf32"], "4x9xf32", "", "result #0 type mismatch: expected tensor<4x8xf32>, found tensor<4x9xf32>"),
    ("matmul", ["4x8xf32", "8x16xf32"], "4x16xf16", "", "result element type f16 cannot accumulate f32"),
    ("quantize", ["64x16xf32", "2x16xf32"], "64x16xi8", "{bits = 3 : i64, group_size = 32 : i64}",
     "attribute 'bits' must be one of 8, 4, found 3"),
    ("quantize", ["64x15xf32", "1x15xf32"], "64x15xi8", "{bits = 4 : i64}",
     "bits = 4 packs two values per byte along the last dimension: it must be even, found tensor<64x15xf32>"),
    ("dequantize", ["64x16xi8", "3x16xf32"], "64x16xf32", "{group_size = 24 : i64}",
     "group_size 24 does not divide axis 0 of the values [64, 16] (64)"),
    ("quantized_linear", ["4x64xf32", "64x16xi8", "2x16xf32"], "4x16xf32", "{bits = 3 : i64, group_size = 32 : i64}",
     "attribute 'bits' must be one of 8, 4, found 3"),
    ("quantized_linear", ["4x64xf32", "64x16xi8", "2x16xf32"], "4x16xf32", "{group_size = 48 : i64}",
     "group_size 48 does not divide the in size of qweight tensor<64x16xi8> (64)"),
    ("quantized_linear", ["4x64xf32", "64x8xi8", "4x8xf32"], "4x16xf32", "{bits = 4 : i64, group_size = 16 : i64}",
     "scales must have shape [4, 16] (axis 0 holds the 4 groups of 16), found tensor<4x8xf32>"),
    ("quantized_linear", ["4x64xf32", "64x16xi8", "1x16xf32", "1x16xf32", "16xf32"], "4x16xf32", "",
     "zero_points must have element type i8, found tensor<1x16xf32>"),
    ("quantized_linear", ["4x64xf32", "64x16xi8", "1x16xf32"], "4x16xf32", "{axis = 1 : i64}",
     "axis must be 0 (groups run along the in axis of the [in, out] weight), found 1"),
]


def op_text(name, operand_types, result, attrs=""):
    """``%r = "nn.<name>"(%a0, ...) {attrs} : (types) -> result`` and the func around it."""
    args = ", ".join(f"%a{i}: {T(t)}" for i, t in enumerate(operand_types))
    operands = ", ".join(f"%a{i}" for i in range(len(operand_types)))
    types = ", ".join(str(T(t)) for t in operand_types)
    lhs, res = ("%r = ", str(T(result))) if result else ("", "()")
    attrs = f" {attrs}" if attrs else ""
    return (f"func.func @f({args}) {{\n"
            f'  {lhs}"nn.{name}"({operands}){attrs} : ({types}) -> {res}\n'
            f"  return\n}}\n")


@pytest.mark.parametrize("case", NEGATIVE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(NEGATIVE_CASES)])
def test_verifier_rejects(case):
    name, operand_types, result, attrs, message = case
    text = op_text(name, operand_types, result, attrs)
    with pytest.raises(sw.VerifyError) as e:
        sw.parse(text, name="in.mlir")
    col = 8 if result else 3
    assert str(e.value) == f"in.mlir:2:{col}: error: 'nn.{name}' {message}"


def test_every_nn_op_has_a_negative_case():
    assert sorted({c[0] for c in NEGATIVE_CASES}) == NN_OPS


@pytest.mark.parametrize("case", BUILD_CASES, ids=[c[0] for c in BUILD_CASES])
def test_positive_cases_verify_from_text(case):
    _, name, operand_types, attrs, result_type, expected = case
    attr_text = ", ".join(f"{k} = {_attr_text(v)}" for k, v in attrs.items())
    sw.parse(op_text(name, operand_types, expected, "{" + attr_text + "}" if attrs else ""))


def _attr_text(v):
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float):
        return f"{v:e} : f32"
    if isinstance(v, int):
        return f"{v} : i64"
    return "array<i64: " + ", ".join(map(str, v)) + ">"


def test_dynamic_dims_verify():
    sw.parse(op_text("matmul", ["?x8xf32", "8x?xf32"], "?x?xf32"))
    sw.parse(op_text("concat", ["?x3xf32", "2x3xf32"], "?x3xf32", "{axis = 0 : i64}"))
    sw.parse(op_text("reshape", ["?x3xf32"], "3x?xf32"))
    sw.parse(op_text("conv2d", ["?x?x8x4xf32", "3x3x4x8xf32"], "?x?x8x8xf32"))
    sw.parse(op_text("layer_norm", ["?x16xf32", "16xf32", "16xf32"], "?x16xf32"))


# -- 3. numerics: numpy references against JAX ------------------------------------------------
RTOL = {"f32": 1e-5, "f16": 1e-2, "bf16": 4e-2, "i32": 0, "i64": 0, "i1": 0}
NP_DTYPE = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16, "i32": np.int32}


def rand(rng, shape, dtype="f32", scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(NP_DTYPE[dtype])


def check_op(name, arrays, attrs=None, expected=None, results=None, rtol=None, atol=None):
    """The reference of nn.<name> on ``arrays`` equals ``expected`` (a JAX array), and the
    inferred result type has JAX's shape and element type."""
    spec = opspec.lookup(f"nn.{name}")
    got = spec.evaluate(arrays, attrs, results)[0]
    present = [np.asarray(a) for a in arrays if a is not None]
    from stepwell.core.types import dtype_of
    sig = spec.bind([TensorType(a.shape, dtype_of(a.dtype)) for a in present], dict(attrs or {}), results)
    inferred = spec.infer_results(sig)[0]
    want = np.asarray(expected)
    assert inferred.shape == want.shape, (inferred, want.shape)
    assert inferred.numpy_dtype() == want.dtype, (inferred, want.dtype)
    assert got.shape == want.shape and got.dtype == want.dtype
    dtype = inferred.dtype
    if dtype in ("i1",) or dtype.startswith("i"):
        np.testing.assert_array_equal(got, want)
        return
    rtol = RTOL[dtype] if rtol is None else rtol
    atol = rtol if atol is None else atol
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=rtol, atol=atol)


seeds = st.integers(0, 2**32 - 1)
dims = st.integers(1, 5)
shapes = st.lists(dims, min_size=0, max_size=3).map(tuple)


@st.composite
def broadcast_pair(draw):
    out = draw(st.lists(dims, min_size=1, max_size=3))
    def operand():
        rank = draw(st.integers(0, len(out)))
        return tuple(d if draw(st.booleans()) else 1 for d in out[len(out) - rank:])
    return operand(), operand()


@given(broadcast_pair(), seeds)
def test_matmul_matches_jax(shapes_, seed):
    rng = np.random.default_rng(seed)
    (ba, bb) = shapes_
    m, k, n = rng.integers(1, 6, size=3)
    a = rand(rng, (*ba, m, k))
    b = rand(rng, (*bb, k, n))
    check_op("matmul", [a, b], expected=jnp.matmul(a, b))
    va, vb = a.reshape(-1, k)[0], b.reshape(-1, k, n)[0, :, 0]
    check_op("matmul", [va, b], expected=jnp.matmul(va, b))  # vector lhs
    check_op("matmul", [a, vb], expected=jnp.matmul(a, vb))  # vector rhs


@given(shapes, st.integers(1, 6), st.integers(1, 6), st.booleans(), seeds)
def test_linear_matches_jax(batch, k, n, bias, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rand(rng, (*batch, k)), rand(rng, (k, n)), rand(rng, (n,))
    want = jnp.matmul(x, w) + (b if bias else 0)
    check_op("linear", [x, w, b if bias else None], expected=want)


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cfg = dict(
        n=draw(st.integers(1, 2)), h=draw(st.integers(1, 9)), w=draw(st.integers(1, 9)),
        cin=groups * draw(st.integers(1, 3)), cout=groups * draw(st.integers(1, 3)),
        kh=draw(st.integers(1, 3)), kw=draw(st.integers(1, 3)), groups=groups,
        strides=draw(st.tuples(st.integers(1, 3), st.integers(1, 3))),
        dilation=draw(st.tuples(st.integers(1, 2), st.integers(1, 2))),
        padding=draw(st.one_of(st.sampled_from(["SAME", "VALID"]),
                               st.tuples(*[st.integers(0, 2)] * 4))),
        bias=draw(st.booleans()))
    return cfg


@given(conv_case(), seeds)
def test_conv2d_matches_jax(c, seed):
    rng = np.random.default_rng(seed)
    pad = c["padding"]
    if pad != "SAME":
        p = [0] * 4 if pad == "VALID" else pad
        assume(c["h"] + p[0] + p[1] >= (c["kh"] - 1) * c["dilation"][0] + 1)
        assume(c["w"] + p[2] + p[3] >= (c["kw"] - 1) * c["dilation"][1] + 1)
    x = rand(rng, (c["n"], c["h"], c["w"], c["cin"]))
    w = rand(rng, (c["kh"], c["kw"], c["cin"] // c["groups"], c["cout"]))
    b = rand(rng, (c["cout"],)) if c["bias"] else None
    lax_pad = pad if isinstance(pad, str) else [(pad[0], pad[1]), (pad[2], pad[3])]
    want = jax.lax.conv_general_dilated(
        x, w, c["strides"], lax_pad, rhs_dilation=c["dilation"],
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c["groups"],
        precision=jax.lax.Precision.HIGHEST)
    if b is not None:
        want = want + b
    attrs = {"strides": list(c["strides"]), "dilation": list(c["dilation"]), "groups": c["groups"],
             "padding": pad if isinstance(pad, str) else list(pad)}
    check_op("conv2d", [x, w, b], attrs, want, atol=1e-4)


def test_conv2d_default_attrs_are_same_padding():
    rng = np.random.default_rng(0)
    x, w = rand(rng, (1, 6, 5, 2)), rand(rng, (4, 3, 2, 3))
    want = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision=jax.lax.Precision.HIGHEST)
    check_op("conv2d", [x, w], {}, want, atol=1e-4)


BINARY = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": jnp.divide,
          "maximum": jnp.maximum, "minimum": jnp.minimum}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(pair=broadcast_pair(), seed=seeds)
def test_binary_matches_jax(name, pair, seed):
    rng = np.random.default_rng(seed)
    a, b = rand(rng, pair[0]), rand(rng, pair[1])
    check_op(name, [a, b], expected=BINARY[name](a, b), rtol=1e-6)
    ai = rng.integers(-20, 20, pair[0]).astype(np.int32)
    bi = rng.integers(1, 7, pair[1]).astype(np.int32) * rng.choice([-1, 1], pair[1]).astype(np.int32)
    want = jax.lax.div(*jnp.broadcast_arrays(ai, bi)) if name == "div" else BINARY[name](ai, bi)
    check_op(name, [ai, bi], expected=want)


UNARY = {"relu": jax.nn.relu, "silu": jax.nn.silu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
         "exp": jnp.exp}
jax_gelu = jax.jit(jax.nn.gelu, static_argnames="approximate")


@pytest.mark.parametrize("name", sorted(UNARY) + ["gelu-approximate", "gelu-exact"])
@given(shape=shapes, scale=st.sampled_from([1.0, 4.0]), seed=seeds)
def test_unary_matches_jax(name, shape, scale, seed):
    x = rand(np.random.default_rng(seed), shape, scale=scale)
    if name.startswith("gelu"):
        approximate = name == "gelu-approximate"
        attrs = {} if approximate else {"approximate": False}
        check_op("gelu", [x], attrs, jax_gelu(x, approximate=approximate))
    else:
        check_op(name, [x], expected=jax.jit(UNARY[name])(x))


def test_unary_extremes():
    x = np.array([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4], np.float32)
    for name, fn in UNARY.items():
        with np.errstate(over="raise", invalid="raise", divide="raise"):  # no warnings from the reference
            check_op(name, [x], expected=fn(x))


@st.composite
def array_and_axis(draw, min_rank=1):
    shape = tuple(draw(st.lists(dims, min_size=min_rank, max_size=4)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return shape, axis


@given(array_and_axis(), seeds)
def test_softmax_matches_jax(sa, seed):
    shape, axis = sa
    x = rand(np.random.default_rng(seed), shape, scale=3.0)
    check_op("softmax", [x], {"axis": axis}, jax_softmax(x, axis=axis))


# JAX oracles of composite ops are jitted: one compile per shape instead of one per primitive
jax_softmax = jax.jit(jax.nn.softmax, static_argnames="axis")


@functools.partial(jax.jit, static_argnames=("axis", "eps"))
def jax_layer_norm(x, scale, bias, axis, eps):
    xf = jnp.asarray(x, jnp.float32)
    mean = xf.mean(axis=axis, keepdims=True)
    var = jnp.var(xf, axis=axis, keepdims=True)
    shape = [1] * x.ndim
    shape[axis] = -1
    y = (xf - mean) * jax.lax.rsqrt(var + eps)
    return (y * jnp.reshape(scale, shape) + jnp.reshape(bias, shape)).astype(x.dtype)


@given(array_and_axis(), st.sampled_from([1e-5, 1e-3]), seeds)
def test_layer_norm_matches_jax(sa, eps, seed):
    (shape, axis), rng = sa, np.random.default_rng(seed)
    x = rand(rng, shape, scale=2.0) + 1.0
    scale, bias = rand(rng, (shape[axis],)), rand(rng, (shape[axis],))
    attrs = {"axis": axis, "epsilon": eps}
    check_op("layer_norm", [x, scale, bias], attrs, jax_layer_norm(x, scale, bias, axis, eps), atol=1e-4)


@functools.partial(jax.jit, static_argnames="eps")
def jax_rms_norm(x, scale, eps):
    xf = jnp.asarray(x, jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return (y * scale).astype(x.dtype)


@given(st.lists(dims, min_size=1, max_size=3), seeds)
def test_rms_norm_matches_jax(shape, seed):
    rng = np.random.default_rng(seed)
    x, scale = rand(rng, shape), rand(rng, shape[-1:])
    check_op("rms_norm", [x, scale], {}, jax_rms_norm(x, scale, 1e-5), atol=1e-4)
    check_op("rms_norm", [x, scale], {"epsilon": 0.5}, jax_rms_norm(x, scale, 0.5), atol=1e-4)


@st.composite
def attention_case(draw):
    b, h, sq, sk, d = (draw(st.integers(1, n)) for n in (2, 3, 5, 5, 8))
    mask = draw(st.one_of(st.none(), st.tuples(*[st.booleans()] * 4)))
    mask_shape = None if mask is None else tuple(full if keep else 1 for full, keep in zip((b, h, sq, sk), mask))
    return dict(shape=(b, h, sq, sk, d), mask_shape=mask_shape, causal=draw(st.booleans()),
                scale=draw(st.one_of(st.none(), st.sampled_from([0.1, 1.0]))))


def to_btnh(x):
    return jnp.transpose(x, (0, 2, 1, 3))


def attention_bhsd(q, k, v, mask, scale, causal):
    """jax.nn.dot_product_attention on stepwell's [batch, heads, seq, dim] layout."""
    out = jax.nn.dot_product_attention(to_btnh(q), to_btnh(k), to_btnh(v), mask=mask, scale=scale,
                                       is_causal=causal, implementation="xla")
    return to_btnh(out)


# (not for f16: under jit JAX's F16_F16_F32 dot has no CPU fallback)
jax_attention = jax.jit(attention_bhsd, static_argnames="causal")


@given(attention_case(), seeds)
def test_attention_matches_jax(c, seed):
    rng = np.random.default_rng(seed)
    b, h, sq, sk, d = c["shape"]
    q, k, v = rand(rng, (b, h, sq, d)), rand(rng, (b, h, sk, d)), rand(rng, (b, h, sk, d))
    mask = None if c["mask_shape"] is None else rng.random(c["mask_shape"]) < 0.7
    want = jax_attention(q, k, v, mask, c["scale"], c["causal"])
    attrs = {"causal": c["causal"]}
    if c["scale"] is not None:
        attrs["scale"] = c["scale"]
    check_op("attention", [q, k, v, mask], attrs, want, atol=1e-5)


def test_attention_value_dim_and_low_rank_mask():
    # dv != d and a rank-2 mask (jax.nn.dot_product_attention supports neither): plain jnp
    rng = np.random.default_rng(1)
    q, k, v = rand(rng, (2, 3, 4, 8)), rand(rng, (2, 3, 6, 8)), rand(rng, (2, 3, 6, 5))
    mask = rng.random((4, 6)) < 0.6
    mask[2] = False  # a fully masked row averages v uniformly, like JAX
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(8)
    logits = jnp.where(mask & np.tril(np.ones((4, 6), bool)), logits, -0.7 * np.finfo(np.float32).max)
    want = jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(logits, axis=-1), v)
    check_op("attention", [q, k, v, mask], {"causal": True}, want)
    np.testing.assert_allclose(np.asarray(want)[:, :, 2], np.broadcast_to(v.mean(axis=2), (2, 3, 5)), rtol=1e-5)


@given(shapes, st.integers(1, 9), st.integers(1, 4), st.sampled_from(["i32", "i64"]), seeds)
def test_embedding_matches_jax(ids_shape, vocab, dim, ids_dtype, seed):
    rng = np.random.default_rng(seed)
    table = rand(rng, (vocab, dim))
    ids = rng.integers(0, vocab, ids_shape).astype(ids_dtype.replace("i", "int"))
    check_op("embedding", [table, ids], expected=jnp.take(table, ids, axis=0))


def test_embedding_clamps_out_of_range_ids():
    table = np.arange(6, dtype=np.float32).reshape(3, 2)
    got = opspec.lookup("nn.embedding").evaluate([table, np.array([-1, 5], np.int32)])[0]
    np.testing.assert_array_equal(got, table[[0, 2]])


REDUCE = {"reduce_sum": jnp.sum, "reduce_mean": jnp.mean, "reduce_max": jnp.max}


@st.composite
def reduce_case(draw):
    shape = tuple(draw(st.lists(dims, min_size=0, max_size=4)))
    axes = draw(st.one_of(st.none(), st.lists(st.integers(0, max(len(shape) - 1, 0)), unique=True)
                          .map(lambda a: [x - len(shape) if x % 2 else x for x in a if x < len(shape)])))
    return shape, axes, draw(st.booleans())


@pytest.mark.parametrize("name", sorted(REDUCE))
@given(case=reduce_case(), seed=seeds)
def test_reductions_match_jax(name, case, seed):
    shape, axes, keepdims = case
    x = rand(np.random.default_rng(seed), shape)
    attrs = {"keepdims": keepdims} | ({} if axes is None else {"axes": axes})
    want = REDUCE[name](x, axis=None if axes is None else tuple(axes), keepdims=keepdims)
    check_op(name, [x], attrs, want)
    if name != "reduce_mean":
        xi = np.random.default_rng(seed).integers(-50, 50, shape).astype(np.int32)
        check_op(name, [xi], attrs, REDUCE[name](xi, axis=None if axes is None else tuple(axes), keepdims=keepdims))


@given(st.lists(dims, min_size=0, max_size=4), st.data())
def test_reshape_matches_jax(shape, data):
    new_shape = tuple(data.draw(st.permutations(shape)))
    if len(new_shape) >= 2 and data.draw(st.booleans()):
        new_shape = (new_shape[0] * new_shape[1],) + new_shape[2:]
    x = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    check_op("reshape", [x], results=[TensorType(new_shape, "f32")], expected=jnp.reshape(x, new_shape))


@given(st.lists(dims, min_size=0, max_size=4), st.data())
def test_transpose_matches_jax(shape, data):
    perm = data.draw(st.one_of(st.none(), st.permutations(range(len(shape)))))
    x = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    attrs = {} if perm is None else {"permutation": list(perm)}
    check_op("transpose", [x], attrs, jnp.transpose(x, perm))


@given(st.lists(dims, min_size=1, max_size=3), st.integers(1, 3), st.data())
def test_concat_matches_jax(shape, count, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(count)
    inputs = []
    for _ in range(count):
        s = list(shape)
        s[axis] = data.draw(dims)
        inputs.append(rand(rng, s))
    check_op("concat", inputs, {"axis": axis}, jnp.concatenate(inputs, axis=axis))


CASTS = [("f32", "i32"), ("f32", "f16"), ("f32", "bf16"), ("i32", "f32"), ("f32", "i1"),
         ("i32", "i1"), ("i1", "f32"), ("bf16", "f32"), ("f32", "i8")]


@pytest.mark.parametrize("src,dst", CASTS, ids=[f"{a}-{b}" for a, b in CASTS])
def test_cast_matches_jax(src, dst):
    edges = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 2.5, -2.7, 99.9, -99.9, 1e-3, 3.14159]
    x = np.concatenate([edges, np.random.default_rng(0).standard_normal(18) * 20]).astype(np.float32)
    x = x.reshape(2, 4, 4)
    if src == "i1":
        x = x > 0
    elif src != "f32":
        x = x.astype(NP_DTYPE.get(src) or np.int32)
    if dst == "i8":
        x = np.clip(x, -100, 100)
    target = TensorType(x.shape, dst)
    check_op("cast", [x], results=[target], expected=jnp.asarray(x).astype(target.numpy_dtype()), rtol=0)


# -- low precision: same references, looser tolerances ---------------------------------------
LOW = ["f16", "bf16"]


def low_case(name, dtype, rng):
    """(arrays, attrs, JAX result) of a representative nn.<name> call in ``dtype``."""
    def r(*shape, scale=1.0):
        return rand(rng, shape, dtype, scale)

    if name in BINARY:
        a, b = r(3, 4), r(4) + 3
        return [a, b], {}, BINARY[name](a, b)
    if name in UNARY:
        x = r(3, 5, scale=2.0)
        return [x], {}, UNARY[name](x)
    if name == "gelu":
        x = r(3, 5, scale=2.0)
        return [x], {"approximate": False}, jax.nn.gelu(x, approximate=False)
    if name == "softmax":
        x = r(3, 7, scale=2.0)
        return [x], {"axis": 0}, jax_softmax(x.astype(np.float32), axis=0).astype(x.dtype)
    if name == "matmul":
        a, b = r(2, 3, 8), r(8, 4)
        return [a, b], {}, jnp.matmul(a, b, preferred_element_type=jnp.float32).astype(a.dtype)
    if name == "linear":
        x, w, b = r(3, 8), r(8, 4), r(4)
        return [x, w, b], {}, (jnp.matmul(x, w, preferred_element_type=jnp.float32) + b).astype(x.dtype)
    if name == "layer_norm":
        x, s, b = r(3, 16, scale=2.0), r(16), r(16)
        return [x, s, b], {}, jax_layer_norm(x, s, b, -1, 1e-5)
    if name == "rms_norm":
        x, s = r(3, 16), r(16)
        return [x, s], {}, jax_rms_norm(x, s, 1e-5)
    if name == "attention":
        q, k, v = r(1, 2, 4, 8), r(1, 2, 6, 8), r(1, 2, 6, 8)
        return [q, k, v], {"causal": True}, attention_bhsd(q, k, v, None, None, True)
    if name == "conv2d":
        x, w = r(1, 5, 5, 4), r(3, 3, 2, 4)
        want = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=2, preferred_element_type=jnp.float32)
        return [x, w], {"groups": 2}, want.astype(x.dtype)
    if name in REDUCE:
        x = r(3, 6)
        return [x], {"axes": [1]}, REDUCE[name](x.astype(np.float32), axis=1).astype(x.dtype)
    raise AssertionError(name)


LOW_OPS = sorted(BINARY) + sorted(UNARY) + ["gelu", "softmax", "matmul", "linear", "layer_norm",
                                            "rms_norm", "attention", "conv2d", *sorted(REDUCE)]


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("name", LOW_OPS)
def test_low_precision_matches_jax(name, dtype):
    arrays, attrs, want = low_case(name, dtype, np.random.default_rng(7))
    tol = {"f16": 1e-2, "bf16": 5e-2}[dtype]
    scale = max(1.0, float(np.max(np.abs(np.asarray(want, np.float32)))))
    check_op(name, arrays, attrs, want, rtol=tol, atol=tol * scale)


def test_layer_norm_reference_computes_in_f32():
    # 1 + 2**-10 steps are below bf16 resolution; f32 statistics still see them
    x = np.array([[1000.0, 1001.0, 1002.0, 1003.0]], ml_dtypes.bfloat16)
    ones, zeros = np.ones(4, ml_dtypes.bfloat16), np.zeros(4, ml_dtypes.bfloat16)
    got = opspec.lookup("nn.layer_norm").evaluate([x, ones, zeros])[0]
    assert got.dtype == ml_dtypes.bfloat16
    want = jax_layer_norm(x, ones, zeros, -1, 1e-5)
    np.testing.assert_allclose(got.astype(np.float32), np.asarray(want, np.float32), rtol=2e-2)


def test_show_dialects_lists_summaries():
    text = "\n".join(f"{s.name}: {s.summary}" for s in opspec.specs("nn"))
    assert re.search(r"nn\.conv2d: .*NHWC", text)
    assert opspec.lookup("nn.conv2d").attr("padding").describe() == "array<i64: ...> | string"
