"""Where the fuzzers' random decisions come from: a seeded ``random.Random`` (long
campaigns, ``python -m stepwell.fuzz``) or hypothesis's ``draw`` (``pytest -m fuzz``,
with shrinking). The generators only call these four methods, so both give the same
programs' distribution and a campaign's case ``seed, index`` is its reproducer."""

from __future__ import annotations

import random


class Chooser:
    """Random decisions from ``random.Random(seed)``."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def boolean(self, p: float = 0.5) -> bool:
        return self.rng.random() < p

    def pick(self, options):
        options = list(options)
        return options[self.rng.randrange(len(options))]

    def subset(self, options) -> list:
        return [o for o in options if self.boolean()]


class DrawChooser(Chooser):
    """Random decisions from a hypothesis ``draw`` (inside ``st.composite``)."""

    def __init__(self, draw):
        from hypothesis import strategies as st
        self.draw, self.st = draw, st

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(self.st.integers(lo, hi))

    def boolean(self, p: float = 0.5) -> bool:
        return self.draw(self.st.booleans())

    def pick(self, options):
        return self.draw(self.st.sampled_from(list(options)))
