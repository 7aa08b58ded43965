#!/usr/bin/env python3
"""Run the benchmark suite from a checkout: ``python benchmarks/run.py --quick``.

The same as ``stepwell bench ...``: the harness lives in the installed package
(``stepwell.bench``) so that ``stepwell bench`` works on a fresh install. By
default the JSON and Markdown reports go to ``benchmarks/results/<target>-<date>``.
"""

from __future__ import annotations

import datetime
import os
import sys


def main(argv: list[str]) -> int:
    from stepwell.tools.main import main as stepwell_main
    argv = list(argv)
    if "--list" not in argv and "--json" not in argv and "--tiny" not in argv:
        target = argv[argv.index("--target") + 1] if "--target" in argv else "cpu"
        mode = "-quick" if "--quick" in argv else ""
        stem = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            f"{target.replace(':', '-')}{mode}-{datetime.date.today().isoformat()}")
        argv += ["--json", stem + ".json", "--md", stem + ".md", "--plot", stem + ".png"]
    return stepwell_main(["bench", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
