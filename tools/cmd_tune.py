"""``stepwell tune model.mlir --budget 300`` searches configurations into the tuning database.

The input is an MLIR file (``nn``/linalg/StableHLO, as ``stepwell compile`` takes) or an
export factory ``FILE.py:FACTORY`` (as ``stepwell export`` takes). Every trial is
recorded as it ends (Ctrl-C keeps them; a rerun resumes); later compiles apply the
best configuration of each op. ``--show``, ``--export FILE.json`` and ``--import
FILE.json`` read, write and merge the database (docs/tuning.md).
"""

from __future__ import annotations

import json
import os


def add_parser(subparsers):
    p = subparsers.add_parser(
        "tune", help="search per-op configurations on this machine into the tuning database",
        description="Tune the contractions and convolutions of a model for this machine: "
                    "candidate configurations are compiled in parallel and timed against the "
                    "untuned compile; what wins goes to the tuning database that every compile "
                    "reads (docs/tuning.md).")
    p.add_argument("input", nargs="?", metavar="INPUT",
                   help="an MLIR file ('-' for stdin) or an export factory FILE.py:FACTORY")
    p.add_argument("--target", default="cpu", help="a CPU target that runs here (default: cpu)")
    p.add_argument("--budget", type=float, default=300.0, metavar="SECONDS",
                   help="time for the whole search (default: 300)")
    p.add_argument("--max-candidates", type=int, default=24, metavar="N",
                   help="configurations tried per op at most (default: 24)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default: 5)")
    p.add_argument("--jobs", type=int, default=None, help="parallel compiles (default: one per core)")
    p.add_argument("--ray", metavar="auto|ADDRESS|local", default=None,
                   help="run trials on Ray: 'auto' (the running cluster), an address, or 'local' "
                        "(start one here); needs pip install \"stepwell[ray]\"")
    p.add_argument("--db", metavar="PATH", default=None,
                   help="the tuning database (default: $STEPWELL_TUNING_DB or the cache folder's)")
    p.add_argument("--precision", metavar="POLICY", help="precision policy, as for stepwell compile")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for a factory (repeatable)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--show", action="store_true", help="print the database's entries and exit")
    what.add_argument("--export", metavar="FILE.json", help="write the database's entries to a JSON file")
    what.add_argument("--import", dest="import_", metavar="FILE.json",
                      help="merge a JSON file written by --export (faster entries win)")
    return p


def _module(args):
    from stepwell.core.diagnostics import StepwellError
    spec = args.input
    if spec == "-" or spec.endswith((".mlir", ".mlirbc")) or (os.path.isfile(spec) and not spec.endswith(".py")):
        from stepwell.core.module import parse_file
        return parse_file(spec)
    from stepwell.tools.cmd_export import factory_kwargs, load_factory
    from stepwell.tuner.inputs import factory_module
    made = load_factory(spec)(**factory_kwargs(args.arg))
    if not isinstance(made, (tuple, list)) or len(made) != 3:
        raise StepwellError(f"the factory '{spec}' must return (fn, params, example_args), "
                            f"got {type(made).__name__}")
    return factory_module(*made)


def run(args) -> int:
    from rich.console import Console

    from stepwell.compiler.tuning_db import TuningDB, TuningDBError
    from stepwell.core.diagnostics import StepwellError
    from stepwell.tools._errors import write_atomic
    from stepwell.tuner.report import show_database

    if args.show or args.export or args.import_:
        db = TuningDB(args.db, create=bool(args.import_))  # --show, --export only read
        if args.show:
            show_database(Console(), db)
        elif args.export:
            write_atomic(args.export, json.dumps(db.export_json(), indent=1) + "\n")
            print(f"wrote {len(db.entries())} entries of {db.path} to {args.export}")
        else:
            try:
                with open(args.import_) as f:
                    document = json.load(f)
            except OSError as e:
                raise StepwellError(f"cannot read '{args.import_}': {e.strerror}") from None
            except json.JSONDecodeError as e:
                raise TuningDBError(f"{args.import_}:{e.lineno}:{e.colno}: not JSON ({e.msg})") from None
            taken, kept = db.import_json(document, args.import_)
            print(f"imported {taken} entries into {db.path}" + (f"; kept {kept} of ours (faster)" if kept else ""))
        return 0
    if args.input is None:
        raise StepwellError("stepwell tune needs an INPUT (an MLIR file or FILE.py:FACTORY), "
                            "or one of --show, --export, --import")
    for name, value, low in (("--budget", args.budget, 1), ("--max-candidates", args.max_candidates, 1),
                             ("--rounds", args.rounds, 2), ("--jobs", args.jobs or 1, 1)):
        if value < low:
            raise StepwellError(f"{name} must be at least {low}, not {value:g}")
    from stepwell.tuner import check_target, tune
    check_target(args.target)  # before any work: a GPU or cross target says so at once
    report = tune(_module(args), args.target, budget=args.budget, db=args.db,
                  max_candidates=args.max_candidates, rounds=args.rounds, jobs=args.jobs,
                  ray=args.ray, precision=args.precision)
    return 130 if report.interrupted else 0
