"""Old module paths, kept importable: ``import stepwell.opspec`` is ``stepwell.core.opspec``.

Before the package was layered (core, compiler, numerics, frontends, export) every module
sat in ``python/stepwell/``; the README, docs and users' code name some of those paths.
Each old path is an alias of the module that now holds the code (the same module object,
so registries are not duplicated), resolved on first import by a finder installed by the
package root.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# old path -> new path
ALIASES = {
    "stepwell.ir": "stepwell.core.ir",
    "stepwell.types": "stepwell.core.types",
    "stepwell.diagnostics": "stepwell.core.diagnostics",
    "stepwell.files": "stepwell.core.files",
    "stepwell.opspec": "stepwell.core.opspec",
    "stepwell.verifier": "stepwell.core.verifier",
    "stepwell.module": "stepwell.core.module",
    "stepwell.passes_base": "stepwell.core.passes_base",
    "stepwell.pipeline": "stepwell.core.pipeline",
    "stepwell.quantize": "stepwell.core.quantize",
    "stepwell.prim_builder": "stepwell.dialects.prim_builder",
    "stepwell.tiling": "stepwell.targets.tiling",
    "stepwell.stages": "stepwell.compiler.stages",
    "stepwell.cache": "stepwell.compiler.cache",
    "stepwell.runtime": "stepwell.compiler.runtime",
    "stepwell.inputs": "stepwell.compiler.inputs",
    "stepwell.interpreter": "stepwell.numerics.interpreter",
    "stepwell.numerics_check": "stepwell.numerics.check",
    "stepwell.testing": "stepwell.numerics.testing",
    "stepwell.raising": "stepwell.frontends.jax.raising",
    "stepwell.checkpoints": "stepwell.export.checkpoints",
}


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and hands back the module at its new path."""

    def __init__(self):
        self._specs = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ALIASES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(ALIASES[spec.name])
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # the import system stamped the alias's spec on the module: give it its own back
        module.__spec__ = self._specs.pop(module.__spec__.name, module.__spec__)


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
