"""Quantized ``nn`` ops: weight-only int8/int4 quantization (docs/low-precision.md).

    %q = "nn.quantize"(%x, %s) {bits = 8 : i64, group_size = 32 : i64}
           : (tensor<64x16xf32>, tensor<2x16xf32>) -> tensor<64x16xi8>
    %w = "nn.dequantize"(%q, %s) {bits = 8 : i64, group_size = 32 : i64}
           : (tensor<64x16xi8>, tensor<2x16xf32>) -> tensor<64x16xf32>
    %y = "nn.quantized_linear"(%x, %qw, %s, %z, %b) {bits = 4 : i64, group_size = 32 : i64}
           : (tensor<4x64xf32>, tensor<64x8xi8>, tensor<2x16xf32>, tensor<2x16xi8>, tensor<16xf32>)
           -> tensor<4x16xf32>

Quantized values are signed i8 ([-128, 127], or [-8, 7] for ``bits = 4``); int4 values
are packed two per byte along the last dimension L, in halves (byte i: element i in the
low nibble, element i + L/2 in the high nibble). Groups of
``group_size`` elements run along ``axis`` (0 or -1 group size: one group, per-channel);
scales (f32) and zero points (i8, optional: asymmetric) have the tensor's shape with
``axis`` replaced by the group count. ``x = (q - z) * s``; quantization rounds half to
even and clamps. ``nn.quantized_linear`` is ``x @ dequantize(qweight) + bias`` with the
groups along the ``in`` axis (``axis = 0``); its fourth operand is the zero points when
it is an integer tensor and the bias when it is a float one.
"""

from __future__ import annotations

import numpy as np

from stepwell.core import quantize as qz
from stepwell.dialects._common import dims_agree, norm_axis, shape_agrees, shape_str, upcast
from stepwell.core.opspec import Attr, Operand, check, fail, op
from stepwell.core.types import TensorType, is_float


def _attrs(axis_default=0):
    return [Attr("bits", "i64", 8, "bits per value (8 or 4; int4 is packed two per byte)", choices=(8, 4)),
            Attr("group_size", "i64", 0, "elements per group along `axis`; 0 or -1: one group (per-channel)"),
            Attr("axis", "i64", axis_default, "the axis the groups run along")]


def _groups(size, group_size: int, what: str):
    """Group count along an axis of ``size`` (None when dynamic)."""
    check(group_size in (0, -1) or group_size > 0,
          f"group_size must be positive, or 0/-1 for one group per channel, found {group_size}")
    if group_size in (0, -1):
        return 1
    if size is None:
        return None
    check(size % group_size == 0, f"group_size {group_size} does not divide {what} ({size})")
    return size // group_size


def _group_shape(shape, axis: int, groups) -> tuple:
    return tuple(groups if i == axis else d for i, d in enumerate(shape))


def _check_scales(s, zero, shape, axis: int, group_size: int, what: str):
    """Scales f32 and zero points i8 of the per-group shape."""
    groups = _groups(shape[axis], group_size, what)
    want = _group_shape(shape, axis, groups)
    check(s.dtype == "f32", f"scales must have element type f32, found {s}")
    check(shape_agrees(s.shape, want),
          f"scales must have shape {shape_str(want)} (axis {axis} holds the {groups if groups else '?'} "
          f"groups of {group_size if group_size > 0 else 'all'}), found {s}")
    if zero is not None:
        check(zero.dtype == "i8", f"zero_points must have element type i8, found {zero}")
        check(shape_agrees(zero.shape, want),
              f"zero_points must have the scales' shape {shape_str(want)}, found {zero}")


def packed_shape(shape, bits: int) -> tuple:
    """The i8 storage shape of ``shape`` values (int4: last dimension halved)."""
    if bits == 8:
        return tuple(shape)
    last = shape[-1]
    return tuple(shape[:-1]) + (None if last is None else last // 2,)


def unpacked_shape(shape, bits: int) -> tuple:
    if bits == 8:
        return tuple(shape)
    return tuple(shape[:-1]) + (None if shape[-1] is None else 2 * shape[-1],)


# -- nn.quantize -------------------------------------------------------------------------


def _quantize_infer(s):
    x = s.x
    check(is_float(x.dtype), f"x must have a float element type, found {x}")
    check(x.rank >= 1, f"x must have rank >= 1, found {x}")
    axis = norm_axis(s.axis, x.rank)
    if s.bits == 4 and x.shape[-1] is not None:
        check(x.shape[-1] % 2 == 0,
              f"bits = 4 packs two values per byte along the last dimension: it must be even, found {x}")
    _check_scales(s.scales, s.zero_points, x.shape, axis, s.group_size, f"x axis {s.axis} of {x}")
    return TensorType(packed_shape(x.shape, s.bits), "i8")


def _quantize_ref(s, x, scales, zero_points):
    return qz.quantize(upcast(x), scales, zero_points, s.bits, s.group_size, s.axis % x.ndim)


op("nn.quantize", "Quantizes floats to signed bits-bit integers: clamp(round(x / s) + z) (int4 packed).",
   operands=["x", "scales", Operand("zero_points", optional=True, doc="i8; absent: symmetric")],
   attrs=_attrs(), infer=_quantize_infer, reference=_quantize_ref)

# -- nn.dequantize -----------------------------------------------------------------------


def _dequantize_infer(s):
    q = s.q
    check(q.dtype == "i8", f"q must have element type i8 (int4 values packed two per byte), found {q}")
    check(q.rank >= 1, f"q must have rank >= 1, found {q}")
    shape = unpacked_shape(q.shape, s.bits)
    axis = norm_axis(s.axis, q.rank)
    _check_scales(s.scales, s.zero_points, shape, axis, s.group_size,
                  f"axis {s.axis} of the {'unpacked ' if s.bits == 4 else ''}values {shape_str(shape)}")
    return TensorType(shape, s.scales.dtype)


def _dequantize_ref(s, q, scales, zero_points):
    return qz.dequantize(q, scales, zero_points, s.bits, s.group_size, s.axis % q.ndim)


op("nn.dequantize", "Dequantizes signed bits-bit integers (int4 packed) to f32: (q - z) * s.",
   operands=["q", "scales", Operand("zero_points", optional=True, doc="i8; absent: symmetric")],
   attrs=_attrs(), infer=_dequantize_infer, reference=_dequantize_ref)

# -- nn.quantized_linear -------------------------------------------------------------------


def zero_points_and_bias(s):
    """(zero_points, bias) types of a quantized_linear Sig: a lone fourth operand is the
    zero points when it is an integer tensor, the bias when it is a float one."""
    zero, bias = s.zero_points, s.bias
    if bias is None and zero is not None and is_float(zero.dtype):
        return None, zero
    return zero, bias


def weight_shape(qweight: TensorType, bits: int) -> tuple:
    """The ``[in, out]`` shape a quantized weight stands for."""
    return unpacked_shape(qweight.shape, bits)


def _quantized_linear_infer(s):
    x, qw = s.x, s.qweight
    zero, bias = zero_points_and_bias(s)
    check(is_float(x.dtype), f"x must have a float element type, found {x}")
    check(x.rank >= 1, f"x must have rank >= 1, found {x}")
    check(qw.rank == 2 and qw.dtype == "i8",
          f"qweight must be i8 [in, out]{' packed as [in, out/2]' if s.bits == 4 else ''}, found {qw}")
    check(norm_axis(s.axis, 2) == 0,
          f"axis must be 0 (groups run along the in axis of the [in, out] weight), found {s.axis}")
    k, n = weight_shape(qw, s.bits)
    if not dims_agree(x.shape[-1], k):
        fail(f"x features {x.shape[-1]} differ from the weight's in size {k}: x {x}, qweight {qw}")
    _check_scales(s.scales, zero, (k, n), 0, s.group_size, f"the in size of qweight {qw}")
    dtype = x.dtype
    if s.results and s.results[0].dtype != dtype:  # an explicit accumulator type: bf16 x -> f32 y
        want = s.results[0].dtype
        check(is_float(want) and np.dtype(TensorType((), want).numpy_dtype()).itemsize
              >= np.dtype(x.numpy_dtype()).itemsize,
              f"result element type {want} cannot accumulate {dtype}")
        dtype = want
    if bias is not None:
        check(bias.dtype in (x.dtype, dtype), f"bias element type must be {dtype}, found {bias}")
        check(shape_agrees(bias.shape, (n,)), f"bias must have shape {shape_str([n])} (out), found {bias}")
    return TensorType(x.shape[:-1] + (n,), dtype)


def _quantized_linear_ref(s, x, qweight, scales, zero_points, bias):
    if bias is None and zero_points is not None and not np.issubdtype(zero_points.dtype, np.integer):
        zero_points, bias = None, zero_points
    w = qz.dequantize(qweight, scales, zero_points, s.bits, s.group_size, 0)
    y = upcast(x).astype(np.float32) @ w
    return y if bias is None else y + upcast(bias)


op("nn.quantized_linear",
   "x @ dequantize(qweight) + bias: qweight i8 [in, out] (int4: packed [in, out/2]), "
   "scales f32 [in/group_size, out], optional i8 zero points and bias [out].",
   operands=["x", "qweight", "scales",
             Operand("zero_points", optional=True, doc="i8 [groups, out]; absent: symmetric"),
             Operand("bias", optional=True, doc="[out], x's element type")],
   attrs=_attrs(), infer=_quantized_linear_infer, reference=_quantized_linear_ref)
