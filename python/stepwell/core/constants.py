"""Dense MLIR constants as numpy arrays (``arith.constant``'s value attribute)."""

from __future__ import annotations

import re

import numpy as np

from stepwell.core.ir import ir
from stepwell.core.types import TensorType, numpy_dtype

__all__ = ["constant_value"]


def constant_value(attr, result_type) -> np.ndarray:
    """The numpy value of a dense ``arith.constant`` attribute."""
    t = TensorType.from_mlir(result_type)
    dtype = numpy_dtype(t.dtype)
    if isinstance(attr, (ir.DenseFPElementsAttr, ir.DenseIntElementsAttr)) and attr.is_splat:
        return np.full(t.shape, attr.get_splat_value().value, dtype=dtype)
    if t.dtype == "bf16":  # no buffer protocol and no element access: read the printed form
        return _bf16_from_text(str(attr)).reshape(t.shape)
    if t.dtype == "i1":  # no buffer protocol: go element by element
        return np.array([attr[i] for i in range(len(attr))], dtype=dtype).reshape(t.shape)
    return np.array(attr, copy=True).astype(dtype).reshape(t.shape)


def _bf16_from_text(text: str) -> np.ndarray:
    """The flat values of a printed bf16 dense attribute: ``dense<"0x...">`` (raw
    little-endian bits) or ``dense<[1.0, ...]>``."""
    m = re.match(r'dense<"0x([0-9A-Fa-f]*)">', text)
    if m:
        return np.frombuffer(bytes.fromhex(m[1]), np.uint16).view(numpy_dtype("bf16")).copy()
    body = text[text.index("<") + 1:].split(">")[0]
    bits = [int(v, 16) if v.startswith("0x") else  # MLIR prints nan/inf as their bits
            int(np.array(float(v), np.float32).astype(numpy_dtype("bf16")).view(np.uint16))
            for v in re.findall(r"0x[0-9A-Fa-f]+|[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?", body)]
    return np.array(bits, np.uint16).view(numpy_dtype("bf16"))
