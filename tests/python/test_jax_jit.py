"""sw.jax.jit as a drop-in for jax.jit: pytrees, signatures, static arguments, errors.

Compiles are few and small; the same function at the same signature compiles once
per session (the compile cache), so tests reuse ``_affine``.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stepwell as sw
from stepwell.core import passes_base
from stepwell.jax import raise_available

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 8)).astype(np.float32)
PARAMS = {"w": RNG.standard_normal((8, 4)).astype(np.float32), "b": RNG.standard_normal(4).astype(np.float32)}


def _affine(params, x):
    y = x @ params["w"] + params["b"]
    return {"y": y, "stats": (jnp.sum(y), None)}


def test_pytrees_in_and_out_match_jax_jit():
    f = sw.jax.jit(_affine)
    got = f(PARAMS, X)
    want = jax.jit(_affine)(PARAMS, X)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert isinstance(got["y"], jax.Array) and got["y"].dtype == jnp.float32
    sw.testing.assert_close(np.asarray(got["y"]), np.asarray(want["y"]))
    sw.testing.assert_close(np.asarray(got["stats"][0]), np.asarray(want["stats"][0]), rtol=1e-5, atol=1e-4)
    assert got["stats"][1] is None


def test_one_compile_per_signature():
    f = sw.jax.jit(_affine)
    f(PARAMS, X)
    f({"w": jnp.asarray(PARAMS["w"]), "b": jnp.asarray(PARAMS["b"])}, jnp.asarray(X))  # JAX arrays
    assert f.compiles == 1 and f._cache_size() == 1
    f(PARAMS, np.ones((3, 8), np.float32))  # a new shape: a new signature
    assert f.compiles == 2 and f._cache_size() == 2
    f.clear_cache()
    assert f._cache_size() == 0


def test_static_arguments_keywords_and_scalars():
    def f(x, n, *, scale, mode="mul"):
        return x * n * scale if mode == "mul" else x + n + scale
    g = sw.jax.jit(f, static_argnums=1, static_argnames="mode")
    for n, mode in [(2, "mul"), (3, "mul"), (2, "add")]:
        got = g(X, n, scale=1.5, mode=mode)  # a Python float: weakly typed, stays f32
        want = jax.jit(f, static_argnums=1, static_argnames="mode")(X, n, scale=1.5, mode=mode)
        assert got.dtype == want.dtype == jnp.float32
        sw.testing.assert_close(np.asarray(got), np.asarray(want))
    assert g.compiles == 3
    g(X, 2, scale=2.5, mode="mul")  # another scale value: same signature
    assert g.compiles == 3
    with pytest.raises(sw.StepwellError, match="must be hashable"):
        g(X, [2], scale=1.0)
    # as jax.jit: a static parameter is static whether passed by position or by name
    h = sw.jax.jit(lambda x, n: jnp.reshape(x, (n, -1)), static_argnames="n")
    assert h(X, 4).shape == h(X, n=4).shape == (4, 4)


def test_decorator_forms_donation_and_integer_inputs():
    @sw.jax.jit
    def plain(a):
        return a * 2 + 1

    @sw.jax.jit(donate_argnums=0)  # accepted, no effect
    def donated(a):
        return a * 2 + 1

    ints = np.arange(6, dtype=np.int64)  # JAX traces int64 as int32 (x64 off): so do we
    for f in (plain, donated):
        out = f(ints)
        assert out.dtype == jnp.int32 and np.array_equal(np.asarray(out), np.arange(6) * 2 + 1)
    assert "plain" in repr(plain) and plain.__name__ == "plain"


def test_lower_returns_the_imported_module():
    m = sw.jax.jit(_affine).lower(PARAMS, X)
    assert isinstance(m, sw.jax.JaxModule)
    assert m.out_tree == jax.tree.structure({"y": 0, "stats": (0, None)})
    assert m.raised and raise_available()


# ---------------------------------------------------------------------------
# Unsupported features: the error names the JAX primitive and what to do.
@pytest.mark.parametrize("raise_ops", [True, False])
def test_fft_is_named(raise_ops):
    f = sw.jax.jit(lambda x: jnp.fft.fft(x).real, raise_ops=raise_ops)
    with pytest.raises(sw.StepwellError) as e:
        f(np.ones((3, 5), np.float32))
    first = e.value.diagnostics[0]
    assert first.severity == "error" and "JAX primitive 'fft' (stablehlo.fft)" in first.message
    assert "power-of-two" in first.message
    assert "run this function with jax.jit" in str(e.value)


def test_host_library_calls_are_named():
    f = sw.jax.jit(lambda a, b: jax.scipy.linalg.solve_triangular(a, b, lower=True), raise_ops=False)
    with pytest.raises(sw.StepwellError, match="lapack_strsm_ffi.*triangular_solve"):
        f(np.eye(4, dtype=np.float32), np.ones((4, 2), np.float32))


def test_a_raising_failure_suggests_raise_ops_false(monkeypatch):
    """A stand-in stablehlo-to-nn that cannot handle tanh: the error names the primitive
    and points at raise_ops=False, which then works."""

    from stepwell import passes
    from stepwell.passes.stablehlo_to_nn import StablehloToNn

    class Refuses(StablehloToNn):  # (its options, so the raising helper can configure it)
        def run(self, module):
            from stepwell.core import verifier
            for op in verifier.walk(module.operation):
                if op.name == "stablehlo.tanh":
                    raise passes_base.fail_at(op, "'stablehlo.tanh' cannot be raised")

    passes.get("stablehlo-to-nn")  # the registry loads lazily: load it before replacing one entry
    monkeypatch.setitem(passes_base.PASSES, "stablehlo-to-nn", Refuses)

    def f(x):
        return jnp.tanh(x) * 2
    with pytest.raises(sw.StepwellError) as e:
        sw.jax.jit(f)(X)
    text = str(e.value)
    assert "'stablehlo.tanh' cannot be raised" in text and "raise_ops=False" in text
    assert e.value.diagnostics[0].file.endswith("test_jax_jit.py")  # the user's line
    got = sw.jax.jit(f, raise_ops=False)(X)
    sw.testing.assert_close(np.asarray(got), np.tanh(X) * 2)


def test_explain_names_the_primitive_of_a_failed_compile():
    """A compile failure on a raised op (whatever the raising made of it) is restated
    with the JAX primitive and the raise_ops=False fallback."""
    from stepwell.core.diagnostics import Diagnostic
    from stepwell.frontends.jax.jit import explain
    m = sw.jax.import_function(lambda x: jnp.tanh(x), X, raise_ops=False)
    err = sw.StepwellError([Diagnostic("iree-compile: failed to legalize operation 'stablehlo.tanh'",
                                       "error", "f.py", 3, 1)])
    out = explain(err, m, _affine, raise_ops=True)
    assert out.diagnostics[0].message.startswith("sw.jax.jit(_affine): JAX primitive 'tanh' (stablehlo.tanh)")
    assert out.diagnostics[0].file.endswith("test_jax_jit.py")
    assert "raise_ops=False" in out.diagnostics[-1].message


@pytest.mark.vulkan
def test_runs_on_vulkan():
    available = sw.targets.available("vulkan")
    if not available:
        pytest.skip(available.reason)
    f = sw.jax.jit(_affine, target="vulkan")
    got, want = f(PARAMS, X), jax.jit(_affine)(PARAMS, X)
    sw.testing.assert_close(np.asarray(got["y"]), np.asarray(want["y"]))
    assert f._entries and next(iter(f._entries.values())).exe.target.name == "vulkan"
