"""Textual pass pipelines and the runner shared by the Python API and the CLI.

Syntax, as in ``mlir-opt``: ``a,b{opt=1},c``, optionally anchored:
``builtin.module(func.func(canonicalize,cse),nn-canonicalize)``. Each element is a
stepwell pass, a named pipeline from ``stepwell.pipelines`` (expanded in place) or an
upstream MLIR/IREE pass, which runs through the bindings' ``PassManager``. The module
is verified after every pass; a pass that crashes leaves a reproducer behind.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field

from stepwell.core import hooks, verifier
from stepwell.core.diagnostics import Diagnostic, StepwellError, from_mlir_error, renamed
from stepwell.core.ir import context, ir, passmanager
from stepwell.core.module import as_module
from stepwell.core.passes_base import suggest


class PipelineSyntaxError(StepwellError):
    pass


@dataclass
class Element:
    name: str
    options: str | None = None
    children: list["Element"] | None = None


def parse_elements(text: str) -> list[Element]:
    """Parse pipeline text into a tree of elements."""
    pos = 0

    def error(msg):
        return PipelineSyntaxError(f"invalid pass pipeline '{text}': {msg} at character {pos}")

    def parse_list(closing):
        nonlocal pos
        items = []
        while True:
            while pos < len(text) and text[pos] in " \t\n":
                pos += 1
            if pos < len(text) and text[pos] == closing and not items and closing == ")":
                return items
            start = pos
            while pos < len(text) and (text[pos].isalnum() or text[pos] in "-_."):
                pos += 1
            if start == pos:
                raise error("expected a pass name")
            elem = Element(text[start:pos])
            if pos < len(text) and text[pos] == "{":
                depth, ostart = 0, pos + 1
                while pos < len(text):
                    depth += {"{": 1, "}": -1}.get(text[pos], 0)
                    pos += 1
                    if depth == 0:
                        break
                if depth:
                    raise error("unbalanced '{'")
                elem.options = text[ostart:pos - 1].strip()
            if pos < len(text) and text[pos] == "(":
                pos += 1
                elem.children = parse_list(")")
                if pos >= len(text) or text[pos] != ")":
                    raise error("expected ')'")
                pos += 1
            items.append(elem)
            while pos < len(text) and text[pos] in " \t\n":
                pos += 1
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            return items

    items = parse_list(None)
    if pos != len(text):
        raise error(f"unexpected '{text[pos]}'")
    return items


def parse_options(text: str | None) -> dict[str, str]:
    """``"a=1 b=x,y"`` -> ``{"a": "1", "b": "x,y"}``."""
    out = {}
    for item in (text or "").split():
        key, sep, value = item.partition("=")
        out[key] = value if sep else "true"
    return out


@dataclass
class Step:
    """One pass of a flattened pipeline: ours (Python) or upstream (PassManager text)."""
    name: str
    text: str
    pass_: object = None  # a stepwell Pass instance, or None for upstream

    def run(self, module) -> None:
        if self.pass_ is not None:
            self.pass_.run(module)
            return
        pm = passmanager.PassManager.parse(f"builtin.module({self.text})", context())
        pm.run(module.operation)

    @property
    def keeps_custom_ops(self) -> bool:
        """An upstream pass that cannot change an ``nn``/``prim`` op's operand or result
        types or attributes (it sees them as opaque and only rewires values of the same
        type): our spec checks need not run again after it; MLIR's verifier still does."""
        return self.pass_ is None and self.text in TYPE_PRESERVING


# Upstream passes (without options) that leave unregistered ops' types and attributes alone.
TYPE_PRESERVING = frozenset({"canonicalize", "cse"})

# Upstream passes people reach for, offered as suggestions for a misspelt name.
_COMMON_UPSTREAM = ("canonicalize", "cse", "symbol-dce", "inline", "sccp", "loop-invariant-code-motion",
                    "linalg-fuse-elementwise-ops", "linalg-generalize-named-ops", "one-shot-bufferize",
                    "transform-interpreter", "convert-elementwise-to-linalg", "remove-dead-values")


def _upstream_step(name: str, text: str) -> Step:
    try:
        with _captured_stderr() as captured:
            passmanager.PassManager.parse(f"builtin.module({text})", context())
    except (ValueError, ir.MLIRError) as e:
        message = str(e)
        if "does not refer to a registered pass" in message or "failed to add" not in message:
            known = list(_passes().names()) + list(_pipelines().names()) + list(_COMMON_UPSTREAM)
            raise PipelineSyntaxError(f"unknown pass or pipeline '{name}'{suggest(name, known)}") from None
        # A known upstream pass with bad options: say which option and why.
        detail = [ln.strip(" :") for ln in (message + "\n" + captured.text).splitlines()
                  if ln.strip() and "failed to add" not in ln]
        detail = [d.replace("<Pass-Options-Parser>", "").strip(" :") for d in detail]
        raise PipelineSyntaxError(f"invalid options for pass '{name}': "
                                  + ("; ".join(d for d in detail if d) or text)) from None
    return Step(name, text)


class _captured_stderr:
    """Capture what C++ writes to file descriptor 2 (LLVM option errors) meanwhile."""

    def __enter__(self):
        import sys
        self.text = ""
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            self._tmp = tempfile.TemporaryFile(mode="w+b")
            os.dup2(self._tmp.fileno(), 2)
        except (OSError, ValueError):
            self._saved = None
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._tmp.seek(0)
            self.text = self._tmp.read().decode("utf-8", "replace")
            self._tmp.close()
        return False


def _passes():
    """The pass registry (``stepwell.passes``), through its hook."""
    return hooks.get("passes")()


def _pipelines():
    """The named pipelines (``stepwell.pipelines``), through their hook."""
    return hooks.get("pipelines")()


def flatten(elements: list[Element], anchors: tuple = ()) -> list[Step]:
    passes, pipelines = _passes(), _pipelines()
    steps = []
    for e in elements:
        if e.children is not None:
            inner = anchors if e.name == "builtin.module" else anchors + (e.name,)
            steps.extend(flatten(e.children, inner))
            continue
        cls = passes.get(e.name)
        if cls is not None:
            try:
                instance = cls.from_options(parse_options(e.options))
            except ValueError as err:
                raise PipelineSyntaxError(str(err)) from None
            steps.append(Step(e.name, str(instance), instance))
        elif pipelines.get(e.name) is not None:
            if e.options:
                raise PipelineSyntaxError(f"named pipeline '{e.name}' takes no options")
            steps.extend(flatten(parse_elements(",".join(pipelines.get(e.name))), anchors))
        else:
            text = e.name + ("{" + e.options + "}" if e.options is not None else "")
            for anchor in reversed(anchors):
                text = f"{anchor}({text})"
            steps.append(_upstream_step(e.name, text))
    return steps


@dataclass
class Instrumentation:
    """Hooks around each pass; the CLI's ``--print-ir-*`` flags are built on these."""
    print_before: set = field(default_factory=set)
    print_after_all: bool = False
    print_after_change: bool = False
    print_generic: bool = False
    stream: object = None

    def wants_before_text(self) -> bool:
        return self.print_after_change

    def before(self, step: Step, module) -> None:
        if step.name in self.print_before:
            self._dump(f"IR Dump Before {step.name}", module)

    def after(self, step: Step, module, before_text: str | None) -> None:
        if self.print_after_all:
            self._dump(f"IR Dump After {step.name}", module)
        elif self.print_after_change and before_text != module.print(debuginfo=True):
            self._dump(f"IR Dump After {step.name}", module)

    def _dump(self, title: str, module) -> None:
        import sys
        out = self.stream or sys.stderr
        out.write(f"// -----// {title} //----- //\n{module.print(generic=self.print_generic)}\n")


class Pipeline:
    """A parsed pass pipeline: ``sw.Pipeline("nn-to-prim,prim-to-linalg").run(m)``."""

    def __init__(self, text: str, *, verify_each: bool = True, snapshots: bool = False,
                 instrumentation: Instrumentation | None = None, reproducer_dir: str | None = None,
                 check_numerics: bool = False, inputs=None, numerics_seed: int = 0,
                 numerics_target: str = "cpu"):
        """``check_numerics``: evaluate the module before and after every pass on the
        same inputs (``inputs``: arrays for @main, or ``{function: arrays}``; default
        seeded random) and raise on the first pass that changes its results
        (``stepwell.numerics_check``); the report is kept in ``numerics_report``."""
        self.text = text.strip()
        self.steps = flatten(parse_elements(self.text)) if self.text else []
        self.verify_each = verify_each
        self.keep_snapshots = snapshots
        self.instrumentation = instrumentation
        self.reproducer_dir = reproducer_dir
        self.snapshots: list[tuple[str, str]] = []  # (pass name, IR after it)
        self.timings: list[tuple[str, float]] = []  # (pass name, seconds)
        self.check_numerics = check_numerics
        self.inputs = inputs
        self.numerics_seed = numerics_seed
        self.numerics_target = numerics_target
        self.numerics_report: list = []  # numerics_check.Check per pass

    def __str__(self) -> str:
        return "builtin.module(" + ",".join(s.text for s in self.steps) + ")"

    def run(self, module):
        """Run every pass on ``module`` in place (verifying after each); returns it.
        MLIR text is parsed first: the returned module is then the result."""
        module = as_module(module, "Pipeline.run")
        self.snapshots, self.timings = [], []
        if self.keep_snapshots:
            self.snapshots.append(("input", module.print()))
        checker = None
        if self.check_numerics:
            checker = hooks.get("numerics_checker")(self.inputs, seed=self.numerics_seed,
                                                    target=self.numerics_target)
            self.numerics_report = checker.report
            checker.start(module)
        for i, step in enumerate(self.steps):
            inst = self.instrumentation
            if inst:
                inst.before(step, module)
            # kept for a reproducer: a clone costs a tenth of printing the module
            before = module.operation.clone()
            before_text = module.print(debuginfo=True) if inst and inst.wants_before_text() else None
            start = time.perf_counter()
            try:
                step.run(module)
            except StepwellError as e:
                raise type(e)(renamed(e.diagnostics, module.name)) from None
            except ir.MLIRError as e:
                diags = renamed(from_mlir_error(e, module.name), module.name)
                raise StepwellError(diags + [Diagnostic(f"pass '{step.name}' failed", "note")]) from None
            except Exception as e:  # an internal error: leave a reproducer
                path = self._write_reproducer(module, i, before)
                err = StepwellError([Diagnostic(
                    f"internal error in pass '{step.name}': {type(e).__name__}: {e}", "error", module.name),
                    Diagnostic(f"reproducer written to {path}", "note")])
                err.internal_traceback = traceback.format_exc()
                raise err from e
            self.timings.append((step.name, time.perf_counter() - start))
            if self.verify_each:
                diags = verifier.diagnose(module.operation, module.name,
                                          custom=not step.keeps_custom_ops)
                if diags:
                    raise StepwellError(renamed(diags, module.name) + [
                        Diagnostic(f"the IR is invalid after pass '{step.name}'", "note")])
            if inst:
                inst.after(step, module, before_text)
            if checker is not None:
                checker.after(step.name, module)
            if self.keep_snapshots:
                self.snapshots.append((step.name, module.print()))
        return module

    def _write_reproducer(self, module, index: int, before: ir.Operation) -> str:
        directory = self.reproducer_dir or os.environ.get("STEPWELL_REPRO_DIR") or tempfile.gettempdir()
        stem = os.path.splitext(os.path.basename(module.name))[0] if module.name not in ("-", "<stdin>") else "stdin"
        path = os.path.join(directory, f"{stem}.repro.mlir")
        pipeline = "builtin.module(" + ",".join(s.text for s in self.steps[index:]) + ")"
        with open(path, "w") as f:
            f.write(f"// Reproducer: the IR before pass '{self.steps[index].name}' failed.\n")
            f.write(f"// Run: stepwell-opt {os.path.basename(path)} --pass-pipeline='{pipeline}'\n")
            f.write(f"// configuration: --pass-pipeline='{pipeline}'\n")
            f.write(before.get_asm(enable_debug_info=True) + "\n")
        return path
