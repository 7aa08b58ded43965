"""stepwell: a multi-level ML compiler in Python on MLIR.

    import stepwell as sw
    m = sw.parse(text)
    sw.Pipeline("nn-to-prim,prim-to-linalg").run(m)
    exe = sw.compile(m, target="cpu")
"""

from __future__ import annotations

import importlib

from stepwell.diagnostics import Diagnostic, PassError, StepwellError, VerifyError
from stepwell.module import Module, parse, parse_file
from stepwell.opspec import Builders
from stepwell.pipeline import Pipeline
from stepwell.types import TensorType

__version__ = "0.1.0"

nn = Builders("nn")
prim = Builders("prim")

# Heavier parts load on first use (``sw.jax`` imports JAX, ``sw.compile`` IREE).
_LAZY = {
    "lower": ("stepwell.stages", "lower"),
    "STAGES": ("stepwell.stages", "STAGES"),
    "compile": ("stepwell.compiler", "compile"),
    "Executable": ("stepwell.runtime", "Executable"),
    "load": ("stepwell.export", "load"),
    "jax": ("stepwell.jax", None),
    "testing": ("stepwell.testing", None),
    "targets": ("stepwell.targets", None),
    "interpreter": ("stepwell.interpreter", None),
    "raising": ("stepwell.raising", None),
    "cache": ("stepwell.cache", None),
}


def __getattr__(name: str):
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'stepwell' has no attribute '{name}'")


__all__ = ["Diagnostic", "PassError", "StepwellError", "VerifyError", "Module", "parse",
           "parse_file", "Pipeline", "TensorType", "nn", "prim", *_LAZY]
