"""The ``nn`` dialect: model-level ops with numpy/JAX semantics (layouts as in Flax).

    %0 = "nn.linear"(%x, %w, %b) : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
    %1 = "nn.gelu"(%0) {approximate = false} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %2 = "nn.layer_norm"(%1, %s, %b2) {epsilon = 1.0e-05 : f32} : (...) -> tensor<4x16xf32>

Operand element types must be equal (no implicit promotion). References compute
f16/bf16 in f32 and round the result back to the operand type.
"""

from __future__ import annotations

import math

import numpy as np

from stepwell.dialects._common import (
    broadcast_shapes, conv2d_nhwc, conv_padding, dims_agree, float_type, merge_dim, norm_axes,
    norm_axis, num_elements, rank_is, same_dtype, shape_agrees, shape_str, upcast)
from stepwell.core.opspec import Attr, Operand, check, fail, op
from stepwell.core.types import TensorType, is_float


def _vector_like(t: TensorType | None, size, dtype: str, what: str, why: str) -> None:
    """Check an operand is a 1-D ``[size]`` tensor of ``dtype`` (scale, bias)."""
    if t is None:
        return
    check(t.dtype == dtype, f"{what} element type must be {dtype} like the input, found {t}")
    check(shape_agrees(t.shape, (size,)), f"{what} must have shape {shape_str([size])} ({why}), found {t}")


# -- linear algebra ---------------------------------------------------------------------


def matmul_type(a: TensorType, b: TensorType) -> TensorType:
    """The result type of ``jnp.matmul(a, b)`` (batch dims broadcast)."""
    dtype = same_dtype(a, b)
    check(a.rank >= 1 and b.rank >= 1, f"operands must have rank >= 1, found {a} and {b}")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.rank >= 2 else b.shape[0]
    if not dims_agree(ka, kb):
        fail(f"contracting dimensions differ: lhs {a} has {ka}, rhs {b} has {kb}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    shape = batch + (a.shape[-2:-1] if a.rank >= 2 else ()) + (b.shape[-1:] if b.rank >= 2 else ())
    return TensorType(shape, dtype)


def accumulator(s, dtype: str) -> str:
    """The result element type of a contraction: the operands' ``dtype``, or a wider float
    declared as the result type (bf16 x bf16 -> f32, like prim.contract and JAX's
    ``preferred_element_type``)."""
    want = s.results[0].dtype if s.results else dtype
    if want != dtype:
        check(is_float(dtype) and is_float(want)
              and TensorType((), want).numpy_dtype().itemsize > TensorType((), dtype).numpy_dtype().itemsize,
              f"result element type {want} cannot accumulate {dtype}")
    return want


op("nn.matmul", "Matrix product with batch broadcasting, like jnp.matmul (the result may be a wider float).",
   operands=["a", "b"], infer=lambda s: (lambda t: t.with_dtype(accumulator(s, t.dtype)))(matmul_type(s.a, s.b)),
   reference=lambda s, a, b: np.matmul(upcast(a), upcast(b)))


def _linear_infer(s):
    x, w = s.x, s.w
    rank_is(w, 2, "w", "[in, out]")
    check(x.rank >= 1, f"x must have rank >= 1, found {x}")
    dtype = same_dtype(x, w)
    if not dims_agree(x.shape[-1], w.shape[0]):
        fail(f"x features {x.shape[-1]} differ from w input size {w.shape[0]}: x {x}, w {w}")
    out = accumulator(s, dtype)
    _vector_like(s.b, w.shape[1], s.b.dtype if s.b is not None and s.b.dtype == out else dtype,
                 "bias", "w out size")
    return TensorType(x.shape[:-1] + (w.shape[1],), out)


def _linear_ref(s, x, w, b):
    y = upcast(x) @ upcast(w)
    return y if b is None else y + upcast(b)


op("nn.linear", "x @ w + b, with w of shape [in, out] and an optional bias [out] (the result may be a wider float).",
   operands=["x", "w", Operand("b", optional=True)], infer=_linear_infer, reference=_linear_ref)


def _conv2d_infer(s):
    x, w = rank_is(s.x, 4, "x", "(NHWC)"), rank_is(s.w, 4, "w", "(HWIO)")
    dtype = same_dtype(x, w)
    strides, dilation, groups = list(s.strides), list(s.dilation), s.groups
    check(len(strides) == 2 and min(strides) >= 1, f"strides must be 2 positive integers, found {strides}")
    check(len(dilation) == 2 and min(dilation) >= 1, f"dilation must be 2 positive integers, found {dilation}")
    check(groups >= 1, f"groups must be positive, found {groups}")
    n, h, wd, cin = x.shape
    kh, kw, cig, cout = w.shape
    if cin is not None:
        check(cin % groups == 0, f"groups {groups} must divide the input channels {cin} of x {x}")
        check(dims_agree(cig, cin // groups),
              f"w input channels must be {cin // groups} (x channels {cin} / groups {groups}), found w {w}")
    if cout is not None:
        check(cout % groups == 0, f"groups {groups} must divide the output channels {cout} of w {w}")
    pads = conv_padding(s.padding, strides, dilation, (h, wd), (kh, kw))
    out = []
    for name, size, k, pad, st, dil in (("height", h, kh, pads[0], strides[0], dilation[0]),
                                        ("width", wd, kw, pads[1], strides[1], dilation[1])):
        if size is None or k is None or pad is None:
            out.append(None)
            continue
        span = (k - 1) * dil + 1
        padded = size + pad[0] + pad[1]
        check(padded >= span, f"kernel {name} {k} with dilation {dil} spans {span}, "
                              f"more than the padded input {name} {padded}")
        out.append((padded - span) // st + 1)
    _vector_like(s.b, cout, dtype, "bias", "w output channels")
    return TensorType((n, out[0], out[1], cout), dtype)


def _conv2d_ref(s, x, w, b):
    pads = conv_padding(s.padding, s.strides, s.dilation, x.shape[1:3], w.shape[:2])
    y = conv2d_nhwc(x, w, s.strides, pads, s.dilation, s.groups)
    return y if b is None else y + upcast(b)


op("nn.conv2d", "2-D convolution: NHWC input, HWIO weight [kh, kw, cin/groups, cout], bias [cout].",
   operands=["x", "w", Operand("b", optional=True)],
   attrs=[Attr("strides", "i64s", (1, 1), "window strides [h, w]"),
          Attr("padding", ("i64s", "str"), "SAME",
               '"SAME" (XLA/Flax), "VALID" or [top, bottom, left, right]'),
          Attr("dilation", "i64s", (1, 1), "kernel dilation [h, w]"),
          Attr("groups", "i64", 1, "feature groups (cin and cout are split into groups)")],
   infer=_conv2d_infer, reference=_conv2d_ref)

# -- elementwise --------------------------------------------------------------------------


def _truncdiv(a, b):
    if a.dtype.kind in "iu":  # integer division truncates toward zero (lax.div, arith.divsi)
        return (np.abs(a) // np.maximum(np.abs(b), 1)) * np.sign(a) * np.sign(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return a / b


def _binary_infer(s):
    return TensorType(broadcast_shapes(s.a.shape, s.b.shape), same_dtype(s.a, s.b))


_BINARY = {
    "add": ("a + b", np.add),
    "sub": ("a - b", np.subtract),
    "mul": ("a * b", np.multiply),
    "div": ("a / b (integers truncate toward zero)", _truncdiv),
    "maximum": ("max(a, b)", np.maximum),
    "minimum": ("min(a, b)", np.minimum),
}
for _name, (_what, _fn) in _BINARY.items():
    op(f"nn.{_name}", f"Elementwise {_what} with numpy broadcasting.",
       operands=["a", "b"], infer=_binary_infer,
       reference=lambda s, a, b, fn=_fn: fn(upcast(a), upcast(b)))


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1)  # no overflow for large |x|


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _gelu(x, approximate):
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x.astype(np.float64) / math.sqrt(2)))


def _exp(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


_UNARY = {
    "relu": ("Rectified linear unit: max(x, 0).", lambda x: np.maximum(x, 0)),
    "silu": ("SiLU (swish): x * sigmoid(x).", lambda x: x * _sigmoid(x)),
    "sigmoid": ("Logistic sigmoid: 1 / (1 + exp(-x)).", _sigmoid),
    "tanh": ("Hyperbolic tangent.", np.tanh),
    "exp": ("Exponential e**x.", _exp),
}


def _float_unary_infer(s):
    return float_type(s.x, "x")


for _name, (_summary, _fn) in _UNARY.items():
    op(f"nn.{_name}", _summary, operands=["x"], infer=_float_unary_infer,
       reference=lambda s, x, fn=_fn: fn(upcast(x)))

op("nn.gelu", "GELU; `approximate` uses the tanh form (JAX's default), else exact erf.",
   operands=["x"], attrs=[Attr("approximate", "bool", True, "tanh approximation instead of erf")],
   infer=_float_unary_infer,
   reference=lambda s, x: _gelu(upcast(x), s.approximate))

# -- normalization ------------------------------------------------------------------------


def _softmax_infer(s):
    norm_axis(s.axis, s.x.rank)
    return float_type(s.x, "x")


def _softmax(x, axis):
    x = upcast(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


op("nn.softmax", "Softmax along `axis` (subtracts the max for stability).",
   operands=["x"], attrs=[Attr("axis", "i64", -1, "axis to normalize over")],
   infer=_softmax_infer, reference=lambda s, x: _softmax(x, s.axis))


def _layer_norm_infer(s):
    x = float_type(s.x, "x")
    axis = norm_axis(s.axis, x.rank)
    check(s.epsilon >= 0, f"epsilon must be non-negative, found {s.epsilon}")
    for name in ("scale", "bias"):
        _vector_like(getattr(s, name), x.shape[axis], x.dtype, name, f"x axis {s.axis}")
    return x


def _f32(x):
    return x.astype(np.float64 if x.dtype == np.float64 else np.float32)


def _layer_norm_ref(s, x, scale, bias):
    xf = _f32(x)
    shape = [1] * x.ndim
    shape[s.axis % x.ndim] = -1
    mean = xf.mean(axis=s.axis, keepdims=True)
    var = np.square(xf - mean).mean(axis=s.axis, keepdims=True)
    y = (xf - mean) / np.sqrt(var + xf.dtype.type(s.epsilon))
    return y * _f32(scale).reshape(shape) + _f32(bias).reshape(shape)


op("nn.layer_norm", "Layer normalization over `axis`: (x - mean) / sqrt(var + epsilon) * scale + bias.",
   operands=["x", "scale", "bias"],
   attrs=[Attr("axis", "i64", -1, "the axis to normalize over"),
          Attr("epsilon", "f32", 1e-5, "added to the variance")],
   infer=_layer_norm_infer, reference=_layer_norm_ref)


def _rms_norm_infer(s):
    x = float_type(s.x, "x")
    check(x.rank >= 1, f"x must have rank >= 1, found {x}")
    check(s.epsilon >= 0, f"epsilon must be non-negative, found {s.epsilon}")
    _vector_like(s.scale, x.shape[-1], x.dtype, "scale", "x last axis")
    return x


def _rms_norm_ref(s, x, scale):
    xf = _f32(x)
    ms = np.square(xf).mean(axis=-1, keepdims=True)
    return xf / np.sqrt(ms + xf.dtype.type(s.epsilon)) * _f32(scale)


op("nn.rms_norm", "RMS normalization over the last axis: x / sqrt(mean(x**2) + epsilon) * scale.",
   operands=["x", "scale"], attrs=[Attr("epsilon", "f32", 1e-5, "added to the mean square")],
   infer=_rms_norm_infer, reference=_rms_norm_ref)

# -- attention -------------------------------------------------------------------------------


def _attention_infer(s):
    q, k, v = (rank_is(getattr(s, n), 4, n, "[batch, heads, seq, dim]") for n in ("q", "k", "v"))
    dtype = same_dtype(q, k, v)
    float_type(q, "q")
    for i, what in ((0, "batch"), (1, "heads")):
        check(dims_agree(q.shape[i], k.shape[i]) and dims_agree(q.shape[i], v.shape[i])
              and dims_agree(k.shape[i], v.shape[i]),
              f"q, k and v must agree on {what} (dimension {i}), found {q}, {k}, {v}")
    check(dims_agree(q.shape[3], k.shape[3]),
          f"q and k head dims differ: q {q} has {q.shape[3]}, k {k} has {k.shape[3]}")
    check(dims_agree(k.shape[2], v.shape[2]),
          f"k and v sequence lengths differ: k {k} has {k.shape[2]}, v {v} has {v.shape[2]}")
    b = merge_dim(merge_dim(q.shape[0], k.shape[0]), v.shape[0])
    h = merge_dim(merge_dim(q.shape[1], k.shape[1]), v.shape[1])
    sk = merge_dim(k.shape[2], v.shape[2])
    m = s.mask
    if m is not None:
        check(m.dtype == "i1", f"mask must have element type i1 (true = keep), found {m}")
        full = (b, h, q.shape[2], sk)
        check(m.rank <= 4 and all(d == 1 or dims_agree(d, f) for d, f in zip(m.shape[::-1], full[::-1])),
              f"mask {m} does not broadcast to {shape_str(full)} ([batch, heads, q seq, k seq])")
    return TensorType((b, h, q.shape[2], v.shape[3]), dtype)


def _attention_ref(s, q, k, v, mask):
    q, k, v = _f32(q), _f32(k), _f32(v)
    scale = 1 / math.sqrt(q.shape[-1]) if s.scale is None else s.scale
    logits = np.einsum("bhqd,bhkd->bhqk", q, k) * q.dtype.type(scale)
    keep = np.ones(logits.shape, bool)
    if mask is not None:
        keep &= np.asarray(mask, bool)
    if s.causal:
        keep &= np.tril(np.ones(logits.shape[-2:], bool))
    # Masked logits get a large finite negative, like jax.nn.dot_product_attention:
    # a fully masked row then averages v uniformly instead of producing NaN.
    logits = np.where(keep, logits, q.dtype.type(-0.7 * np.finfo(np.float32).max))
    return np.einsum("bhqk,bhkd->bhqd", _softmax(logits, -1), v)


op("nn.attention", "Scaled dot-product attention softmax(q k^T * scale, masked) v on [batch, heads, seq, dim].",
   operands=["q", "k", "v", Operand("mask", optional=True, doc="i1, broadcasts to [b, h, sq, sk]; true = keep")],
   attrs=[Attr("scale", "f32", None, "logit scale; absent: 1/sqrt(head dim)"),
          Attr("causal", "bool", False, "query i sees keys j <= i (mask = tril(ones(sq, sk)))")],
   infer=_attention_infer, reference=_attention_ref)

# -- embedding -----------------------------------------------------------------------------


def _embedding_infer(s):
    table = float_type(rank_is(s.table, 2, "table", "[vocab, dim]"), "table")
    check(s.ids.dtype in ("i32", "i64"), f"ids must have element type i32 or i64, found {s.ids}")
    return TensorType(s.ids.shape + (table.shape[1],), table.dtype)


op("nn.embedding", "Row lookup table[ids] for integer ids of any rank (out-of-range ids clamp).",
   operands=["table", "ids"], infer=_embedding_infer,
   reference=lambda s, table, ids: np.take(table, ids, axis=0, mode="clip"))

# -- reductions ----------------------------------------------------------------------------


def _reduce_infer(s, float_only=False):
    x = s.x
    if float_only:
        float_type(x, "x")
    check(x.dtype != "i1", f"x must not be i1, found {x}")
    axes = list(range(x.rank)) if s.axes is None else norm_axes(s.axes, x.rank)
    if s.keepdims:
        return x.with_shape(1 if i in axes else d for i, d in enumerate(x.shape))
    return x.with_shape(d for i, d in enumerate(x.shape) if i not in axes)


def _reducer(fn):
    def ref(s, x):
        axes = None if s.axes is None else tuple(a % x.ndim for a in s.axes)
        return fn(upcast(x), axis=axes, keepdims=s.keepdims)
    return ref


for _name, _fn, _float_only in (("sum", np.sum, False), ("mean", np.mean, True), ("max", np.max, False)):
    op(f"nn.reduce_{_name}", f"Reduces `axes` (all when absent) by {_name}; `keepdims` keeps them as size 1.",
       operands=["x"],
       attrs=[Attr("axes", "i64s", None, "axes to reduce; absent: all"),
              Attr("keepdims", "bool", False, "keep reduced axes with size 1")],
       infer=lambda s, f=_float_only: _reduce_infer(s, f), reference=_reducer(_fn))

# -- shape ops --------------------------------------------------------------------------------


def _one_result(s) -> TensorType:
    check(len(s.results) == 1, f"expects 1 result, found {len(s.results)} "
                               "(the result type is an input: builders take result_type=)")
    return s.results[0]


def _reshape_infer(s):
    r = _one_result(s)
    check(r.dtype == s.x.dtype, f"result element type must be {s.x.dtype} like x, found {r}")
    n, m = num_elements(s.x.shape), num_elements(r.shape)
    check(n is None or m is None or n == m,
          f"element counts differ: x {s.x} has {n}, result {r} has {m}")
    sizes, dynamic = list(s.sizes or []), sum(d is None for d in r.shape)
    check(not sizes or len(sizes) == dynamic,
          f"takes one size per dynamic result dimension of {r} ({dynamic}), found {len(sizes)}")
    return [r]


def _reshape_ref(s, x, sizes=()):
    it = iter(sizes)
    return np.reshape(x, [(int(next(it)) if sizes else -1) if d is None else d for d in s.results[0].shape])


op("nn.reshape", "Reshapes (row-major) to the result type's shape; element count is kept. "
   "`sizes` give its dynamic dimensions (optional where they follow from x's).",
   operands=["x", Operand("sizes", "one index per dynamic result dimension", variadic=True, index=True)],
   infer=_reshape_infer, result_from_type=True, reference=_reshape_ref)


def _permutation(s, rank):
    perm = list(range(rank))[::-1] if s.permutation is None else list(s.permutation)
    check(sorted(perm) == list(range(rank)),
          f"permutation {perm} must be a permutation of {list(range(rank))} for rank {rank}")
    return perm


op("nn.transpose", "Permutes axes: result axis i is x axis permutation[i] (absent: reversed).",
   operands=["x"], attrs=[Attr("permutation", "i64s", None, "absent: reversed axes")],
   infer=lambda s: s.x.with_shape(s.x.shape[p] for p in _permutation(s, s.x.rank)),
   reference=lambda s, x: np.transpose(x, _permutation(s, x.ndim)))


def _concat_infer(s):
    xs = s.inputs
    check(len(xs) >= 1, "expects at least 1 operand, found 0")
    dtype = same_dtype(*xs)
    check(len({t.rank for t in xs}) == 1, "inputs must have equal ranks, found " + ", ".join(map(str, xs)))
    axis = norm_axis(s.axis, xs[0].rank)
    shape = list(xs[0].shape)
    for t in xs[1:]:
        for i, d in enumerate(t.shape):
            if i != axis:
                check(dims_agree(shape[i], d),
                      f"inputs differ off axis {s.axis} (dimension {i}): {xs[0]} and {t}")
                shape[i] = merge_dim(shape[i], d)
    sizes = [t.shape[axis] for t in xs]
    shape[axis] = None if None in sizes else sum(sizes)
    return TensorType(tuple(shape), dtype)


op("nn.concat", "Concatenates one or more same-typed inputs along `axis`.",
   operands=[Operand("inputs", variadic=True)], attrs=[Attr("axis", "i64", 0, "axis to join along")],
   infer=_concat_infer, reference=lambda s, inputs: np.concatenate(inputs, axis=s.axis))


def _cast_infer(s):
    r = _one_result(s)
    check(shape_agrees(r.shape, s.x.shape),
          f"result shape must be {shape_str(s.x.shape)} like x {s.x}, found {r}")
    return [r]


def _cast_ref(s, x):
    target = s.results[0].numpy_dtype()
    with np.errstate(invalid="ignore"):
        if is_float(s.x.dtype) and target.kind in "iu":
            return np.trunc(upcast(x)).astype(target)  # float -> int truncates toward zero
        return x.astype(target)


op("nn.cast", "Converts the element type to the result type's (float -> int truncates toward zero).",
   operands=["x"], infer=_cast_infer, result_from_type=True, reference=_cast_ref)
