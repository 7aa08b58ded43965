"""``stepwell-opt``: parse, verify, run a pass pipeline, print. The ``mlir-opt`` of stepwell.

    stepwell-opt model.mlir -p 'nn-canonicalize,canonicalize,cse' -o out.mlir
    stepwell-opt --to-linalg model.mlir
    stepwell-opt --split-input-file --verify-diagnostics invalid.mlir
    cat model.mlir | stepwell-opt -p nn-to-prim --print-ir-after-change
    stepwell-opt --check-numerics --to-linalg model.mlir     # names a pass that changes results
    stepwell-opt --stablehlo-to-nn exported.stablehlo.mlir   # StableHLO input (jax.export, ...)

Errors are ``file:line:col: error: ...`` lines on stderr and exit status 1; the
output file is only written (atomically) when everything succeeded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pkgutil
import re
import sys
import time

from stepwell.tools._errors import ArgumentParser, cli_main, print_diagnostics, version_text, write_atomic

PROG = "stepwell-opt"
SPLIT_MARKER = "// -----"
_SPLIT_LINE = re.compile(r"^[ \t]*// -----[ \t]*$")


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
class _AppendPipeline(argparse.Action):
    """``-p TEXT`` and ``--<pass-or-pipeline>`` flags, kept in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(self.const if self.const is not None else values)
        setattr(namespace, self.dest, items)


def _pass_flag_names() -> list[str]:
    """Kebab-case names of the pass modules, found without importing them."""
    import stepwell.passes as passes
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(passes.__path__)
                  if not m.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    from stepwell import pipelines

    p = ArgumentParser(
        prog=PROG, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Parse and verify MLIR with stepwell's nn/prim ops, run a pass pipeline "
                    "(stepwell and upstream MLIR/IREE passes), print the result.",
        epilog="Pipelines: -p 'nn-canonicalize,canonicalize,cse' or "
               "-p 'builtin.module(func.func(canonicalize),nn-canonicalize)'. "
               "See --list-passes and --show-dialects.")
    p.add_argument("input", nargs="?", default="-", help="input .mlir file, '-' for stdin (default)")
    p.add_argument("-o", dest="output", default="-", metavar="FILE",
                   help="output file (default: stdout); written only on success")
    p.add_argument("-p", "--pass-pipeline", dest="pipeline", action=_AppendPipeline, metavar="PIPELINE",
                   help="textual pass pipeline, e.g. 'a,b{opt=1},c'")

    named = p.add_argument_group("named pipelines (run in command-line order with -p and passes)")
    taken = set()
    for name in pipelines.names():
        named.add_argument(f"--{name}", dest="pipeline", action=_AppendPipeline, nargs=0, const=name,
                           help=_safe(lambda: pipelines.summary(name)) or f"the '{name}' pipeline")
        taken.add(name)
    passes_group = p.add_argument_group("passes (options only through -p)")
    reserved = {"debug", "timing", "version", "help"}
    for name in _pass_flag_names():
        if name not in taken and name not in reserved:
            passes_group.add_argument(f"--{name}", dest="pipeline", action=_AppendPipeline, nargs=0,
                                      const=name, help=f"run the '{name}' pass")

    p.add_argument("--split-input-file", action="store_true",
                   help=f"split the input on '{SPLIT_MARKER}' lines and process each chunk alone")
    p.add_argument("--verify-diagnostics", action="store_true",
                   help="check emitted diagnostics against '// expected-error {{...}}' comments")
    ir_print = p.add_argument_group("IR printing")
    ir_print.add_argument("--print-ir-after-all", "--mlir-print-ir-after-all", action="store_true",
                          help="print the IR (to stderr) after every pass")
    ir_print.add_argument("--print-ir-after-change", "--mlir-print-ir-after-change", action="store_true",
                          help="print the IR after every pass that changed it")
    ir_print.add_argument("--print-ir-before", "--mlir-print-ir-before", action="append", default=[],
                          metavar="PASS", help="print the IR before PASS (repeatable, comma list)")
    ir_print.add_argument("--print-ir-after", "--mlir-print-ir-after", action="append", default=[],
                          metavar="PASS", help="print the IR after PASS (repeatable, comma list)")
    ir_print.add_argument("--mlir-print-op-generic", action="store_true",
                          help="print every op in generic form")
    ir_print.add_argument("--mlir-print-debuginfo", action="store_true", help="print locations")
    p.add_argument("--timing", "--mlir-timing", action="store_true",
                   help="print a per-pass wall-time report to stderr")
    p.add_argument("--stats", "--mlir-pass-statistics", action="store_true",
                   help="print the statistics passes keep (e.g. what stablehlo-to-nn raised) to stderr")
    p.add_argument("--input-type", choices=("auto", "nn", "stablehlo"), default="auto",
                   help="what the input holds: 'stablehlo' (e.g. jax.export's mlir_module() or "
                        "another framework's; single-device Shardy annotations are dropped), 'nn' "
                        "(stepwell's levels), 'auto' (default: either); an explicit type the "
                        "input contradicts is an error")
    p.add_argument("--check-numerics", action="store_true",
                   help="run the module (@main, else each public function) on seeded random inputs "
                        "before and after every pass (numpy references while nn/prim ops remain, "
                        "IREE on the host CPU after) and fail on the first pass that changes the "
                        "results; a report goes to stderr")
    p.add_argument("--check-numerics-seed", type=int, default=0, metavar="N",
                   help="seed of --check-numerics' random inputs (default 0)")
    p.add_argument("--no-verify-each", dest="verify_each", action="store_false",
                   help="do not verify the IR after every pass (it is still verified on input)")
    p.add_argument("--reproducer-dir", metavar="DIR",
                   help="where a crashing pass leaves <input>.repro.mlir "
                        "(default: $STEPWELL_REPRO_DIR or the temp folder)")
    p.add_argument("--list-passes", action="store_true", help="list passes and named pipelines")
    p.add_argument("--show-dialects", action="store_true", help="list the nn/prim ops and their specs")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks of internal errors")
    p.add_argument("--version", action="version", version=version_text(PROG))
    return p


def _safe(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001  (help text must not break the tool)
        return ""


# ---------------------------------------------------------------------------
# --list-passes / --show-dialects
# ---------------------------------------------------------------------------
def _field_type(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _field_default(f: dataclasses.Field) -> str:
    from stepwell.core.passes_base import _format
    if f.default is not dataclasses.MISSING:
        return _format(f.default)
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return _format(f.default_factory())  # type: ignore[misc]
    return "required"


def list_passes() -> str:
    from stepwell import passes, pipelines
    lines = ["Passes (-p 'name{option=value}' or --name):"]
    for name, cls in passes.load_all().items():
        lines.append(f"  {name:<24} {cls.summary()}")
        for f in cls.option_fields():
            doc = f.metadata.get("doc", "") if f.metadata else ""
            lines.append(f"      {f.name.replace('_', '-')}: {_field_type(f)} = {_field_default(f)}"
                         + (f"  {doc}" if doc else ""))
    lines.append("")
    lines.append("Named pipelines (-p name or --name):")
    for name in pipelines.names():
        lines.append(f"  {name:<24} {_safe(lambda: pipelines.summary(name))}")
        lines.append(f"      {', '.join(pipelines.get(name) or [])}")
    lines.append("")
    lines.append("Upstream MLIR and IREE passes (canonicalize, cse, ...) run through the same "
                 "pipeline syntax.")
    return "\n".join(lines) + "\n"


def _attr_default(kind_hint: tuple, value) -> str:
    if value is None:
        return "none (computed)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "array<i64: " + ", ".join(str(v) for v in value) + ">"
    return str(value)


def show_dialects() -> str:
    from stepwell.core import opspec
    lines = []
    for dialect in opspec.DIALECTS:
        ops = opspec.specs(dialect)
        lines.append(f"Dialect '{dialect}' ({len(ops)} ops)")
        for spec in ops:
            operands = ", ".join(o.name + ("?" if o.optional else "") + ("..." if o.variadic else "")
                                 for o in spec.operands)
            lines.append(f"  {spec.name}({operands})")
            lines.append(f"      {spec.summary}")
            for a in spec.attrs:
                default = "required" if a.default is opspec.REQUIRED else _attr_default(a.kinds, a.default)
                lines.append(f"      {a.name}: {a.describe()} = {default}" + (f"  {a.doc}" if a.doc else ""))
            if spec.result_from_type:
                lines.append("      result: given by the result type")
        lines.append("")
    lines.append("Optional operands (?) are trailing and left out; variadic ones (...) take the rest.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Input splitting and --verify-diagnostics
# ---------------------------------------------------------------------------
def split_input(text: str) -> list[str]:
    """Chunks between ``// -----`` lines, each padded with newlines so that its line
    numbers are those of the whole file."""
    chunks, current, start = [], [], 0
    for i, line in enumerate(text.splitlines(keepends=True)):
        if _SPLIT_LINE.match(line.rstrip("\r\n")):
            chunks.append("\n" * start + "".join(current))
            current, start = [], i + 1
        else:
            current.append(line)
    chunks.append("\n" * start + "".join(current))
    return chunks


# MLIR's syntax: `// expected-error@+1 {{message}}`, `@-N`, `@above`, `@below`,
# `@unknown` (a diagnostic without a location), an optional count, `-re` for regexes.
_EXPECTED = re.compile(
    r"//\s*(expected-(error|warning|note|remark)(-re)?)"
    r"\s*(?:@\s*(above|below|unknown|[+-]\s*\d+))?\s*(?:(\d+)\s*)?\{\{(.*)\}\}\s*$")


@dataclasses.dataclass
class Expectation:
    severity: str
    line: int | None  # the line the diagnostic must be reported on (None: no location)
    comment_line: int
    col: int
    pattern: str
    regex: bool = False
    count: int = 1

    def matches(self, message: str) -> bool:
        if not self.regex:
            return self.pattern in message
        # MLIR's -re form: literal text with {{regex}} parts.
        parts = re.split(r"\{\{(.*?)\}\}", self.pattern)
        rx = "".join(re.escape(p) if i % 2 == 0 else f"(?:{p})" for i, p in enumerate(parts))
        return re.search(rx, message) is not None


def parse_expectations(text: str) -> list[Expectation]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        m = _EXPECTED.search(line)
        if not m:
            continue
        _, severity, regex, offset, count, pattern = m.groups()
        target = number
        if offset == "above":
            target = number - 1
        elif offset == "below":
            target = number + 1
        elif offset == "unknown":
            target = None
        elif offset:
            target = number + int(offset.replace(" ", ""))
        out.append(Expectation(severity, target, number, m.start(1) + 1, pattern, bool(regex),
                               int(count) if count else 1))
    return out


def check_expectations(expected: list[Expectation], produced, name: str):
    """Match produced diagnostics against expectations; returns the error diagnostics
    (unexpected ones and expectations not met), empty when everything matched."""
    from stepwell.core.diagnostics import Diagnostic
    remaining = {id(e): e.count for e in expected}
    problems = []
    for d in produced:
        if d.severity == "note" and d.line is None:
            continue  # unlocated notes ("pass 'x' failed") only explain their error
        line = d.line if d.file in (name, "-", None) else -1  # elsewhere: never expected
        match = next((e for e in expected if remaining[id(e)] > 0 and e.severity == d.severity
                      and e.line == line and e.matches(d.message)), None)
        if match is not None:
            remaining[id(match)] -= 1
        else:
            problems.append(Diagnostic(f"unexpected {d.severity}: {d.message}", "error",
                                       d.file if d.file not in (None, "-") else name, d.line, d.col))
    for e in expected:
        if remaining[id(e)] > 0:
            problems.append(Diagnostic(f'expected {e.severity} "{e.pattern}" was not produced',
                                       "error", name, e.comment_line, e.col))
    problems.sort(key=lambda d: (d.line or 0, d.col or 0))
    return problems


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------
def _instrumentation(args):
    from stepwell.core.pipeline import Instrumentation

    @dataclasses.dataclass
    class OptInstrumentation(Instrumentation):
        print_after: set = dataclasses.field(default_factory=set)

        def after(self, step, module, before_text):
            changed = before_text is not None and before_text != module.print(debuginfo=True)
            if self.print_after_all or (self.print_after_change and changed) or step.name in self.print_after:
                self._dump(f"IR Dump After {step.name}", module)

    def names(values):
        return {n.strip() for v in values for n in v.split(",") if n.strip()}

    before, after = names(args.print_ir_before), names(args.print_ir_after)
    for n in sorted(before | after):
        _check_pass_name(n)
    if not (before or after or args.print_ir_after_all or args.print_ir_after_change):
        return None
    return OptInstrumentation(print_before=before, print_after_all=args.print_ir_after_all,
                              print_after_change=args.print_ir_after_change,
                              print_generic=args.mlir_print_op_generic, print_after=after)


def _check_pass_name(name: str) -> None:
    """A ``--print-ir-before/after`` name must be a stepwell or upstream pass."""
    from stepwell import passes, pipelines
    from stepwell.core.diagnostics import StepwellError
    from stepwell.core.ir import context, ir, passmanager
    from stepwell.core.passes_base import suggest
    if passes.get(name) is not None:
        return
    try:
        passmanager.PassManager.parse(f"builtin.module({name})", context())
        return
    except (ValueError, ir.MLIRError):
        known = list(passes.names()) + list(pipelines.names())
        raise StepwellError(f"unknown pass '{name}' in --print-ir-before/after{suggest(name, known)}") from None


class _Collector:
    """Collects the diagnostics MLIR emits outside an ``MLIRError`` (warnings, remarks)."""

    def __init__(self, name: str):
        self.name = name
        self.diagnostics = []
        self._handler = None

    def __enter__(self):
        from stepwell.core.diagnostics import at
        from stepwell.core.ir import context
        severities = {"ERROR": "error", "WARNING": "warning", "NOTE": "note", "REMARK": "remark"}

        def handle(d):
            try:
                sev = severities.get(str(d.severity).rsplit(".", 1)[-1], "error")
                self.diagnostics.append(at(d.location, d.message, sev, self.name))
                for note in d.notes:
                    self.diagnostics.append(at(note.location, note.message, "note", self.name))
            except Exception:  # noqa: BLE001  (a handler must never raise into MLIR)
                return False
            return True

        self._handler = context().attach_diagnostic_handler(handle)
        return self

    def __exit__(self, *exc):
        if self._handler is not None:
            self._handler.detach()
        return False


def _process(text: str, name: str, pipeline, args, timings: dict) -> str:
    """Parse, verify, run the pipeline on one buffer; returns the printed result."""
    from stepwell.core.module import parse
    from stepwell.core.stablehlo import resolve_input_type
    start = time.perf_counter()
    module = parse(text, name=name)
    resolve_input_type(module, args.input_type)
    timings["(parse + verify)"] = timings.get("(parse + verify)", 0.0) + time.perf_counter() - start
    try:
        pipeline.run(module)
    finally:
        for step, seconds in pipeline.timings:
            timings[step] = timings.get(step, 0.0) + seconds
        if args.check_numerics:
            from stepwell.numerics.check import summary
            sys.stderr.write("".join(f"{c}\n" for c in pipeline.numerics_report))
            sys.stderr.write(summary(pipeline.numerics_report) + "\n")
    if args.stats:
        sys.stderr.write(_stats_report(pipeline))
    start = time.perf_counter()
    out = module.print(generic=args.mlir_print_op_generic, debuginfo=args.mlir_print_debuginfo)
    if args.mlir_print_debuginfo:  # the parser names every buffer "-": show the input's name
        out = out.replace('loc("-":', "loc(" + json.dumps(name) + ":")
    timings["(output)"] = timings.get("(output)", 0.0) + time.perf_counter() - start
    return out if out.endswith("\n") else out + "\n"


def _stats_report(pipeline) -> str:
    """``<pass>: <statistics>`` for each pass of the pipeline that keeps a ``stats`` dict."""
    lines = []
    for step in pipeline.steps:
        stats = getattr(step.pass_, "stats", None)
        if stats:
            fmt = getattr(step.pass_, "format_stats", None)
            text = fmt() if fmt else ", ".join(f"{k}={v}" for k, v in stats.items())
            lines.append(f"{step.name}: {text}\n")
    return "".join(lines)


def _timing_report(timings: dict, total: float) -> str:
    rule = "===" + "-" * 73 + "==="
    lines = [rule, "Execution time report".center(79), rule,
             f"  Total Execution Time: {total:.4f} seconds", "",
             "  ----Wall Time----  ----Name----"]
    for name, seconds in timings.items():
        pct = 100.0 * seconds / total if total > 0 else 0.0
        lines.append(f"  {seconds:9.4f} ({pct:5.1f}%)  {name}")
    lines.append(f"  {total:9.4f} (100.0%)  Total")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from stepwell.core.diagnostics import StepwellError
    from stepwell.core.module import read_source
    from stepwell.core.pipeline import Pipeline

    if args.list_passes or args.show_dialects:
        text = (list_passes() if args.list_passes else "") + (
            ("\n" if args.list_passes else "") + show_dialects() if args.show_dialects else "")
        write_atomic(args.output, text)
        return 0

    t0 = time.perf_counter()
    # The pipeline is checked before the input is read, as mlir-opt does.
    pipeline = Pipeline(",".join(args.pipeline or []), verify_each=args.verify_each,
                        instrumentation=_instrumentation(args), reproducer_dir=args.reproducer_dir,
                        check_numerics=args.check_numerics, numerics_seed=args.check_numerics_seed)
    source = read_source(args.input)
    name = "<stdin>" if args.input == "-" else args.input
    chunks = split_input(source) if args.split_input_file else [source]

    outputs, failed, timings = [], False, {}
    for chunk in chunks:
        produced, out, error = [], None, None
        with _Collector(name) as collector:
            try:
                out = _process(chunk, name, pipeline, args, timings)
            except StepwellError as e:
                error = e
        produced = collector.diagnostics + (error.diagnostics if error else [])
        if args.verify_diagnostics:
            problems = check_expectations(parse_expectations(chunk), produced, name)
            if problems:
                print_diagnostics(problems)
                failed = True
        else:
            print_diagnostics(produced)
            if error is not None:
                if args.debug and getattr(error, "internal_traceback", None):
                    sys.stderr.write(error.internal_traceback)
                failed = True
        if out is not None:
            outputs.append(out)
    if args.timing:
        sys.stderr.write(_timing_report(timings, time.perf_counter() - t0))
    if failed:
        return 1
    write_atomic(args.output, f"{SPLIT_MARKER}\n".join(outputs))
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli_main(build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
