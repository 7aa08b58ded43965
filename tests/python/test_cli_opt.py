"""stepwell-opt: bad inputs, listings, IR printing, --verify-diagnostics, -o, reproducers.

Bad inputs run the installed script in a subprocess (what users run); the rest call
``stepwell.tools.opt.main`` in-process, which is the same code without the start-up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import stepwell
from stepwell.core import opspec
from stepwell import passes, pipelines
from stepwell.tools import opt

BIN = Path(sys.executable).parent
LOCATED = re.compile(r"^\S+:\d+:\d+: error: ")

VALID = """\
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.transpose"(%x) {permutation = array<i64: 0, 1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "nn.relu"(%0) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %1 : tensor<4x8xf32>
}
"""


def run_opt(*args, stdin: str | None = None, cwd=None, script: str = "stepwell-opt"):
    exe = BIN / script
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "stepwell.tools.opt"]
    return subprocess.run(cmd + [str(a) for a in args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def call(capsys, *args) -> tuple[int, str, str]:
    rc = opt.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if re.search(r"(^|: )error: ", ln)]


# ---------------------------------------------------------------------------
# Bad inputs: one clear located error, exit 1, no traceback, no output file.
# ---------------------------------------------------------------------------
def _typed(body: str) -> str:
    return "func.func @f(%x: tensor<4xf32>, %y: tensor<4xi32>) -> tensor<4xf32> {\n" + body + \
        "  return %x : tensor<4xf32>\n}\n"


BAD_INPUTS = {
    # name: (file content or None for a missing file, extra args, expected message, line:col)
    "missing": (None, [], "no such file", None),
    "empty": ("", [], "input is empty", None),
    "blank": ("\n  \n", [], "input is empty", None),
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00garbage\xff\xfe", [], "input is binary", None),
    "not-utf8": (b"func.func @f() {\xff\xfe}\n", [], "not UTF-8", None),
    "syntax": ("func.func @f( {\n", [], "expected non-function type", "1:14"),
    "unknown-pass": (VALID, ["-p", "nn-canonicalise"],
                     "unknown pass or pipeline 'nn-canonicalise'; did you mean 'nn-canonicalize'?", None),
    "unknown-pass-option": (VALID, ["-p", "nn-canonicalize{fold=1}"],
                            "pass 'nn-canonicalize' has no option 'fold'", None),
    "bad-upstream-option": (VALID, ["-p", "canonicalize{max-iterations=x}"],
                            "invalid options for pass 'canonicalize'", None),
    "bad-pipeline-syntax": (VALID, ["-p", "nn-canonicalize{"], "invalid pass pipeline", None),
    "unknown-flag": (VALID, ["--nn-canonicalise"], "did you mean '--nn-canonicalize'?", None),
    "unknown-op": (_typed('  %0 = "nn.rleu"(%x) : (tensor<4xf32>) -> tensor<4xf32>\n'),
                   [], "unknown op 'nn.rleu'; did you mean 'nn.relu'?", "2:8"),
    "operand-count": (_typed('  %0 = "nn.add"(%x) : (tensor<4xf32>) -> tensor<4xf32>\n'),
                      [], "'nn.add' expects 2 operands, found 1", "2:8"),
    "operand-types": (_typed('  %0 = "nn.add"(%x, %y) : (tensor<4xf32>, tensor<4xi32>) -> tensor<4xf32>\n'),
                      [], "operand element types differ: f32, i32", "2:8"),
    "shapes": ("func.func @f(%a: tensor<4x8xf32>, %b: tensor<7x16xf32>) -> tensor<4x16xf32> {\n"
               '  %0 = "nn.matmul"(%a, %b) : (tensor<4x8xf32>, tensor<7x16xf32>) -> tensor<4x16xf32>\n'
               "  return %0 : tensor<4x16xf32>\n}\n", [],
               "'nn.matmul' contracting dimensions differ: lhs tensor<4x8xf32> has 8, "
               "rhs tensor<7x16xf32> has 7", "2:8"),
    "bad-attribute": (_typed('  %0 = "nn.softmax"(%x) {axis = 1.5 : f32} : (tensor<4xf32>) -> tensor<4xf32>\n'),
                      [], "attribute 'axis' must be", "2:8"),
    "mlir-verifier": ("func.func @f(%x: tensor<4xf32>) -> tensor<5xf32> {\n"
                      "  return %x : tensor<4xf32>\n}\n", [],
                      "type of return operand 0 ('tensor<4xf32>') doesn't match", "2:3"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input(tmp_path, case):
    content, extra, message, where = BAD_INPUTS[case]
    src = tmp_path / "in.mlir"
    if content is not None:
        src.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out.mlir"
    r = run_opt(src, "-o", out, *extra)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    errors = error_lines(r.stderr)
    assert len(errors) == 1, r.stderr
    assert message in errors[0], r.stderr
    if where is not None:
        assert LOCATED.match(errors[0]) and f"in.mlir:{where}: error: " in errors[0], errors[0]
    assert r.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == (["in.mlir"] if content is not None else [])


def test_failure_keeps_existing_output(tmp_path):
    src = tmp_path / "in.mlir"
    src.write_text(BAD_INPUTS["shapes"][0])
    out = tmp_path / "out.mlir"
    out.write_text("previous result\n")
    r = run_opt(src, "-o", out)
    assert r.returncode == 1
    assert out.read_text() == "previous result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mlir", "out.mlir"]


def test_directory_input(tmp_path):
    r = run_opt(tmp_path)
    assert r.returncode == 1 and "is a directory" in r.stderr and "Traceback" not in r.stderr


def test_output_in_missing_directory(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(VALID)
    rc, out, err = call(capsys, src, "-o", tmp_path / "nope" / "out.mlir")
    assert rc == 1 and "cannot write output" in err


# ---------------------------------------------------------------------------
# Input and output
# ---------------------------------------------------------------------------
def test_stdin_and_stdout():
    r = run_opt("-p", "nn-canonicalize", stdin=VALID)
    assert r.returncode == 0, r.stderr
    assert "nn.transpose" not in r.stdout and '"nn.relu"(%arg0)' in r.stdout
    r = run_opt("-", stdin=BAD_INPUTS["operand-count"][0])
    assert r.returncode == 1 and "<stdin>:2:8: error: 'nn.add' expects 2 operands" in r.stderr


def test_output_is_written_atomically(tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.mlir"
    src.write_text(VALID)
    out = tmp_path / "out.mlir"
    out.write_text("old\n")
    renames = []
    real_replace = os.replace

    def spy(a, b):
        renames.append((Path(a), Path(b)))
        assert Path(b).read_text() == "old\n"  # the target is untouched until the rename
        return real_replace(a, b)

    monkeypatch.setattr(os, "replace", spy)
    rc, stdout, err = call(capsys, src, "-p", "nn-canonicalize", "-o", out)
    assert rc == 0, err
    assert stdout == ""
    assert len(renames) == 1 and renames[0][1] == out and renames[0][0].parent == tmp_path
    assert '"nn.relu"(%arg0)' in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mlir", "out.mlir"]


def test_round_trip_is_stable(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(VALID)
    rc, first, _ = call(capsys, src)
    assert rc == 0
    src.write_text(first)
    rc, second, _ = call(capsys, src)
    assert rc == 0 and first == second


def test_generic_and_debuginfo(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(VALID)
    rc, out, _ = call(capsys, src, "--mlir-print-op-generic")
    assert rc == 0 and '"func.func"()' in out and '"func.return"' in out
    rc, out, _ = call(capsys, src, "--mlir-print-debuginfo")
    assert rc == 0 and f'loc("{src}":2:' in out and 'loc("-"' not in out


def test_split_input_file(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(VALID + "\n// -----\n\n" + VALID.replace("@f", "@g"))
    rc, out, err = call(capsys, src, "--split-input-file", "-p", "nn-canonicalize")
    assert rc == 0, err
    first, second = out.split("// -----\n")
    assert "@f" in first and "@g" in second
    # Without splitting the same text is one module: fine too (different symbols).
    rc, out, _ = call(capsys, src)
    assert rc == 0 and "// -----" not in out


def test_split_input_file_keeps_line_numbers(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    bad = BAD_INPUTS["operand-count"][0]
    src.write_text(VALID + "// -----\n" + bad)  # the bad op is on line 5 + 1 + 2
    rc, out, err = call(capsys, src, "--split-input-file")
    assert rc == 1 and out == ""
    assert error_lines(err) == [f"{src}:8:8: error: 'nn.add' expects 2 operands, found 1"]


def test_split_input_helper_pads_lines():
    chunks = opt.split_input("a\n// -----\nb\nc\n  // -----  \nd")
    assert chunks == ["a\n", "\n\nb\nc\n", "\n" * 5 + "d"]


# ---------------------------------------------------------------------------
# --verify-diagnostics
# ---------------------------------------------------------------------------
def test_verify_diagnostics_all_expected(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(textwrap.dedent("""\
        func.func @f(%x: tensor<4xf32>, %a: tensor<4x8xf32>, %b: tensor<7x16xf32>) -> tensor<4xf32> {
          // expected-error@+1 {{'nn.add' expects 2 operands}}
          %0 = "nn.add"(%x) : (tensor<4xf32>) -> tensor<4xf32>
          %1 = "nn.relu"(%0) : (tensor<4xf32>) -> tensor<5xf32> // expected-error {{result #0 type mismatch}}
          %2 = "nn.sofmax"(%0) : (tensor<4xf32>) -> tensor<4xf32>
          // expected-error@above {{did you mean 'nn.softmax'?}}
          // expected-error-re@below {{'nn.matmul' {{.*}} differ: lhs tensor<4x{{[0-9]+}}xf32>}}
          %3 = "nn.matmul"(%a, %b) : (tensor<4x8xf32>, tensor<7x16xf32>) -> tensor<4x16xf32>
          return %0 : tensor<4xf32>
        }
        // -----
        // expected-error@+1 {{custom op 'oops' is unknown}}
        oops
        // -----
        func.func @ok() { return }
        """))
    rc, out, err = call(capsys, src, "--verify-diagnostics", "--split-input-file")
    assert rc == 0, err
    assert err == ""
    assert "@ok" in out


def test_verify_diagnostics_mismatch(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(textwrap.dedent("""\
        func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
          // expected-error@+1 {{this text is not in the message}}
          %0 = "nn.add"(%x) : (tensor<4xf32>) -> tensor<4xf32>
          // expected-warning@+1 {{never emitted}}
          return %x : tensor<4xf32>
        }
        """))
    rc, out, err = call(capsys, src, "--verify-diagnostics")
    assert rc == 1
    assert error_lines(err) == [
        f"{src}:2:6: error: expected error \"this text is not in the message\" was not produced",
        f"{src}:3:8: error: unexpected error: 'nn.add' expects 2 operands, found 1",
        f"{src}:4:6: error: expected warning \"never emitted\" was not produced",
    ]


def test_verify_diagnostics_unexpected_success(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(VALID.replace("{\n", "{\n  // expected-error@+1 {{boom}}\n", 1))
    rc, _, err = call(capsys, src, "--verify-diagnostics")
    assert rc == 1 and 'expected error "boom" was not produced' in err


def test_verify_diagnostics_pass_error(tmp_path, capsys, monkeypatch):
    # An IR-invalidating pass: the post-pass verifier's error can be expected too.
    from stepwell.core.passes_base import PASSES, Pass, register
    monkeypatch.setitem(PASSES, "test-opt-break-types", None)  # removed again after the test

    @register
    class BreakTypes(Pass):
        """Test pass: make every nn.relu claim an f16 result."""
        name = "test-opt-break-types"

        def run(self, module):
            from stepwell.core.ir import context, ir
            from stepwell.core.verifier import walk
            for op in walk(module.operation):
                if op.name == "nn.relu":
                    op.results[0].set_type(ir.Type.parse("tensor<4x8xf16>", context()))

    src = tmp_path / "in.mlir"
    src.write_text(VALID.replace('  %1 = "nn.relu"', '  // expected-error@+1 {{result #0 type mismatch}}\n'
                                                   '  %1 = "nn.relu"'))
    rc, _, err = call(capsys, src, "--verify-diagnostics", "-p", "test-opt-break-types")
    assert rc == 0, err


def test_expectation_parsing():
    text = textwrap.dedent("""\
        // expected-error {{a}}
        // expected-warning@+2 {{b}}
        // expected-note @-1 {{c}}
        x // expected-remark@above 2 {{d}}
        // expected-error@unknown {{e}}
        """)
    got = [(e.severity, e.line, e.pattern, e.count) for e in opt.parse_expectations(text)]
    assert got == [("error", 1, "a", 1), ("warning", 4, "b", 1), ("note", 2, "c", 1),
                   ("remark", 3, "d", 2), ("error", None, "e", 1)]


# ---------------------------------------------------------------------------
# IR printing and timing
# ---------------------------------------------------------------------------
def test_print_ir_after_all_change_before(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(VALID)
    rc, out, err = call(capsys, src, "-p", "nn-canonicalize,cse", "--print-ir-after-all")
    assert rc == 0
    assert "IR Dump After nn-canonicalize" in err and "IR Dump After cse" in err
    assert "IR Dump" not in out
    rc, out, err = call(capsys, src, "-p", "nn-canonicalize,cse", "--print-ir-after-change")
    assert rc == 0
    assert "IR Dump After nn-canonicalize" in err and "IR Dump After cse" not in err
    rc, out, err = call(capsys, src, "-p", "nn-canonicalize,cse", "--print-ir-before=cse",
                        "--print-ir-after", "nn-canonicalize")
    assert rc == 0
    assert err.count("IR Dump") == 2
    assert "IR Dump After nn-canonicalize" in err and "IR Dump Before cse" in err
    before_cse = err.split("IR Dump Before cse")[1]
    assert "nn.transpose" not in before_cse


def test_print_ir_before_comma_list(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(VALID)
    rc, _, err = call(capsys, src, "-p", "nn-canonicalize,cse", "--print-ir-before=nn-canonicalize,cse")
    assert rc == 0 and "Before nn-canonicalize" in err and "Before cse" in err
    rc, _, err = call(capsys, src, "--print-ir-before=nn-canonicalise")
    assert rc == 1 and "did you mean 'nn-canonicalize'?" in err


def test_timing(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(VALID)
    rc, out, err = call(capsys, src, "-p", "nn-canonicalize,canonicalize", "--timing")
    assert rc == 0 and "Execution time report" not in out
    report = err[err.index("Execution time report"):]
    for name in ("(parse + verify)", "nn-canonicalize", "canonicalize", "Total"):
        assert re.search(r"\d+\.\d{4} \(\s*\d+\.\d%\)  " + re.escape(name), report), report


def test_named_pipeline_flags_and_order(tmp_path, capsys):
    src = tmp_path / "in.mlir"
    src.write_text(VALID)
    help_text = opt.build_parser().format_help()
    for name in pipelines.names():
        assert f"--{name}" in help_text
    rc, _, err = call(capsys, src, "--nn-canonicalize", "-p", "cse", "--print-ir-after-all")
    assert rc == 0
    assert err.index("After nn-canonicalize") < err.index("After cse")


# ---------------------------------------------------------------------------
# Listings and version
# ---------------------------------------------------------------------------
def test_list_passes(capsys):
    rc, out, _ = call(capsys, "--list-passes")
    assert rc == 0
    for name, cls in passes.load_all().items():
        if name.startswith("test-"):
            continue
        assert re.search(rf"^  {re.escape(name)}\s+{re.escape(cls.summary())}$", out, re.M), name
        for f in cls.option_fields():
            assert f"      {f.name.replace('_', '-')}: " in out
    for name in pipelines.names():
        assert re.search(rf"^  {re.escape(name)}\s", out, re.M)
        assert ", ".join(pipelines.get(name)) in out


def test_show_dialects_lists_every_op(capsys):
    rc, out, _ = call(capsys, "--show-dialects")
    assert rc == 0
    ops = opspec.specs()
    assert len(ops) > 20
    for spec in ops:
        assert re.search(rf"^  {re.escape(spec.name)}\(", out, re.M), spec.name
        assert spec.summary in out
        for a in spec.attrs:
            assert f"      {a.name}: " in out
    conv = out[out.index("  nn.conv2d("):].split("\n  nn.")[0]
    assert "nn.conv2d(x, w, b?)" in conv and "strides: " in conv and "padding: " in conv


def test_version():
    r = run_opt("--version")
    assert r.returncode == 0 and r.stdout.startswith(f"stepwell-opt {stepwell.__version__}")


# ---------------------------------------------------------------------------
# Internal errors: reproducer, no traceback unless --debug
# ---------------------------------------------------------------------------
CRASH = """
import sys
from stepwell.core.passes_base import Pass, register
from stepwell.tools import opt

@register
class Crash(Pass):
    '''Test pass that always crashes.'''
    name = "test-crash"
    def run(self, module):
        raise RuntimeError("boom from the test pass")

sys.exit(opt.main(sys.argv[1:]))
"""


def test_crashing_pass_leaves_reproducer(tmp_path):
    src = tmp_path / "model.mlir"
    src.write_text(VALID)
    out = tmp_path / "out.mlir"
    cmd = [sys.executable, "-c", CRASH, str(src), "-p", "nn-canonicalize,test-crash,cse",
           "--reproducer-dir", str(tmp_path), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = error_lines(r.stderr)
    assert errors == [f"{src}: error: internal error in pass 'test-crash': RuntimeError: boom from the test pass"]
    repro = tmp_path / "model.repro.mlir"
    assert f"reproducer written to {repro}" in r.stderr
    text = repro.read_text()
    assert "test-crash" in text and "builtin.module(test-crash,cse)" in text
    assert '"nn.relu"' in text and "nn.transpose" not in text  # the IR before the failing pass
    assert not out.exists()

    r = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" in r.stderr and "boom from the test pass" in r.stderr


def test_internal_error_outside_a_pass(tmp_path):
    src = tmp_path / "model.mlir"
    src.write_text(VALID)
    code = ("import sys, stepwell.module as m\n"
            "def broken(*a, **k): raise ZeroDivisionError('deliberate')\n"
            "m.parse = broken\n"
            "from stepwell.tools import opt\n"
            "sys.exit(opt.main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert error_lines(r.stderr) == ["error: internal error: ZeroDivisionError: deliberate"]
    assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-c", code, str(src), "--debug"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1 and "Traceback" in r.stderr


# ---------------------------------------------------------------------------
# The `stepwell` dispatcher shares the error handling
# ---------------------------------------------------------------------------
def test_stepwell_dispatcher(capsys):
    from stepwell.tools import main
    assert "version" in [m[len("cmd_"):] for m in main.subcommand_modules()]
    assert main.main(["version"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"stepwell {stepwell.__version__}\n") and "iree-base-compiler" in out
    assert main.main([]) == 1
    assert "<command>" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main.main(["no-such-command"])
    assert info.value.code == 1
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


def test_stepwell_broken_subcommand_is_contained(tmp_path):
    # A cmd_ module that fails to import only breaks its own subcommand.
    code = ("import sys, types, stepwell.tools.main as m\n"
            "real = m.subcommand_modules\n"
            "m.subcommand_modules = lambda: real() + ['cmd_zz_broken']\n"
            "sys.modules['stepwell.tools.cmd_zz_broken'] = None\n"
            "sys.exit(m.main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", code, "version"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("stepwell ")
    r = subprocess.run([sys.executable, "-c", code, "zz-broken"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = error_lines(r.stderr)
    assert line.startswith("error: subcommand 'zz-broken' is unavailable: ModuleNotFoundError: ")
