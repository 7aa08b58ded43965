"""Numerical checking helpers: the per-dtype tolerance table and comparisons.

Tolerances (rtol, atol) by element type, used everywhere stepwell compares a
compiled result with numpy or JAX:

=======  ======  ======  ==================================================
dtype    rtol    atol    why
=======  ======  ======  ==================================================
f64      1e-6    1e-6    IREE demotes f64 to f32 by default
f32      1e-5    1e-5    reassociated sums (tiling, vector reductions)
f16      1e-2    1e-2    10-bit mantissa, f32 accumulation where it matters
bf16     5e-2    5e-2    7-bit mantissa
ints     0       0       exact
=======  ======  ======  ==================================================
"""

from __future__ import annotations

import numpy as np

from stepwell.types import dtype_of

TOLERANCES = {
    "f64": (1e-6, 1e-6),
    "f32": (1e-5, 1e-5),
    "f16": (1e-2, 1e-2),
    "bf16": (5e-2, 5e-2),
}


def tolerance(dtype) -> tuple[float, float]:
    """(rtol, atol) for a numpy dtype or MLIR element type name."""
    name = dtype if isinstance(dtype, str) else dtype_of(dtype)
    return TOLERANCES.get(name, (0.0, 0.0))


def assert_close(got, want, *, rtol: float | None = None, atol: float | None = None, what: str = "") -> None:
    """Assert ``got`` matches ``want`` in shape, dtype and value (per-dtype tolerance)."""
    got, want = np.asarray(got), np.asarray(want)
    prefix = f"{what}: " if what else ""
    assert got.shape == want.shape, f"{prefix}shape {got.shape} != expected {want.shape}"
    assert got.dtype == want.dtype, f"{prefix}dtype {got.dtype} != expected {want.dtype}"
    r, a = tolerance(want.dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                               rtol=r if rtol is None else rtol, atol=a if atol is None else atol,
                               err_msg=prefix)
