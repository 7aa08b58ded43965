"""Mutated programs for ``stepwell-opt``: 0 crashes, 0 tracebacks, every error located.

Seeds are valid programs (the program generator's, at the ``nn`` level and lowered to
``prim``); each case applies one to three mutations: truncation, byte flips, swapped or
deleted tokens, duplicated or deleted lines, deep nesting (regions, attributes, types),
huge or negative shapes, many dimensions, unknown attributes, unknown dialects and
ops, renamed or retyped values. ``stepwell-opt`` runs in a worker process
(``opt.main``, as the command line does) with a random pipeline; the worker is
restarted after a crash or a hang. A case's outcome:

* ``ok``: exit 0; ``refused``: exit 1 with every ``error:`` line located
  (``file:line:col: error:``, or ``file: error:`` for whole-input errors) and no
  output file;
* ``traceback``: a Python traceback on stderr; ``crash``: the process died (a signal)
  or hung past the case's time limit; ``unlocated``: an error line without a file;
  ``unclear``: another exit status, or an output file left after an error.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import tempfile

from stepwell.fuzz.choice import Chooser
from stepwell.fuzz.report import Report

PIPELINES = ([], ["--to-prim"], ["--to-linalg"], ["-p", "nn-canonicalize,canonicalize,cse"],
             ["-p", "nn-to-prim,prim-simplify"], ["--verify-diagnostics"], ["--split-input-file"],
             ["--to-linalg", "--mlir-print-op-generic"])
_TOKEN = re.compile(r'%[\w.#]+|"[^"\n]*"|\w+|[^\s\w]')
_ERROR = re.compile(r"^(?P<where>.*?): error: ")
_LOCATED = re.compile(r"^.+?:\d+:\d+$")


# -- mutations: each takes (chooser, text) and returns the new text --------------------------
def truncate(ch, t):
    return t[:ch.integer(0, max(0, len(t) - 1))]


def flip_bytes(ch, t):
    b = bytearray(t.encode("utf-8"))
    for _ in range(ch.integer(1, 4)):
        if b:
            i = ch.integer(0, len(b) - 1)
            b[i] = ch.pick((b[i] ^ (1 << ch.integer(0, 7)), ch.integer(0, 255), ord(ch.pick('{}()<>[]"%:,=x0'))))
    return b.decode("utf-8", errors="replace")


def _tokens(t):
    return [m.span() for m in _TOKEN.finditer(t)]


def swap_tokens(ch, t):
    spans = _tokens(t)
    if len(spans) < 2:
        return t
    (a0, a1), (b0, b1) = sorted((ch.pick(spans), ch.pick(spans)))
    if a1 > b0:
        return t
    return t[:a0] + t[b0:b1] + t[a1:b0] + t[a0:a1] + t[b1:]


def delete_token(ch, t):
    spans = _tokens(t)
    if not spans:
        return t
    a, b = ch.pick(spans)
    return t[:a] + t[b:]


def lines(ch, t):
    ls = t.split("\n")
    i = ch.integer(0, len(ls) - 1)
    if ch.boolean():
        ls.insert(i, ls[i])
    else:
        del ls[i]
    return "\n".join(ls)


def deep_nesting(ch, t):
    depth = ch.pick((50, 200, 1000, 5000))
    kind = ch.pick(("module", "attr", "type", "parens"))
    if kind == "module":
        return "module {\n" * depth + t + "\n}" * depth
    if kind == "attr":
        return t.replace("{", "{deep = " + "[" * depth + "1" + "]" * depth + ", ", 1) if "{" in t else t
    if kind == "type":
        return re.sub(r"tensor<([^>]*)>", lambda m: "tensor<" * depth + m[1] + ">" * depth, t, count=1)
    return t.replace("(", "(" * depth, 1)


def huge_shape(ch, t):
    dims = list(re.finditer(r"(?<=[<x])\d+(?=x)", t))
    if not dims:
        return t
    m = ch.pick(dims)
    new = ch.pick(("0", "-1", "9223372036854775807", "4294967296", "99999999999999999999999",
                   "x".join(["2"] * ch.integer(20, 70))))
    return t[:m.start()] + new + t[m.end():]


def unknown_attribute(ch, t):
    ops = list(re.finditer(r'"(nn|prim)\.\w+"\([^)]*\)', t))
    if not ops:
        return t
    m = ch.pick(ops)
    attr = ch.pick(("{zzz = 1 : i64}", "{foo.bar = #unknown.thing<1>}", "{axis = \"x\"}",
                    "{axis = 99 : i64}", "{axes = array<i64: 9, -9>}", "{epsilon = -1.0 : f32}",
                    "{permutation = array<i64: 0, 0>}", "{scale = dense<1.0> : tensor<2xf32>}",
                    "{padding = \"HALF\"}", "{groups = 0 : i64}", "{strides = array<i64: 0, -1>}"))
    return t[:m.end()] + " " + attr + t[m.end():]


def unknown_dialect(ch, t):
    names = list(re.finditer(r'"(nn|prim)\.(\w+)"', t))
    if not names:
        return t
    m = ch.pick(names)
    new = ch.pick((f'"zz.{m[2]}"', f'"{m[1]}.{m[2]}x"', f'"{m[1]}."', '"nn.nn.relu"', "nn.relu",
                   f'"{m[1].upper()}.{m[2]}"', '"stablehlo.bogus"', '"linalg.matmul"'))
    return t[:m.start()] + new + t[m.end():]


def retype(ch, t):
    types = list(re.finditer(r"x(f32|bf16|f16|i1|i32)>", t))
    if not types:
        return t
    m = ch.pick(types)
    new = ch.pick(("xi7>", "xf64>", "xcomplex<f32>>", "xindex>", "x!foo.bar>", "xf8E4M3FN>", "xi1>", "x?>"))
    return t[:m.start()] + new + t[m.end():]


def rename_value(ch, t):
    vals = list(re.finditer(r"%[av]\d+\b", t))
    if not vals:
        return t
    m = ch.pick(vals)
    return t[:m.start()] + ch.pick(("%undefined", "%a0", "%v0", "%0", "@f")) + t[m.end():]


MUTATIONS = (truncate, flip_bytes, swap_tokens, delete_token, lines, deep_nesting, huge_shape,
             unknown_attribute, unknown_dialect, retype, rename_value)


def seeds(seed: int, n: int = 24) -> list[str]:
    """Valid programs to mutate: generated ones, at the nn level and lowered to prim."""
    import stepwell as sw
    from stepwell.fuzz.programs import generate
    out = []
    for i in range(n):
        text = generate(Chooser(f"text-seed:{seed}:{i}")).text()
        out.append(text)
        if i % 3 == 0:
            try:
                out.append(str(sw.lower(sw.parse(text), "prim")))
            except sw.StepwellError:
                pass
    return out


def case(seed: int, index: int, corpus: list[str]) -> tuple[str, list[str]]:
    """Case ``index`` of campaign ``seed``: (mutated text, stepwell-opt arguments)."""
    ch = Chooser(f"text:{seed}:{index}")
    text = ch.pick(corpus)
    for _ in range(ch.integer(1, 3)):
        text = ch.pick(MUTATIONS)(ch, text)
    return text, list(ch.pick(PIPELINES))


# -- the worker: stepwell-opt in a process of its own --------------------------------------
def _worker(conn) -> None:
    import contextlib
    import io

    from stepwell.tools import opt
    while True:
        job = conn.recv()
        if job is None:
            return
        path, args, out = job
        err, std = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            try:
                rc = opt.main([path, *args, "-o", out])
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 2
            except BaseException as e:  # noqa: BLE001  (reported as a traceback)
                import traceback
                err.write("Traceback (escaped opt.main):\n" + traceback.format_exc())
                rc = 3
        conn.send((rc, err.getvalue()[-4000:]))


class Runner:
    """A stepwell-opt worker process; restarted when a case kills it or hangs."""

    def __init__(self, timeout: float = 60):
        self.timeout = timeout
        self.ctx = multiprocessing.get_context("spawn")
        self.proc = None

    def _start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()

    def run(self, path, args, out):
        """(exit status, stderr) or (None, why) when the worker died or hung."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send((path, args, out))
        if not self.conn.poll(self.timeout):
            self.proc.kill()
            self.proc.join()
            self.proc = None
            return None, f"hung for more than {self.timeout:.0f} s"
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join()
            code = self.proc.exitcode
            self.proc = None
            return None, f"stepwell-opt died (exit code {code})"

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()


def classify(rc, stderr: str, out_exists: bool) -> tuple[str, str]:
    if rc is None:
        return "crash", stderr
    if "Traceback" in stderr:
        return "traceback", stderr
    if rc == 0:
        return "ok", ""
    if rc != 1:
        return "unclear", f"exit status {rc}: {stderr}"
    if out_exists:
        return "unclear", "an output file was written although stepwell-opt failed"
    errors = [m["where"] for line in stderr.splitlines() for m in [_ERROR.match(line)] if m]
    if not errors:
        return "unclear", f"exit 1 without an error line: {stderr}"
    if any(not w or w == "error" for w in errors):
        return "unlocated", stderr
    return "refused", ""


def run(count: int, seed: int = 0, *, start: int = 0, timeout: float = 60, progress=None,
        report: Report | None = None) -> Report:
    report = report or Report("text", seed)
    corpus = seeds(seed)
    runner = Runner(timeout)
    located = file_only = 0
    try:
        with tempfile.TemporaryDirectory(prefix="stepwell-fuzz-") as tmp:
            path, out = os.path.join(tmp, "fuzz.mlir"), os.path.join(tmp, "out.mlir")
            for i in range(start, start + count):
                text, args = case(seed, i, corpus)
                with open(path, "w", encoding="utf-8", errors="replace") as f:
                    f.write(text)
                if os.path.exists(out):
                    os.unlink(out)
                rc, stderr = runner.run(path, args, out)
                outcome, detail = classify(rc, stderr, os.path.exists(out))
                if outcome == "refused":
                    lines_ = [m["where"] for ln in stderr.splitlines() for m in [_ERROR.match(ln)] if m]
                    located += sum(1 for w in lines_ if _LOCATED.match(w))
                    file_only += sum(1 for w in lines_ if not _LOCATED.match(w))
                report.add(outcome, i, detail, text, args=args)
                if progress is not None and (i - start) % 200 == 199:
                    progress(report)
    finally:
        runner.close()
    report.notes.update(errors_with_line_and_column=located, errors_with_file_only=file_only)
    return report
