"""Numerical checking helpers: the per-dtype tolerance table and comparisons, and
JAX as the oracle (:func:`assert_matches_jax`: ``jax.jit`` against ``sw.jax.jit``).

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

from stepwell.core.types import dtype_of

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


def assert_matches_jax(fn, *args, target="cpu", rtol: float | None = None, atol: float | None = None,
                       raise_ops: bool = True, static_argnums=(), **kwargs):
    """Run ``fn(*args, **kwargs)`` under ``jax.jit`` and through ``sw.jax.jit`` on
    ``target``; assert the output pytrees have the same structure and every leaf
    matches in shape, dtype and value (the tolerance table above, unless ``rtol``/
    ``atol`` are given). Returns stepwell's outputs."""
    import jax

    from stepwell.frontends.jax.jit import jit as sw_jit
    want = jax.jit(fn, static_argnums=static_argnums)(*args, **kwargs)
    got = sw_jit(fn, target=target, static_argnums=static_argnums, raise_ops=raise_ops)(*args, **kwargs)
    want_leaves, want_tree = jax.tree.flatten(want)
    got_leaves, got_tree = jax.tree.flatten(got)
    assert got_tree == want_tree, f"output structure {got_tree} != jax.jit's {want_tree}"
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(want)[0]]
    for path, g, w in zip(paths, got_leaves, want_leaves):
        assert_close(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol, what=f"output{path}")
    return got
