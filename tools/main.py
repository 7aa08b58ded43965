"""``stepwell``: the user-facing command with subcommands (``compile``, ``run``, ``demo``, ...).

Each subcommand is one module ``tools/cmd_<name>.py`` exposing
``add_parser(subparsers)`` (which adds and returns its parser) and ``run(args) -> int``.
Subcommands are discovered from those modules; a module that fails to import only
breaks its own subcommand. Errors print ``error:`` lines and exit 1, with the Python
traceback only under ``--debug`` (shared with ``stepwell-opt``).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from stepwell.tools._errors import ArgumentParser, cli_main, version_text

PROG = "stepwell"


def subcommand_modules() -> list[str]:
    """Names of the ``cmd_<name>`` modules next to this one."""
    import stepwell.tools as tools
    return sorted(m.name for m in pkgutil.iter_modules(tools.__path__) if m.name.startswith("cmd_"))


def _broken(name: str, error: BaseException):
    """A stand-in subcommand for a module that failed to import: running it reports why."""
    def run(args) -> int:
        from stepwell.core.diagnostics import StepwellError
        raise StepwellError(f"subcommand '{name}' is unavailable: {type(error).__name__}: {error} "
                            "(reinstall: pip install -e '.[test]')")
    return run


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, allow_abbrev=False,
                       description="stepwell: a multi-level ML compiler on MLIR (nn -> prim -> linalg -> IREE).",
                       epilog=f"Run '{PROG} <command> --help' for a command's options; "
                              "'stepwell-opt' is the mlir-opt-style IR tool.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks of internal errors")
    p.add_argument("--version", action="version", version=version_text(PROG))
    sub = p.add_subparsers(dest="command", metavar="<command>", parser_class=ArgumentParser)
    for module_name in subcommand_modules():
        name = module_name[len("cmd_"):].replace("_", "-")
        try:
            module = importlib.import_module(f"stepwell.tools.{module_name}")
            parser = module.add_parser(sub)
            runner = module.run
        except Exception as e:  # noqa: BLE001  (one broken subcommand must not break the rest)
            parser, runner = sub.add_parser(name, help=f"(unavailable: {type(e).__name__})"), _broken(name, e)
        if parser is None:
            parser = sub.choices.get(name)
        if parser is not None:
            if "--debug" not in parser._option_string_actions:
                # also accepted after the subcommand; SUPPRESS keeps a leading --debug
                parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                    help="show Python tracebacks of internal errors")
            parser.set_defaults(_run=runner)
    return p


def run(args) -> int:
    runner = getattr(args, "_run", None)
    if runner is None:
        build_parser().print_help(sys.stderr)
        return 1
    return runner(args)


def main(argv: list[str] | None = None) -> int:
    return cli_main(build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
