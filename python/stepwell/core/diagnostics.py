"""Diagnostics: ``file:line:col: error: message`` and the error type that carries them.

Every user-facing failure in stepwell is a :class:`StepwellError` holding one or
more :class:`Diagnostic`; the CLIs print them and exit 1, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepwell.core.ir import ir


@dataclass(frozen=True)
class Diagnostic:
    message: str
    severity: str = "error"  # error | warning | note | remark
    file: str | None = None
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}:{self.col or 0}"
            where += ": "
        return f"{where}{self.severity}: {self.message}"


def _downcast(loc):
    """Diagnostics hand out plain ``ir.Location``s: cast to the concrete kind."""
    if type(loc) is not ir.Location:
        return loc
    for kind in (ir.FileLineColLoc, ir.NameLoc, ir.CallSiteLoc, ir.FusedLoc):
        if loc.typeid == kind.static_typeid:
            return kind(loc)
    return loc


def location_parts(loc, display_name: str | None = None):
    """(file, line, col) of an MLIR location; ``"-"`` is shown as ``display_name``."""
    if loc is None:
        return None, None, None
    try:
        loc = _downcast(loc)
        if isinstance(loc, ir.FileLineColLoc):
            flc = loc
            name = flc.filename
            if name == "-" and display_name:
                name = display_name
            return name, flc.start_line, flc.start_col
        if isinstance(loc, ir.NameLoc):
            return location_parts(loc.child_loc, display_name)
        if isinstance(loc, ir.CallSiteLoc):
            return location_parts(loc.callee, display_name)
        if isinstance(loc, ir.FusedLoc):
            for inner in loc.locations:
                parts = location_parts(inner, display_name)
                if parts[0] is not None:
                    return parts
    except (AttributeError, TypeError, ValueError):
        pass
    return (display_name, None, None) if display_name else (None, None, None)


def at(loc, message: str, severity: str = "error", display_name: str | None = None) -> Diagnostic:
    file, line, col = location_parts(loc, display_name)
    return Diagnostic(message, severity, file, line, col)


_SEVERITY = {"ERROR": "error", "WARNING": "warning", "NOTE": "note", "REMARK": "remark"}


def from_mlir_error(err: "ir.MLIRError", display_name: str | None = None) -> list[Diagnostic]:
    """The diagnostics MLIR attached to an ``MLIRError`` (parser, verifier, passes)."""
    diags = []
    for d in getattr(err, "error_diagnostics", []) or []:
        sev = _SEVERITY.get(str(d.severity).rsplit(".", 1)[-1], "error")
        diags.append(at(d.location, d.message, sev, display_name))
        for note in d.notes:
            diags.append(at(note.location, note.message, "note", display_name))
    if not diags:
        msg = str(err).strip().splitlines()[-1] if str(err).strip() else "MLIR error"
        diags.append(Diagnostic(msg, "error", display_name))
    return diags


class StepwellError(Exception):
    """A user-facing error: one or more diagnostics, printed one per line."""

    def __init__(self, diagnostics, *, file: str | None = None):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, "error", file)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class VerifyError(StepwellError):
    """An op failed verification."""


class PassError(StepwellError):
    """A pass could not do its job on valid input (e.g. an op it cannot lower)."""


def renamed(diagnostics, name: str) -> list[Diagnostic]:
    """Diagnostics whose file is the anonymous buffer ``-`` shown as ``name``."""
    from dataclasses import replace
    return [replace(d, file=name) if d.file == "-" else d for d in diagnostics]
