"""nn-to-prim: decompose every ``nn`` op into ``prim`` primitives.

Broadcasting becomes explicit, norms compute in f32 for low-precision inputs,
softmax subtracts the max, and attention becomes contract/scale/mask/softmax/contract::

    %0 = "nn.relu"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  becomes
    %cst = arith.constant dense<0.000000e+00> : tensor<4x8xf32>
    %0 = "prim.map"(%x, %cst) {fn = "max"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
"""

from __future__ import annotations

import math

from stepwell.core import opspec
from stepwell.core.diagnostics import StepwellError
from stepwell.passes import _moe_lowering
from stepwell.passes._quant_lowering import RULES as QUANT_RULES
from stepwell.core.passes_base import Pass, apply_patterns, register
from stepwell.dialects.prim_builder import PrimBuilder, ttype
from stepwell.core.types import TensorType


def _matmul(b: PrimBuilder, s, x, w):
    xt, wt, out = ttype(x), ttype(w), s.results[0]
    lead = b.shape_of(x)[:-1] if xt.rank > 1 else []  # the result's dims: x's leading ones,
    final = lead + ([b.dim(w, -1)] if wt.rank > 1 else [])  # then w's last
    if xt.rank == 1:  # vector @ matrix: a row vector
        x, xt = b.reshape(x, (1,) + xt.shape), xt.with_shape((1,) + xt.shape)
    if wt.rank == 1:  # matrix @ vector: a column vector
        w, wt = b.reshape(w, wt.shape + (1,)), wt.with_shape(wt.shape + (1,))
    if wt.rank == 2:  # weights without batch: fold x's leading dims into rows
        rows = b.mul(*b.shape_of(x)[:-1])
        y = b.contract(b.reshape(x, (rows, b.dim(x, -1))), w, "mk,kn->mn", out.dtype)
        return b.reshape(y, final)
    batch = _batch_dims(b, x, w)
    n = b.mul(*batch)
    x = b.reshape(b.broadcast_to(x, batch + b.shape_of(x)[-2:]), [n] + b.shape_of(x)[-2:])
    w = b.reshape(b.broadcast_to(w, batch + b.shape_of(w)[-2:]), [n] + b.shape_of(w)[-2:])
    return b.reshape(b.contract(x, w, "bmk,bkn->bmn", out.dtype), final)


def _batch_dims(b, x, w) -> list:
    """The broadcast batch dims of ``x`` and ``w`` (all but the last two), each an int or
    the index value of the operand that has it dynamic."""
    from stepwell.dialects._common import broadcast_shapes
    xs, ws = b.shape_of(x)[:-2], b.shape_of(w)[:-2]
    static = broadcast_shapes(ttype(x).shape[:-2], ttype(w).shape[:-2])
    return result_dims(b, static, [xs, ws])


def result_dims(b, static, operand_shapes) -> list:
    """``static`` (a broadcast result shape, None where dynamic) with each dynamic dim
    taken from the first operand shape (aligned right) holding a non-1 dim there."""
    out = []
    for i, d in enumerate(static):
        if d is None:
            for shape in operand_shapes:
                j = i - (len(static) - len(shape))
                if j >= 0 and shape[j] != 1:
                    d = shape[j]
                    break
        out.append(d)
    return out


def _linear(b, s, x, w, bias=None):
    y = _matmul(b, s, x, w)
    out = s.results[0]
    return y if bias is None else b.map("add", y, b.broadcast_to(b.cast(bias, out.dtype), b.shape_of(y)))


def _binary(fn):
    # numpy-broadcasting elementwise op -> explicit broadcasts + prim.map
    def rule(b, s, x, y):
        shape = result_dims(b, s.results[0].shape, [b.shape_of(x), b.shape_of(y)])
        return b.map(fn, b.broadcast_to(x, shape), b.broadcast_to(y, shape))
    return rule


def _gelu(b, s, x):
    half, one = b.like(0.5, x), b.like(1.0, x)
    if s.approximate:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = b.map("mul", b.map("mul", x, x), x)
        inner = b.map("add", x, b.map("mul", b.like(0.044715, x), cube))
        t = b.map("tanh", b.map("mul", b.like(math.sqrt(2 / math.pi), x), inner))
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = b.map("erf", b.map("mul", x, b.like(1 / math.sqrt(2), x)))
    return b.map("mul", b.map("mul", half, x), b.map("add", one, t))


def softmax(b, x, axis: int):
    """exp(x - max) / sum(exp(x - max)) along ``axis`` (shared with attention).

    ``x - max`` is written ``x + (-max)``, negated on the reduced tensor: IREE 3.13
    raises the ``sub`` form to ``linalg.softmax``, whose CPU code ran the 8x512x512
    softmax of the attention benchmark in 2.6 ms against 1.5 ms for the fused
    generics of this form (whole attention layer 12.2 -> 10.5 ms)."""
    shape = b.shape_of(x)
    axis %= len(shape)
    peak = b.restore_axes(b.map("neg", b.reduce(x, "max", [axis])), [axis], shape)
    e = b.map("exp", b.map("add", x, peak))
    return b.map("div", e, b.restore_axes(b.reduce(e, "sum", [axis]), [axis], shape))


def _mean(b, x, axes):
    total = b.reduce(x, "sum", axes)
    count = b.mul(*(b.dim(x, a) for a in axes))
    if isinstance(count, int):
        return b.map("div", total, b.like(float(count), total))
    return b.map("div", total, b.broadcast(b.scalar_of(count, ttype(total).dtype), [], b.shape_of(total)))


def _in_f32(b, x):
    # norms compute in f32 when the input is f16/bf16
    return b.cast(x, "f32") if ttype(x).dtype in ("f16", "bf16") else x


def _layer_norm(b, s, x, scale, bias):
    dtype, shape = ttype(x).dtype, b.shape_of(x)
    axis = s.axis % len(shape)
    xf = _in_f32(b, x)
    centered = b.map("sub", xf, b.restore_axes(_mean(b, xf, [axis]), [axis], shape))
    var = _mean(b, b.map("mul", centered, centered), [axis])
    inv = b.map("rsqrt", b.map("add", var, b.like(s.epsilon, var)))
    y = b.map("mul", centered, b.restore_axes(inv, [axis], shape))
    y = b.map("mul", y, b.broadcast(_in_f32(b, scale), [axis], shape))
    y = b.map("add", y, b.broadcast(_in_f32(b, bias), [axis], shape))
    return b.cast(y, dtype)


def _rms_norm(b, s, x, scale):
    dtype, shape = ttype(x).dtype, b.shape_of(x)
    axis = len(shape) - 1
    xf = _in_f32(b, x)
    ms = _mean(b, b.map("mul", xf, xf), [axis])
    inv = b.map("rsqrt", b.map("add", ms, b.like(s.epsilon, ms)))
    y = b.map("mul", xf, b.restore_axes(inv, [axis], shape))
    y = b.map("mul", y, b.broadcast(_in_f32(b, scale), [axis], shape))
    return b.cast(y, dtype)


def _attention(b, s, q, k, v, mask=None):
    qt = ttype(q)
    scores = b.contract(q, k, "bhqd,bhkd->bhqk")
    st = ttype(scores)
    scale = s.scale if s.scale is not None else 1 / math.sqrt(qt.shape[-1])
    scores = b.map("mul", scores, b.like(scale, scores))
    keep = None
    shape = b.shape_of(scores)
    if s.causal:  # query i sees keys j <= i: iota rows >= iota cols
        sq, sk = shape[-2:]
        tri = b.map("ge", b.iota((sq, sk), 0), b.iota((sq, sk), 1))
        keep = b.broadcast(tri, [2, 3], shape)
    if mask is not None:
        m = b.broadcast_to(mask, shape)
        keep = m if keep is None else b.map("and", keep, m)
    if keep is not None:
        scores = b.map("select", keep, scores, b.lowest(scores))
    return b.contract(softmax(b, scores, -1), v, "bhqk,bhkd->bhqd")


def _reduce(kind):
    # nn.reduce_* {axes, keepdims} -> prim.reduce (+ divide for mean, reshape for keepdims)
    def rule(b, s, x):
        shape = b.shape_of(x)
        axes = sorted(a % len(shape) for a in (s.axes if s.axes is not None else range(len(shape))))
        y = _mean(b, x, axes) if kind == "mean" else b.reduce(x, kind, axes)
        return b.reshape(y, [1 if i in axes else d for i, d in enumerate(shape)]) if s.keepdims else y
    return rule


def _conv2d(b, s, x, w, bias=None):
    from stepwell.dialects._common import conv_padding
    (top, bottom), (left, right) = conv_padding(s.padding, s.strides, s.dilation,
                                                ttype(x).shape[1:3], ttype(w).shape[:2])
    padding = [top, bottom, left, right]
    y = b._op("prim.conv", x, w, strides=list(s.strides), padding=list(padding),
              dilation=list(s.dilation), groups=s.groups)
    return y if bias is None else b.map("add", y, b.broadcast(bias, [3], b.shape_of(y)))


# nn op -> rule(builder, sig, *operand values) returning the replacement value.
RULES = {
    "nn.matmul": _matmul,
    "nn.linear": _linear,
    "nn.conv2d": _conv2d,
    **{f"nn.{n}": _binary(fn) for n, fn in [("add", "add"), ("sub", "sub"), ("mul", "mul"),
                                            ("div", "div"), ("maximum", "max"), ("minimum", "min")]},
    "nn.relu": lambda b, s, x: b.map("max", x, b.like(0.0, x)),
    "nn.gelu": _gelu,
    "nn.silu": lambda b, s, x: b.map("mul", x, b.map("logistic", x)),
    "nn.sigmoid": lambda b, s, x: b.map("logistic", x),
    "nn.tanh": lambda b, s, x: b.map("tanh", x),
    "nn.exp": lambda b, s, x: b.map("exp", x),
    "nn.softmax": lambda b, s, x: softmax(b, x, s.axis),
    "nn.layer_norm": _layer_norm,
    "nn.rms_norm": _rms_norm,
    "nn.attention": _attention,
    "nn.embedding": lambda b, s, table, ids: b._op("prim.gather", table, ids, axis=0),
    "nn.reduce_sum": _reduce("sum"),
    "nn.reduce_mean": _reduce("mean"),
    "nn.reduce_max": _reduce("max"),
    "nn.reshape": lambda b, s, x, *sizes: b._op("prim.reshape", x, *sizes, result_type=s.results[0])
    if sizes else b.reshape(x, s.results[0].shape),
    "nn.transpose": lambda b, s, x: b.transpose(
        x, s.permutation if s.permutation is not None else reversed(range(ttype(x).rank))),
    "nn.concat": lambda b, s, *xs: b._op("prim.concat", *xs, axis=s.axis % ttype(xs[0]).rank),
    "nn.cast": lambda b, s, x: b.cast(x, s.results[0].dtype),
    "nn.reshard": lambda b, s, x: x,  # on one device a reshard moves nothing
    **QUANT_RULES,  # nn.quantize, nn.dequantize, nn.quantized_linear
}


def _pattern(rule):
    def rewrite(op, rewriter):
        spec = opspec.lookup(op.name)
        operands = list(op.operands)
        attrs = {n: opspec.attr_to_python(op.attributes[n])[1] for n in op.attributes if "." not in n}
        sig = spec.bind([ttype(v) for v in operands], attrs,
                        [TensorType.from_mlir(r.type) for r in op.results])
        with rewriter.ip, op.location:
            out = rule(PrimBuilder(), sig, *operands)
        rewriter.replace_op(op, list(out) if isinstance(out, tuple) else [out])  # (multi-result ops)
    return rewrite


@register
class NnToPrim(Pass):
    """Decompose nn ops into prim primitives (explicit broadcasts, stable softmax, f32 norms)."""

    name = "nn-to-prim"
    moe: str = "auto"   # nn.moe_ffn layout: auto (the rule in _moe_lowering.strategy), slots, tiles
    moe_block: int = 0  # rows per tile of the tiles layout (0: the rule)

    def run(self, module) -> None:
        if self.moe not in _moe_lowering.STRATEGIES:
            raise StepwellError(f"nn-to-prim: moe must be one of {', '.join(_moe_lowering.STRATEGIES)}, "
                             f"found '{self.moe}'")
        # the MoE ops first: they read int8 expert weights through their nn.dequantize
        moe = _moe_lowering.rules(self.moe, self.moe_block)
        apply_patterns(module, {name: _pattern(rule) for name, rule in moe.items()})
        apply_patterns(module, {name: _pattern(rule) for name, rule in RULES.items()})
