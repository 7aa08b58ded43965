"""Every prim op: builder round trip, verifier negatives, and its numpy reference
semantics checked against jax.numpy / jax.lax on random inputs (hypothesis shapes).

Hypothesis profiles ("ci", "dev") come from conftest.py.
"""

import re

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stepwell as sw
from stepwell.core import opspec
from stepwell.dialects.prim import MAP_FNS
from stepwell.core.ir import context, func, ir
from stepwell.core.types import TensorType

PRIM_OPS = sorted(s.name for s in opspec.specs("prim"))


def tt(text: str) -> TensorType:
    return TensorType.parse(text)


# ---------------------------------------------------------------------------
# (a) round trip through the builders: build, print, parse, print -> identical
# ---------------------------------------------------------------------------

ROUND_TRIP = [
    ("prim.contract", ["4x8xf32", "8x16xf32"], lambda a, b: sw.prim.contract(a, b, spec="mk,kn->mn")),
    ("prim.contract", ["2x4x8xbf16", "2x16x8xbf16"],
     lambda a, b: sw.prim.contract(a, b, spec="bmk,bnk->bmn", result_type=tt("2x4x16xf32"))),
    ("prim.contract", ["4x8xi8", "8x2xi8"],
     lambda a, b: sw.prim.contract(a, b, spec="mk,kn->nm", result_type=tt("2x4xi32"))),
    ("prim.map", ["4x8xf32", "4x8xf32"], lambda a, b: sw.prim.map(a, b, fn="add")),
    ("prim.map", ["4x8xf32"], lambda a: sw.prim.map(a, fn="erf")),
    ("prim.map", ["4xi32", "4xi32"], lambda a, b: sw.prim.map(a, b, fn="lt")),
    ("prim.map", ["3xi1", "3xf16", "3xf16"], lambda c, a, b: sw.prim.map(c, a, b, fn="select")),
    ("prim.broadcast", ["8xf32"], lambda x: sw.prim.broadcast(x, dims=[1], result_type=tt("4x8xf32"))),
    ("prim.reduce", ["4x8x2xf32"], lambda x: sw.prim.reduce(x, kind="sum", axes=[0, -1])),
    ("prim.reduce", ["4x8xi32"], lambda x: sw.prim.reduce(x, kind="max", axes=[1])),
    ("prim.transpose", ["2x3x4xf32"], lambda x: sw.prim.transpose(x, permutation=[2, 0, 1])),
    ("prim.reshape", ["2x3x4xf32"], lambda x: sw.prim.reshape(x, result_type=tt("6x4xf32"))),
    ("prim.reshape", ["?x4xf32"], lambda x: sw.prim.reshape(x, result_type=tt("?x2x2xf32"))),
    ("prim.reshape", ["?x?x4xf32"], lambda x: sw.prim.reshape(
        x, _muli(_dim(x, 0), _dim(x, 1)), result_type=tt("?x4xf32"))),
    ("prim.broadcast", ["?x4xf32"], lambda x: sw.prim.broadcast(
        x, _dim(x, 0), _dim(x, 0), dims=[0, 2], result_type=tt("?x?x4xf32"))),
    ("prim.slice", ["?x8xf32"], lambda x: sw.prim.slice(x, _dim(x, 0), start=[0, 2], limit=[-1, 6])),
    ("prim.iota", ["?xf32"], lambda x: sw.prim.iota(_dim(x, 0), dim=0, result_type=tt("?x3xi32"))),
    ("prim.update_slice", ["?x8xf32", "1x8xf32"], lambda x, u: sw.prim.update_slice(x, u, _dim(x, 0), _dim(u, 0))),
    ("prim.cast", ["4x8xf32"], lambda x: sw.prim.cast(x, result_type=tt("4x8xbf16"))),
    ("prim.slice", ["8x8xf32"], lambda x: sw.prim.slice(x, start=[1, 0], limit=[7, 8], stride=[2, 1])),
    ("prim.slice", ["8x8xf32"], lambda x: sw.prim.slice(x, start=[0, 2], limit=[4, 6])),
    ("prim.pad", ["4x8xf32"], lambda x: sw.prim.pad(x, low=[1, 0], high=[0, 2], value=-1.5)),
    ("prim.concat", ["4x8xf32", "4x3xf32", "4x1xf32"], lambda a, b, c: sw.prim.concat([a, b, c], axis=1)),
    ("prim.gather", ["10x4xf32", "2x3xi32"], lambda t, i: sw.prim.gather(t, i)),
    ("prim.gather", ["4x10xf32", "5xi64"], lambda t, i: sw.prim.gather(t, i, axis=-1)),
    ("prim.iota", [], lambda: sw.prim.iota(dim=1, result_type=tt("4x8xi32"))),
    ("prim.conv", ["1x8x8x3xf32", "3x3x3x4xf32"], lambda x, w: sw.prim.conv(x, w)),
    ("prim.conv", ["2x9x9x6xf32", "3x2x2x12xf32"],
     lambda x, w: sw.prim.conv(x, w, strides=[2, 1], padding=[1, 1, 0, 2], dilation=[1, 2], groups=3)),
    # routing ops (dialects/prim_moe.py)
    ("prim.top_k", ["4x8xf32"], lambda x: sw.prim.top_k(x, k=3)),
    ("prim.scan", ["6x4xi32"], lambda x: sw.prim.scan(x, axis=0, exclusive=True)),
    ("prim.scatter", ["9x2xf32", "5xi32", "5x2xf32"], lambda d, i, u: sw.prim.scatter(d, i, u)),
    ("prim.block_matmul", ["8x4xf32", "2xi32", "3x4x5xf32"], lambda x, g, w: sw.prim.block_matmul(x, g, w, block=4)),
    ("prim.block_ffn", ["8x4xbf16", "4xi32", "3x4x5xbf16", "3x4x5xbf16", "3x5x4xbf16"],
     lambda x, g, wg, wu, wd: sw.prim.block_ffn(x, g, wg, wu, wd, block=2, activation="relu",
                                                result_type=tt("8x4xf32"))),
]


def _dim(x, i: int):
    """``tensor.dim %x, i`` (a run-time size for the ops' ``sizes`` operands)."""
    from stepwell.core.ir import arith, tensor
    return tensor.DimOp(x, arith.ConstantOp(ir.IndexType.get(), i).result).result


def _muli(a, b):
    from stepwell.core.ir import arith
    return arith.MulIOp(a, b).result


def build_module(arg_types, body) -> str:
    with context(), ir.Location.unknown():
        mod = ir.Module.create()
        with ir.InsertionPoint(mod.body):
            func.FuncOp.from_py_func(*[tt(t).to_mlir() for t in arg_types], name="main")(body)
        return str(mod)


@pytest.mark.parametrize("name,arg_types,body", ROUND_TRIP,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(ROUND_TRIP)])
def test_builder_round_trip(name, arg_types, body):
    text = build_module(arg_types, body)
    assert f'"{name}"' in text
    again = sw.parse(text)  # verifies: the builder's inferred type is the verifier's
    assert str(again) == text
    assert str(sw.parse(str(again))) == text


def test_round_trip_covers_every_op():
    assert sorted({c[0] for c in ROUND_TRIP}) == PRIM_OPS


def test_builder_rejects_bad_arguments():
    with pytest.raises(TypeError, match="'prim.transpose' permutation"):
        build_module(["2x3xf32"], lambda x: sw.prim.transpose(x, permutation=[0, 0]))
    with pytest.raises(TypeError, match="has no attribute 'perm'"):
        build_module(["2x3xf32"], lambda x: sw.prim.transpose(x, perm=[1, 0]))


# ---------------------------------------------------------------------------
# (b) verifier negatives: 'prim.<op>' message at file:line:col
# ---------------------------------------------------------------------------

# (op, operand types, attribute dict text, result type, expected message part)
NEGATIVE = [
    # prim.contract
    ("prim.contract", ["4x8xf32"], '{spec = "mk,kn->mn"}', "4x16xf32", "expects 2 operands, found 1"),
    ("prim.contract", ["4x8xf32", "8x16xf32"], '{spec = "mk,kn"}', "4x16xf32", "must look like 'mk,kn->mn'"),
    ("prim.contract", ["4x8xf32", "8x16xf32"], '{spec = "mK,Kn->mn"}', "4x16xf32", "distinct lowercase letters"),
    ("prim.contract", ["4x8xf32", "8x16xf32"], '{spec = "mk,kn->mz"}', "4x16xf32",
     "result letter 'z' is in no operand"),
    ("prim.contract", ["4x8x2xf32", "8x16xf32"], '{spec = "mkj,kn->mn"}', "4x16xf32",
     "summed letter 'j' must appear in both operands"),
    ("prim.contract", ["4x8xf32", "8x16xf32"], '{spec = "bmk,kn->bmn"}', "4x16xf32",
     "spec operand 'lhs' has 3 letters but lhs is tensor<4x8xf32>"),
    ("prim.contract", ["4x8xf32", "7x16xf32"], '{spec = "mk,kn->mn"}', "4x16xf32",
     "dimension 'k' differs: lhs tensor<4x8xf32> and rhs tensor<7x16xf32> (8 vs 7)"),
    ("prim.contract", ["4x8xf32", "8x16xf16"], '{spec = "mk,kn->mn"}', "4x16xf32",
     "operand element types differ: f32, f16"),
    ("prim.contract", ["4x8xf32", "8x16xf32"], '{spec = "mk,kn->mn"}', "4x15xf32",
     "result #0 type mismatch: expected tensor<4x16xf32>, found tensor<4x15xf32>"),
    ("prim.contract", ["4x8xf32", "8x16xf32"], '{spec = "mk,kn->mn"}', "4x16xi32",
     "result element type i32 cannot accumulate f32"),
    ("prim.contract", ["4x8xf32", "8x16xf32"], "", "4x16xf32", "requires attribute 'spec'"),
    ("prim.contract", ["4x8xf32", "8x16xf32"], "{spec = 3 : i64}", "4x16xf32", "attribute 'spec' must be string"),
    # prim.map
    ("prim.map", ["4x8xf32", "4x7xf32"], '{fn = "add"}', "4x8xf32", "operands must have equal shapes"),
    ("prim.map", ["4x8xf32"], '{fn = "add"}', "4x8xf32", "fn 'add' takes 2 operands, found 1"),
    ("prim.map", ["4xf32"], '{fn = "frobnicate"}', "4xf32", "attribute 'fn' must be one of"),
    ("prim.map", ["4xf32"], "", "4xf32", "requires attribute 'fn'"),
    ("prim.map", ["4xi32"], '{fn = "exp"}', "4xi32", "fn 'exp' needs a float element type, found i32"),
    ("prim.map", ["4xf32", "4xf32"], '{fn = "and"}', "4xf32", "fn 'and' needs an integer or i1 element type"),
    ("prim.map", ["4xf32", "4xf16"], '{fn = "mul"}', "4xf32", "operand element types differ: f32, f16"),
    ("prim.map", ["4xf32", "4xf32", "4xf32"], '{fn = "select"}', "4xf32", "select condition must be i1"),
    ("prim.map", ["4xf32", "4xf32"], '{fn = "lt"}', "4xf32",
     "result #0 type mismatch: expected tensor<4xi1>, found tensor<4xf32>"),
    # prim.broadcast
    ("prim.broadcast", ["4xf32"], "{dims = array<i64: 0, 1>}", "3x4xf32",
     "must name one result dimension per operand dimension"),
    ("prim.broadcast", ["4x3xf32"], "{dims = array<i64: 1, 0>}", "3x4xf32", "must be increasing result dimensions"),
    ("prim.broadcast", ["4xf32"], "{dims = array<i64: 2>}", "3x4xf32", "must be increasing result dimensions"),
    ("prim.broadcast", ["4xf32"], "{dims = array<i64: 0>}", "3x4xf32",
     "operand dimension 0 (4) must equal result dimension 0 (3)"),
    ("prim.broadcast", ["4xf32"], "{dims = array<i64: 1>}", "3x4xf16", "result element type f16 differs from operand f32"),
    ("prim.broadcast", ["4xf32"], "{dims = 1 : i64}", "3x4xf32", "attribute 'dims' must be array<i64: ...>"),
    ("prim.broadcast", ["4xf32"], "{dims = array<i64: 1>}", "?x4xf32",
     "dynamic added dimension 0 of tensor<?x4xf32> needs its size"),
    ("prim.broadcast", ["?xf32", "index"], "{dims = array<i64: 1>}", "?x?xf32",
     "takes one size per dynamic result dimension of tensor<?x?xf32> (2), found 1"),
    # prim.reduce
    ("prim.reduce", ["4x8xf32"], '{kind = "sum", axes = array<i64: 2>}', "4xf32", "axis 2 is out of range for rank 2"),
    ("prim.reduce", ["4x8xf32"], '{kind = "sum", axes = array<i64: 1, -1>}', "4xf32", "repeat an axis"),
    ("prim.reduce", ["4x8xf32"], '{kind = "mean", axes = array<i64: 1>}', "4xf32",
     "attribute 'kind' must be one of 'sum', 'max', 'min', 'prod', found 'mean'"),
    ("prim.reduce", ["4x8xf32"], '{kind = "sum", axes = array<i64: 1>}', "4x8xf32",
     "result #0 type mismatch: expected tensor<4xf32>, found tensor<4x8xf32>"),
    # prim.transpose
    ("prim.transpose", ["4x8xf32"], "{permutation = array<i64: 0, 0>}", "4x8xf32",
     "permutation [0, 0] is not a permutation of rank 2"),
    ("prim.transpose", ["4x8xf32"], "{permutation = array<i64: 1, 0, 2>}", "8x4xf32",
     "permutation [1, 0, 2] is not a permutation of rank 2"),
    ("prim.transpose", ["4x8xf32"], "{permutation = array<i64: 1, 0>}", "4x8xf32",
     "result #0 type mismatch: expected tensor<8x4xf32>, found tensor<4x8xf32>"),
    ("prim.transpose", ["4x8xf32"], "{perm = array<i64: 1, 0>}", "8x4xf32",
     "unknown attribute 'perm' (known: permutation)"),
    # prim.reshape
    ("prim.reshape", ["4x8xf32"], "", "5x6xf32",
     "element counts differ: operand tensor<4x8xf32> has 32, result tensor<5x6xf32> has 30"),
    ("prim.reshape", ["4x8xf32"], "", "32xf16", "result element type f16 differs from operand f32"),
    ("prim.reshape", ["4x8xf32", "4x8xf32"], "", "32xf32", "operand 'sizes' must be index, found tensor<4x8xf32>"),
    ("prim.reshape", ["?x8xf32", "index", "index"], "", "?x4x2xf32",
     "takes one size per dynamic result dimension of tensor<?x4x2xf32> (1), found 2"),
    # prim.cast
    ("prim.cast", ["4x8xf32"], "", "4x4xi32", "result shape tensor<4x4xi32> differs from operand tensor<4x8xf32>"),
    ("prim.cast", [], "", "4xi32", "expects 1 operands, found 0"),
    # prim.slice
    ("prim.slice", ["4x8xf32"], "{start = array<i64: 0, 0>, limit = array<i64: 5, 8>}", "5x8xf32",
     "slice [0:5] out of bounds for dimension 0 of tensor<4x8xf32>"),
    ("prim.slice", ["4x8xf32"], "{start = array<i64: 3, 0>, limit = array<i64: 2, 8>}", "1x8xf32",
     "slice [3:2] out of bounds for dimension 0"),
    ("prim.slice", ["4x8xf32"], "{start = array<i64: 0>, limit = array<i64: 4>}", "4x8xf32",
     "start/limit/stride need 2 entries each for tensor<4x8xf32>"),
    ("prim.slice", ["4x8xf32"], "{start = array<i64: 0, 0>, limit = array<i64: 4, 8>, stride = array<i64: 1, 0>}",
     "4x8xf32", "stride 0 must be positive"),
    ("prim.slice", ["4x8xf32"], "{limit = array<i64: 4, 8>}", "4x8xf32", "requires attribute 'start'"),
    ("prim.slice", ["?x8xf32"], "{start = array<i64: 0, 0>, limit = array<i64: -1, 8>}", "?x8xf32",
     "takes one size per limit of -1 (1), found 0"),
    ("prim.slice", ["4x8xf32", "index"], "{start = array<i64: 5, 0>, limit = array<i64: -1, 8>}", "?x8xf32",
     "slice start 5 out of bounds for dimension 0 of tensor<4x8xf32>"),
    # prim.pad
    ("prim.pad", ["4x8xf32"], "{low = array<i64: 0, -1>, high = array<i64: 0, 0>}", "4x7xf32",
     "padding must be non-negative"),
    ("prim.pad", ["4x8xf32"], "{low = array<i64: 1>, high = array<i64: 1>}", "6x8xf32",
     "low/high need 2 entries each for tensor<4x8xf32>"),
    ("prim.pad", ["4x8xf32"], "{low = array<i64: 1, 1>, high = array<i64: 1, 1>, value = 1 : i64}", "6x10xf32",
     "attribute 'value' must be f32 float"),
    ("prim.pad", ["4x8xf32"], "{low = array<i64: 1, 1>, high = array<i64: 1, 1>}", "6x8xf32",
     "result #0 type mismatch: expected tensor<6x10xf32>, found tensor<6x8xf32>"),
    # prim.concat
    ("prim.concat", ["4x8xf32", "5x8xf32"], "{axis = 1 : i64}", "4x16xf32", "operand shapes differ off axis 1"),
    ("prim.concat", ["4x8xf32", "4x8xf16"], "{axis = 0 : i64}", "8x8xf32", "operand element types differ: f32, f16"),
    ("prim.concat", ["4x8xf32", "4x8xf32"], "{axis = 2 : i64}", "8x8xf32", "axis 2 is out of range for rank 2"),
    ("prim.concat", ["4x8xf32", "8xf32"], "{axis = 0 : i64}", "12x8xf32", "operands must have equal ranks"),
    ("prim.concat", [], "{axis = 0 : i64}", "4xf32", "needs at least one operand"),
    # prim.gather
    ("prim.gather", ["10x4xf32", "3xf32"], "", "3x4xf32", "ids must be integers, found tensor<3xf32>"),
    ("prim.gather", ["10x4xf32", "3xi32"], "{axis = 2 : i64}", "3x4xf32", "axis 2 is out of range for rank 2"),
    ("prim.gather", ["10x4xf32", "3xi32"], "{axis = 1 : i64}", "3x4xf32",
     "result #0 type mismatch: expected tensor<10x3xf32>, found tensor<3x4xf32>"),
    # prim.iota
    ("prim.iota", [], "{dim = 2 : i64}", "4x8xi32", "dim 2 out of range for tensor<4x8xi32>"),
    ("prim.iota", [], "{dim = 0 : i64}", "?x8xi32",
     "iota of tensor<?x8xi32> needs the sizes of its dynamic dimensions (index operands)"),
    ("prim.iota", ["4xi32"], "{dim = 0 : i64}", "4xi32", "operand 'sizes' must be index, found tensor<4xi32>"),
    # prim.update_slice
    ("prim.update_slice", ["4x8xf32", "2x8xf32", "index"], "", "4x8xf32",
     "takes one offset per dimension of tensor<4x8xf32> (2), found 1"),
    ("prim.update_slice", ["4x8xf32", "2x9xf32", "index", "index"], "", "4x8xf32",
     "update dimension 1 (9) exceeds x's (8)"),
    ("prim.update_slice", ["4x8xf32", "2x8xf16", "index", "index"], "", "4x8xf32",
     "update element type f16 differs from x f32"),
    ("prim.update_slice", ["4x8xf32", "8xf32", "index"], "", "4x8xf32",
     "update tensor<8xf32> must have the rank of x tensor<4x8xf32>"),
    # prim.conv
    ("prim.conv", ["1x8x8x3xf32", "3x3x4x8xf32"], "", "1x6x6x8xf32",
     "weight input channels 4 x groups 1 must equal input channels 3"),
    ("prim.conv", ["1x8x8x3xf32", "3x3x1x8xf32"], "{groups = 2 : i64}", "1x6x6x8xf32",
     "groups 2 must divide input channels 3 and output channels 8"),
    ("prim.conv", ["1x8x8x4xf32", "3x3x2x5xf32"], "{groups = 2 : i64}", "1x6x6x5xf32",
     "groups 2 must divide input channels 4 and output channels 5"),
    ("prim.conv", ["1x2x2x3xf32", "3x3x3x4xf32"], "", "1x1x1x4xf32", "kernel span 3 exceeds the padded input 2"),
    ("prim.conv", ["8x8x3xf32", "3x3x3x4xf32"], "", "6x6x4xf32", "expects NHWC input and HWIO weight"),
    ("prim.conv", ["1x8x8x3xf32", "3x3x3x4xf32"], "{padding = array<i64: 1, 1>}", "1x8x8x4xf32",
     "padding 4 (top, bottom, left, right)"),
    ("prim.conv", ["1x8x8x3xf32", "3x3x3x4xf32"], "{strides = array<i64: 0, 1>}", "1x6x6x4xf32",
     "strides, dilation and groups must be positive"),
    ("prim.conv", ["1x8x8x3xf32", "3x3x3x4xf32"], "{strides = array<i64: 2, 2>}", "1x6x6x4xf32",
     "result #0 type mismatch: expected tensor<1x3x3x4xf32>, found tensor<1x6x6x4xf32>"),
    ("prim.conv", ["1x8x8x3xf32", "3x3x3x4xf32"], "{strides = 2 : i64}", "1x3x3x4xf32",
     "attribute 'strides' must be array<i64: ...>"),
    ("prim.conv", ["1x8x8x3xf32", "3x3x3x4xf16"], "", "1x6x6x4xf32", "operand element types differ: f32, f16"),
    ("prim.conv", ["1x8x8x3xf32", "3x3x3x4xf32", "4xf32"], "", "1x6x6x4xf32", "expects 2 operands, found 3"),
]


NEGATIVE += [  # routing ops (dialects/prim_moe.py)
    ("prim.top_k", ["4x8xf32"], "{k = 2 : i64}", "4x2xf32", "expects 2 results, found 1"),
    ("prim.scan", ["4x8xi32"], "{axis = 2 : i64}", "4x8xi32", "axis 2 is out of range for rank 2"),
    ("prim.scatter", ["9x2xf32", "5xf32", "5x2xf32"], "", "9x2xf32", "indices must be i32/i64 [n], found tensor<5xf32>"),
    ("prim.block_matmul", ["9x4xf32", "2xi32", "3x4x5xf32"], "{block = 4 : i64}", "9x5xf32",
     "x must have tiles * block = 2 * 4 rows, found tensor<9x4xf32>"),
    ("prim.block_ffn", ["8x4xf32", "2xi32", "3x4x5xf32", "3x4x4xf32"], "{block = 4 : i64}", "8x4xf32",
     "w_down tensor<3x4x4xf32> must be [groups, hidden, in] for w_gate tensor<3x4x5xf32>"),
]


def negative_text(name, operand_types, attrs, result) -> str:
    wrap = lambda t: t if t == "index" else f"tensor<{t}>"  # noqa: E731
    args = ", ".join(f"%a{i}: {wrap(t)}" for i, t in enumerate(operand_types))
    operands = ", ".join(f"%a{i}" for i in range(len(operand_types)))
    types = ", ".join(wrap(t) for t in operand_types)
    attrs = f" {attrs}" if attrs else ""
    return (f"func.func @f({args}) {{\n"
            f'  %0 = "{name}"({operands}){attrs} : ({types}) -> tensor<{result}>\n'
            f"  return\n}}\n")


def parse_error(text: str) -> str:
    with pytest.raises(sw.StepwellError) as info:
        sw.parse(text, name="in.mlir")
    return str(info.value)


@pytest.mark.parametrize("name,operand_types,attrs,result,message", NEGATIVE,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(NEGATIVE)])
def test_verifier_negative(name, operand_types, attrs, result, message):
    error = parse_error(negative_text(name, operand_types, attrs, result))
    assert re.match(rf"in\.mlir:2:8: error: '{re.escape(name)}' .*{re.escape(message)}", error), error
    assert len(error.splitlines()) == 1


def test_negatives_cover_every_op():
    assert sorted({c[0] for c in NEGATIVE}) == PRIM_OPS


def test_unknown_prim_op_suggests_the_closest():
    error = parse_error(negative_text("prim.transpse", ["4x8xf32"], "", "8x4xf32"))
    assert error == "in.mlir:2:8: error: unknown op 'prim.transpse'; did you mean 'prim.transpose'?"


def test_unranked_operand_is_rejected():
    text = ("func.func @f(%a: tensor<*xf32>) {\n"
            '  %0 = "prim.map"(%a) {fn = "exp"} : (tensor<*xf32>) -> tensor<4xf32>\n  return\n}\n')
    assert parse_error(text) == ("in.mlir:2:8: error: 'prim.map' operand #0 must be a ranked tensor or index, "
                                 "found tensor<*xf32>")


def test_dynamic_spatial_conv_verifies():
    text = ("func.func @f(%x: tensor<1x?x8x3xf32>, %w: tensor<3x3x3x4xf32>) {\n"
            '  %0 = "prim.conv"(%x, %w) : (tensor<1x?x8x3xf32>, tensor<3x3x3x4xf32>) -> tensor<1x?x6x4xf32>\n'
            "  return\n}\n")
    sw.parse(text)


# ---------------------------------------------------------------------------
# (c) numerics: the numpy reference against jax.numpy / jax.lax
# ---------------------------------------------------------------------------


def evaluate(name, arrays, attrs, result=None):
    results = None if result is None else [result]
    return opspec.lookup(name).evaluate(arrays, attrs, results)[0]


def assert_matches(ours, theirs, rtol=1e-5, atol=1e-6):
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    if ours.dtype.kind in "biu":
        np.testing.assert_array_equal(ours, theirs)
    else:
        np.testing.assert_allclose(ours.astype(np.float64), theirs.astype(np.float64), rtol=rtol, atol=atol)


def shapes(min_rank=1, max_rank=3, max_side=5):
    return st.lists(st.integers(1, max_side), min_size=min_rank, max_size=max_rank).map(tuple)


seeds = st.integers(0, 2**32 - 1)


def normal(rng, shape, dtype=np.float32, scale=1.0):
    return np.asarray(rng.standard_normal(shape) * scale).astype(dtype)


# -- contract -------------------------------------------------------------------

CONTRACT_SPECS = ["mk,kn->mn", "km,kn->mn", "mk,nk->nm", "bmk,bkn->bmn", "bmk,bnk->bmn",
                  "bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd", "i,j->ij", "ab,ab->ab", "abc,c->ab", "ij,jk->ki"]


@pytest.mark.parametrize("spec", CONTRACT_SPECS)
@given(data=st.data(), seed=seeds)
def test_contract_matches_einsum(spec, data, seed):
    lhs, rhs, _ = spec.replace("->", ",").split(",")
    sizes = {c: data.draw(st.integers(1, 5), label=c) for c in sorted(set(lhs + rhs))}
    rng = np.random.default_rng(seed)
    a = normal(rng, [sizes[c] for c in lhs])
    b = normal(rng, [sizes[c] for c in rhs])
    want = jnp.einsum(spec, a, b, precision=jax.lax.Precision.HIGHEST)
    assert_matches(evaluate("prim.contract", [a, b], {"spec": spec}), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,acc", [("i8", "i32"), ("bf16", "f32"), ("f16", "f32")])
def test_contract_accumulates_in_result_type(dtype, acc):
    rng = np.random.default_rng(0)
    np_dtype = TensorType((), dtype).numpy_dtype()
    if dtype == "i8":
        a, b = rng.integers(-128, 128, (6, 40)).astype(np_dtype), rng.integers(-128, 128, (40, 3)).astype(np_dtype)
    else:
        a, b = normal(rng, (6, 40), np_dtype), normal(rng, (40, 3), np_dtype)
    ours = evaluate("prim.contract", [a, b], {"spec": "mk,kn->mn"}, TensorType((6, 3), acc))
    want = jnp.einsum("mk,kn->mn", a, b, preferred_element_type=TensorType((), acc).numpy_dtype(),
                      precision=jax.lax.Precision.HIGHEST)
    assert_matches(ours, want, rtol=1e-5, atol=1e-4)


# -- map: every fn ----------------------------------------------------------------

JAX_MAP = {
    "neg": jnp.negative, "abs": jnp.abs, "exp": jnp.exp, "log": jnp.log, "tanh": jnp.tanh,
    "erf": jax.scipy.special.erf, "sqrt": jnp.sqrt, "rsqrt": jax.lax.rsqrt, "logistic": jax.nn.sigmoid,
    "sin": jnp.sin, "cos": jnp.cos, "floor": jnp.floor, "ceil": jnp.ceil, "recip": jnp.reciprocal,
    "not": jax.lax.bitwise_not,
    "add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": jax.lax.div, "max": jnp.maximum,
    "min": jnp.minimum, "pow": jnp.power, "rem": jax.lax.rem,
    "and": jax.lax.bitwise_and, "or": jax.lax.bitwise_or, "xor": jax.lax.bitwise_xor,
    "shl": jax.lax.shift_left, "shr_s": jax.lax.shift_right_arithmetic,
    "shr_u": jax.lax.shift_right_logical, "round": jnp.round,
    "eq": jnp.equal, "ne": jnp.not_equal, "lt": jnp.less, "le": jnp.less_equal, "gt": jnp.greater,
    "ge": jnp.greater_equal, "select": jax.lax.select,
}
POSITIVE = ("log", "sqrt", "rsqrt")  # operands drawn in (0.1, 4)
NONZERO_RHS = ("div", "rem", "recip")  # the last operand kept away from zero


def map_dtypes(fn):
    arity, float_only, _ = MAP_FNS[fn]
    if fn in ("and", "or", "xor", "not"):
        return ["i1", "i32"]
    if fn in ("shl", "shr_s", "shr_u"):
        return ["i8", "i32"]
    if fn == "select":
        return ["f32", "i32"]
    return ["f32", "f16"] if float_only else ["f32", "i32"]


def map_operand(rng, fn, dtype, shape, index, arity):
    np_dtype = TensorType((), dtype).numpy_dtype()
    if dtype == "i1" or (fn == "select" and index == 0):
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dtype in ("i32", "i8"):
        if fn in ("shl", "shr_s", "shr_u") and index == 1:  # shift amounts below the bit width
            return rng.integers(0, 8, shape).astype(np_dtype)
        if fn in NONZERO_RHS and index == arity - 1:
            return (rng.integers(1, 10, shape) * rng.choice([-1, 1], shape)).astype(np_dtype)
        return rng.integers(-50, 51, shape).astype(np_dtype)
    if fn in POSITIVE or (fn == "pow" and index == 0):
        return rng.uniform(0.1, 4.0, shape).astype(np_dtype)
    if fn in NONZERO_RHS and index == arity - 1:
        return (rng.uniform(0.5, 3.0, shape) * rng.choice([-1, 1], shape)).astype(np_dtype)
    if fn in ("eq", "ne", "le", "ge") and index == 1:  # make some elements equal
        return None
    return normal(rng, shape, np_dtype, scale=2.0)


def jax_elementwise(fn, xs, size=128):
    """``fn`` on the flattened operands tiled to one fixed size, cut back to their shape:
    JAX compiles once per fn and dtype instead of once per drawn shape."""
    n = xs[0].size
    flat = [np.resize(x.ravel(), size) if n else np.zeros(size, x.dtype) for x in xs]
    return np.asarray(fn(*flat))[:n].reshape(xs[0].shape)


MAP_CASES = [(fn, dtype) for fn in MAP_FNS for dtype in map_dtypes(fn)]


def test_map_cases_cover_every_fn():
    assert sorted({fn for fn, _ in MAP_CASES}) == sorted(MAP_FNS) == sorted(JAX_MAP)


@pytest.mark.parametrize("fn,dtype", MAP_CASES, ids=[f"{fn}-{dt}" for fn, dt in MAP_CASES])
@given(shape=shapes(0, 3), seed=seeds)
def test_map_matches_jax(fn, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    arity = MAP_FNS[fn][0]
    xs = [map_operand(rng, fn, dtype, shape, i, arity) for i in range(arity)]
    if xs[-1] is None:  # comparisons: half the elements equal
        other = normal(rng, shape, xs[0].dtype, 2.0) if dtype != "i32" else rng.integers(-50, 51, shape).astype(xs[0].dtype)
        xs[-1] = np.where(rng.integers(0, 2, shape).astype(bool), xs[0], other)
    ours = evaluate("prim.map", xs, {"fn": fn})
    want = jax_elementwise(JAX_MAP[fn], xs)
    rtol = 2e-3 if dtype == "f16" else 2e-5
    assert_matches(ours, want, rtol=rtol, atol=rtol / 10)


# -- shape ops ------------------------------------------------------------------------


@given(data=st.data(), seed=seeds)
def test_broadcast_matches_broadcast_in_dim(data, seed):
    out_shape = data.draw(shapes(1, 4), label="result")
    dims = sorted(data.draw(st.sets(st.sampled_from(range(len(out_shape)))), label="dims"))
    x = normal(np.random.default_rng(seed), [out_shape[d] for d in dims])
    ours = evaluate("prim.broadcast", [x], {"dims": dims}, TensorType(out_shape, "f32"))
    assert_matches(ours, jax.lax.broadcast_in_dim(x, out_shape, dims))


@pytest.mark.parametrize("kind", ["sum", "max", "min", "prod"])
@given(data=st.data(), seed=seeds)
def test_reduce_matches_jnp(kind, data, seed):
    dtype = "f32" if kind == "prod" else data.draw(st.sampled_from(["f32", "i32"]), label="dtype")
    shape = data.draw(shapes(1, 4))
    rank = len(shape)
    axes = data.draw(st.lists(st.integers(-rank, rank - 1), unique_by=lambda a: a % rank, max_size=rank))
    rng = np.random.default_rng(seed)
    if dtype == "i32":
        x = rng.integers(-20, 21, shape).astype(np.int32)
    elif kind == "prod":
        x = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    else:
        x = normal(rng, shape)
    fns = {"sum": jnp.sum, "max": jnp.max, "min": jnp.min, "prod": jnp.prod}
    ours = evaluate("prim.reduce", [x], {"kind": kind, "axes": axes})
    assert_matches(ours, fns[kind](x, axis=tuple(axes)), atol=1e-5)


@given(data=st.data(), seed=seeds)
def test_transpose_matches_jnp(data, seed):
    shape = data.draw(shapes(0, 4))
    perm = data.draw(st.permutations(range(len(shape))))
    x = normal(np.random.default_rng(seed), shape)
    assert_matches(evaluate("prim.transpose", [x], {"permutation": perm}), jnp.transpose(x, perm))


@given(data=st.data(), seed=seeds)
def test_reshape_matches_jnp(data, seed):
    dims = data.draw(shapes(1, 4))
    order = data.draw(st.permutations(dims))  # same element count, regrouped
    cuts = data.draw(st.sets(st.integers(1, len(order) - 1))) if len(order) > 1 else set()
    out, start = [], 0
    for cut in sorted(cuts) + [len(order)]:
        out.append(int(np.prod(order[start:cut])))
        start = cut
    x = normal(np.random.default_rng(seed), dims)
    ours = evaluate("prim.reshape", [x], {}, TensorType(tuple(out), "f32"))
    assert_matches(ours, jnp.reshape(x, out))


CASTS = [("f32", "i32"), ("f32", "f16"), ("f32", "bf16"), ("f16", "f32"), ("i32", "f32"), ("f32", "i1"),
         ("i1", "f32"), ("i32", "i8"), ("i8", "i32")]


@pytest.mark.parametrize("src,dst", CASTS, ids=[f"{a}-{b}" for a, b in CASTS])
@given(shape=shapes(0, 3), seed=seeds)
def test_cast_matches_convert_element_type(src, dst, shape, seed):
    rng = np.random.default_rng(seed)
    src_dtype = TensorType((), src).numpy_dtype()
    dst_dtype = TensorType((), dst).numpy_dtype()
    if src == "i1":
        x = rng.integers(0, 2, shape).astype(np.bool_)
    elif src in ("i32", "i8"):
        x = rng.integers(-100, 101, shape).astype(src_dtype)
    else:
        x = normal(rng, shape, src_dtype, 20.0)
        x[rng.random(shape) < 0.2] = 0  # exact zeros for casts to i1
    ours = evaluate("prim.cast", [x], {}, TensorType(shape, dst))
    assert_matches(ours, jax_elementwise(lambda v: jax.lax.convert_element_type(v, dst_dtype), [x]))


@given(data=st.data(), seed=seeds)
def test_slice_matches_lax_slice(data, seed):
    shape = data.draw(shapes(1, 3, 8))
    start, limit, stride = [], [], []
    for d in shape:
        a = data.draw(st.integers(0, d - 1))
        start.append(a)
        limit.append(data.draw(st.integers(a + 1, d)))
        stride.append(data.draw(st.integers(1, 3)))
    x = normal(np.random.default_rng(seed), shape)
    ours = evaluate("prim.slice", [x], {"start": start, "limit": limit, "stride": stride})
    assert_matches(ours, jax.lax.slice(x, start, limit, stride))
    unit = evaluate("prim.slice", [x], {"start": start, "limit": limit})  # stride defaults to 1
    assert_matches(unit, jax.lax.slice(x, start, limit))


@given(data=st.data(), seed=seeds)
def test_update_slice_matches_dynamic_update_slice(data, seed):
    shape = data.draw(shapes(1, 3, 6))
    ushape = [data.draw(st.integers(1, d)) for d in shape]
    offsets = [data.draw(st.integers(-3, d + 2)) for d in shape]  # out of range: clamped (as StableHLO)
    rng = np.random.default_rng(seed)
    x, u = normal(rng, shape), normal(rng, ushape)
    ours = evaluate("prim.update_slice", [x, u, *offsets], {})
    # jax.lax wraps a negative offset from the end before StableHLO clamps; the op is StableHLO's
    assert_matches(ours, jax.lax.dynamic_update_slice(x, u, [max(o, 0) for o in offsets]))


def test_run_time_sizes_match_jax():
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    ours = evaluate("prim.slice", [x, 2], {"start": [1, 0], "limit": [-1, 4], "stride": [2, 1]},
                    TensorType((None, 4), "f32"))
    assert_matches(ours, jax.lax.slice(x, (1, 0), (5, 4), (2, 1)))
    ours = evaluate("prim.broadcast", [x[0], 3], {"dims": [1]}, TensorType((None, 4), "f32"))
    assert_matches(ours, jnp.broadcast_to(x[0], (3, 4)))
    ours = evaluate("prim.reshape", [x, 3, 8], {}, TensorType((None, None), "f32"))
    assert_matches(ours, jnp.reshape(x, (3, 8)))
    ours = evaluate("prim.iota", [5], {"dim": 0}, TensorType((None, 2), "i32"))
    assert_matches(ours, jax.lax.broadcasted_iota(np.int32, (5, 2), 0))


@pytest.mark.parametrize("dtype", ["f32", "i32"])
@given(data=st.data(), seed=seeds)
def test_pad_matches_lax_pad(dtype, data, seed):
    shape = data.draw(shapes(1, 3))
    low = data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape)))
    high = data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape)))
    value = float(data.draw(st.sampled_from([0.0, -1.5, 7.0])))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape) if dtype == "f32" else rng.integers(-9, 10, shape).astype(np.int32)
    ours = evaluate("prim.pad", [x], {"low": low, "high": high, "value": value})
    want = jax.lax.pad(x, np.asarray(value).astype(x.dtype), [(lo, hi, 0) for lo, hi in zip(low, high)])
    assert_matches(ours, want)


@given(data=st.data(), seed=seeds)
def test_concat_matches_jnp(data, seed):
    shape = list(data.draw(shapes(1, 3)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    rng = np.random.default_rng(seed)
    xs = []
    for n in sizes:
        shape[axis] = n
        xs.append(normal(rng, shape))
    assert_matches(evaluate("prim.concat", xs, {"axis": axis}), jnp.concatenate(xs, axis=axis))


@given(data=st.data(), seed=seeds)
def test_gather_matches_take_clamped(data, seed):
    table_shape = data.draw(shapes(1, 3))
    axis = data.draw(st.integers(-len(table_shape), len(table_shape) - 1))
    ids_shape = data.draw(shapes(0, 2))
    rng = np.random.default_rng(seed)
    n = table_shape[axis]
    ids = rng.integers(-2, n + 2, ids_shape).astype(data.draw(st.sampled_from([np.int32, np.int64])))
    table = normal(rng, table_shape)
    ours = evaluate("prim.gather", [table, ids], {"axis": axis})
    assert_matches(ours, jnp.take(table, ids, axis=axis, mode="clip"))


@pytest.mark.parametrize("dtype", ["i32", "f32"])
@given(data=st.data())
def test_iota_matches_broadcasted_iota(dtype, data):
    shape = data.draw(shapes(1, 4))
    dim = data.draw(st.integers(0, len(shape) - 1))
    ours = evaluate("prim.iota", [], {"dim": dim}, TensorType(shape, dtype))
    assert_matches(ours, jax.lax.broadcasted_iota(TensorType((), dtype).numpy_dtype(), shape, dim))


# -- conv -------------------------------------------------------------------------------


def jax_conv(x, w, strides, padding, dilation, groups):
    return jax.lax.conv_general_dilated(
        x, w, window_strides=strides, padding=[(padding[0], padding[1]), (padding[2], padding[3])],
        rhs_dilation=dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups, precision=jax.lax.Precision.HIGHEST)


# (x shape, w shape, strides, padding, dilation, groups)
CONV_VARIANTS = {
    "plain": ((1, 6, 6, 3), (3, 3, 3, 4), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "strided": ((2, 9, 8, 2), (3, 2, 2, 5), (2, 3), (0, 0, 0, 0), (1, 1), 1),
    "padded": ((1, 5, 5, 3), (3, 3, 3, 2), (1, 1), (1, 1, 2, 0), (1, 1), 1),
    "dilated": ((1, 9, 9, 2), (3, 3, 2, 3), (1, 1), (0, 0, 0, 0), (2, 3), 1),
    "grouped": ((1, 6, 6, 6), (3, 3, 2, 9), (1, 1), (1, 1, 1, 1), (1, 1), 3),
    "depthwise": ((2, 7, 7, 4), (3, 3, 1, 8), (2, 2), (1, 1, 1, 1), (1, 1), 4),
    "pointwise": ((1, 4, 4, 8), (1, 1, 8, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "everything": ((2, 10, 9, 6), (2, 3, 3, 4), (2, 1), (2, 1, 0, 3), (2, 2), 2),
}


@pytest.mark.parametrize("variant", CONV_VARIANTS)
def test_conv_variants_match_conv_general_dilated(variant):
    xs, ws, strides, padding, dilation, groups = CONV_VARIANTS[variant]
    rng = np.random.default_rng(0)
    x, w = normal(rng, xs), normal(rng, ws)
    attrs = {"strides": strides, "padding": padding, "dilation": dilation, "groups": groups}
    assert_matches(evaluate("prim.conv", [x, w], attrs), jax_conv(x, w, *attrs.values()), atol=1e-5)


@given(data=st.data(), seed=seeds)
def test_conv_matches_conv_general_dilated(data, seed):
    groups = data.draw(st.integers(1, 3), label="groups")
    ci, cog = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    strides = [data.draw(st.integers(1, 3)) for _ in range(2)]
    dilation = [data.draw(st.integers(1, 2)) for _ in range(2)]
    padding = [data.draw(st.integers(0, 2)) for _ in range(4)]
    h = data.draw(st.integers(max(1, (kh - 1) * dilation[0] + 1 - padding[0] - padding[1]), 8))
    wd = data.draw(st.integers(max(1, (kw - 1) * dilation[1] + 1 - padding[2] - padding[3]), 8))
    rng = np.random.default_rng(seed)
    x = normal(rng, (data.draw(st.integers(1, 2)), h, wd, ci * groups))
    w = normal(rng, (kh, kw, ci, cog * groups))
    attrs = {"strides": strides, "padding": padding, "dilation": dilation, "groups": groups}
    assert_matches(evaluate("prim.conv", [x, w], attrs), jax_conv(x, w, *attrs.values()), atol=1e-5)


def test_conv_i8_accumulates_exactly():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (1, 5, 5, 4)).astype(np.int8)
    w = rng.integers(-128, 128, (3, 3, 4, 2)).astype(np.int8)
    ours = evaluate("prim.conv", [x.astype(np.int32), w.astype(np.int32)], {})
    want = jax.lax.conv_general_dilated(x.astype(np.int32), w.astype(np.int32), (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert_matches(ours, want)


# -- routing ops (dialects/prim_moe.py) --------------------------------------------------


@given(data=st.data(), seed=seeds)
def test_top_k_matches_lax_top_k(data, seed):
    shape = data.draw(shapes(1, 3))
    k = data.draw(st.integers(1, shape[-1]))
    x = np.random.default_rng(seed).integers(-3, 3, shape).astype(np.float32)  # ties
    values, indices = opspec.lookup("prim.top_k").evaluate([x], {"k": k})
    want_v, want_i = jax.lax.top_k(x, k)
    assert_matches(values, want_v)
    assert_matches(indices, want_i)


@given(data=st.data(), seed=seeds)
def test_scan_matches_cumsum(data, seed):
    shape = data.draw(shapes(1, 3))
    axis = data.draw(st.integers(0, len(shape) - 1))
    x = np.random.default_rng(seed).integers(-9, 9, shape).astype(np.int32)
    assert_matches(evaluate("prim.scan", [x], {"axis": axis}), jnp.cumsum(x, axis=axis, dtype=jnp.int32))
    assert_matches(evaluate("prim.scan", [x], {"axis": axis, "exclusive": True}),
                   jnp.cumsum(x, axis=axis, dtype=jnp.int32) - x)


def test_scatter_matches_at_set_dropping_out_of_range():
    rng = np.random.default_rng(0)
    dest, upd = normal(rng, (6, 3)), normal(rng, (5, 3))
    idx = np.array([4, -1, 0, 6, 2], np.int32)  # -1 and 6: out of range, dropped
    want = jnp.asarray(dest).at[jnp.where(idx < 0, 6, idx)].set(upd, mode="drop")
    assert_matches(evaluate("prim.scatter", [dest, idx, upd], {}), want)


def _tiles_jax(x, groups, block, fn):
    """fn(tile rows, group) on the leading tiles whose group is in range, zeros after."""
    out, done = [], False
    for i, g in enumerate(groups):
        done = done or not 0 <= g < 3
        rows = x[i * block:(i + 1) * block]
        out.append(jnp.zeros((block, 4)) if done else fn(rows, g))
    return jnp.concatenate(out)


def test_block_matmul_and_ffn_match_per_tile_jax():
    rng = np.random.default_rng(1)
    x, w = normal(rng, (8, 4)), normal(rng, (3, 4, 4))
    wg, wu, wd = normal(rng, (3, 4, 5)), normal(rng, (3, 4, 5)), normal(rng, (3, 5, 4))
    for groups in ([2, 0, 1, 1], [1, 3, 0, 0], [2, 2, 2, 2]):  # 3: out of range, ends the tiles
        g = np.array(groups, np.int32)
        hi = jax.lax.Precision.HIGHEST
        assert_matches(evaluate("prim.block_matmul", [x, g, w], {"block": 2}),
                       _tiles_jax(x, groups, 2, lambda r, i: jnp.matmul(r, w[i], precision=hi)), atol=1e-5)
        assert_matches(evaluate("prim.block_ffn", [x, g, wg, wu, wd], {"block": 2, "activation": "silu"}),
                       _tiles_jax(x, groups, 2, lambda r, i: jnp.matmul(
                           jax.nn.silu(jnp.matmul(r, wg[i], precision=hi)) * jnp.matmul(r, wu[i], precision=hi),
                           wd[i], precision=hi)), atol=1e-5)


NUMERIC_TESTS = {
    "prim.contract": test_contract_matches_einsum, "prim.map": test_map_matches_jax,
    "prim.broadcast": test_broadcast_matches_broadcast_in_dim, "prim.reduce": test_reduce_matches_jnp,
    "prim.transpose": test_transpose_matches_jnp, "prim.reshape": test_reshape_matches_jnp,
    "prim.cast": test_cast_matches_convert_element_type, "prim.slice": test_slice_matches_lax_slice,
    "prim.pad": test_pad_matches_lax_pad, "prim.concat": test_concat_matches_jnp,
    "prim.gather": test_gather_matches_take_clamped, "prim.iota": test_iota_matches_broadcasted_iota,
    "prim.conv": test_conv_matches_conv_general_dilated,
    "prim.top_k": test_top_k_matches_lax_top_k, "prim.scan": test_scan_matches_cumsum,
    "prim.scatter": test_scatter_matches_at_set_dropping_out_of_range,
    "prim.block_matmul": test_block_matmul_and_ffn_match_per_tile_jax,
    "prim.block_ffn": test_block_matmul_and_ffn_match_per_tile_jax,
    "prim.update_slice": test_update_slice_matches_dynamic_update_slice,
}


def test_numerics_cover_every_op():
    assert sorted(NUMERIC_TESTS) == PRIM_OPS


def test_bf16_reference_rounds_like_jax():
    x = np.linspace(-3, 3, 17, dtype=np.float32).astype(ml_dtypes.bfloat16)
    ours = evaluate("prim.map", [x, x], {"fn": "mul"})
    assert_matches(ours, jnp.multiply(x, x), rtol=1e-2, atol=1e-2)


def test_reference_with_dynamic_result_types():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert_matches(evaluate("prim.reshape", [x], {}, TensorType((None, 2, 2), "f32")), jnp.reshape(x, (3, 2, 2)))
    ours = evaluate("prim.broadcast", [x], {"dims": [0, 2]}, TensorType((None, 5, 4), "f32"))
    assert_matches(ours, jax.lax.broadcast_in_dim(x, (3, 5, 4), (0, 2)))
