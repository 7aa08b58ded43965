"""Tensor types as plain Python values: what op specs reason about.

``TensorType((4, 8), "f32")`` mirrors ``tensor<4x8xf32>``; a dynamic dimension is
``None``. Specs never touch MLIR objects, so inference and reference semantics are
pure Python and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from stepwell.core.ir import cache, ir

FLOAT_DTYPES = ("f16", "bf16", "f32", "f64")
INT_DTYPES = ("i1", "i8", "i16", "i32", "i64")

_NUMPY = {
    "f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32, "f64": np.float64,
    "i1": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
}


def numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype of an MLIR element type name."""
    try:
        return np.dtype(_NUMPY[dtype])
    except KeyError:
        raise ValueError(f"unsupported element type '{dtype}'") from None


def dtype_of(array_dtype) -> str:
    """The MLIR element type name of a numpy dtype."""
    dt = np.dtype(array_dtype)
    for name, np_type in _NUMPY.items():
        if np.dtype(np_type) == dt:
            return name
    raise ValueError(f"unsupported numpy dtype '{dt}'")


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: str) -> "TensorType":
        return TensorType(self.shape, dtype)

    def __str__(self) -> str:
        dims = "".join(("?" if d is None else str(d)) + "x" for d in self.shape)
        return f"tensor<{dims}{self.dtype}>"

    @staticmethod
    def parse(text: str) -> "TensorType":
        """``"4x8xf32"`` or ``"tensor<4x8xf32>"`` -> TensorType."""
        body = text.strip()
        if body.startswith("tensor<") and body.endswith(">"):
            body = body[len("tensor<"):-1]
        *dims, dtype = body.split("x")
        return TensorType(tuple(None if d == "?" else int(d) for d in dims), dtype)

    @staticmethod
    def from_mlir(t: ir.Type) -> "TensorType | None":
        """The TensorType of a ranked tensor type, else None."""
        if not isinstance(t, ir.RankedTensorType):
            return None
        tt = _FROM_MLIR.get(t)
        if tt is None:
            dynamic = ir.ShapedType.get_dynamic_size()
            tt = _FROM_MLIR[t] = TensorType(tuple(None if d == dynamic else d for d in t.shape),
                                            str(t.element_type))
        return tt

    def to_mlir(self) -> ir.Type:
        t = _TO_MLIR.get(self)
        if t is None:
            from stepwell.core.ir import context
            t = _TO_MLIR[self] = ir.Type.parse(str(self), context())
        return t

    def numpy_dtype(self) -> np.dtype:
        return numpy_dtype(self.dtype)


# ir.Type <-> TensorType: printing or parsing a type takes microseconds, and passes ask
# for the same few types thousands of times.
_FROM_MLIR, _TO_MLIR = cache(), cache()
