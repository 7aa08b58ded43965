"""An independent reference for weight quantization, written from docs/low-precision.md's
conventions one element at a time (not with ``stepwell.core.quantize``, the code that
the ops' specs and lowerings share): the oracle of ``test_quant_ops.py``.

Signed values in [-2**(bits-1), 2**(bits-1) - 1]; groups of ``group_size`` along
``axis`` (0: the whole axis); ``q = clip(round_half_even(x / s) + z)``; dequantized
``(q - z) * s``; int4 packed along the last axis in halves (byte i: element i in the
low nibble, element i + L/2 in the high nibble, two's complement).
"""

from __future__ import annotations

import itertools

import numpy as np


def _group(index, axis, size, group_size):
    g = 0 if group_size in (0, -1) else index[axis] // group_size
    return index[:axis] + (g,) + index[axis + 1:]


def scales(x, bits, group_size, axis, symmetric):
    """(scales, zero points or None), from each group's elements."""
    x = np.asarray(x, np.float64)
    n = x.shape[axis]
    groups = 1 if group_size in (0, -1) else n // group_size
    shape = x.shape[:axis] + (groups,) + x.shape[axis + 1:]
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    members = {}
    for idx in itertools.product(*map(range, x.shape)):
        members.setdefault(_group(idx, axis, n, group_size), []).append(float(np.float32(x[idx])))
    s = np.zeros(shape, np.float32)
    z = None if symmetric else np.zeros(shape, np.int8)
    for g, vals in members.items():
        if symmetric:
            scale = np.float32(max(abs(v) for v in vals)) / np.float32(qmax)
        else:
            lo, hi = np.float32(min(min(vals), 0.0)), np.float32(max(max(vals), 0.0))
            scale = (hi - lo) / np.float32(qmax - qmin)
        scale = np.float32(scale) if scale > 0 else np.float32(1)
        s[g] = scale
        if not symmetric:
            z[g] = min(max(round(float(qmin - np.float32(lo / scale))), qmin), qmax)
    return s, z


def quantize(x, s, z, bits, group_size, axis):
    """Unpacked i8 values."""
    x = np.asarray(x, np.float32)
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = np.zeros(x.shape, np.int8)
    for idx in itertools.product(*map(range, x.shape)):
        g = _group(idx, axis, x.shape[axis], group_size)
        v = round(float(np.float32(x[idx] / s[g]))) + (int(z[g]) if z is not None else 0)
        q[idx] = min(max(v, qmin), qmax)
    return q


def pack(q):
    q = np.asarray(q, np.int8)
    half = q.shape[-1] // 2
    out = np.zeros(q.shape[:-1] + (half,), np.int8)
    for idx in itertools.product(*map(range, out.shape)):
        lo = int(q[idx]) & 0xF
        hi = int(q[idx[:-1] + (idx[-1] + half,)]) & 0xF
        byte = lo | (hi << 4)
        out[idx] = byte - 256 if byte > 127 else byte
    return out


def unpack(p):
    p = np.asarray(p, np.int8)
    half = p.shape[-1]
    out = np.zeros(p.shape[:-1] + (2 * half,), np.int8)
    for idx in itertools.product(*map(range, p.shape)):
        byte = int(p[idx]) & 0xFF
        lo, hi = byte & 0xF, byte >> 4
        out[idx] = lo - 16 if lo > 7 else lo
        out[idx[:-1] + (idx[-1] + half,)] = hi - 16 if hi > 7 else hi
    return out


def dequantize(q, s, z, bits, group_size, axis, packed=True):
    """f32 ``(q - z) * s``; int4 ``q`` unpacked first when ``packed``."""
    q = unpack(q) if bits == 4 and packed else np.asarray(q)
    out = np.zeros(q.shape, np.float32)
    for idx in itertools.product(*map(range, q.shape)):
        g = _group(idx, axis, q.shape[axis], group_size)
        out[idx] = np.float32(int(q[idx]) - (int(z[g]) if z is not None else 0)) * s[g]
    return out
