"""Shape helpers shared by the op specs (pure Python, no MLIR)."""

from __future__ import annotations

import numpy as np

from stepwell.core.opspec import check, fail
from stepwell.core.types import TensorType, is_float


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    """A possibly negative axis as an index in [0, rank)."""
    check(-rank <= axis < rank, f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def norm_axes(axes, rank: int) -> list[int]:
    out = sorted(norm_axis(a, rank, "axis") for a in axes)
    check(len(set(out)) == len(out), f"axes {list(axes)} repeat an axis")
    return out


def broadcast_shapes(*shapes) -> tuple:
    """Numpy broadcasting of static shapes (None = dynamic)."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        sizes = {d for d in dims if d != 1}
        known = {d for d in sizes if d is not None}
        if len(known) > 1:
            fail("shapes " + ", ".join(str(list(s)) for s in shapes) + " do not broadcast")
        out.append(known.pop() if known else (None if None in sizes else 1))
    return tuple(out)


def same_dtype(*types: TensorType) -> str:
    dtypes = [t.dtype for t in types if t is not None]
    check(len(set(dtypes)) == 1, "operand element types differ: " + ", ".join(dtypes))
    return dtypes[0]


def float_type(t: TensorType, what: str = "operand") -> TensorType:
    check(is_float(t.dtype), f"{what} must have a float element type, found {t}")
    return t


def num_elements(shape) -> int | None:
    n = 1
    for d in shape:
        if d is None:
            return None
        n *= d
    return n


# -- dynamic-aware shape comparisons (None = dynamic dimension) ---------------------


def dims_agree(a, b) -> bool:
    """Two dimensions that may be equal at run time (a dynamic one agrees with any)."""
    return a is None or b is None or a == b


def shape_agrees(shape, want) -> bool:
    return len(shape) == len(want) and all(dims_agree(a, b) for a, b in zip(shape, want))


def merge_dim(a, b):
    """The static one of two agreeing dimensions, if any."""
    return a if a is not None else b


def shape_str(shape) -> str:
    """``[4, ?, 8]``: a shape as written in messages."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def rank_is(t: TensorType, rank: int, what: str, layout: str = "") -> TensorType:
    check(t.rank == rank, f"{what} must have rank {rank}{' ' + layout if layout else ''}, found {t}")
    return t


# -- numpy reference helpers ---------------------------------------------------------


def upcast(x: np.ndarray) -> np.ndarray:
    """f16/bf16 arrays as f32 (references compute in at least f32), others unchanged."""
    if x.dtype.itemsize < 4 and (x.dtype.kind == "f" or x.dtype.name == "bfloat16"):
        return x.astype(np.float32)
    return x


def conv_padding(padding, strides, dilation, in_hw, k_hw) -> list:
    """[(low, high), (low, high)] for H and W from a conv2d ``padding`` attribute:
    ``"SAME"`` (XLA/Flax: total = max((ceil(in/s)-1)*s + (k-1)*d+1 - in, 0), low =
    total//2), ``"VALID"`` or ``[top, bottom, left, right]``; None where a dynamic
    size leaves SAME padding unknown."""
    if isinstance(padding, str):
        check(padding in ("SAME", "VALID"),
              f'padding must be "SAME", "VALID" or array<i64: top, bottom, left, right>, found "{padding}"')
        if padding == "VALID":
            return [(0, 0), (0, 0)]
        out = []
        for size, k, st, dil in zip(in_hw, k_hw, strides, dilation):
            if size is None or k is None:
                out.append(None)
                continue
            total = max((-(-size // st) - 1) * st + (k - 1) * dil + 1 - size, 0)
            out.append((total // 2, total - total // 2))
        return out
    pad = list(padding)
    check(len(pad) == 4, f"padding must have 4 entries (top, bottom, left, right), found {pad}")
    check(min(pad) >= 0, f"padding must be non-negative, found {pad}")
    return [(pad[0], pad[1]), (pad[2], pad[3])]


def conv2d_nhwc(x, w, strides, pads, dilation, groups):
    """Grouped, strided, dilated 2-D convolution of NHWC ``x`` with HWIO ``w`` in numpy;
    ``pads`` is [(top, bottom), (left, right)]. Accumulates in at least f32."""
    x, w = upcast(x), upcast(w)
    acc = np.result_type(x.dtype, w.dtype)
    x = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    n, h, wd, _ = x.shape
    kh, kw, cig, cout = w.shape
    oh = (h - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (wd - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    wg = w.reshape(kh, kw, cig, groups, cout // groups)  # output channels grouped group-major
    out = np.zeros((n, oh, ow, groups, cout // groups), acc)
    for i in range(kh):
        for j in range(kw):
            r, c = i * dilation[0], j * dilation[1]
            patch = x[:, r:r + (oh - 1) * strides[0] + 1:strides[0], c:c + (ow - 1) * strides[1] + 1:strides[1], :]
            out += np.einsum("nhwgc,cgo->nhwgo", patch.reshape(n, oh, ow, groups, cig), wg[i, j])
    return out.reshape(n, oh, ow, cout)
