"""``Module``: a parsed MLIR module plus the name its diagnostics are reported under.

    m = sw.parse(text)             # verified on the way in
    m = sw.parse_file("model.mlir")
    print(m)                       # custom ops in generic form, the rest pretty
"""

from __future__ import annotations

import collections
import os
import re

from stepwell.core import verifier
from stepwell.core.diagnostics import Diagnostic, StepwellError, from_mlir_error
from stepwell.core.ir import context, ir


class Module:
    def __init__(self, mlir_module: ir.Module, name: str = "-"):
        self.mlir = mlir_module
        self.name = name

    @property
    def operation(self):
        return self.mlir.operation

    @property
    def body(self):
        return self.mlir.body

    def __str__(self) -> str:
        return str(self.mlir)

    def print(self, *, generic: bool = False, debuginfo: bool = False) -> str:
        return self.operation.get_asm(print_generic_op_form=generic, enable_debug_info=debuginfo)

    def clone(self) -> "Module":
        return Module(ir.Module.parse(self.print(debuginfo=True), context()), self.name)

    def replace_with(self, other: "Module") -> None:
        """Take over another module's IR (used by passes that rebuild the module)."""
        self.mlir = other.mlir

    def verify(self) -> None:
        verifier.verify(self.operation, self.name)

    def op_counts(self) -> dict[str, int]:
        """How many ops of each name the function bodies hold at their top level
        (ops nested in a linalg.generic body or a loop are part of their parent)."""
        counts = collections.Counter(
            op.operation.name for f in self.body.operations if f.operation.name == "func.func"
            for block in f.regions[0].blocks for op in block.operations
            if op.operation.name != "func.return")
        return dict(sorted(counts.items()))

    def function_names(self) -> list[str]:
        return [ir.StringAttr(op.attributes["sym_name"]).value
                for op in self.body.operations if op.operation.name == "func.func"]


def parse(text: str, *, name: str = "-", verify: bool = True) -> Module:
    """Parse MLIR text into a verified :class:`Module`; errors are located diagnostics."""
    if not text.strip():
        raise StepwellError([Diagnostic("input is empty: expected an MLIR module", "error", name)])
    _check_nesting(text, name)
    try:
        mlir_module = ir.Module.parse(text, context())
    except ir.MLIRError as e:
        mlir_module = _parse_without_shardy(text)
        if mlir_module is None:
            raise StepwellError(from_mlir_error(e, name)) from None
    module = Module(mlir_module, name)
    if verify:
        module.verify()
    return module


MAX_NESTING = 256  # regions and attribute dictionaries inside each other
_BRACES = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|[{}]')


def _check_nesting(text: str, name: str) -> None:
    """Refuse braces nested deeper than MAX_NESTING, at the first one too deep: MLIR's
    parser recurses once per level (5000 nested modules overflow its stack: a
    segfault) and so do the verifier's walks (a RecursionError past ~1000)."""
    depth = 0
    for m in _BRACES.finditer(text):
        c = m.group()
        if c == "{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, m.start()) + 1
                col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
                raise StepwellError([Diagnostic(f"regions or attribute dictionaries nested deeper than "
                                                f"{MAX_NESTING} levels are not supported", "error",
                                                name, line, col)])
        elif c == "}":
            depth -= 1


def as_module(value, what: str = "this") -> Module:
    """``value`` as a :class:`Module`: MLIR text (str or bytes) is parsed; anything
    else but a Module is refused with a StepwellError naming its type."""
    if isinstance(value, Module):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return parse(value)
    raise StepwellError(f"{what} takes a stepwell Module or MLIR text, not {type(value).__name__}")


def _parse_without_shardy(text: str):
    """StableHLO from JAX may carry Shardy (``sdy``) annotations, a dialect IREE's MLIR
    lacks: parse it again without them (single-device annotations only)."""
    if "sdy." not in text:
        return None
    from stepwell.core.stablehlo import strip_shardy_text
    stripped = strip_shardy_text(text)
    if stripped == text:
        return None
    try:
        return ir.Module.parse(stripped, context())
    except ir.MLIRError:
        return None


def read_source(path: str) -> str:
    """Read an input file ("-" is stdin) as text, with clear errors for bad files."""
    import sys
    if path == "-":
        data = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        if not os.path.exists(path):
            raise StepwellError([Diagnostic(f"no such file: '{path}'", "error")])
        if os.path.isdir(path):
            raise StepwellError([Diagnostic(f"'{path}' is a directory, not an MLIR file", "error")])
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise StepwellError([Diagnostic(f"cannot read '{path}': {e.strerror}", "error")]) from None
        name = path
    if data.startswith(b"ML\xefR") or (b"\0" in data and not data.lstrip().startswith((b"//", b"module", b"func"))):
        # MLIR bytecode, e.g. a StableHLO portable artifact (jax.export) or jax.export's
        # serialized container: as text, through JAX's bindings.
        from stepwell.core.stablehlo import binary_to_text
        text = binary_to_text(data)
        if text is not None:
            return text
    if b"\0" in data:
        raise StepwellError([Diagnostic("input is binary, not MLIR text (nor MLIR bytecode or a "
                                        "jax.export artifact that could be read)", "error", name)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StepwellError([Diagnostic(f"input is not UTF-8 text (byte {e.start})", "error", name)]) from None


def parse_file(path: str, *, verify: bool = True) -> Module:
    return parse(read_source(path), name="<stdin>" if path == "-" else path, verify=verify)
