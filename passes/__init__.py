"""The pass registry: one pass per file, ``passes/<name_with_underscores>.py``.

Passes are imported lazily: looking up ``nn-to-prim`` imports ``nn_to_prim`` only.
"""

from __future__ import annotations

import importlib
import pkgutil

from stepwell.core.passes_base import PASSES, Pass, register  # noqa: F401


def _module_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str) -> type[Pass] | None:
    """The pass class registered as ``name`` (kebab-case), or None."""
    if name not in PASSES:
        module = name.replace("-", "_")
        if module in _module_names():
            importlib.import_module(f"{__name__}.{module}")
    return PASSES.get(name)


def load_all() -> dict[str, type[Pass]]:
    for module in _module_names():
        importlib.import_module(f"{__name__}.{module}")
    return dict(sorted(PASSES.items()))


def names() -> list[str]:
    return list(load_all())
