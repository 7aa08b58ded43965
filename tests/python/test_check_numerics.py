"""Pipeline(check_numerics=True) / stepwell-opt --check-numerics: the module is run after
every pass and the first pass that changes its results is named.

A deliberately broken rewrite (prim.map add -> sub) is registered for these tests only.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import stepwell as sw
from stepwell.core import passes_base, verifier
from stepwell.core.ir import ir
from stepwell.numerics.check import NumericsChecker, NumericsError, random_inputs

MODULE = """\
func.func @main(%x: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.add"(%x, %b) : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %1 = "nn.gelu"(%0) {approximate = false} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %1 : tensor<4x8xf32>
}
"""


@dataclasses.dataclass
class BrokenPass(passes_base.Pass):
    """Turns every prim.map add into a sub (a wrong rewrite, for these tests)."""

    name = "broken-pass"
    fn: str = "sub"

    def run(self, module):
        for op in verifier.walk(module.operation):
            if op.name == "prim.map" and ir.StringAttr(op.attributes["fn"]).value == "add":
                op.attributes["fn"] = ir.StringAttr.get(self.fn, context=op.context)


@pytest.fixture
def broken(monkeypatch):
    monkeypatch.setitem(passes_base.PASSES, "broken-pass", BrokenPass)


def test_the_broken_pass_is_named(broken):
    m = sw.parse(MODULE, name="model.mlir")
    p = sw.Pipeline("nn-to-prim,broken-pass,prim-to-linalg", check_numerics=True)
    with pytest.raises(NumericsError) as e:
        p.run(m)
    d = e.value.diagnostics[0]
    assert d.file == "model.mlir"
    assert d.message.startswith("numerics changed after pass 'broken-pass': max abs error ")
    assert "at output 0 of @main" in d.message
    assert "seed 0" in e.value.diagnostics[1].message
    assert [c.step for c in p.numerics_report] == ["input", "nn-to-prim"]  # stopped there
    assert all(c.how == "interpreter" for c in p.numerics_report)  # no compile needed


def test_a_harmless_rewrite_passes(broken):
    m = sw.parse(MODULE)
    p = sw.Pipeline("nn-to-prim,broken-pass{fn=add}", check_numerics=True)
    p.run(m)
    assert [c.how for c in p.numerics_report] == ["interpreter", "interpreter", "unchanged"]


def test_a_clean_pipeline_passes_through_iree():
    m = sw.parse(MODULE)
    p = sw.Pipeline("to-linalg", check_numerics=True)
    p.run(m)
    hows = {c.step: c.how for c in p.numerics_report}
    assert hows["nn-to-prim"] == "interpreter" and hows["prim-to-linalg"] == "iree"
    assert all(c.max_error is None or c.max_error < 1e-4 for c in p.numerics_report)
    assert str(p.numerics_report[0]) == "check-numerics: after 'input': ok (interpreter)"


def test_given_inputs_and_tolerances(broken):
    x, b = np.zeros((4, 8), np.float32), np.zeros(8, np.float32)
    m = sw.parse(MODULE)
    # with zero inputs add and sub agree: the broken pass goes unnoticed
    sw.Pipeline("nn-to-prim,broken-pass", check_numerics=True, inputs=[x, b]).run(m)
    m = sw.parse(MODULE)
    with pytest.raises(NumericsError, match="inputs: as given"):
        sw.Pipeline("nn-to-prim,broken-pass", check_numerics=True,
                    inputs={"main": [x + 1, b + 1]}).run(m)


def test_integer_results_must_match_exactly(broken):
    text = """\
func.func @main(%a: tensor<6xi32>, %b: tensor<6xi32>) -> tensor<6xi32> {
  %0 = "nn.add"(%a, %b) : (tensor<6xi32>, tensor<6xi32>) -> tensor<6xi32>
  return %0 : tensor<6xi32>
}
"""
    with pytest.raises(NumericsError, match="integers must match exactly"):
        sw.Pipeline("nn-to-prim,broken-pass", check_numerics=True).run(sw.parse(text))


def test_random_inputs_are_seeded_and_dynamic_shapes_need_inputs():
    m = sw.parse(MODULE)
    a, b = random_inputs(m, 3)["main"], random_inputs(m, 3)["main"]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (4, 8) and a[0].dtype == np.float32
    dyn = sw.parse("""\
func.func @main(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %0 = "nn.relu"(%x) : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
""")
    with pytest.raises(sw.StepwellError, match="dynamic dimensions: give the inputs"):
        NumericsChecker().start(dyn)


def test_functions_without_main_are_each_checked(broken):
    text = MODULE.replace("@main", "@first") + MODULE.replace("@main", "@second")
    with pytest.raises(NumericsError, match="output 0 of @first"):
        sw.Pipeline("nn-to-prim,broken-pass", check_numerics=True).run(sw.parse(text))


def test_stepwell_opt_check_numerics(broken, tmp_path, capsys):
    from stepwell.tools import opt
    src = tmp_path / "m.mlir"
    src.write_text(MODULE)
    assert opt.main([str(src), "--check-numerics", "-p", "nn-to-prim,broken-pass"]) == 1
    err = capsys.readouterr().err
    assert f"{src}: error: numerics changed after pass 'broken-pass'" in err
    assert "check-numerics: after 'nn-to-prim': ok (interpreter" in err
    assert "Traceback" not in err
    assert opt.main([str(src), "--check-numerics", "--check-numerics-seed", "5", "-p", "nn-to-prim"]) == 0
    assert "check-numerics: after 'nn-to-prim': ok" in capsys.readouterr().err


def test_raising_is_checked_against_the_stablehlo():
    """The StableHLO input runs through IREE, the raised module with the numpy references."""
    import jax
    import jax.numpy as jnp
    m = sw.jax.import_function(lambda x, w: jax.nn.softmax(jnp.tanh(x @ w), axis=-1),
                               np.ones((4, 8), np.float32), np.ones((8, 6), np.float32), raise_ops=False)
    p = sw.Pipeline("stablehlo-to-nn", check_numerics=True)
    p.run(m)
    assert [(c.step, c.how) for c in p.numerics_report] == [("input", "iree"),
                                                             ("stablehlo-to-nn", "interpreter")]
    assert p.numerics_report[1].max_error < 1e-5
