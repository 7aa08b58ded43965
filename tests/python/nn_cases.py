"""One small nn-level function per op variant, shared by the lowering tests.

Each case is (name, argument types, op text); ``function(case)`` wraps it in
``func.func @<name>`` so many cases compile into one module.
"""

from __future__ import annotations

import numpy as np

from stepwell.core.types import TensorType

T = TensorType.parse

CASES = [
    # name, arguments, result, op (generic form; %0.. are the arguments)
    ("matmul", ["4x8xf32", "8x16xf32"], "4x16xf32", '"nn.matmul"(%0, %1)'),
    ("matmul_batch", ["2x3x4x8xf32", "3x8x5xf32"], "2x3x4x5xf32", '"nn.matmul"(%0, %1)'),
    ("matmul_weights", ["2x3x8xf32", "8x5xf32"], "2x3x5xf32", '"nn.matmul"(%0, %1)'),
    ("matmul_vec", ["8xf32", "8x5xf32"], "5xf32", '"nn.matmul"(%0, %1)'),
    ("matmul_matvec", ["3x8xf32", "8xf32"], "3xf32", '"nn.matmul"(%0, %1)'),
    ("linear", ["2x3x8xf32", "8x5xf32", "5xf32"], "2x3x5xf32", '"nn.linear"(%0, %1, %2)'),
    ("linear_nobias", ["4x8xf32", "8x5xf32"], "4x5xf32", '"nn.linear"(%0, %1)'),
    ("conv_same", ["1x8x8x3xf32", "3x3x3x4xf32"], "1x8x8x4xf32", '"nn.conv2d"(%0, %1) {padding = "SAME"}'),
    ("conv_valid_bias", ["2x9x9x3xf32", "3x3x3x4xf32", "4xf32"], "2x4x4x4xf32",
     '"nn.conv2d"(%0, %1, %2) {padding = "VALID", strides = array<i64: 2, 2>}'),
    ("conv_explicit_dilated", ["1x9x9x2xf32", "3x2x2x4xf32"], "1x7x9x4xf32",
     '"nn.conv2d"(%0, %1) {padding = array<i64: 1, 1, 1, 1>, dilation = array<i64: 2, 2>}'),
    ("conv_depthwise", ["1x8x8x4xf32", "3x3x1x4xf32"], "1x8x8x4xf32",
     '"nn.conv2d"(%0, %1) {padding = "SAME", groups = 4 : i64}'),
    ("conv_grouped", ["1x6x6x4xf32", "3x3x2x6xf32"], "1x4x4x6xf32",
     '"nn.conv2d"(%0, %1) {padding = "VALID", groups = 2 : i64}'),
    ("add", ["4x8xf32", "8xf32"], "4x8xf32", '"nn.add"(%0, %1)'),
    ("sub", ["4x1xf32", "1x8xf32"], "4x8xf32", '"nn.sub"(%0, %1)'),
    ("mul", ["4x8xf32", "4x8xf32"], "4x8xf32", '"nn.mul"(%0, %1)'),
    ("div", ["4x8xf32", "4x8xf32"], "4x8xf32", '"nn.div"(%0, %1)'),
    ("maximum", ["4x8xf32", "4x8xf32"], "4x8xf32", '"nn.maximum"(%0, %1)'),
    ("minimum", ["4x8xf32", "4x8xf32"], "4x8xf32", '"nn.minimum"(%0, %1)'),
    ("relu", ["4x8xf32"], "4x8xf32", '"nn.relu"(%0)'),
    ("gelu_tanh", ["4x8xf32"], "4x8xf32", '"nn.gelu"(%0) {approximate = true}'),
    ("gelu_erf", ["4x8xf32"], "4x8xf32", '"nn.gelu"(%0) {approximate = false}'),
    ("silu", ["4x8xf32"], "4x8xf32", '"nn.silu"(%0)'),
    ("sigmoid", ["4x8xf32"], "4x8xf32", '"nn.sigmoid"(%0)'),
    ("tanh", ["4x8xf32"], "4x8xf32", '"nn.tanh"(%0)'),
    ("exp", ["4x8xf32"], "4x8xf32", '"nn.exp"(%0)'),
    ("softmax", ["4x8xf32"], "4x8xf32", '"nn.softmax"(%0) {axis = -1 : i64}'),
    ("softmax_axis0", ["4x8xf32"], "4x8xf32", '"nn.softmax"(%0) {axis = 0 : i64}'),
    ("layer_norm", ["2x4x8xf32", "8xf32", "8xf32"], "2x4x8xf32",
     '"nn.layer_norm"(%0, %1, %2) {axis = -1 : i64, epsilon = 1.0e-05 : f32}'),
    ("rms_norm", ["2x4x8xf32", "8xf32"], "2x4x8xf32", '"nn.rms_norm"(%0, %1) {epsilon = 1.0e-06 : f32}'),
    ("attention", ["1x2x8x4xf32", "1x2x8x4xf32", "1x2x8x4xf32"], "1x2x8x4xf32",
     '"nn.attention"(%0, %1, %2)'),
    ("attention_causal", ["2x2x8x4xf32", "2x2x8x4xf32", "2x2x8x4xf32"], "2x2x8x4xf32",
     '"nn.attention"(%0, %1, %2) {causal = true, scale = 0.25 : f32}'),
    ("attention_mask", ["1x2x4x4xf32", "1x2x6x4xf32", "1x2x6x4xf32", "1x1x4x6xi1"], "1x2x4x4xf32",
     '"nn.attention"(%0, %1, %2, %3)'),
    ("embedding", ["10x4xf32", "2x3xi32"], "2x3x4xf32", '"nn.embedding"(%0, %1)'),
    ("reduce_sum", ["2x3x4xf32"], "2x4xf32", '"nn.reduce_sum"(%0) {axes = array<i64: 1>}'),
    ("reduce_mean_keep", ["2x3x4xf32"], "2x1x1xf32",
     '"nn.reduce_mean"(%0) {axes = array<i64: 1, 2>, keepdims = true}'),
    ("reduce_max_all", ["2x3x4xf32"], "f32", '"nn.reduce_max"(%0)'),
    ("reshape", ["2x3x4xf32"], "6x4xf32", '"nn.reshape"(%0)'),
    ("transpose", ["2x3x4xf32"], "4x2x3xf32", '"nn.transpose"(%0) {permutation = array<i64: 2, 0, 1>}'),
    ("concat", ["2x3xf32", "2x5xf32"], "2x8xf32", '"nn.concat"(%0, %1) {axis = 1 : i64}'),
    ("cast", ["2x3xf32"], "2x3xf16", '"nn.cast"(%0)'),
]


def tensor(text: str) -> str:
    return f"tensor<{text}>"


def function(case) -> str:
    name, args, result, body = case
    params = ", ".join(f"%{i}: {tensor(a)}" for i, a in enumerate(args))
    sig = "(" + ", ".join(tensor(a) for a in args) + ") -> " + tensor(result)
    text = f"  func.func @{name}({params}) -> {tensor(result)} {{\n"
    text += f"    %r = {body} : {sig}\n    return %r : {tensor(result)}\n  }}\n"
    return text


def module(cases=CASES) -> str:
    return "module {\n" + "".join(function(c) for c in cases) + "}\n"


def inputs(case, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for a in case[1]:
        t = T(a)
        if t.dtype == "i1":
            out.append(rng.random(t.shape) > 0.3)
        elif t.dtype.startswith("i"):
            out.append(rng.integers(0, 10, t.shape).astype(t.numpy_dtype()))
        else:
            out.append(rng.standard_normal(t.shape).astype(t.numpy_dtype()))
    return out
