"""The stage ladder (DESIGN.md): ``nn -> prim -> linalg -> vector``, then IREE's
``dispatch`` and ``vmfb``. ``sw.lower(m, to=stage)`` returns a lowered copy."""

from __future__ import annotations

from stepwell.core.diagnostics import StepwellError
from stepwell.core.module import Module, as_module
from stepwell.core.pipeline import Pipeline

STAGES = ("nn", "prim", "linalg", "vector", "dispatch", "vmfb")

# stage -> the named pipeline that reaches it from the nn level
PIPELINES = {"nn": "", "prim": "to-prim", "linalg": "to-linalg", "vector": "to-vector"}


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise StepwellError(f"unknown stage '{stage}' (stages: {', '.join(STAGES)})")
    return stage


def pipeline_text(to: str, target=None) -> str:
    """The pipeline from ``nn`` to stage ``to``: the named pipeline, or, for a target,
    its expansion with the target's ``pass_options`` (``prim-to-linalg{widen=true}`` on
    the x86 cpu targets) and ``linalg-vectorize{target=<name>}`` (that target's tiles)."""
    name = PIPELINES[check_stage(to)]
    if target is None or not name:
        return name
    from stepwell import pipelines, targets
    t = targets.get(target)
    options = {p.split("{", 1)[0]: p for p in t.pass_options}
    options.setdefault("linalg-vectorize", f"linalg-vectorize{{target={t.name}}}")  # its tiles

    def expand(item: str) -> list[str]:
        inner = pipelines.get(item)
        return [p for sub in inner for p in expand(sub)] if inner else [options.get(item, item)]
    return ",".join(expand(name))


def lower(module: Module, to: str = "linalg", *, target=None, snapshots: bool = False):
    """A copy of ``module`` (a Module or MLIR text) lowered to stage ``to``.

    ``nn``/``prim``/``linalg``/``vector`` return a :class:`Module`; ``dispatch``
    returns IREE's flow-level IR as text, ``vmfb`` the compiled module's bytes.
    ``target`` (default: none for the stepwell stages, ``cpu`` for IREE's) applies that
    target's pass options, as :func:`stepwell.compile` does.
    """
    check_stage(to)
    module = as_module(module, "sw.lower")
    if to in ("dispatch", "vmfb"):
        from stepwell.compiler import driver as compiler
        target = target or "cpu"
        linalg = lower(module, "linalg", target=target)
        return compiler.compile_to(linalg, to, target=target)
    copy = module.clone()
    Pipeline(pipeline_text(to, target), snapshots=snapshots).run(copy)
    return copy
