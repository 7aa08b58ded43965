"""nn-to-prim rules for the quantized ops (dialects/nn_quant.py); ``nn_to_prim`` merges
``RULES`` into its own.

The shapes are chosen for IREE (docs/low-precision.md): the weight's dequantization is
one elementwise chain on the integer weight (cast, minus zero point) feeding the
contraction directly, so IREE clones it into the matmul's dispatch instead of
materializing the float weight; the per-group scales multiply the contraction's
result (``y = sum_g s[g] * (x_g @ (q_g - z_g))``), so no scale is broadcast over the
weight. An int4 layer is two such contractions, one per nibble (the low nibbles are the
first half of the output columns, the high ones the second), each nibble a shift of the
widened byte (see ``_int4_contract``)::

    %y = "nn.quantized_linear"(%x, %q, %s) {bits = 8 : i64}
           : (tensor<4x64xf32>, tensor<64x16xi8>, tensor<1x16xf32>) -> tensor<4x16xf32>
  becomes
    %w = "prim.cast"(%q) : (tensor<64x16xi8>) -> tensor<64x16xf32>
    %0 = "prim.contract"(%x, %w) {spec = "mk,kn->mn"} : (...) -> tensor<4x16xf32>
    %1 = "prim.reshape"(%s) : (tensor<1x16xf32>) -> tensor<16xf32>
    %2 = "prim.broadcast"(%1) {dims = array<i64: 1>} : (...) -> tensor<4x16xf32>
    %y = "prim.map"(%0, %2) {fn = "mul"} : (...) -> tensor<4x16xf32>
"""

from __future__ import annotations

from stepwell.core import quantize as qz
from stepwell.dialects.nn_quant import unpacked_shape
from stepwell.dialects.prim_builder import PrimBuilder, ttype


def _wide(dtype: str) -> str:
    """Contractions of f16/bf16 accumulate in f32."""
    return "f32" if dtype in ("f16", "bf16") else dtype


def unpack_int4(b: PrimBuilder, p):
    """i8 ``[..., L]`` holding two nibbles per byte -> i32 ``[..., 2, L]`` (sign-extended):
    the low nibbles, then the high ones. Shifts run in i32 (x86 has no byte shifts)."""
    shape = ttype(p).shape
    full = shape[:-1] + (2, shape[-1])
    pb = b.broadcast(b.cast(p, "i32"), [d for d in range(len(full)) if d != len(full) - 2], full)
    j = b.iota(full, len(full) - 2, "i32")
    left = b.map("sub", b.like(28, j), b.map("mul", j, b.like(4, j)))  # 28 for low, 24 for high
    return b.map("shr_s", b.map("shl", pb, left), b.like(28, pb))


def pack_int4(b: PrimBuilder, q):
    """i8 ``[..., 2L]`` values in [-8, 7] -> i8 ``[..., L]``: element i in the low nibble of
    byte i, element i + L in its high nibble."""
    shape = ttype(q).shape
    half = shape[:-1] + (shape[-1] // 2,)
    halves = b.reshape(q, shape[:-1] + (2, shape[-1] // 2))
    rank = len(half) + 1

    def nibble(j):
        start, limit = [0] * rank, list(shape[:-1]) + [j + 1, half[-1]]
        start[-2] = j
        return b.reshape(b._op("prim.slice", halves, start=start, limit=limit), half)

    lo, hi = nibble(0), nibble(1)
    return b.map("or", b.map("and", lo, b.like(0x0F, lo)), b.map("shl", hi, b.like(4, hi)))


def _values(b, s, q):
    """The integer values of a (possibly int4-packed) operand, unpacked to their full shape."""
    if s.bits == 8:
        return q
    shape = ttype(q).shape
    return b.reshape(unpack_int4(b, q), shape[:-1] + (2 * shape[-1],))


def _grouped(shape, axis: int, groups: int) -> tuple:
    return shape[:axis] + (groups, shape[axis] // groups) + shape[axis + 1:]


def _per_group(b, t, shape, axis: int, groups: int):
    """Per-group ``t`` (axis = groups) broadcast over the grouped shape of ``shape``."""
    grouped = _grouped(shape, axis, groups)
    dims = [d for d in range(len(grouped)) if d != axis + 1]
    return b.broadcast(t, dims, grouped)


# dequantize: (q - z) * s over the tensor split into (groups, group size) along the axis.
def _dequantize(b, s, q, scales, zero=None):
    v = _values(b, s, q)
    shape = ttype(v).shape
    axis = s.axis % len(shape)
    groups = ttype(scales).shape[axis]
    dtype = ttype(scales).dtype
    w = b.cast(b.reshape(v, _grouped(shape, axis, groups)), dtype)
    if zero is not None:
        w = b.map("sub", w, _per_group(b, b.cast(zero, dtype), shape, axis, groups))
    w = b.map("mul", w, _per_group(b, scales, shape, axis, groups))
    return b.reshape(w, shape)


# quantize: clamp(round(x / s) + z) to the bits' range, cast to i8, int4 packed.
def _quantize(b, s, x, scales, zero=None):
    shape = ttype(x).shape
    axis = s.axis % len(shape)
    groups = ttype(scales).shape[axis]
    qmin, qmax = qz.qrange(s.bits)
    xf = b.reshape(b.cast(x, "f32"), _grouped(shape, axis, groups))
    v = b.map("round", b.map("div", xf, _per_group(b, scales, shape, axis, groups)))
    if zero is not None:
        v = b.map("add", v, _per_group(b, b.cast(zero, "f32"), shape, axis, groups))
    v = b.map("min", b.map("max", v, b.like(qmin, v)), b.like(qmax, v))
    q = b.reshape(b.cast(v, "i8"), shape)
    return pack_int4(b, q) if s.bits == 4 else q


def _grouped_contract(b, x2, w, zero, scales, dtype: str, acc: str):
    """x2 [m, k] @ (w - zero) [k, n] per group, times the groups' scales, summed over the
    groups: ``w`` holds i8 values, ``zero``/``scales`` are [groups, n]."""
    rows, k = b.dim(x2, 0), ttype(x2).shape[1]
    groups, n = ttype(scales).shape
    g = k // groups
    lead = (k,) if groups == 1 else (groups, g)  # one group drops its dim
    w = b.cast(b.reshape(w, lead + (n,)), dtype)
    if zero is not None:
        z = b.cast(b.reshape(zero, lead[:-1] + (n,)), dtype)
        w = b.map("sub", w, b.broadcast(z, [d for d in range(len(lead) + 1) if d != len(lead) - 1], lead + (n,)))
    if groups == 1:
        y = b.contract(x2, w, "mk,kn->mn", acc)
        return b.map("mul", y, b.broadcast(b.cast(b.reshape(scales, (n,)), acc), [1], (rows, n)))
    xg = b.transpose(b.reshape(x2, (rows, groups, g)), [1, 0, 2])
    y = b.contract(xg, w, "gmk,gkn->gmn", acc)
    y = b.map("mul", y, b.broadcast(b.cast(scales, acc), [0, 2], b.shape_of(y)))
    return b.reduce(y, "sum", [0])


def _int4_contract(b, x2, qweight, zero, scales, dtype: str, acc: str):
    """_grouped_contract for int4 weights packed as [k, n/2]: one contraction per nibble,
    the low nibbles giving the first half of the output columns, the high ones the
    second. Each nibble is a shift of the byte widened on its own (low: i16
    ``(p << 12) >> 12``, high: i32 ``p >> 4``): no byte shifts (x86 has none), no index
    arithmetic (miscompiled by IREE 3.13 for Vulkan when fused into the contraction), and
    two different widenings, so CSE does not share one between the two contractions (a
    shared one would be materialized between dispatches)."""
    groups, n = ttype(scales).shape
    half = n // 2
    lo16 = b.cast(qweight, "i16")
    hi32 = b.cast(qweight, "i32")
    nibbles = (b.map("shr_s", b.map("shl", lo16, b.like(12, lo16)), b.like(12, lo16)),
               b.map("shr_s", hi32, b.like(4, hi32)))
    parts = []
    for j, nibble in enumerate(nibbles):
        cols = dict(start=[0, j * half], limit=[groups, (j + 1) * half])
        part_zero = None if zero is None else b._op("prim.slice", zero, **cols)
        parts.append(_grouped_contract(b, x2, nibble, part_zero, b._op("prim.slice", scales, **cols), dtype, acc))
    return b._op("prim.concat", *parts, axis=1)


# quantized_linear: x @ (q - z) per group, times the group's scales, summed over the groups.
def _quantized_linear(b, s, x, qweight, scales, *rest):
    zero = bias = None
    for v in rest:  # a lone fourth operand: integer zero points or a float bias
        if ttype(v).dtype.startswith("i") and zero is None and bias is None:
            zero = v
        else:
            bias = v
    xt, out = ttype(x), s.results[0]
    k, n = unpacked_shape(ttype(qweight).shape, s.bits)
    lead = b.shape_of(x)[:-1]
    rows = b.mul(*lead)
    dtype, acc = xt.dtype, _wide(out.dtype)
    x2 = b.reshape(x, (rows, k))
    if s.bits == 8:
        y = _grouped_contract(b, x2, qweight, zero, scales, dtype, acc)
    else:
        y = _int4_contract(b, x2, qweight, zero, scales, dtype, acc)
    if bias is not None:
        y = b.map("add", y, b.broadcast(b.cast(bias, acc), [1], (rows, n)))
    return b.reshape(b.cast(y, out.dtype), lead + [n])


RULES = {
    "nn.dequantize": _dequantize,
    "nn.quantize": _quantize,
    "nn.quantized_linear": _quantized_linear,
}
