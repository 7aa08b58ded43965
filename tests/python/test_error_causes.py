"""Errors keep their cause and their location; no raw traceback is reachable (issue 17).

* A link failure of IREE's CPU backend keeps ``iree-lld: error: undefined symbol: ...``
  and names the op and its location (before: ``-:0:0: error: failed to link
  executable ... (check above for more specific error messages)``, the line above
  dropped).
* ``sw.lower`` and ``Pipeline.run`` take MLIR text as well as a Module; anything else
  is a StepwellError.
* The numpy interpreter refuses inputs of the wrong shape or dtype.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler.link_errors import culprit, link_diagnostics, linker_errors
from stepwell.numerics import interpreter

# arith.sitofp i32 -> bf16 written by hand: IREE's canonicalizer makes the truncf(sitofp)
# one sitofp to bf16, which LLVM lowers to a __truncsfbf2 call on baseline x86-64.
LIBCALL = """func.func @main(%x: tensor<4xi32>) -> tensor<4xbf16> {
  %e = tensor.empty() : tensor<4xbf16>
  %0 = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                       iterator_types = ["parallel"]} ins(%x : tensor<4xi32>) outs(%e : tensor<4xbf16>) {
  ^bb0(%a: i32, %o: bf16):
    %f = arith.sitofp %a : i32 to f32
    %t = arith.truncf %f : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<4xbf16>
  return %0 : tensor<4xbf16>
}
"""

STDERR = """Diagnostics:
iree-lld: error: undefined symbol: __truncsfbf2
>>> referenced by -:1
>>>               /tmp/main_dispatch_0-81cf85.o:(main_dispatch_0_elementwise_4_i32xbf16)
Linking failed; escaped command line returned exit code 256:

-:0:0: error: failed to link executable and generate target dylib (check above for more specific error messages)
-:0:0: error: failed to serialize executables
"""

RELU = """func.func @main(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.relu"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}
"""


def test_link_failure_keeps_the_linker_line_and_names_the_op():
    with pytest.raises(sw.StepwellError) as info:
        sw.compile(sw.parse(LIBCALL, name="libcall.mlir"), target="cpu-generic")
    first = info.value.diagnostics[0]
    assert (first.file, first.line) == ("libcall.mlir", 7), str(first)  # the truncf's line
    text = str(info.value)
    assert "iree-lld: error: undefined symbol: __truncsfbf2" in text
    assert "'arith.truncf' (in 'linalg.generic')" in text and "cpu-generic" in text
    assert "check above" not in text


def test_link_diagnostics_from_stderr_alone():
    """Without a module (or without a matching op) the cause is still kept."""
    target = types.SimpleNamespace(spec="cpu-generic")
    assert linker_errors(STDERR) == ["iree-lld: error: undefined symbol: __truncsfbf2 "
                                     "(referenced by dispatch main_dispatch_0_elementwise_4_i32xbf16)"]
    (d,) = link_diagnostics(STDERR, "model.mlir", target)
    assert d.file == "model.mlir" and d.line is None
    assert "cannot link the code for target 'cpu-generic': iree-lld: error: undefined symbol" in d.message
    assert link_diagnostics("-:3:1: error: something else\n", "m", target) == []


def test_culprit_prefers_an_integer_conversion():
    m = sw.parse(LIBCALL)
    assert culprit(m, "__truncsfbf2").name == "arith.truncf"
    assert culprit(m, "__extendhfsf2") is None       # no f16 in the module
    assert culprit(m, "__unknown_symbol") is None


@pytest.mark.parametrize("entry", ["lower", "pipeline"])
def test_text_is_accepted_where_a_module_is(entry):
    if entry == "lower":
        out = sw.lower(RELU, "prim")
    else:
        out = sw.Pipeline("nn-to-prim").run(RELU)
    assert isinstance(out, sw.Module) and "prim.map" in str(out) and "nn.relu" not in str(out)


@pytest.mark.parametrize("entry", ["lower", "pipeline"])
@pytest.mark.parametrize("value", [3, None, ["func.func"]], ids=["int", "none", "list"])
def test_other_values_are_stepwell_errors(entry, value):
    name = "sw.lower" if entry == "lower" else "Pipeline.run"
    with pytest.raises(sw.StepwellError, match=f"{name} takes a stepwell Module or MLIR text, not"):
        sw.lower(value, "prim") if entry == "lower" else sw.Pipeline("nn-to-prim").run(value)


def test_bad_text_is_a_located_error():
    with pytest.raises(sw.StepwellError, match=r"-:1:\d+: error"):
        sw.lower("func.func @main(", "prim")


@pytest.mark.parametrize("value, got", [
    (np.ones((3, 3), np.float32), "float32[3,3]"),
    (np.ones((4, 8, 1), np.float32), "float32[4,8,1]"),
    (np.ones((4, 8), np.float64), "float64[4,8]"),
    (np.ones((4, 8), np.int32), "int32[4,8]"),
])
def test_interpreter_refuses_wrong_inputs(value, got):
    import re
    with pytest.raises(sw.StepwellError, match="argument 0 expects tensor<4x8xf32>, got " + re.escape(got)):
        interpreter.run(sw.parse(RELU), value)


def test_interpreter_runs_right_inputs():
    x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)
    np.testing.assert_array_equal(interpreter.run(sw.parse(RELU), x)[0], np.maximum(x, 0))
