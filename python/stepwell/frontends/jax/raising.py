"""Raising StableHLO into ``nn``/``prim`` from Python, and what it found::

    m = sw.parse(jax.jit(f).lower(x).as_text())
    r = sw.raising.raise_stablehlo(m)      # runs the stablehlo-to-nn pass in place
    print(r)                               # raised 40 of 42 StableHLO ops (3 composites: ...); left: ...
    r.composites                           # {"nn.softmax": 1, ...}
    sw.raising.report(m).left              # StableHLO ops still in any module, by name
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Report", "raise_stablehlo", "report"]


@dataclass
class Report:
    """How much of a module's StableHLO became ``nn``/``prim``."""

    total: int | None               # StableHLO/CHLO ops before raising (None: not known)
    raised: int | None              # of those, how many were rewritten
    left: dict = field(default_factory=dict)        # StableHLO ops left, by name
    composites: dict = field(default_factory=dict)  # nn ops recognized from op DAGs, by name

    @property
    def fully_raised(self) -> bool:
        return not self.left

    def __str__(self) -> str:
        from stepwell.passes.stablehlo_to_nn import format_stats
        if self.total is not None:
            return format_stats(self.__dict__)
        comp = ", ".join(f"{n} x{c}" for n, c in self.composites.items()) or "none"
        left = ", ".join(f"{n} x{c}" for n, c in self.left.items()) or "none"
        return f"{sum(self.left.values())} StableHLO ops (left: {left}); composites: {comp}"


def raise_stablehlo(module, *, composites: bool = True, inline: bool = True) -> Report:
    """Run ``stablehlo-to-nn`` on ``module`` (in place, verified after) and report on it."""
    from stepwell.core.pipeline import Pipeline
    from stepwell.passes.stablehlo_to_nn import StablehloToNn
    pipeline = Pipeline(str(StablehloToNn(composites=composites, inline=inline)))
    pipeline.run(module)
    return Report(**pipeline.steps[0].pass_.stats)


def report(module) -> Report:
    """The StableHLO ops ``module`` holds and the composite nn ops it has (any module:
    ``total`` and ``raised`` are None, only the pass knows what was there before)."""
    from stepwell.passes.stablehlo_to_nn import COMPOSITE_OPS, source_counts
    counts = module.op_counts()
    left = dict(sorted(source_counts(module).items(), key=lambda kv: (-kv[1], kv[0])))
    composites = {n: counts[n] for n in COMPOSITE_OPS if counts.get(n)}
    return Report(total=None, raised=None, left=left, composites=composites)
