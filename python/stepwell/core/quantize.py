"""Weight quantization math in numpy: scales, zero points, int4 packing.

The numbers behind ``nn.quantize``/``nn.dequantize``/``nn.quantized_linear`` and the
``nn-quantize-weights`` pass. Conventions (docs/low-precision.md):

* ``bits`` is 8 or 4; quantized values are signed: [-128, 127] or [-8, 7].
* Groups run along ``axis`` (0: the ``in`` axis of a ``[in, out]`` weight) with
  ``group_size`` elements each; ``group_size`` 0 (or -1) is one group spanning the axis
  (per-channel). Scales (and zero points) have the tensor's shape with ``axis`` replaced
  by the number of groups: a ``[in, out]`` weight has ``[in / group_size, out]`` scales.
* Symmetric: ``q = clip(round(x / s))`` with ``s = max|x| / (2**(bits-1) - 1)`` and no
  zero point. Asymmetric: ``q = clip(round(x / s) + z)`` with ``s = (max - min) / (2**bits - 1)``
  over the group's range widened to hold 0, and an i8 zero point ``z`` in the value range.
  Dequantization is ``(q - z) * s``; the round trip is within ``s / 2``. Rounding is
  half to even (``np.round``, ``math.roundeven``).
* int4 values are packed two per byte along the *last* dimension, in halves: byte ``i``
  holds element ``i`` in its low nibble and element ``i + L/2`` in its high nibble (two's
  complement nibbles). Unpacked, the two halves are contiguous, so the dequantized weight
  vectorizes along the output columns (interleaved pairs ran ~4x slower on CPU).

    q, s, z = quantize_weight(w, bits=4, group_size=32, symmetric=False)
    w2 = dequantize_weight(q, s, z, bits=4, group_size=32)   # |w2 - w| <= s/2
"""

from __future__ import annotations

import numpy as np

BITS = (8, 4)


def qrange(bits: int) -> tuple[int, int]:
    """The signed value range of ``bits``-bit integers: (-128, 127) or (-8, 7)."""
    if bits not in BITS:
        raise ValueError(f"bits must be 8 or 4, found {bits}")
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def num_groups(size: int, group_size: int) -> int:
    """Groups along an axis of ``size`` elements (group_size 0/-1: one group)."""
    if group_size in (0, -1):
        return 1
    if group_size < 0 or size % group_size:
        raise ValueError(f"group_size {group_size} does not divide the axis size {size}")
    return size // group_size


def _grouped(x: np.ndarray, axis: int, groups: int) -> np.ndarray:
    """``x`` with ``axis`` split into (groups, group size)."""
    axis %= x.ndim
    return x.reshape(x.shape[:axis] + (groups, x.shape[axis] // groups) + x.shape[axis + 1:])


def _expand(t: np.ndarray, x_shape, axis: int, group_size: int = 0) -> np.ndarray:
    """Per-group values ``t`` (axis = groups) broadcast over ``x_shape``'s axis."""
    axis %= len(x_shape)
    groups = num_groups(x_shape[axis], group_size)
    want = x_shape[:axis] + (groups,) + x_shape[axis + 1:]
    if t.shape != want:
        raise ValueError(f"scales/zero points must have shape {want}, found {t.shape}")
    return np.repeat(t, x_shape[axis] // groups, axis=axis)


def compute_scales(x, bits: int = 8, group_size: int = 0, axis: int = 0, symmetric: bool = True):
    """Scales (f32) and zero points (i8, None when symmetric) for ``x``."""
    x = np.asarray(x, np.float32)
    axis %= x.ndim
    groups = num_groups(x.shape[axis], group_size)
    xg = _grouped(x, axis, groups)
    qmin, qmax = qrange(bits)
    if symmetric:
        peak = np.max(np.abs(xg), axis=axis + 1)
        scale = peak / np.float32(qmax)
        zero = None
    else:
        lo = np.minimum(np.min(xg, axis=axis + 1), 0)
        hi = np.maximum(np.max(xg, axis=axis + 1), 0)
        scale = (hi - lo) / np.float32(qmax - qmin)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)  # an all-zero group
    if not symmetric:
        zero = np.clip(np.round(qmin - lo / scale), qmin, qmax).astype(np.int8)
    return scale, zero


def quantize(x, scales, zero_points=None, bits: int = 8, group_size: int = 0, axis: int = 0,
             pack: bool = True) -> np.ndarray:
    """``clip(round(x / s) + z)`` as i8; int4 packed along the last axis when ``pack``."""
    x = np.asarray(x).astype(np.float32)
    qmin, qmax = qrange(bits)
    s = _expand(np.asarray(scales, np.float32), x.shape, axis, group_size)
    v = np.round(x / s)
    if zero_points is not None:
        v = v + _expand(np.asarray(zero_points), x.shape, axis, group_size).astype(np.float32)
    q = np.clip(v, qmin, qmax).astype(np.int8)
    return pack_int4(q) if bits == 4 and pack else q


def dequantize(q, scales, zero_points=None, bits: int = 8, group_size: int = 0, axis: int = 0,
               packed: bool = True) -> np.ndarray:
    """``(q - z) * s`` in f32 (int4 ``q`` unpacked first when ``packed``)."""
    q = np.asarray(q)
    if bits == 4 and packed:
        q = unpack_int4(q)
    v = q.astype(np.float32)
    if zero_points is not None:
        v = v - _expand(np.asarray(zero_points), q.shape, axis, group_size).astype(np.float32)
    return v * _expand(np.asarray(scales, np.float32), q.shape, axis, group_size)


def pack_int4(q) -> np.ndarray:
    """Signed 4-bit values (i8 in [-8, 7]) packed two per byte along the last axis: byte
    ``i`` holds element ``i`` in its low nibble and element ``i + L/2`` in its high nibble."""
    q = np.asarray(q, np.int8)
    if q.shape[-1] % 2:
        raise ValueError(f"int4 packing needs an even last dimension, found shape {q.shape}")
    half = q.shape[-1] // 2
    lo, hi = q[..., :half].astype(np.uint8), q[..., half:].astype(np.uint8)
    return ((lo & 0x0F) | (hi << 4)).astype(np.uint8).view(np.int8)


def unpack_int4(p) -> np.ndarray:
    """Inverse of :func:`pack_int4`: sign-extended nibbles, the last axis doubled."""
    p = np.asarray(p, np.int8)
    lo = (p << 4) >> 4  # numpy: int8 shifts wrap, >> is arithmetic
    hi = p >> 4
    return np.concatenate([lo, hi], axis=-1).astype(np.int8)


def effective_group_size(group_size: int, k: int) -> int | None:
    """The group size a weight with ``k`` inputs gets: 0 (one group per output channel)
    for 0/-1 or a group at least ``k``, None when ``group_size`` does not divide ``k``."""
    if group_size in (0, -1) or group_size >= k:
        return 0
    return group_size if k % group_size == 0 else None


def quantize_weight(w, bits: int = 8, group_size: int = 0, symmetric: bool = True):
    """A ``[in, out]`` weight as ``nn.quantized_linear`` operands:
    (qweight i8 ``[in, out]`` or packed ``[in, out/2]``, scales f32 ``[groups, out]``,
    zero points i8 ``[groups, out]`` or None)."""
    w = np.asarray(w, np.float32)
    scale, zero = compute_scales(w, bits, group_size, 0, symmetric)
    return quantize(w, scale, zero, bits, group_size, 0), scale, zero


def dequantize_weight(qweight, scales, zero_points=None, bits: int = 8, group_size: int = 0):
    """The f32 ``[in, out]`` weight that ``quantize_weight``'s operands stand for."""
    return dequantize(qweight, scales, zero_points, bits, group_size, 0)


def nbytes(*arrays) -> int:
    """Total storage of arrays (None skipped)."""
    return sum(int(np.asarray(a).nbytes) for a in arrays if a is not None)
