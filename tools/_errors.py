"""Error handling shared by the command-line tools.

Every failure becomes ``error:`` lines on stderr and exit status 1: a
:class:`~stepwell.diagnostics.StepwellError` prints its diagnostics one per line
(``file:line:col: error: ...``), anything else is an internal error whose Python
traceback is shown only with ``--debug``. Output files are written atomically with
:func:`write_atomic`, so a failed run never leaves a half-written file behind.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import traceback
from typing import Callable


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 1 (as ``mlir-opt``), and a
    suggestion for a misspelt flag."""

    def error(self, message: str):  # noqa: D401  (argparse API)
        if message.startswith("unrecognized arguments:"):
            bad = message.split(":", 1)[1].split()
            flags = [s for a in self._actions for s in a.option_strings]
            for arg in bad:
                if arg.startswith("-"):
                    close = difflib.get_close_matches(arg.split("=", 1)[0], flags, n=1, cutoff=0.6)
                    if close:
                        message += f"; did you mean '{close[0]}'?"
                        break
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(1)


def print_diagnostics(diagnostics, stream=None) -> None:
    stream = stream or sys.stderr
    for d in diagnostics:
        stream.write(f"{d}\n")


def cli_main(build_parser, run, argv: list[str] | None = None) -> int:
    """A CLI's ``main``: parse ``argv`` (default: the command line) and ``run`` it, guarded."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return guarded(lambda: run(build_parser().parse_args(argv)), debug="--debug" in argv)


def guarded(body: Callable[[], int], *, debug: bool = False) -> int:
    """Run ``body`` and turn every exception into ``error:`` lines and status 1."""
    from stepwell.core.diagnostics import StepwellError

    try:
        return int(body() or 0)
    except StepwellError as e:
        print_diagnostics(e.diagnostics)
        if debug and getattr(e, "internal_traceback", None):
            sys.stderr.write(e.internal_traceback)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (``| head``): not an error of ours.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001  (the whole point: never a bare traceback)
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        sys.stderr.write(f"error: internal error: {type(e).__name__}"
                         + (f": {message}" if message else "") + "\n")
        if debug:
            traceback.print_exc()
        else:
            sys.stderr.write("note: run again with --debug to see the Python traceback\n")
        return 1


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a
    rename, so readers never see a partial file. ``-`` writes to stdout."""
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from stepwell.core.diagnostics import StepwellError

    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise StepwellError(f"cannot write output '{path}': it is a directory")
    if not os.path.isdir(directory):
        raise StepwellError(f"cannot write output '{path}': no such directory '{directory}'")
    from stepwell.core.files import atomic_file
    try:
        with atomic_file(path) as f:
            f.write(text.encode("utf-8"))
    except OSError as e:
        raise StepwellError(f"cannot write output '{path}': {e.strerror}") from None


def version_text(prog: str) -> str:
    from importlib import metadata

    from stepwell.core.version import __version__

    try:
        iree = metadata.version("iree-base-compiler")
    except metadata.PackageNotFoundError:
        iree = "unknown"
    return f"{prog} {__version__} (MLIR from iree-base-compiler {iree})"
