"""Named pipelines: each ``pipelines/<name>.py`` holds ``PASSES``, a plain list of
pass (or pipeline) names. ``to-prim`` is ``pipelines/to_prim.py``."""

from __future__ import annotations

import importlib
import pkgutil


def _module_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str) -> list[str] | None:
    """The pass list of the named pipeline, or None."""
    module = name.replace("-", "_")
    if module not in _module_names():
        return None
    return list(importlib.import_module(f"{__name__}.{module}").PASSES)


def summary(name: str) -> str:
    mod = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return (mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else ""


def names() -> list[str]:
    return [m.replace("_", "-") for m in _module_names()]
