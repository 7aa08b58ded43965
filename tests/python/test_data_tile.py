"""stepwell's data tiling (passes/linalg_data_tile.py) as sw.compile runs it on CPU targets:
results against numpy, weights packed once, IREE's inner tiles, and what is left alone."""

import re

import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import driver, tuning
from stepwell.core.verifier import walk
from stepwell.targets import iree_cpu

# Above the pass's min-flops (2^21), with sizes the 8/16-wide tiles do not all divide.
NN = """
func.func @main(%a: tensor<100x96xf32>, %b: tensor<96x120xf32>, %q: tensor<4x64x80xf32>,
                %k: tensor<4x80x64xf32>, %x: tensor<64x128xf32>, %w: tensor<128x192xf32>,
                %bias: tensor<192xf32>) -> (tensor<100x120xf32>, tensor<4x64x64xf32>, tensor<64x192xf32>) {
  %0 = "nn.matmul"(%a, %b) : (tensor<100x96xf32>, tensor<96x120xf32>) -> tensor<100x120xf32>
  %1 = "nn.matmul"(%q, %k) : (tensor<4x64x80xf32>, tensor<4x80x64xf32>) -> tensor<4x64x64xf32>
  %2 = "nn.linear"(%x, %w, %bias) : (tensor<64x128xf32>, tensor<128x192xf32>, tensor<192xf32>) -> tensor<64x192xf32>
  %3 = "nn.gelu"(%2) {approximate = true} : (tensor<64x192xf32>) -> tensor<64x192xf32>
  return %0, %1, %3 : tensor<100x120xf32>, tensor<4x64x64xf32>, tensor<64x192xf32>
}
"""
SHAPES = [(100, 96), (96, 120), (4, 64, 80), (4, 80, 64), (64, 128), (128, 192), (192,)]


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def _dispatches(flow: str) -> list[str]:
    return [m[1] for m in re.finditer(r"flow\.dispatch @\w+::@(\w+)\(", flow)]


def test_data_tiled_contractions_match_numpy():
    t = sw.targets.get("cpu")
    prepared = driver.prepare(sw.parse(NN), target=t)
    tiled, _ = tuning.apply(prepared, t, "off")
    names = [op.name for op in walk(tiled.operation)]
    # all three contractions went through stepwell's data tiling
    assert names.count("linalg.mmt4d") == 2 and names.count("linalg.batch_mmt4d") == 1
    assert "linalg.matmul" not in names and "linalg.batch_matmul" not in names
    assert prepared is not tiled and "linalg.mmt4d" not in str(prepared)  # the input is untouched
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    got = sw.compile(sw.parse(NN), target=t)(*args)
    want = [args[0] @ args[1], args[2] @ args[3], _gelu(args[4] @ args[5] + args[6])]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_constant_weights_are_packed_once_and_argument_weights_per_call():
    w = np.random.default_rng(1).standard_normal((256, 128)).astype(np.float32)
    dense = ", ".join("[" + ", ".join(f"{v:.6e}" for v in row) + "]" for row in w)
    const = f"""
func.func @main(%x: tensor<64x256xf32>) -> tensor<64x128xf32> {{
  %w = arith.constant dense<[{dense}]> : tensor<256x128xf32>
  %0 = "nn.matmul"(%x, %w) : (tensor<64x256xf32>, tensor<256x128xf32>) -> tensor<64x128xf32>
  return %0 : tensor<64x128xf32>
}}"""
    arg = """
func.func @main(%x: tensor<64x256xf32>, %w: tensor<256x128xf32>) -> tensor<64x128xf32> {
  %0 = "nn.matmul"(%x, %w) : (tensor<64x256xf32>, tensor<256x128xf32>) -> tensor<64x128xf32>
  return %0 : tensor<64x128xf32>
}"""
    param = """
util.global private @w = #flow.parameter.named<"model"::"w"> : tensor<256x128xf32>
func.func @main(%x: tensor<64x256xf32>) -> tensor<64x128xf32> {
  %w = util.global.load @w : tensor<256x128xf32>
  %0 = "nn.matmul"(%x, %w) : (tensor<64x256xf32>, tensor<256x128xf32>) -> tensor<64x128xf32>
  return %0 : tensor<64x128xf32>
}"""
    packs = {}
    for name, text in (("const", const), ("arg", arg), ("param", param)):
        flow = driver.compile_to(sw.parse(text), "dispatch")
        packs[name] = [d for d in _dispatches(flow) if d.startswith("main_") and "_pack_" in d]
        assert any("mmt4d" in d for d in _dispatches(flow)), name
        if name == "param":  # the weight's pack runs once, in the initializer (at load)
            assert any(d.startswith("_initializer") and "_pack_" in d for d in _dispatches(flow))
    assert len(packs["const"]) == 1 and len(packs["param"]) == 1  # only x is packed per call
    assert len(packs["arg"]) == 2  # a weight passed as an argument is packed every call
    x = np.random.default_rng(2).standard_normal((64, 256)).astype(np.float32)
    np.testing.assert_allclose(sw.compile(sw.parse(const))(x), x @ w, rtol=1e-4, atol=1e-4)


def test_inner_tiles_are_the_ones_iree_data_tiling_uses_here():
    # IREE's own data tiling of a matmul stepwell leaves to it (stepwell.data_tile = false)
    text = """
func.func @main(%a: tensor<256x128xf32>, %b: tensor<128x192xf32>, %acc: tensor<256x192xf32>) -> tensor<256x192xf32> {
  %r = linalg.matmul {stepwell.data_tile = false} ins(%a, %b : tensor<256x128xf32>, tensor<128x192xf32>)
         outs(%acc : tensor<256x192xf32>) -> tensor<256x192xf32>
  return %r : tensor<256x192xf32>
}"""
    (mmt4d,) = [d for d in _dispatches(driver.compile_to(sw.parse(text), "dispatch")) if "mmt4d" in d]
    dims = [int(v) for v in re.search(r"mmt4d_((?:\d+x)+\d+)_f32", mmt4d)[1].split("x")]
    assert tuple(dims[-3:]) == iree_cpu.inner_tiles("cpu", "f32", "f32", "f32")
    info = iree_cpu.info("cpu")
    assert info.cpu and info.features and info.vector_bytes in (16, 32, 64)


def test_quantized_linear_keeps_its_fused_dequantization():
    text = """
func.func @main(%x: tensor<64x256xf32>) -> tensor<64x128xf32> {
  %w = arith.constant dense<0.5> : tensor<256x128xf32>
  %0 = "nn.linear"(%x, %w) : (tensor<64x256xf32>, tensor<256x128xf32>) -> tensor<64x128xf32>
  return %0 : tensor<64x128xf32>
}"""
    t = sw.targets.get("cpu")
    quantized = driver.prepare(sw.parse(text), precision="int8", target=t)
    tiled, _ = tuning.apply(quantized, t, "off")
    assert "linalg.mmt4d" not in str(tiled)  # one dispatch dequantizes and multiplies
    x = np.random.default_rng(3).standard_normal((64, 256)).astype(np.float32)
    got = sw.compile(sw.parse(text), precision="int8")(x)
    np.testing.assert_allclose(got, x @ np.full((256, 128), 0.5, np.float32), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("target", ["cpu-generic", "cpu-aarch64"])
def test_targets_where_it_does_not_win_do_not_data_tile(target):
    t = sw.targets.get(target)
    prepared = driver.prepare(sw.parse(NN), target=t)
    out, applied = tuning.apply(prepared, t, "off")
    assert out is prepared and not applied.configs


def test_a_tuned_quantized_linear_is_data_tiled_and_its_weight_stays_int8():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((512, 256)).astype(np.float32)
    dense = ", ".join("[" + ", ".join(f"{v:.4e}" for v in row) + "]" for row in w)
    text = f"""
func.func @main(%x: tensor<64x512xf32>) -> tensor<64x256xf32> {{
  %w = arith.constant dense<[{dense}]> : tensor<512x256xf32>
  %0 = "nn.linear"(%x, %w) : (tensor<64x512xf32>, tensor<512x256xf32>) -> tensor<64x256xf32>
  return %0 : tensor<64x256xf32>
}}"""
    t = sw.targets.get("cpu")
    from stepwell.compiler import tuning_keys
    (root,) = [r for r in tuning_keys.roots(driver.prepare(sw.parse(text), precision="int8", target=t))
               if r.tunable]
    assert root.signature.get("dequantized")
    configs = {root.key: {"kind": "mmt4d", "distribution": [1, 1]}}
    flow = driver.compile_to(sw.parse(text), "dispatch", precision="int8", tuning=configs)
    assert any("mmt4d" in d for d in _dispatches(flow))
    vmfb = driver.compile_vmfb(sw.parse(text), precision="int8", tuning=configs)
    assert len(vmfb) < 4 * 512 * 256  # the weight stays int8 (an f32 copy alone is 512 KB)
    x = rng.standard_normal((64, 512)).astype(np.float32)
    got = sw.Executable(vmfb, t)(x)
    want = sw.compile(sw.parse(text), precision="int8", tuning="off")(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # the untuned quantized result
