"""``python -m stepwell.fuzz {programs,text,jax} [--count N] [--seed S] [--report DIR]``.

Runs a campaign and prints its summary; ``--report DIR`` writes ``<kind>-report.json``
(counts, failures) and a reproducer file per failure, refreshed as the campaign goes
(a campaign that dies leaves its report so far). ``--index I`` reruns one case and
prints it. Exit status 1 when any case failed.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m stepwell.fuzz", description=__doc__.split("\n\n")[1])
    p.add_argument("kind", choices=("programs", "text", "jax"))
    p.add_argument("--count", type=int, default=100, help="cases to run (default 100)")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    p.add_argument("--start", type=int, default=0, help="first case index (default 0)")
    p.add_argument("--index", type=int, help="run only case INDEX and print it")
    p.add_argument("--target", default="cpu", help="compile target (programs, jax)")
    p.add_argument("--report", metavar="DIR", help="write the report and reproducers here")
    args = p.parse_args(argv)
    from stepwell.fuzz import jax_programs, run_programs, text
    module = {"programs": run_programs, "text": text, "jax": jax_programs}[args.kind]
    start, count = (args.index, 1) if args.index is not None else (args.start, args.count)
    kwargs = {"target": args.target} if args.kind != "text" else {}

    def progress(report):
        if args.report:
            report.write(args.report)
        print(report.summary(), file=sys.stderr, flush=True)
    report = module.run(count, args.seed, start=start, progress=progress, **kwargs)
    if args.report:
        print(f"report: {report.write(args.report)}")
    print(report.summary())
    if args.index is not None:
        for f in report.failures:
            print(f"--- {f.outcome}: {f.detail}\n{f.reproducer}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
