"""The pipeline parser and runner shared by the Python API and stepwell-opt."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

import stepwell as sw
from stepwell import passes, pipelines
from stepwell.core.diagnostics import StepwellError
from stepwell.core.passes_base import PASSES, Pass, register
from stepwell.core.pipeline import Instrumentation, PipelineSyntaxError, parse_elements, parse_options

IR = """\
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.transpose"(%x) {permutation = array<i64: 0, 1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "nn.relu"(%0) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %2 = arith.addf %x, %x : tensor<4x8xf32>
  %3 = arith.addf %x, %x : tensor<4x8xf32>
  %4 = arith.addf %2, %3 : tensor<4x8xf32>
  %5 = "nn.add"(%1, %4) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %5 : tensor<4x8xf32>
}
"""


class OptionsPass(Pass):
    """Test pass with one option of each supported kind."""
    name = "test-pipeline-options"
    count: int = 2
    flag: bool = True
    ratio: float = 0.5
    sizes: tuple = (4, 4)
    mode: str = "fast"
    tags: list = dataclasses.field(default_factory=list)
    seen: ClassVar[list] = []

    def run(self, module):
        self.seen.append(module.name)


class InvalidatingPass(Pass):
    """Test pass that leaves an nn.add with one operand behind."""
    name = "test-pipeline-invalidate"

    def run(self, module):
        from stepwell.core.ir import ir
        from stepwell.core.verifier import walk
        for op in walk(module.operation):
            if op.name == "nn.add":
                with ir.InsertionPoint(op), op.location:
                    bad = ir.Operation.create("nn.add", results=[op.results[0].type],
                                              operands=[op.operands[0]])
                op.results[0].replace_all_uses_with(bad.results[0])
                op.erase()
                return


class CrashingPass(Pass):
    """Test pass that raises an internal error."""
    name = "test-pipeline-crash"

    def run(self, module):
        raise KeyError("deliberate")


@pytest.fixture(autouse=True, scope="module")
def _test_passes():
    """The test passes are registered while this module's tests run, then removed: the
    global registry other tests (and --list-passes) see stays the shipped one."""
    test_passes = (OptionsPass, InvalidatingPass, CrashingPass)
    for cls in test_passes:
        register(cls)
    yield
    for cls in test_passes:  # (shipped passes registered meanwhile, on first use, stay)
        PASSES.pop(cls.name, None)


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------
def test_parse_flat_list_with_options():
    elems = parse_elements("a,b{opt=1},c")
    assert [(e.name, e.options, e.children) for e in elems] == [
        ("a", None, None), ("b", "opt=1", None), ("c", None, None)]
    elems = parse_elements(" a , b{x=1 y=2,3} ")
    assert [e.name for e in elems] == ["a", "b"]
    assert parse_options(elems[1].options) == {"x": "1", "y": "2,3"}
    assert parse_options("flag") == {"flag": "true"}


def test_parse_anchors():
    (top,) = parse_elements("builtin.module(func.func(canonicalize,cse),nn-canonicalize)")
    assert top.name == "builtin.module"
    inner, ours = top.children
    assert inner.name == "func.func" and [c.name for c in inner.children] == ["canonicalize", "cse"]
    assert ours.name == "nn-canonicalize" and ours.children is None


def test_anchored_pipeline_flattens_with_anchor_text():
    p = sw.Pipeline("builtin.module(func.func(canonicalize,cse),nn-canonicalize)")
    assert [s.name for s in p.steps] == ["canonicalize", "cse", "nn-canonicalize"]
    assert [s.text for s in p.steps] == ["func.func(canonicalize)", "func.func(cse)", "nn-canonicalize"]
    assert p.steps[2].pass_ is not None and p.steps[0].pass_ is None
    assert str(p) == "builtin.module(func.func(canonicalize),func.func(cse),nn-canonicalize)"


@pytest.mark.parametrize("text", ["a,,b", "a{x=1", "a(b", "a)", "(a)", "a b", ","])
def test_syntax_errors(text):
    with pytest.raises(PipelineSyntaxError, match="invalid pass pipeline"):
        parse_elements(text)


def test_empty_pipeline_is_a_no_op():
    m = sw.parse(IR)
    before = str(m)
    assert sw.Pipeline("").steps == []
    sw.Pipeline("").run(m)
    assert str(m) == before


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------
def test_options_are_dataclass_fields():
    (step,) = sw.Pipeline("test-pipeline-options{count=7 flag=false ratio=0.25 sizes=8,16 mode=exact}").steps
    p = step.pass_
    assert (p.count, p.flag, p.ratio, p.sizes, p.mode) == (7, False, 0.25, (8, 16), "exact")
    assert step.text == "test-pipeline-options{count=7 flag=false ratio=0.25 sizes=8,16 mode=exact}"
    (default,) = sw.Pipeline("test-pipeline-options").steps
    assert default.text == "test-pipeline-options"
    (tagged,) = sw.Pipeline("test-pipeline-options{tags=a,b}").steps
    assert tagged.pass_.tags == ("a", "b") and tagged.text == "test-pipeline-options{tags=a,b}"


@pytest.mark.parametrize("options,message", [
    ("count=many", "option 'count' expects int, found 'many'"),
    ("flag=maybe", "option 'flag' expects bool, found 'maybe'"),
    ("ratio=x", "option 'ratio' expects float"),
    ("colour=red", "has no option 'colour' (options: count, flag, ratio, sizes, mode, tags)"),
])
def test_option_errors(options, message):
    with pytest.raises(PipelineSyntaxError) as info:
        sw.Pipeline(f"test-pipeline-options{{{options}}}")
    assert message in str(info.value)


def test_upstream_options_pass_through_and_errors():
    assert sw.Pipeline("canonicalize{max-iterations=3}").steps[0].text == "canonicalize{max-iterations=3}"
    with pytest.raises(PipelineSyntaxError, match="invalid options for pass 'canonicalize'.*no such option"):
        sw.Pipeline("canonicalize{bogus=1}")


def test_named_pipeline_takes_no_options():
    name = pipelines.names()[0]
    with pytest.raises(PipelineSyntaxError, match="takes no options"):
        sw.Pipeline(f"{name}{{x=1}}")


# ---------------------------------------------------------------------------
# Unknown passes
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("typo,suggestion", [
    ("nn-canonicalise", "nn-canonicalize"),
    ("canonicalise", "canonicalize"),
    ("nn-to-prin", "nn-to-prim"),
])
def test_unknown_pass_suggests(typo, suggestion):
    with pytest.raises(PipelineSyntaxError) as info:
        sw.Pipeline(f"cse,{typo}")
    assert info.value.diagnostics[0].message == \
        f"unknown pass or pipeline '{typo}'; did you mean '{suggestion}'?"


def test_unknown_pass_without_suggestion():
    with pytest.raises(PipelineSyntaxError, match=r"^error: unknown pass or pipeline 'zzzz'$"):
        sw.Pipeline("zzzz")


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------
def test_upstream_and_ours_in_one_pipeline():
    m = sw.parse(IR)
    sw.Pipeline("nn-canonicalize,canonicalize,cse").run(m)
    text = str(m)
    assert "nn.transpose" not in text  # ours
    assert text.count("arith.addf") == 2  # cse merged the two equal additions
    assert '"nn.relu"(%arg0)' in text


def test_anchored_upstream_passes_run():
    m = sw.parse(IR)
    sw.Pipeline("builtin.module(func.func(cse),nn-canonicalize)").run(m)
    assert str(m).count("arith.addf") == 2 and "nn.transpose" not in str(m)


def test_snapshots_and_timings():
    m = sw.parse(IR)
    p = sw.Pipeline("nn-canonicalize,cse", snapshots=True)
    p.run(m)
    assert [name for name, _ in p.snapshots] == ["input", "nn-canonicalize", "cse"]
    assert "nn.transpose" in p.snapshots[0][1] and "nn.transpose" not in p.snapshots[1][1]
    assert p.snapshots[2][1] == str(m)
    assert [name for name, _ in p.timings] == ["nn-canonicalize", "cse"]
    assert all(seconds >= 0 for _, seconds in p.timings)


def test_pass_instances_run_on_the_module():
    m = sw.parse(IR, name="model.mlir")
    p = sw.Pipeline("test-pipeline-options")
    OptionsPass.seen.clear()
    p.run(m)
    assert OptionsPass.seen == ["model.mlir"]


def test_verify_each_catches_invalid_ir():
    m = sw.parse(IR, name="model.mlir")
    with pytest.raises(StepwellError) as info:
        sw.Pipeline("test-pipeline-invalidate").run(m)
    lines = [str(d) for d in info.value.diagnostics]
    assert lines[0] == "model.mlir:7:8: error: 'nn.add' expects 2 operands, found 1"
    assert "the IR is invalid after pass 'test-pipeline-invalidate'" in lines[-1]
    m = sw.parse(IR)
    sw.Pipeline("test-pipeline-invalidate", verify_each=False).run(m)  # no check: no error


def test_crash_writes_reproducer(tmp_path):
    m = sw.parse(IR, name="model.mlir")
    with pytest.raises(StepwellError) as info:
        sw.Pipeline("nn-canonicalize,test-pipeline-crash,cse", reproducer_dir=str(tmp_path)).run(m)
    first, note = (str(d) for d in info.value.diagnostics)
    assert first == "model.mlir: error: internal error in pass 'test-pipeline-crash': KeyError: 'deliberate'"
    repro = tmp_path / "model.repro.mlir"
    assert note == f"note: reproducer written to {repro}"
    text = repro.read_text()
    assert "builtin.module(test-pipeline-crash,cse)" in text
    assert "nn.transpose" not in text and '"nn.relu"' in text
    # The reproducer is valid input again (its header lines are comments).
    assert "nn.relu" in str(sw.parse(text))


def test_instrumentation_hooks():
    import io
    stream = io.StringIO()
    inst = Instrumentation(print_before={"cse"}, print_after_change=True, stream=stream)
    sw.Pipeline("nn-canonicalize,cse,canonicalize", instrumentation=inst).run(sw.parse(IR))
    dumps = [ln for ln in stream.getvalue().splitlines() if "IR Dump" in ln]
    assert dumps == ["// -----// IR Dump After nn-canonicalize //----- //",
                     "// -----// IR Dump Before cse //----- //",
                     "// -----// IR Dump After cse //----- //"]


# ---------------------------------------------------------------------------
# Named pipelines
# ---------------------------------------------------------------------------
def test_named_pipelines_resolve():
    names = pipelines.names()
    assert {"to-prim", "to-linalg"} <= set(names)
    for name in names:
        listed = pipelines.get(name)
        assert listed and all(isinstance(p, str) for p in listed)
        steps = sw.Pipeline(name).steps  # every entry is a known pass or pipeline
        expanded = []
        for entry in listed:
            expanded += [s.name for s in sw.Pipeline(entry).steps]
        assert [s.name for s in steps] == expanded
        assert pipelines.summary(name)


def test_named_pipeline_expands_in_place():
    inner = [s.name for s in sw.Pipeline("to-prim").steps]
    steps = [s.name for s in sw.Pipeline("cse,to-prim,nn-canonicalize").steps]
    assert steps == ["cse", *inner, "nn-canonicalize"]


def test_every_pass_has_a_name_summary_and_lit_test():
    from pathlib import Path
    lit_dir = Path(__file__).resolve().parents[1] / "lit"
    for name, cls in passes.load_all().items():
        if name.startswith("test-") or not cls.__module__.startswith("stepwell."):
            continue  # passes registered by tests or the tutorial's examples
        assert cls.summary(), f"pass '{name}' has no docstring summary"
        assert (lit_dir / f"{name}.mlir").exists(), f"pass '{name}' has no tests/lit/{name}.mlir"
