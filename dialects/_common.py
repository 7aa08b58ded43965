"""Shape helpers shared by the op specs (pure Python, no MLIR)."""

from __future__ import annotations

from stepwell.opspec import check, fail
from stepwell.types import TensorType, is_float


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
