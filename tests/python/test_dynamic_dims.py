"""Dynamic (symbolic) dimensions through stepwell's ladder: nn/prim ops with run-time
sizes, JAX's dynamic StableHLO raised to prim, sw.jax.jit and export + sw.load with
dynamic_batch / dynamic_dims, and the checks at the boundaries (docs/llm.md)."""

import jax
import numpy as np
import pytest

import stepwell as sw
from stepwell.core.diagnostics import StepwellError
from stepwell.numerics import interpreter
from stepwell.numerics.testing import assert_close


def mlp_ln():
    """A Flax MLP with one LayerNorm: what issue 14 found failing with dynamic_batch."""
    import flax.linen as nn

    class M(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.LayerNorm()(nn.Dense(32)(x))
            return nn.Dense(8)(nn.relu(x))
    m = M()
    return m, m.init(jax.random.PRNGKey(0), np.ones((4, 16), np.float32))


def rand(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


NN_DYNAMIC = '''func.func @main(%x: tensor<?x?x16xf32>, %w: tensor<16x32xf32>, %b: tensor<32xf32>,
                 %q: tensor<?x4x?x8xf32>) -> (tensor<?x?x32xf32>, tensor<?x4x?x8xf32>, tensor<?x?xf32>) {
  %0 = "nn.linear"(%x, %w, %b) : (tensor<?x?x16xf32>, tensor<16x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
  %1 = "nn.layer_norm"(%0, %b, %b) {axis = -1 : i64, epsilon = 1.0e-05 : f32} : (tensor<?x?x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
  %2 = "nn.gelu"(%1) {approximate = true} : (tensor<?x?x32xf32>) -> tensor<?x?x32xf32>
  %3 = "nn.attention"(%q, %q, %q) {causal = true} : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %4 = "nn.reduce_mean"(%2) {axes = array<i64: 1>} : (tensor<?x?x32xf32>) -> tensor<?x32xf32>
  %5 = "nn.softmax"(%0) {axis = 1 : i64} : (tensor<?x?x32xf32>) -> tensor<?x?x32xf32>
  %6 = "nn.reduce_sum"(%5) {axes = array<i64: 2>} : (tensor<?x?x32xf32>) -> tensor<?x?xf32>
  return %2, %3, %6 : tensor<?x?x32xf32>, tensor<?x4x?x8xf32>, tensor<?x?xf32>
}'''


def test_nn_ops_with_dynamic_dims_compile_once_for_every_size():
    """nn-to-prim and prim-to-linalg on symbolic batch and sequence (a mean and a softmax
    over the dynamic axis too): one module runs at several sizes, equal to the nn
    reference semantics (the interpreter)."""
    m = sw.parse(NN_DYNAMIC)
    prim = m.clone()
    sw.Pipeline("nn-to-prim").run(prim)
    exe = sw.compile(m, target="cpu")
    for b, s, t in ((3, 5, 6), (1, 2, 1)):
        args = [rand((b, s, 16), 1), rand((16, 32), 2), rand((32,), 3), rand((b, 4, t, 8), 4)]
        want = interpreter.run(m, *args)
        for got in (interpreter.run(prim, *args), exe(*args)):
            for g, w in zip(got, want):
                assert g.shape == w.shape
                assert_close(np.asarray(g), w, rtol=1e-5, atol=1e-5)


def test_mlp_layernorm_dynamic_batch_in_jit_compiles_once():
    m, params = mlp_ln()
    f = sw.jax.jit(m.apply, dynamic_batch=True)
    for batch in (2, 5, 9):
        x = rand((batch, 16), batch)
        assert_close(np.asarray(f(params, x)), np.asarray(m.apply(params, x)), rtol=1e-5, atol=1e-5)
    assert f.compiles == 1
    module = f.lower(params, rand((3, 16)))
    assert module.raise_report.fully_raised
    assert not any(n.startswith("stablehlo.dynamic") for n in module.op_counts())


def test_named_dims_in_jit_share_one_symbol_checked_at_run_time():
    def fn(x, y):
        return x * 2.0 + y
    f = sw.jax.jit(fn, dynamic_dims=("b, s", "b, s"))
    three = np.float32(3.0)
    assert_close(np.asarray(f(np.ones((2, 3), np.float32), np.ones((2, 3), np.float32))), np.full((2, 3), three))
    assert_close(np.asarray(f(np.ones((4, 1), np.float32), np.ones((4, 1), np.float32))), np.full((4, 1), three))
    assert f.compiles == 1
    with pytest.raises(StepwellError, match=r"input 'input1' dimension 0 \(b\) differs from input 'input0' "
                                            r"dimension 0"):
        f(np.ones((4, 1), np.float32), np.ones((2, 1), np.float32))


def test_export_dynamic_dims_manifest_load_and_checks(tmp_path):
    m, params = mlp_ln()

    def apply(params, x):
        return m.apply(params, x)
    path = str(tmp_path / "mlp")
    manifest = sw.jax.export(apply, params, np.ones((4, 16), np.float32), path=path,
                             dynamic_dims=("b, _",), dim_limits={"b": 6})
    spec = manifest["entry_points"]["main"]["inputs"][0]
    assert spec["shape"] == [None, 16] and spec["dims"] == ["b", 16]
    assert manifest["raised"] and manifest["dim_limits"] == {"b": 6}
    model = sw.load(path)
    for batch in (1, 6):
        x = rand((batch, 16), batch)
        assert_close(model(x), np.asarray(m.apply(params, x)), rtol=1e-5, atol=1e-5)
    with pytest.raises(StepwellError, match=r"input 'x' dimension 0 \(b\) is 7, more than the model's "
                                            r"limit of 6 for 'b'"):
        model(rand((7, 16)))
    with pytest.raises(StepwellError, match=r"input 'x' expects float32, got int64"):
        model(np.ones((2, 16), np.int64))
    with pytest.raises(StepwellError, match=r"input 'x' expects shape \[\?, 16\] \(float32\), got \[2\]"):
        model(np.ones((2,), np.float32))


@pytest.mark.parametrize("spec,message", [
    (("b, s, t",), r"the spec of input 'x' has 3 dimensions, the input has 2"),
    (("b, 15",), r"dynamic_dims \('b, 15',\): .*different size 15 for known dimension"),
    (("b", "b"), r"dynamic_dims has 2 entries for 1 arguments"),
])
def test_bad_dynamic_dims_are_named(tmp_path, spec, message):
    def fn(params, x):
        return x * params
    with pytest.raises(StepwellError, match=message):
        sw.jax.export(fn, np.float32(2.0), np.ones((4, 16), np.float32), path=str(tmp_path / "m"),
                      dynamic_dims=spec)
    assert not (tmp_path / "m").exists()


def test_dynamic_stablehlo_leaves_no_dynamic_op_for_iree():
    """jax.export symbolic shapes ("b, s"): broadcasts, reshapes, iotas, slices and
    gathers of dynamic sizes become prim ops with run-time sizes."""
    from jax import export

    def fn(x):
        t = x.shape[1]
        y = x.reshape(x.shape[0], t, 2, 4)[:, :, 0] * jax.numpy.arange(t)[None, :, None]
        mask = jax.numpy.tril(jax.numpy.ones((t, t), bool))
        return jax.numpy.where(mask[None], y @ y.transpose(0, 2, 1), 0.0).sum(-1)
    b, s = export.symbolic_shape("b, s")
    m = sw.jax.import_function(fn, jax.ShapeDtypeStruct((b, s, 8), np.float32))
    assert not any(n.startswith("stablehlo.") for n in m.op_counts()), m.raise_report
    exe = sw.compile(m, target="cpu")
    for shape in ((2, 3, 8), (1, 5, 8)):
        x = rand(shape)
        assert_close(exe(x), np.asarray(jax.jit(fn)(x)), rtol=1e-4, atol=1e-4)


UPDATE_SLICE = '''func.func @main(%x: tensor<?x8xf32>, %u: tensor<2x3xf32>, %p: tensor<2xi32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %p0 = tensor.extract %p[%c0] : tensor<2xi32>
  %p1 = tensor.extract %p[%c1] : tensor<2xi32>
  %i0 = arith.index_cast %p0 : i32 to index
  %i1 = arith.index_cast %p1 : i32 to index
  %0 = "prim.update_slice"(%x, %u, %i0, %i1) : (tensor<?x8xf32>, tensor<2x3xf32>, index, index) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}'''


def test_update_slice_compiled_clamps_like_stablehlo():
    """prim.update_slice through prim-to-linalg and IREE (an insert_slice at clamped
    offsets) on a dynamic row count: in range, past the end, negative."""
    exe = sw.compile(sw.parse(UPDATE_SLICE, name="update_slice.mlir"), target="cpu")
    u = rand((2, 3), 1)
    for rows, offsets in ((5, (1, 2)), (4, (3, 7)), (2, (-1, -4)), (3, (-1, 0)), (6, (9, 0))):
        x = rand((rows, 8), rows)
        got = np.asarray(exe(x, u, np.array(offsets, np.int32)))
        want = jax.lax.dynamic_update_slice(x, u, [max(o, 0) for o in offsets])
        np.testing.assert_array_equal(got, np.asarray(want))
