"""sw.compile + Executable on the host CPU, and inputs.py (iree-run-module syntax).

One module with many functions is compiled once for the whole file (IREE compiles
take ~0.5 s each), then every test calls into it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import driver as compiler, inputs
from stepwell.compiler.runtime import Executable, parse_declaration

# dtype name -> (numpy dtype, combining op of a linalg.generic "add")
DTYPES = {
    "f32": (np.float32, "arith.addf"),
    "f16": (np.float16, "arith.addf"),
    "bf16": (ml_dtypes.bfloat16, "arith.addf"),
    "i8": (np.int8, "arith.addi"),
    "i32": (np.int32, "arith.addi"),
    "i64": (np.int64, "arith.addi"),
    "i1": (np.bool_, "arith.ori"),
}


def _add_func(name: str, dtype: str, op: str) -> str:
    t = f"tensor<2x3x{dtype}>"
    return f"""
func.func @{name}(%a: {t}, %b: {t}) -> {t} {{
  %e = tensor.empty() : {t}
  %r = linalg.generic {{indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}}
      ins(%a, %b : {t}, {t}) outs(%e : {t}) {{
    ^bb0(%x: {dtype}, %y: {dtype}, %o: {dtype}):
      %s = {op} %x, %y : {dtype}
      linalg.yield %s : {dtype}
  }} -> {t}
  return %r : {t}
}}"""


MODULE = """
#id = affine_map<(d0, d1) -> (d0, d1)>
#id1 = affine_map<(d0) -> (d0)>
#scalar = affine_map<(d0, d1) -> ()>
func.func @main(%a: tensor<4x8xf32>, %b: tensor<8x3xf32>) -> tensor<4x3xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x3xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<4x3xf32>) -> tensor<4x3xf32>
  %r = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x3xf32>)
                     outs(%f : tensor<4x3xf32>) -> tensor<4x3xf32>
  return %r : tensor<4x3xf32>
}
func.func @exp(%a: tensor<5xf32>) -> tensor<5xf32> {
  %e = tensor.empty() : tensor<5xf32>
  %r = linalg.generic {indexing_maps = [#id1, #id1], iterator_types = ["parallel"]}
      ins(%a : tensor<5xf32>) outs(%e : tensor<5xf32>) {
    ^bb0(%x: f32, %o: f32):
      %y = math.exp %x : f32
      linalg.yield %y : f32
  } -> tensor<5xf32>
  return %r : tensor<5xf32>
}
func.func @sum_and_product(%a: tensor<3xf32>, %b: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %s = arith.addf %a, %b : tensor<3xf32>
  %p = arith.mulf %a, %b : tensor<3xf32>
  return %s, %p : tensor<3xf32>, tensor<3xf32>
}
func.func @scale(%a: tensor<f32>, %b: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %b, %c0 : tensor<?x4xf32>
  %e = tensor.empty(%n) : tensor<?x4xf32>
  %r = linalg.generic {indexing_maps = [#scalar, #id, #id],
                       iterator_types = ["parallel", "parallel"]}
      ins(%a, %b : tensor<f32>, tensor<?x4xf32>) outs(%e : tensor<?x4xf32>) {
    ^bb0(%s: f32, %x: f32, %o: f32):
      %y = arith.mulf %s, %x : f32
      linalg.yield %y : f32
  } -> tensor<?x4xf32>
  return %r : tensor<?x4xf32>
}
func.func @scalars(%a: tensor<3xi32>, %k: i32, %f: f32) -> (tensor<3xi32>, f32) {
  %e = tensor.empty() : tensor<3xi32>
  %s = linalg.fill ins(%k : i32) outs(%e : tensor<3xi32>) -> tensor<3xi32>
  %r = arith.addi %a, %s : tensor<3xi32>
  %g = arith.addf %f, %f : f32
  return %r, %g : tensor<3xi32>, f32
}
""" + "".join(_add_func(f"add_{d}", d, op) for d, (_, op) in DTYPES.items())


# Pin Vulkan to Mesa's software driver where it is installed (no-op elsewhere).
_LAVAPIPE = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"
if os.path.exists(_LAVAPIPE):
    os.environ.setdefault("VK_ICD_FILENAMES", _LAVAPIPE)


@pytest.fixture(scope="module", params=["cpu", pytest.param("vulkan", marks=pytest.mark.vulkan)])
def exe(request) -> Executable:
    """MODULE compiled for each target that can run here."""
    available = sw.targets.available(request.param)
    if not available:
        pytest.skip(available.reason)
    return sw.compile(MODULE, target=request.param)


def test_function_names(exe):
    assert set(exe.function_names) == {"main", "exp", "sum_and_product", "scale", "scalars",
                                       *(f"add_{d}" for d in DTYPES)}
    assert exe.target.name in ("cpu", "vulkan")
    assert exe.vmfb[:4] != b"" and len(exe.vmfb) > 1000


def test_matmul_main(exe):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 8), dtype=np.float32)
    b = rng.standard_normal((8, 3), dtype=np.float32)
    out = exe(a, b)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


def test_exp_other_function(exe):
    x = np.linspace(-2, 2, 5, dtype=np.float32)
    np.testing.assert_allclose(exe.function("exp")(x), np.exp(x), rtol=1e-6)


def test_several_results_are_a_tuple(exe):
    a = np.array([1, 2, 3], np.float32)
    b = np.array([4, 5, 6], np.float32)
    out = exe.function("sum_and_product")(a, b)
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_array_equal(out[0], a + b)
    np.testing.assert_array_equal(out[1], a * b)


def test_rank0_and_dynamic_dims(exe):
    scale = exe.function("scale")
    for rows in (1, 3):
        b = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
        np.testing.assert_array_equal(scale(np.float32(2.0), b), 2 * b)
    # Python numbers and lists take the declared element type.
    np.testing.assert_array_equal(scale(2.0, [[1, 2, 3, 4]]), [[2, 4, 6, 8]])


def test_scalar_arguments_and_results(exe):
    fn = exe.function("scalars")
    assert fn.arg_types == ["tensor<3xi32>", "i32", "f32"]
    vec, dbl = fn(np.arange(3, dtype=np.int32), 5, np.float32(1.5))
    np.testing.assert_array_equal(vec, [5, 6, 7])
    assert isinstance(dbl, np.float32) and dbl == 3.0
    with pytest.raises(sw.StepwellError, match="argument 1 expects a scalar i32, got float64"):
        fn(np.arange(3, dtype=np.int32), 5.5, 1.0)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_dtype(exe, dtype):
    np_dtype, _ = DTYPES[dtype]
    if dtype == "i1":
        a = np.array([[True, False, True], [False, False, True]])
        b = np.array([[False, False, True], [True, False, False]])
        want = a | b
    else:
        a = np.arange(6).reshape(2, 3).astype(np_dtype)
        b = (np.arange(6).reshape(2, 3) * 2 - 3).astype(np_dtype)
        want = (a.astype(np.float64) + b.astype(np.float64)).astype(np_dtype)
    out = exe.function(f"add_{dtype}")(a, b)
    assert out.dtype == np.dtype(np_dtype), out.dtype
    np.testing.assert_array_equal(out, want)


def test_results_are_host_owned_copies(exe):
    a = np.ones((4, 8), np.float32)
    b = np.ones((8, 3), np.float32)
    first = exe(a, b)
    second = exe(2 * a, b)
    assert first.flags.owndata and second.flags.owndata
    np.testing.assert_array_equal(first, np.full((4, 3), 8, np.float32))


def test_signature_from_reflection(exe):
    fn = exe.function("sum_and_product")
    assert fn.arg_types == ["tensor<3xf32>", "tensor<3xf32>"]
    assert fn.result_types == ["tensor<3xf32>", "tensor<3xf32>"]
    assert parse_declaration("sync func @f(%input0: tensor<4x?xf32> {a = 1}, %input1: i32) "
                             "-> (%output0: tensor<f32>)") == (["tensor<4x?xf32>", "i32"],
                                                               ["tensor<f32>"])


# -- errors before running -------------------------------------------------------
def test_wrong_input_count(exe):
    with pytest.raises(sw.StepwellError, match="function 'main' expects 2 arguments, got 1"):
        exe(np.ones((4, 8), np.float32))


def test_wrong_shape(exe):
    with pytest.raises(sw.StepwellError) as e:
        exe(np.ones((4, 9), np.float32), np.ones((8, 3), np.float32))
    assert str(e.value) == ("error: function 'main' argument 0 expects tensor<4x8xf32>, "
                            "got float32[4,9]")


def test_wrong_rank_and_dynamic_dim(exe):
    with pytest.raises(sw.StepwellError,
                       match=r"argument 1 expects tensor<\?x4xf32>, got float32\[4\]"):
        exe.function("scale")(np.float32(1), np.ones(4, np.float32))


def test_wrong_dtype(exe):
    with pytest.raises(sw.StepwellError,
                       match=r"argument 1 expects tensor<8x3xf32>, got float64\[8,3\]"):
        exe(np.ones((4, 8), np.float32), np.ones((8, 3)))
    with pytest.raises(sw.StepwellError, match=r"expects tensor<2x3xbf16>, got float32\[2,3\]"):
        exe.function("add_bf16")(np.ones((2, 3), ml_dtypes.bfloat16), np.ones((2, 3), np.float32))


def test_missing_function(exe):
    with pytest.raises(sw.StepwellError,
                       match=r"no function 'nope' in the module \(functions: main, "):
        exe.function("nope")
    with pytest.raises(sw.StepwellError, match="no function '__init'"):
        exe.function("__init")


# -- compile errors --------------------------------------------------------------
RELU = """func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "nn.relu"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""


def test_leftover_custom_op_is_named(monkeypatch, tmp_path):
    # As if no lowering to linalg were available: the op must be named, IREE never called.
    monkeypatch.setattr(compiler, "_stages", lambda: None)
    path = tmp_path / "relu.mlir"
    path.write_text(RELU)
    m = sw.parse_file(str(path))
    with pytest.raises(sw.StepwellError) as e:
        sw.compile(m, target="cpu")
    msg = str(e.value)
    assert "'nn.relu' is not lowered to the linalg stage" in msg
    assert msg.startswith(f"{path}:2:8: error:"), msg


def test_custom_op_left_by_the_lowering_is_named(monkeypatch):
    class NoOpStages:  # a lowering that leaves the op in place
        @staticmethod
        def lower(module, to, target=None):
            assert to == "linalg"
            return module
    monkeypatch.setattr(compiler, "_stages", lambda: NoOpStages)
    with pytest.raises(sw.StepwellError, match="'nn.relu' .* remains after lowering to linalg"):
        sw.compile(RELU, target="cpu")


def test_check_compilable_finds_nested_and_unregistered_ops():
    text = """func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "foo.bar"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}"""
    with pytest.raises(sw.StepwellError, match="'foo.bar' is not an op IREE knows"):
        sw.compile(text, target="cpu")
    with pytest.raises(sw.StepwellError, match="'nn.relu'"):
        compiler.check_compilable(sw.parse(RELU))


def test_nn_module_is_lowered_when_stages_can():
    exe = sw.compile(sw.parse(RELU), target="cpu")
    x = np.array([-1, 2, -3, 4], np.float32)
    np.testing.assert_array_equal(exe(x), np.maximum(x, 0))


def test_iree_compile_error_is_a_stepwell_error(tmp_path):
    # Valid MLIR that IREE 3.13 cannot compile: a dynamically shaped tensor.splat.
    path = tmp_path / "splat.mlir"
    path.write_text("""func.func @main(%x: f32, %n: index) -> tensor<?x4xf32> {
  %0 = tensor.splat %x[%n] : tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}
""")
    with pytest.raises(sw.StepwellError) as e:
        sw.compile(sw.parse_file(str(path)), target="cpu")
    first = e.value.diagnostics[0]
    assert (first.file, first.line, first.severity) == (str(path), 2, "error")
    assert first.message.startswith("iree-compile: failed to legalize operation 'tensor.splat'")
    assert "Invoked with" not in str(e.value)


def test_bad_flag_is_a_stepwell_error():
    with pytest.raises(sw.StepwellError, match="iree-compile.*no-such-flag"):
        sw.compile(MODULE.split("func.func @exp")[0], target="cpu",
                   flags=["--iree-no-such-flag=1"])
    with pytest.raises(sw.StepwellError, match="compiler flags are strings"):
        sw.compile(MODULE, flags=[3])


def test_bad_arguments_to_compile():
    with pytest.raises(sw.StepwellError, match="unknown target 'gpu'"):
        sw.compile(MODULE, target="gpu")
    with pytest.raises(sw.StepwellError, match="unknown stage_input"):
        sw.compile(MODULE, stage_input="vector")
    with pytest.raises(sw.StepwellError, match="expects a stepwell Module or MLIR text"):
        sw.compile(42)


def test_compile_to_dispatch_shows_flow_ir():
    text = compiler.compile_to(MODULE.split("func.func @exp")[0], "dispatch", target="cpu")
    assert "flow.executable" in text and "flow.dispatch" in text


# -- files -------------------------------------------------------------------------
def test_save_load_round_trip(exe, tmp_path):
    path = tmp_path / "m.vmfb"
    exe.save(path)
    assert path.read_bytes() == exe.vmfb
    assert [p.name for p in tmp_path.iterdir()] == ["m.vmfb"]  # no temp file left
    loaded = Executable.load(path, exe.target)
    a = np.ones((4, 8), np.float32)
    b = np.ones((8, 3), np.float32)
    np.testing.assert_array_equal(loaded(a, b), exe(a, b))
    exe.save(path)  # overwriting works too
    assert path.read_bytes() == exe.vmfb


def test_load_errors(tmp_path):
    with pytest.raises(sw.StepwellError, match="cannot read"):
        Executable.load(tmp_path / "missing.vmfb")
    bad = tmp_path / "bad.vmfb"
    bad.write_bytes(b"not a module at all")
    with pytest.raises(sw.StepwellError, match="not a valid IREE module"):
        Executable.load(bad)


def test_clean_exit_with_live_executable(exe, tmp_path):
    # Executables, functions and results alive at interpreter exit: no crash, no
    # nanobind leak report.
    exe.save(tmp_path / "m.vmfb")
    script = tmp_path / "s.py"
    script.write_text(f"""
import numpy as np
from stepwell.compiler.runtime import Executable
EXE = Executable.load({str(tmp_path / "m.vmfb")!r}, {exe.target.spec!r})
OUT = EXE(np.ones((4, 8), np.float32), np.ones((8, 3), np.float32))
FN = EXE.function("exp")
print(OUT.sum())
""")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "default"}, timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "96.0"
    assert "leak" not in p.stderr.lower(), p.stderr


# -- inputs.py -----------------------------------------------------------------------
@pytest.mark.parametrize("spec, want", [
    ("2x3xf32=1,2,3,4,5,6", np.arange(1, 7, dtype=np.float32).reshape(2, 3)),
    ("2x3xf32=[1 2 3][4 5 6]", np.arange(1, 7, dtype=np.float32).reshape(2, 3)),
    ("2x3xf32=1", np.ones((2, 3), np.float32)),
    ("f32=3.5", np.array(3.5, np.float32)),
    ("4xi8=-128,0,1,127", np.array([-128, 0, 1, 127], np.int8)),
    ("2xi64=5,6", np.array([5, 6], np.int64)),
    ("3xi1=true,0,1", np.array([True, False, True])),
    ("2xf16=0.5,1", np.array([0.5, 1], np.float16)),
    ("2xbf16=1.5,-2", np.array([1.5, -2], ml_dtypes.bfloat16)),
    ("tensor<2xi32>=7", np.array([7, 7], np.int32)),
])
def test_parse_input(spec, want):
    got = inputs.parse_input(spec)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_parse_input_npy(tmp_path):
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    np.save(tmp_path / "x.npy", a)
    for spec in (f"@{tmp_path}/x.npy", f"{tmp_path}/x.npy"):
        np.testing.assert_array_equal(inputs.parse_input(spec), a)
    # bfloat16 loses its type in .npy; the expected argument type restores it.
    bf = np.array([1.5, 2], ml_dtypes.bfloat16)
    np.save(tmp_path / "bf.npy", bf)
    got = inputs.parse_input(f"@{tmp_path}/bf.npy", "tensor<2xbf16>")
    assert got.dtype == bf.dtype
    np.testing.assert_array_equal(got, bf)
    with pytest.raises(sw.StepwellError, match="unknown type"):
        inputs.parse_input(f"@{tmp_path}/bf.npy")


@pytest.mark.parametrize("spec, message", [
    ("2x3xf32=1,2", r"has 2 values; shape 2x3 needs 6 \(or 1 to fill it\)"),
    ("f32=1,2", "a scalar needs 1"),
    ("f32=", "no values after '='"),
    ("2x3xq32=1", "unknown element type 'q32'"),
    ("ax3xf32=1", "dimension 'a' is not a non-negative integer"),
    ("f32=abc", "'abc' is not a number"),
    ("i32=1.5", "'1.5' is not an integer"),
    ("i8=300", "300 is out of range for i8"),
    ("i1=2", "not an i1 value"),
    ("2x3xf32", "neither TYPE=VALUES nor a .npy file"),
    ("x.npz", "is an .npz archive"),
    ("@", "names no file"),
    ("@nope.npy", "'nope.npy' does not exist"),
    ("", "empty input"),
])
def test_parse_input_errors(spec, message):
    with pytest.raises(sw.StepwellError, match=message):
        inputs.parse_input(spec)


def test_parse_input_bad_npy_file(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"garbage")
    with pytest.raises(sw.StepwellError, match="not a readable .npy file"):
        inputs.parse_input(str(tmp_path / "junk.npy"))


def test_parsed_inputs_run(exe):
    a, b = inputs.parse_inputs(["4x8xf32=1", "8x3xf32=0.5"], exe.function("main").arg_types)
    np.testing.assert_array_equal(exe(a, b), np.full((4, 3), 4, np.float32))


def test_outputs_npz_and_printing(tmp_path):
    outs = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5], ml_dtypes.bfloat16),
            np.array(True))
    path = tmp_path / "out.npz"
    inputs.save_outputs(path, outs)
    with np.load(path) as f:
        assert list(f.keys()) == ["output0", "output1", "output2"]
        np.testing.assert_array_equal(f["output0"], outs[0])
        assert f["output1"].dtype == np.float32 and f["output1"][0] == 1.5
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]
    with pytest.raises(sw.StepwellError, match="must end in .npz"):
        inputs.save_outputs(tmp_path / "out.npy", outs)
    assert inputs.format_outputs(outs) == ("result[0]: 2x3xf32=[0 1 2][3 4 5]\n"
                                           "result[1]: 1xbf16=1.5\n"
                                           "result[2]: i1=1")
    assert inputs.format_output(np.zeros((2, 2, 2), np.int8)) == "2x2x2xi8=[[0 0][0 0]][[0 0][0 0]]"
    assert inputs.format_output(np.zeros(2000, np.float32), max_elements=3) == \
        "2000xf32=0 0 0 ... (2000 elements)"
    assert inputs.format_output(np.float32(2.5)) == "f32=2.5"
