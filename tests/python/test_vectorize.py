"""linalg-vectorize, the to-vector pipeline and the tiling heuristic."""

from __future__ import annotations

import numpy as np
import pytest

import stepwell as sw
from stepwell import passes, pipelines
from stepwell.targets import tiling
from stepwell.core.diagnostics import StepwellError
from stepwell.core.ir import ir
from stepwell.core.verifier import walk

MATMUL = """
func.func @main(%a: tensor<64x128xf32>, %b: tensor<128x256xf32>, %c: tensor<64x256xf32>) -> tensor<64x256xf32> {
  %0 = linalg.matmul ins(%a, %b : tensor<64x128xf32>, tensor<128x256xf32>) outs(%c : tensor<64x256xf32>) -> tensor<64x256xf32>
  return %0 : tensor<64x256xf32>
}
"""

RAGGED_MATMUL = """
func.func @main(%a: tensor<10x30xf32>, %b: tensor<30x50xf32>) -> tensor<10x50xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<10x50xf32>
  %c = linalg.fill ins(%zero : f32) outs(%e : tensor<10x50xf32>) -> tensor<10x50xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<10x30xf32>, tensor<30x50xf32>) outs(%c : tensor<10x50xf32>) -> tensor<10x50xf32>
  return %0 : tensor<10x50xf32>
}
"""

BATCH_MATMUL = """
func.func @main(%a: tensor<4x16x32xf32>, %b: tensor<4x32x64xf32>, %c: tensor<4x16x64xf32>) -> tensor<4x16x64xf32> {
  %0 = linalg.batch_matmul ins(%a, %b : tensor<4x16x32xf32>, tensor<4x32x64xf32>) outs(%c : tensor<4x16x64xf32>) -> tensor<4x16x64xf32>
  return %0 : tensor<4x16x64xf32>
}
"""

ELEMENTWISE = """
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @main(%x: tensor<32x64xf32>, %y: tensor<32x64xf32>) -> tensor<32x64xf32> {
  %e = tensor.empty() : tensor<32x64xf32>
  %0 = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %y : tensor<32x64xf32>, tensor<32x64xf32>) outs(%e : tensor<32x64xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.mulf %a, %b : f32
    %r = math.exp %s : f32
    linalg.yield %r : f32
  } -> tensor<32x64xf32>
  return %0 : tensor<32x64xf32>
}
"""

REDUCE = """
func.func @main(%x: tensor<32x64xf32>) -> tensor<32xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<32xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<32xf32>) -> tensor<32xf32>
  %0 = linalg.reduce ins(%x : tensor<32x64xf32>) outs(%acc : tensor<32xf32>) dimensions = [1]
    (%in: f32, %a: f32) {
      %s = arith.addf %in, %a : f32
      linalg.yield %s : f32
    }
  return %0 : tensor<32xf32>
}
"""

CONV = """
func.func @main(%x: tensor<1x10x10x8xf32>, %w: tensor<3x3x8x16xf32>) -> tensor<1x8x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x8x8x16xf32>
  %o = linalg.fill ins(%zero : f32) outs(%e : tensor<1x8x8x16xf32>) -> tensor<1x8x8x16xf32>
  %0 = linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
    ins(%x, %w : tensor<1x10x10x8xf32>, tensor<3x3x8x16xf32>) outs(%o : tensor<1x8x8x16xf32>) -> tensor<1x8x8x16xf32>
  return %0 : tensor<1x8x8x16xf32>
}
"""

SOFTMAX_AND_MATMUL = """
func.func @main(%x: tensor<16x32xf32>, %w: tensor<32x32xf32>, %c: tensor<16x32xf32>) -> tensor<16x32xf32> {
  %e = tensor.empty() : tensor<16x32xf32>
  %0 = linalg.matmul ins(%x, %w : tensor<16x32xf32>, tensor<32x32xf32>) outs(%c : tensor<16x32xf32>) -> tensor<16x32xf32>
  %1 = linalg.softmax dimension(1) ins(%0 : tensor<16x32xf32>) outs(%e : tensor<16x32xf32>) -> tensor<16x32xf32>
  return %1 : tensor<16x32xf32>
}
"""

DYNAMIC = """
func.func @main(%x: tensor<?x64xf32>, %y: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %0 = linalg.elementwise <add> ins(%x, %y : tensor<?x64xf32>, tensor<?x64xf32>) outs(%x : tensor<?x64xf32>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}
"""


def vectorize(text: str, pipeline: str = "linalg-vectorize"):
    m = sw.parse(text)
    sw.Pipeline(pipeline).run(m)
    m.operation.verify()
    return m


def names(m) -> list[str]:
    return [op.name for op in walk(m.operation)]


def loop_steps(m) -> list[int]:
    """The constant step of every scf.for, outermost first."""
    steps = []
    for op in walk(m.operation):
        if op.name == "scf.for":
            step = op.operands[2].owner
            steps.append(ir.IntegerAttr(step.attributes["value"]).value)
    return steps


# -- the pass ------------------------------------------------------------------

def test_registered_with_options_and_docstring():
    cls = passes.get("linalg-vectorize")
    assert cls is not None and "Before::" in cls.__doc__
    p = cls.from_options({"tile-sizes": "8,32,16", "target": "cpu-aarch64", "ops": "matmul"})
    assert p.tile_sizes == (8, 32, 16) and p.target == "cpu-aarch64" and p.ops == ("matmul",)
    assert str(p) == "linalg-vectorize{target=cpu-aarch64 tile-sizes=8,32,16 ops=matmul}"


def test_matmul_becomes_contract_on_tiles():
    m = vectorize(MATMUL)
    ops = names(m)
    assert "linalg.matmul" not in ops
    assert ops.count("scf.for") == 3
    for name in ("vector.transfer_read", "vector.contract", "vector.transfer_write"):
        assert name in ops, name
    # the documented rule (targets/tiling.py), computed here from the SIMD width alone:
    # M x N x K = 8 x 2*lanes x lanes, lanes = f32 elements per register
    lanes = tiling.host_vector_bits() // 32
    assert loop_steps(m) == [8, 2 * lanes, lanes]


def test_output_is_clean_payload():
    m = vectorize(MATMUL)
    text = str(m)
    assert "transform" not in text and "stepwell.vectorize_id" not in text
    assert "transform.with_named_sequence" not in m.operation.attributes


def test_batch_matmul():
    m = vectorize(BATCH_MATMUL)
    ops = names(m)
    assert "linalg.batch_matmul" not in ops and "vector.contract" in ops
    contract = next(op for op in walk(m.operation) if op.name == "vector.contract")
    assert len(ir.ArrayAttr(contract.attributes["iterator_types"])) == 4


def test_elementwise_generic():
    m = vectorize(ELEMENTWISE)
    ops = names(m)
    assert "linalg.generic" not in ops
    vector_math = [op for op in walk(m.operation) if op.name in ("arith.mulf", "math.exp")]
    assert vector_math and all(isinstance(op.results[0].type, ir.VectorType) for op in vector_math)


def test_reduce():
    m = vectorize(REDUCE)
    ops = names(m)
    assert "linalg.reduce" not in ops and "linalg.fill" not in ops
    assert "vector.multi_reduction" in ops


def test_conv2d_decomposes_and_vectorizes():
    m = vectorize(CONV)
    ops = names(m)
    assert not [o for o in ops if o.startswith("linalg.conv")]
    assert "vector.contract" in ops


def test_plan_reports_the_choice_without_changing_the_module(monkeypatch):
    monkeypatch.setenv("STEPWELL_VECTOR_BITS", "512")
    m = sw.parse(SOFTMAX_AND_MATMUL)
    before = str(m)
    plan = passes.get("linalg-vectorize")().plan(m)
    assert plan == [("linalg.matmul", [16, 32, 32], [8, 0, 16])]
    assert str(m) == before
    custom = passes.get("linalg-vectorize").from_options({"tile-sizes": "4,8"}).plan(m)
    assert custom == [("linalg.matmul", [16, 32, 32], [4, 8, 0])]


def test_option_overrides_tile_sizes():
    assert loop_steps(vectorize(MATMUL, "linalg-vectorize{tile-sizes=4,64,32}")) == [4, 64, 32]
    assert loop_steps(vectorize(MATMUL, "linalg-vectorize{tile-sizes=16,8}")) == [16, 8]
    m = vectorize(MATMUL, "linalg-vectorize{tile-sizes=2,0,64}")
    assert loop_steps(m) == [2, 64]
    contract = next(op for op in walk(m.operation) if op.name == "vector.contract")
    assert [ir.VectorType(v.type).shape for v in contract.operands] == [[2, 64], [64, 256], [2, 256]]


def test_target_changes_the_choice():
    neon = loop_steps(vectorize(MATMUL, "linalg-vectorize{target=cpu-aarch64}"))
    assert neon == [8, 8, 4]
    gpu = loop_steps(vectorize(MATMUL, "linalg-vectorize{target=cuda:sm_80}"))
    assert gpu == [4, 8, 4]


def test_unknown_target_is_an_error():
    with pytest.raises(StepwellError, match="no tiling rules for target 'tpu'"):
        vectorize(MATMUL, "linalg-vectorize{target=tpu}")


def test_bad_tile_sizes_are_an_error():
    with pytest.raises(StepwellError, match="tile-sizes must be integers >= 0"):
        vectorize(MATMUL, "linalg-vectorize{tile-sizes=8,x,16}")
    with pytest.raises(StepwellError, match="tile-sizes must be integers >= 0"):
        vectorize(MATMUL, "linalg-vectorize{tile-sizes=-8}")


def test_ops_filter():
    m = vectorize(REDUCE, "linalg-vectorize{ops=linalg.fill}")
    ops = names(m)
    assert "linalg.reduce" in ops and "linalg.fill" not in ops


def test_unsupported_ops_stay_and_the_rest_is_vectorized():
    m = vectorize(SOFTMAX_AND_MATMUL)
    ops = names(m)
    assert "linalg.softmax" in ops
    assert "linalg.matmul" not in ops and "vector.contract" in ops
    assert 'stepwell.not_vectorized = "no tiling rule applies' in str(m)


CONV3D_AND_MATMUL = """
func.func @main(%x: tensor<1x8x8x8x4xf32>, %w: tensor<3x3x3x4x8xf32>, %o: tensor<1x6x6x6x8xf32>,
                %a: tensor<16x32xf32>, %b: tensor<32x32xf32>, %c: tensor<16x32xf32>)
    -> (tensor<1x6x6x6x8xf32>, tensor<16x32xf32>) {
  %0 = linalg.conv_3d_ndhwc_dhwcf {dilations = dense<1> : tensor<3xi64>, strides = dense<1> : tensor<3xi64>}
    ins(%x, %w : tensor<1x8x8x8x4xf32>, tensor<3x3x3x4x8xf32>) outs(%o : tensor<1x6x6x6x8xf32>) -> tensor<1x6x6x6x8xf32>
  %1 = linalg.matmul ins(%a, %b : tensor<16x32xf32>, tensor<32x32xf32>) outs(%c : tensor<16x32xf32>) -> tensor<16x32xf32>
  return %0, %1 : tensor<1x6x6x6x8xf32>, tensor<16x32xf32>
}
"""


def test_a_failing_op_is_left_alone():
    # no vectorizer rule takes a 3-D convolution: the whole script fails, and a
    # retry op by op keeps what works (the convolution stays whole and untiled)
    m = vectorize(CONV3D_AND_MATMUL)
    ops = names(m)
    assert ops.count("linalg.conv_3d_ndhwc_dhwcf") == 1 and "scf.for" in ops
    assert "linalg.matmul" not in ops and "vector.contract" in ops
    assert "stepwell.vectorize_id" not in str(m) and "transform." not in str(m)
    # the op left as is says so (a recorded outcome, not a silent one) ...
    assert 'stepwell.not_vectorized = "the transform (tiles [0, 1, 1, 0, 0, 1, 1, 0, 0]) failed on it"' in str(m)
    assert str(m).count("stepwell.not_vectorized") == 1
    # ... and strict=true makes it an error at the op
    with pytest.raises(sw.StepwellError, match=r":5:\d+: error: linalg-vectorize: 'linalg.conv_3d_ndhwc_dhwcf' "
                                               r"was not vectorized: the transform .* failed on it"):
        vectorize(CONV3D_AND_MATMUL, "linalg-vectorize{strict=true}")


def test_ragged_sizes_are_peeled():
    # 50 columns in tiles of 8: 6 whole tiles, then a static remainder of 2
    m = vectorize(RAGGED_MATMUL, "linalg-vectorize{target=cpu-aarch64}")
    ops = names(m)
    assert "vector.mask" not in ops and "linalg.matmul" not in ops and "linalg.fill" not in ops
    shapes = [ir.VectorType(op.results[0].type).shape
              for op in walk(m.operation) if op.name == "vector.contract"]
    assert shapes == [[5, 8], [5, 2]]


def test_dynamic_shapes():
    ops = names(vectorize(DYNAMIC))
    assert "vector.mask" in ops and "linalg.elementwise" not in ops
    # an untiled dynamic loop has no vector shape: the op is left alone
    ops = names(vectorize(DYNAMIC, "linalg-vectorize{tile-sizes=0,16}"))
    assert "linalg.elementwise" in ops


def test_no_linalg_is_a_no_op():
    text = 'func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {\n  return %x : tensor<4xf32>\n}\n'
    m = sw.parse(text)
    before = str(m)
    sw.Pipeline("linalg-vectorize").run(m)
    assert str(m) == before


MLP = """
func.func @main(%x: tensor<8x64xf32>, %w1: tensor<64x128xf32>, %b1: tensor<128xf32>, %w2: tensor<128x10xf32>) -> tensor<8x10xf32> {
  %0 = "nn.linear"(%x, %w1, %b1) : (tensor<8x64xf32>, tensor<64x128xf32>, tensor<128xf32>) -> tensor<8x128xf32>
  %1 = "nn.gelu"(%0) {approximate = false} : (tensor<8x128xf32>) -> tensor<8x128xf32>
  %2 = "nn.linear"(%1, %w2) : (tensor<8x128xf32>, tensor<128x10xf32>) -> tensor<8x10xf32>
  %3 = "nn.softmax"(%2) {axis = -1 : i64} : (tensor<8x10xf32>) -> tensor<8x10xf32>
  return %3 : tensor<8x10xf32>
}
"""


def test_lower_nn_model_to_vector():
    m = sw.lower(sw.parse(MLP), to="vector")
    m.operation.verify()
    ops = names(m)
    leftover = {n for n in ops if n.split(".")[0] in ("nn", "prim", "linalg")}
    assert not leftover, leftover
    assert ops.count("vector.contract") == 2 and ops.count("vector.multi_reduction") >= 2


def test_to_vector_pipeline_lists_its_passes():
    assert pipelines.get("to-vector") == ["to-linalg", "linalg-vectorize", "canonicalize", "cse"]
    assert pipelines.summary("to-vector").startswith("linalg -> tiled, vectorized IR")


# -- the heuristic -----------------------------------------------------------------


@pytest.fixture
def avx512(monkeypatch):
    monkeypatch.setenv("STEPWELL_VECTOR_BITS", "512")


def test_heuristic_matmul_avx512(avx512):
    assert tiling.choose_tile_sizes("linalg.matmul", [64, 256, 128]) == [8, 32, 16]
    assert tiling.choose_tile_sizes("linalg.batch_matmul", [4, 64, 256, 128]) == [1, 8, 32, 16]
    # f16 accumulators fit twice the lanes
    assert tiling.choose_tile_sizes("linalg.matmul", [64, 256, 128], element_bits=16) == [8, 64, 32]


def test_heuristic_elementwise(avx512):
    assert tiling.choose_tile_sizes("linalg.generic", [64, 256]) == [8, 16]
    assert tiling.choose_tile_sizes("linalg.generic", [4, 64, 256]) == [1, 8, 16]
    assert tiling.choose_tile_sizes("linalg.generic", [256]) == [16]


def test_heuristic_picks_divisors(avx512):
    # 60 rows: 6 divides (8 does not); 96 columns: 32 divides; 100 (k) has no
    # power-of-two divisor >= 8, so 16 stays and that loop is peeled
    tiles = tiling.choose_tile_sizes("linalg.matmul", [60, 96, 100])
    assert tiles == [6, 32, 16]
    assert 60 % tiles[0] == 0 and 96 % tiles[1] == 0
    assert tiling.peeled_loops(tiles, [60, 96, 100]) == [2]
    assert tiling.vector_sizes(tiles, [60, 96, 100]) is None  # static tiles: no masks
    for size in (24, 40, 48, 56, 72, 120):
        t = tiling.choose_tile_sizes("linalg.generic", [size, 64])[0]
        assert size % t == 0 and 4 <= t <= 8


def test_heuristic_small_and_dynamic_loops(avx512):
    # a loop no larger than its tile is left whole (0); a dynamic one is tiled
    assert tiling.choose_tile_sizes("linalg.matmul", [4, 16, 8]) == [0, 0, 0]
    assert tiling.choose_tile_sizes("linalg.generic", [None, 64]) == [8, 16]
    assert tiling.vector_sizes([8, 16], [None, 64]) == [8, 16]
    with pytest.raises(ValueError):
        tiling.vector_sizes([0, 16], [None, 64])


def test_heuristic_targets():
    assert tiling.choose_tile_sizes("linalg.matmul", [64, 256, 128], "cpu-aarch64") == [8, 8, 4]
    assert tiling.choose_tile_sizes("linalg.generic", [64, 256], "cpu-riscv64") == [8, 4]
    assert tiling.choose_tile_sizes("linalg.matmul", [64, 256, 128], "vulkan") == [4, 8, 4]
    with pytest.raises(ValueError, match="no tiling rules"):
        tiling.choose_tile_sizes("linalg.matmul", [64, 256, 128], "tpu")


def test_heuristic_convolution(avx512):
    # n, oh, ow, f, kh, kw, c: one output row, 8 columns, 32 channels out, 16 in
    tiles = tiling.choose_tile_sizes("linalg.conv_2d_nhwc_hwcf", [2, 16, 16, 64, 3, 3, 32])
    assert tiles == [1, 1, 8, 32, 1, 0, 16]


# -- numerics: the vectorized IR runs through IREE's codegen ---------------------------

def _as_dispatch(m) -> str:
    """The one-function module with its body wrapped in a ``flow.dispatch.region``,
    which IREE compiles as a kernel (IREE does not take vector ops at the host level).
    ``ub.poison`` padding becomes 0: IREE's host side cannot hold poison."""
    lines = str(m).replace("ub.poison : f32", "arith.constant 0.0 : f32").splitlines()
    fn = next(op for op in m.body.operations if op.operation.name == "func.func")
    results = [str(t) for t in ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value).results]
    out = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("func.func @"):
            out += [line, f"    %res:{len(results)} = flow.dispatch.region -> ({', '.join(results)}) {{"]
        elif stripped.startswith("return "):
            out += ["    flow." + stripped, "    }",
                    "    return " + ", ".join(f"%res#{i}" for i in range(len(results)))
                    + " : " + ", ".join(results)]
        else:
            out.append(line)
    return "\n".join(out)


def _run(text: str, *args):
    import iree.compiler as iree_compiler
    import iree.runtime as rt
    m = vectorize(text, "linalg-vectorize,canonicalize,cse")
    vmfb = iree_compiler.compile_str(
        _as_dispatch(m), target_backends=["llvm-cpu"],
        extra_args=["--iree-llvmcpu-target-cpu=host", "--iree-llvmcpu-stack-allocation-limit=1048576"])
    ctx = rt.SystemContext(config=rt.Config("local-task"))
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb))
    return ctx.modules.module.main(*args).to_host()


def _rand(*shape):
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)


def test_numerics_matmul():
    a, b, c = _rand(64, 128), _rand(128, 256), _rand(64, 256)
    np.testing.assert_allclose(_run(MATMUL, a, b, c), a @ b + c, rtol=1e-4, atol=1e-4)


def test_numerics_ragged_matmul_peeled():
    a, b = _rand(10, 30), _rand(30, 50)
    np.testing.assert_allclose(_run(RAGGED_MATMUL, a, b), a @ b, rtol=1e-4, atol=1e-4)


def test_numerics_elementwise():
    # (reductions are not checked this way: IREE's codegen fails to lower a
    # hand-made dispatch holding vector.multi_reduction to LLVM)
    x, y = _rand(32, 64), _rand(32, 64)
    np.testing.assert_allclose(_run(ELEMENTWISE, x, y), np.exp(x * y), rtol=1e-5)


def test_numerics_conv():
    x, w = _rand(1, 10, 10, 8), _rand(3, 3, 8, 16)
    ref = np.zeros((1, 8, 8, 16), np.float32)
    for i in range(3):
        for j in range(3):
            ref += np.einsum("nhwc,cf->nhwf", x[:, i:i + 8, j:j + 8, :], w[i, j])
    np.testing.assert_allclose(_run(CONV, x, w), ref, rtol=1e-4, atol=1e-4)
