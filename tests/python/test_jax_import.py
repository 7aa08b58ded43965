"""sw.jax.import_function, StableHLO input (sw.compile, stepwell-opt, stepwell compile) and
the checks that name what IREE cannot compile (no compiler signal, no page of IR).

Most tests here only parse and check; the few that compile reuse small modules.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import driver as compiler, stablehlo_screen as stablehlo_input
from stepwell.core import stablehlo
from stepwell import targets
from stepwell.core import verifier
from stepwell.jax import JaxModule

HERE = os.path.basename(__file__)


def _mlp(params, x):
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return {"out": h @ params["w2"], "mean": jnp.mean(h)}


PARAMS = {"w1": np.ones((8, 16), np.float32), "b1": np.zeros(16, np.float32),
          "w2": np.ones((16, 4), np.float32)}
X = np.ones((2, 8), np.float32)


def _names(module) -> set[str]:
    return {op.name for op in verifier.walk(module.operation)}


# ---------------------------------------------------------------------------
# import_function
def test_import_keeps_the_pytrees_and_signature():
    m = sw.jax.import_function(_mlp, PARAMS, X, raise_ops=False)
    assert isinstance(m, JaxModule) and isinstance(m, sw.Module)
    assert m.in_tree == jax.tree.structure(((PARAMS, X), {}))
    assert m.out_tree == jax.tree.structure({"out": 0, "mean": 0})
    # flattened order: the dict's keys sorted (b1, w1, w2), then x
    assert [a.shape for a in m.in_avals] == [(16,), (8, 16), (16, 4), (2, 8)]
    assert [tuple(a.shape) for a in m.out_avals] == [(), (2, 4)]  # mean, out
    assert not m.raised and m.function_names()[0] == "main"
    names = _names(m)
    assert "stablehlo.dot_general" in names and not any(n.startswith(("sdy.", "nn.")) for n in names)
    assert len(m.flatten_args(PARAMS, X)) == 4
    with pytest.raises(sw.StepwellError, match="do not match"):
        m.flatten_args(X)


def test_import_keeps_jax_source_locations():
    m = sw.jax.import_function(_mlp, PARAMS, X, raise_ops=False)
    dot = next(op for op in verifier.walk(m.operation) if op.name == "stablehlo.dot_general")
    from stepwell.core.diagnostics import location_parts
    file, line, _ = location_parts(dot.location)
    assert file.endswith(HERE) and line == _mlp.__code__.co_firstlineno + 1
    from stepwell.frontends.jax.jit import primitive_of
    assert primitive_of(dot) == "dot_general"


def test_unused_arguments_stay_in_the_signature():
    m = sw.jax.import_function(lambda a, unused: a * 2, X, np.ones(3, np.int32), raise_ops=False)
    assert len(m.in_avals) == 2
    main = m.body.operations[0]
    assert len(main.regions[0].blocks[0].arguments) == 2


def test_static_arguments_and_keywords():
    def f(x, n, *, scale):
        return x * n * scale
    m = sw.jax.import_function(f, X, 3, scale=np.float32(2), static_argnums=1, raise_ops=False)
    assert len(m.in_avals) == 2  # x and scale; n is a constant
    assert "3.0" in str(m) or "3.000000e+00" in str(m)
    with pytest.raises(sw.StepwellError, match="must be hashable"):
        sw.jax.import_function(f, X, [3], scale=1.0, static_argnums=1)


def test_shape_dtype_structs_as_example_arguments():
    spec = jax.ShapeDtypeStruct((5, 3), jnp.float32)
    m = sw.jax.import_function(lambda a: a.sum(0), spec, raise_ops=False)
    assert "tensor<5x3xf32>" in str(m) and "tensor<3xf32>" in str(m)


def test_single_device_shardy_annotations_are_removed():
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    mesh = Mesh(np.array(jax.devices()[:1]), ("x",))
    s = NamedSharding(mesh, PartitionSpec("x"))

    def f(a):
        return jax.lax.with_sharding_constraint(a * 2, s)
    text = jax.jit(f, in_shardings=s).lower(np.ones(4, np.float32)).as_text()
    assert "sdy.mesh" in text and "sdy.sharding_constraint" in text  # JAX emits Shardy here ...
    assert "sdy" not in str(sw.parse(text))  # ... IREE's MLIR cannot parse it: it is dropped
    assert "sdy" not in str(sw.jax.import_function(f, np.ones(4, np.float32), raise_ops=False))
    stripped = stablehlo.strip_shardy_text(text)
    assert "sdy" not in stripped and "stablehlo.multiply" in stripped


def test_raise_ops_runs_the_raising_pass():
    m = sw.jax.import_function(lambda a: jax.nn.softmax(a @ a.T, axis=-1), X)
    assert m.raised
    assert "nn.softmax" in _names(m)
    plain = sw.jax.import_function(lambda a: jax.nn.softmax(a @ a.T, axis=-1), X, raise_ops=False)
    assert not plain.raised and "nn.softmax" not in _names(plain)


# ---------------------------------------------------------------------------
# What IREE cannot compile is named, with the reason (stablehlo_screen's facts, after
# IREE failed: the screen refuses nothing IREE compiles; test_stablehlo_screen.py).
def _lowered(fn, *args) -> sw.Module:
    return sw.parse(jax.jit(fn).lower(*args).as_text(debug_info=True), name="f.mlir")


@pytest.mark.parametrize("fn, args, op, reason", [
    (lambda x: jnp.fft.fft(x).real, (np.ones((3, 5), np.float32),), "stablehlo.fft", "power-of-two"),
    (lambda x: jax.scipy.linalg.solve_triangular(x, x, lower=True), (np.eye(4, dtype=np.float32),),
     "stablehlo.custom_call", "lapack_strsm_ffi.*triangular_solve"),
    (jax.grad(lambda y: jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                                              "VALID").sum()),
     (np.ones((1, 9, 9, 1), np.float32),), "stablehlo.select_and_scatter", "windows do not overlap"),
], ids=["fft", "triangular_solve", "select_and_scatter"])
def test_known_unsupported_ops_are_named(fn, args, op, reason):
    m = _lowered(fn, *args)
    match = f"'{op}' cannot be compiled by IREE: .*{reason}"
    compiler.check_compilable(m)  # only a crash is refused before IREE runs
    with pytest.raises(stablehlo_input.UnsupportedOpError, match=match):
        sw.compile(m)


def test_supported_variants_pass_the_checks():
    # power-of-two FFTs and non-overlapping max-pool gradients compile in IREE 3.13
    compiler.check_compilable(_lowered(lambda x: jnp.fft.fft(x).real, np.ones((3, 8), np.float32)))
    grad = jax.grad(lambda y: jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, (1, 2, 2, 1),
                                                    (1, 2, 2, 1), "VALID").sum())
    compiler.check_compilable(_lowered(grad, np.ones((1, 8, 8, 1), np.float32)))


COMPLEX_BITCAST = """\
func.func @main(%a: tensor<4xcomplex<f64>>) -> tensor<4x2xcomplex<f32>> {
  %0 = stablehlo.bitcast_convert %a : (tensor<4xcomplex<f64>>) -> tensor<4x2xcomplex<f32>>
  return %0 : tensor<4x2xcomplex<f32>>
}
"""


def test_complex_bitcast_is_refused_before_it_crashes_the_compiler():
    with pytest.raises(sw.StepwellError) as e:
        sw.compile(sw.parse(COMPLEX_BITCAST, name="bc.mlir"))
    assert str(e.value).startswith("bc.mlir:2:8: error: 'stablehlo.bitcast_convert' cannot be compiled")


def test_a_compiler_crash_is_one_error_naming_the_op():
    # Bypass the pre-check: IREE 3.13 really dies by SIGSEGV on this module.
    m = sw.parse(COMPLEX_BITCAST, name="bc.mlir")
    with pytest.raises(sw.StepwellError) as e:
        compiler._run_iree(m, targets.get("cpu"), (), "stablehlo", cache=False)
    (d,) = e.value.diagnostics
    assert (d.file, d.line) == ("bc.mlir", 2)
    assert "iree-compile crashed (signal 11)" in d.message and "'stablehlo.bitcast_convert'" in d.message


def test_crash_op_reads_the_stack_dump():
    dump = ("#6 0x7f mlir::stablehlo::(anonymous namespace)::BitcastConvertConverter::matchAndRewrite("
            "mlir::stablehlo::BitcastConvertOp, ...)\n#18 0x7f mlir::iree_compiler::stablehlo::"
            "(anonymous namespace)::ConvertStableHloToIreeInputDialects::runOnOperation()")
    assert stablehlo_input.crash_op(dump) == ("stablehlo.bitcast_convert",
                                              "ConvertStableHloToIreeInputDialects")
    assert stablehlo_input.op_name_from_class("stablehlo", "DotGeneral") == "stablehlo.dot_general"


def test_legalization_failures_are_one_short_line():
    stderr = ("Diagnostics:\n<stdin>:8:10: error: failed to legalize operation 'stablehlo.foo' that was "
              "explicitly marked illegal: %9 = \"stablehlo.foo\"(%8) : (tensor<4xf32>) -> tensor<4xf32>\n")
    (d,) = compiler.iree_diagnostics(stderr, "m.mlir", targets.get("cpu"))
    assert d.message == ("iree-compile: failed to legalize operation 'stablehlo.foo' "
                         "(IREE has no lowering for it here)")
    assert (d.file, d.line) == ("m.mlir", 8)


# ---------------------------------------------------------------------------
# Compiling StableHLO, alone or mixed with nn ops.
MIXED = """\
func.func @main(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %0 = stablehlo.dot_general %a, %b, contracting_dims = [1] x [0] : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %1 = "nn.softmax"(%0) {axis = -1 : i64} : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %2 = stablehlo.exponential %1 : tensor<2x4xf32>
  %3 = "nn.gelu"(%2) {approximate = false} : (tensor<2x4xf32>) -> tensor<2x4xf32>
  return %3 : tensor<2x4xf32>
}
"""


def test_input_type_is_detected():
    assert compiler.input_type(sw.parse(MIXED)) == "stablehlo"
    lin = "func.func @main(%a: tensor<4xf32>) -> tensor<4xf32> {\n  return %a : tensor<4xf32>\n}"
    assert compiler.input_type(sw.parse(lin)) == "auto"
    assert compiler.input_type(sw.parse(lin), "stablehlo") == "stablehlo"


def test_mixed_nn_and_stablehlo_compile_together():
    m = sw.parse(MIXED)
    linalg = sw.lower(m, to="linalg")  # the nn ops lower around the StableHLO ones
    names = _names(linalg)
    assert "stablehlo.dot_general" in names and "stablehlo.exponential" in names
    assert not any(n.startswith(("nn.", "prim.")) for n in names)
    exe = sw.compile(m)
    a = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    want = jax.nn.gelu(np.exp(jax.nn.softmax(a @ b, axis=-1)), approximate=False)
    sw.testing.assert_close(exe(a, b), np.asarray(want))


# ---------------------------------------------------------------------------
# The command-line tools take StableHLO files.
def _tool(*argv):
    r = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def stablehlo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("shlo") / "model.stablehlo.mlir"
    path.write_text(jax.jit(lambda a, b: jnp.tanh(a @ b)).lower(
        np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)).as_text())
    return path


def test_stepwell_compile_takes_stablehlo(stablehlo_file, tmp_path):
    out = tmp_path / "m.vmfb"
    rc, _, err = _tool("stepwell.tools.main", "compile", str(stablehlo_file), "-o", str(out))
    assert rc == 0, err
    exe = sw.Executable.load(str(out))
    a, b = np.full((2, 3), 0.1, np.float32), np.full((3, 4), 0.2, np.float32)
    sw.testing.assert_close(exe(a, b), np.tanh(a @ b))


def test_stepwell_compile_raises_for_the_nn_stage(stablehlo_file):
    rc, out, err = _tool("stepwell.tools.main", "compile", str(stablehlo_file), "--compile-to", "nn")
    assert rc == 0, err
    assert '"nn.matmul"' in out and "stablehlo.dot_general" not in out


def test_stepwell_compile_names_an_unsupported_op(tmp_path):
    bad = tmp_path / "fft.mlir"
    bad.write_text(jax.jit(lambda x: jnp.fft.fft(x).real).lower(np.ones((3, 5), np.float32)).as_text())
    rc, out, err = _tool("stepwell.tools.main", "compile", str(bad), "--input-type=stablehlo",
                         "-o", str(tmp_path / "fft.vmfb"))
    assert rc == 1 and "Traceback" not in err
    assert err.startswith(f"{bad}:") and "error: 'stablehlo.fft' cannot be compiled by IREE" in err
    assert not (tmp_path / "fft.vmfb").exists()


def test_stepwell_opt_reads_stablehlo_and_strips_shardy(tmp_path):
    src = tmp_path / "sharded.mlir"
    src.write_text(textwrap.dedent("""\
        module @jit_f {
          sdy.mesh @mesh = <["x"=1]>
          func.func public @main(%arg0: tensor<4xf32> {sdy.sharding = #sdy.sharding<@mesh, [{"x"}]>}) -> tensor<4xf32> {
            %0 = stablehlo.add %arg0, %arg0 : tensor<4xf32>
            %1 = sdy.sharding_constraint %0 <@mesh, [{"x"}]> : tensor<4xf32>
            return %1 : tensor<4xf32>
          }
        }
        """))
    from stepwell.tools import opt
    out = tmp_path / "out.mlir"
    assert opt.main([str(src), "--mlir-print-debuginfo", "-o", str(out)]) == 0
    text = out.read_text()
    assert "sdy" not in text and "stablehlo.add" in text
    assert f'loc("{src}":4:' in text  # the input's own lines, through the rewrite


def test_jax_export_portable_artifacts_are_read(tmp_path):
    """jax.export's serialized module (MLIR bytecode, VHLO) is an input like text."""
    exported = jax.export.export(jax.jit(lambda a, b: jnp.tanh(a @ b)))(
        np.ones((2, 3), np.float32), np.ones((3, 4), np.float32))
    path = tmp_path / "model.mlirbc"
    path.write_bytes(exported.mlir_module_serialized)
    m = sw.parse_file(str(path))
    assert {"stablehlo.dot_general", "stablehlo.tanh"} <= _names(m)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not mlir")
    with pytest.raises(sw.StepwellError, match="input is binary"):
        sw.parse_file(str(junk))
