"""Precision policies (passes/nn_precision.py): a model compiled with ``precision="bf16"``
or ``"f16"`` against the same JAX model run in that dtype (stepwell.testing tolerances),
the policy's structure (f32 signature, f32 accumulation, kept ops, low-type weights) and
its three entry points: ``sw.compile``, ``sw.jax.jit`` and ``stepwell compile --precision``."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stepwell as sw
from stepwell.numerics import interpreter
from stepwell.passes.nn_precision import apply_policy, policy_pipeline
from stepwell.numerics.testing import assert_close

LOW = {"bf16": jnp.bfloat16, "f16": jnp.float16}
RNG = np.random.default_rng(0)


def _params(d=32, h=64, o=16):
    def w(*shape, scale=None):
        return (RNG.standard_normal(shape) * (scale or shape[0] ** -0.5)).astype(np.float32)
    return {"w1": w(d, h), "b1": w(h, scale=0.1), "w2": w(h, o), "b2": w(o, scale=0.1),
            "ln_s": 1 + w(o, scale=0.1), "ln_b": w(o, scale=0.1)}


PARAMS = _params()
X = RNG.standard_normal((8, 32)).astype(np.float32)


def model(p, x):
    """MLP -> layer norm -> softmax, computing in the dtype of its inputs."""
    h = jax.nn.gelu(x @ p["w1"] + p["b1"])
    y = h @ p["w2"] + p["b2"]
    mean = y.mean(-1, keepdims=True)
    var = ((y - mean) ** 2).mean(-1, keepdims=True)
    y = (y - mean) / jnp.sqrt(var + 1e-5) * p["ln_s"] + p["ln_b"]
    return jax.nn.softmax(y * 4, axis=-1) + y


def in_dtype(dtype):
    """JAX's model with parameters and input in ``dtype``: the oracle of a policy."""
    p = {k: jnp.asarray(v).astype(dtype) for k, v in PARAMS.items()}
    return np.asarray(jax.jit(model)(p, jnp.asarray(X).astype(dtype)))


@pytest.fixture(scope="module")
def imported():
    return sw.jax.import_function(lambda x: model(PARAMS, x), X)


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_policy_matches_jax_in_that_dtype(imported, dtype):
    exe = sw.compile(imported, target="cpu", precision=dtype)
    got = exe(X)
    assert got.dtype == np.float32  # the signature is unchanged: f32 in, f32 out
    want = in_dtype(LOW[dtype])
    assert_close(got.astype(want.dtype), want, what=f"precision={dtype} vs JAX in {dtype}")
    # and it is a low-precision result: further from f32 than f32 rounding, as close as the dtype
    f32 = np.asarray(model(PARAMS, X))
    err = np.abs(got - f32).max()
    assert 1e-6 < err < {"bf16": 5e-2, "f16": 1e-2}[dtype], err


def test_policy_structure(imported):
    m = apply_policy(imported, "bf16")
    text = str(m)
    f = [op for op in m.body.operations if op.operation.name == "func.func"][0]
    assert str(f.attributes["function_type"]) == "(tensor<8x32xf32>) -> tensor<8x16xf32>"
    counts = m.op_counts()
    # the two contractions take bf16 operands and accumulate into f32 results
    for op in f.regions[0].blocks[0].operations:
        name = op.operation.name
        types = [str(v.type) for v in op.operands] + [str(r.type) for r in op.results]
        if name in ("nn.linear", "nn.matmul"):
            assert "bf16" in types[0] and "bf16" in types[1] and types[-1].endswith("xf32>"), types
        if name in ("nn.layer_norm", "nn.softmax", "nn.reduce_mean", "nn.reduce_sum", "nn.reduce_max"):
            assert all("bf16" not in t for t in types), (name, types)
        if name == "nn.gelu":
            assert all("bf16" in t for t in types), types
    # weights are bf16 constants: no f32 weight matrix is left
    assert "tensor<32x64xf32>" not in text and "tensor<32x64xbf16>" in text
    assert counts.get("nn.cast", 0) >= 2
    # the interpreter agrees with JAX in bf16 too
    want = in_dtype(jnp.bfloat16)
    assert_close(interpreter.run(m, X)[0].astype(want.dtype), want)


def _constant_bytes(module) -> dict[str, int]:
    """Bytes of each non-splat tensor constant in the module IREE is handed, by type:
    the weight storage a compiled module carries (its code size varies by CPU)."""
    from stepwell.compiler.driver import prepare
    from stepwell.core.ir import ir
    from stepwell.core.verifier import walk
    m = prepare(module, target=sw.targets.get("cpu"))
    out = {}
    for op in walk(m.operation):
        value = op.attributes["value"] if op.name == "arith.constant" else None
        if isinstance(value, ir.DenseElementsAttr) and not value.is_splat:
            t = sw.TensorType.from_mlir(op.result.type)
            out[str(t)] = out.get(str(t), 0) + int(np.prod(t.shape)) * t.numpy_dtype().itemsize
    return out


def test_weights_take_half_the_memory(imported):
    """Weight storage, not .vmfb size: an AVX2-only CPU's bf16 module carries more
    emulation code than an AVX-512-BF16 one, so whole-module sizes measure code too."""
    f32 = _constant_bytes(imported)
    bf16 = _constant_bytes(apply_policy(imported, "bf16"))
    weights = sum(v.nbytes for k, v in PARAMS.items() if k.startswith("w"))
    assert sum(f32.values()) - sum(bf16.values()) == weights // 2, (f32, bf16)
    assert {t for t in bf16 if t.endswith("xbf16>")} == {"tensor<32x64xbf16>", "tensor<64x16xbf16>"}


def test_options_and_errors():
    assert policy_pipeline("bf16") == "nn-precision{compute=bf16}"
    assert policy_pipeline("bf16+int4") == "nn-quantize-weights{bits=4},nn-precision{compute=bf16}"
    assert policy_pipeline("f32") == ""
    with pytest.raises(sw.StepwellError, match="unknown precision 'fp8'"):
        policy_pipeline("fp8")
    p = sw.Pipeline("nn-precision{compute=f16 accumulate=f16 keep=softmax,layer_norm}")
    assert str(p) == "builtin.module(nn-precision{compute=f16 accumulate=f16 keep=softmax,layer_norm})"
    text = ("func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n"
            '  %0 = "nn.exp"(%x) : (tensor<4xf32>) -> tensor<4xf32>\n  return %0 : tensor<4xf32>\n}\n')
    for bad, msg in (("nn-precision{compute=f8}", "compute must be bf16, f16 or f32, found 'f8'"),
                     ("nn-precision{accumulate=f16}", "accumulate must be f32 or bf16, found 'f16'"),
                     ("nn-precision{keep=softmx}", "keep names unknown nn ops: softmx")):
        with pytest.raises(sw.StepwellError, match=msg):
            sw.Pipeline(bad).run(sw.parse(text))
    linalg = sw.lower(sw.parse(text), "linalg")
    with pytest.raises(sw.StepwellError, match="applies to nn-level modules"):
        sw.compile(linalg, precision="bf16")
    # what a target lacks is refused before IREE sees it (targets' capability tables)
    with pytest.raises(sw.StepwellError, match="computes in bf16, which target 'vulkan.*' does not support"):
        sw.compile(sw.parse(text), target="vulkan", precision="bf16")
    with pytest.raises(sw.StepwellError, match="int4 weights are not supported on target 'vulkan"):
        sw.compile(sw.parse(text), target="vulkan", precision="int4")


def test_jit_precision():
    f = sw.jax.jit(lambda x: model(PARAMS, x), precision="bf16")
    got = np.asarray(f(X))
    want = in_dtype(jnp.bfloat16)
    assert_close(got.astype(want.dtype), want)


def test_cli_precision(tmp_path):
    src = tmp_path / "mlp.mlir"
    src.write_text("func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {\n"
                   '  %0 = "nn.matmul"(%x, %w) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>\n'
                   '  %1 = "nn.relu"(%0) : (tensor<4x16xf32>) -> tensor<4x16xf32>\n'
                   "  return %1 : tensor<4x16xf32>\n}\n")
    exe = os.path.join(os.path.dirname(sys.executable), "stepwell")
    r = subprocess.run([exe, "compile", str(src), "--compile-to", "nn", "--precision", "bf16"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert '"nn.matmul"' in r.stdout and "(tensor<4x8xbf16>, tensor<8x16xbf16>) -> tensor<4x16xf32>" in r.stdout
    r = subprocess.run([exe, "compile", str(src), "--precision", "int3"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 1 and "unknown precision 'int3'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_transformer_block_in_bf16():
    from stepwell import models
    cfg = models.BlockConfig()
    params = models.block_params(cfg)
    ids = models.block_inputs(cfg)
    exe = sw.compile(models.transformer_block(cfg), target="cpu", precision="bf16")
    got = exe(ids, *params.values())
    low = [jnp.asarray(v).astype(jnp.bfloat16) for v in params.values()]
    want = np.asarray(jax.jit(models.transformer_block_jax(cfg))(ids, *low))
    f32 = np.asarray(jax.jit(models.transformer_block_jax(cfg))(ids, *params.values()))
    # no worse than JAX's all-bf16 block, against f32
    assert np.abs(got - f32).max() <= np.abs(want.astype(np.float32) - f32).max() * 1.5
