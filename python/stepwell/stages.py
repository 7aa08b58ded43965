"""The stage ladder (DESIGN.md): ``nn -> prim -> linalg -> vector``, then IREE's
``dispatch`` and ``vmfb``. ``sw.lower(m, to=stage)`` returns a lowered copy."""

from __future__ import annotations

from stepwell.diagnostics import StepwellError
from stepwell.module import Module
from stepwell.pipeline import Pipeline

STAGES = ("nn", "prim", "linalg", "vector", "dispatch", "vmfb")

# stage -> the named pipeline that reaches it from the nn level
PIPELINES = {"nn": "", "prim": "to-prim", "linalg": "to-linalg", "vector": "to-vector"}


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise StepwellError(f"unknown stage '{stage}' (stages: {', '.join(STAGES)})")
    return stage


def lower(module: Module, to: str = "linalg", *, target: str = "cpu", snapshots: bool = False):
    """A copy of ``module`` lowered to stage ``to``.

    ``nn``/``prim``/``linalg``/``vector`` return a :class:`Module`; ``dispatch``
    returns IREE's flow-level IR as text, ``vmfb`` the compiled module's bytes.
    """
    check_stage(to)
    if to in ("dispatch", "vmfb"):
        from stepwell import compiler
        linalg = lower(module, "linalg")
        return compiler.compile_to(linalg, to, target=target)
    copy = module.clone()
    Pipeline(PIPELINES[to], snapshots=snapshots).run(copy)
    return copy
