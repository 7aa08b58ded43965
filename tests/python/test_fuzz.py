"""Fixed-seed slices of the three fuzzers (``pytest -m fuzz``; CI runs them): every case
passes, or the failure is printed with its reproducer (``python -m stepwell.fuzz KIND
--seed S --index I`` reruns it). Long campaigns and their figures: docs/reliability.md."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings

from stepwell.fuzz import jax_programs, run_programs, text
from stepwell.fuzz.programs import generate, jax_function, programs
from stepwell.fuzz.report import Report

pytestmark = pytest.mark.fuzz
SEED = 17


def _no_failures(report: Report) -> None:
    lines = [f"{f.outcome} #{f.index}: {f.detail[:400]}\n{f.reproducer[:1500]}" for f in report.failures[:3]]
    assert report.failed == 0, report.summary() + "\n" + "\n\n".join(lines)


def test_programs_slice():
    report = run_programs.run(24, SEED, batch=12)
    _no_failures(report)
    assert report.counts["ok"] == 24


def test_text_slice():
    report = text.run(300, SEED)
    _no_failures(report)
    assert report.counts["refused"] > 150 and report.counts["ok"] > 0  # both paths ran
    assert report.notes["errors_with_file_only"] <= report.notes["errors_with_line_and_column"]


def test_jax_slice():
    report = jax_programs.run(12, SEED)
    _no_failures(report)
    assert report.counts["ok"] >= 8


@settings(max_examples=5, deadline=None)
@given(programs())
def test_generated_programs_are_valid_and_their_references_match_jax(program):
    """The hypothesis strategy (shrinks a failure to a small program): the program
    parses and verifies, and its op references agree with its JAX twin."""
    import jax

    import stepwell as sw
    sw.parse(program.text())
    twin = np.asarray(jax.jit(jax_function(program))(*program.inputs))
    k = len(program.ops) if program.low_precision else 1
    assert run_programs.mismatch(program.result.array, twin, run_programs.least_precise(program), k) is None


def test_cases_are_reproducible():
    a, b = run_programs.case(3, 41), run_programs.case(3, 41)
    assert a.text() == b.text() and all(np.array_equal(x, y) for x, y in zip(a.inputs, b.inputs))
    assert text.case(3, 7, ["func.func @f() {\n  return\n}\n"]) == text.case(3, 7, ["func.func @f() {\n  return\n}\n"])
    assert jax_programs.case(3, 5) == jax_programs.case(3, 5)


def test_report_files(tmp_path):
    from stepwell.fuzz.choice import Chooser
    r = Report("programs", 5)
    r.add("ok", 0)
    r.add("mismatch", 1, "max error 1", generate(Chooser(1)).text())
    path = r.write(str(tmp_path))
    doc = json.loads(open(path).read())
    assert doc["cases"] == 2 and doc["failed"] == 1 and doc["counts"] == {"ok": 1, "mismatch": 1}
    (failure,) = doc["failures"]
    assert (tmp_path / failure["extra"]["file"]).read_text().startswith("func.func @main(")


def test_cli_reruns_one_case(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "stepwell.fuzz", "text", "--seed", str(SEED), "--index", "3",
                        "--report", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "text: 1 cases (seed 17)" in r.stdout and (tmp_path / "text-report.json").exists()
