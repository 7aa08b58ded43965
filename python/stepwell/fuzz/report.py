"""A fuzzing campaign's report: counts by outcome, each failure with its reproducer.

``Report.write(folder)`` leaves ``report.json`` (kind, seed, counts, seconds, failures)
and one reproducer file per failure (``<kind>-<n>.mlir``/``.py``/``.txt``), so every
failure can be rerun alone: ``python -m stepwell.fuzz <kind> --seed S --index I``.
"""

from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import asdict, dataclass, field

# Outcomes: "ok" and "refused" (a clear, located error) count as passes; the rest fail.
PASS = ("ok", "refused")
FAIL = ("crash", "traceback", "mismatch", "compile", "unlocated", "unclear", "generator")


@dataclass
class Failure:
    outcome: str          # one of FAIL
    index: int            # the case number: --seed S --index I reruns it
    detail: str           # what went wrong (first lines)
    reproducer: str       # the program (MLIR text, Python source, or the mutated text)
    extra: dict = field(default_factory=dict)


@dataclass
class Report:
    kind: str
    seed: int
    counts: collections.Counter = field(default_factory=collections.Counter)
    failures: list = field(default_factory=list)
    started: float = field(default_factory=time.time)
    notes: dict = field(default_factory=dict)

    def add(self, outcome: str, index: int, detail: str = "", reproducer: str = "", **extra) -> None:
        self.counts[outcome] += 1
        if outcome in FAIL:
            self.failures.append(Failure(outcome, index, detail[:2000], reproducer, extra))

    @property
    def cases(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        return sum(self.counts[o] for o in FAIL)

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        return (f"{self.kind}: {self.cases} cases (seed {self.seed}) in "
                f"{time.time() - self.started:.0f} s: {parts or 'none'}; {self.failed} failed")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, "cases": self.cases, "failed": self.failed,
                "counts": dict(self.counts), "seconds": round(time.time() - self.started, 1),
                "notes": self.notes, "failures": [asdict(f) for f in self.failures]}

    def write(self, folder: str) -> str:
        """``report.json`` and one reproducer file per failure in ``folder``."""
        os.makedirs(folder, exist_ok=True)
        ext = {"programs": ".mlir", "text": ".txt", "jax": ".py"}.get(self.kind, ".txt")
        for n, f in enumerate(self.failures):
            path = os.path.join(folder, f"{self.kind}-{n}-{f.outcome}{ext}")
            with open(path, "w", encoding="utf-8") as out:
                out.write(f.reproducer)
            f.extra["file"] = os.path.basename(path)
        path = os.path.join(folder, f"{self.kind}-report.json")
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.to_dict(), out, indent=1)
        return path
