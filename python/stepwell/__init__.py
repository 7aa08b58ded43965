"""stepwell: a multi-level ML compiler in Python on MLIR.

    import stepwell as sw
    m = sw.parse(text)
    sw.Pipeline("nn-to-prim,prim-to-linalg").run(m)
    exe = sw.compile(m, target="cpu")

This file is the public facade. The library underneath is layered, each layer
importing only the ones below it (``tests/python/test_layering.py``):

    core  <-  dialects, targets, pipelines, models  <-  passes  <-  compiler
          <-  frontends  <-  export, numerics  <-  tuner  <-  bench, distributed, generation
          <-  (sw.*, sw.jax)  <-  tools  <-  fuzz

Where a lower layer must call a higher one (the op registry loading the dialects, a
pipeline finding its passes), it goes through ``stepwell.core.hooks``, provided here.
"""

from __future__ import annotations

import importlib

from stepwell import _compat
from stepwell.core import hooks as _hooks
from stepwell.core.diagnostics import Diagnostic, PassError, StepwellError, VerifyError
from stepwell.core.module import Module, parse, parse_file
from stepwell.core.opspec import Builders
from stepwell.core.pipeline import Pipeline
from stepwell.core.sharding import Mesh
from stepwell.core.types import TensorType
from stepwell.core.version import __version__


def _load_dialects() -> None:
    for name in ("nn", "nn_quant", "nn_moe", "nn_shard", "prim", "prim_moe"):
        importlib.import_module(f"stepwell.dialects.{name}")


def _numerics_checker(*args, **kwargs):
    from stepwell.numerics.check import NumericsChecker
    return NumericsChecker(*args, **kwargs)


def _probe_driver(driver: str):
    from stepwell.compiler.runtime import probe_driver
    return probe_driver(driver)


def _tune(*args, **kwargs):
    from stepwell.tuner import tune
    return tune(*args, **kwargs)


# The calls lower layers make upward (stepwell/core/hooks.py), each importing on first use.
_hooks.provide("dialects", _load_dialects)
_hooks.provide("passes", lambda: importlib.import_module("stepwell.passes"))
_hooks.provide("pipelines", lambda: importlib.import_module("stepwell.pipelines"))
_hooks.provide("numerics_checker", _numerics_checker)
_hooks.provide("probe_driver", _probe_driver)
_hooks.provide("tune", _tune)
_compat.install()

nn = Builders("nn")
prim = Builders("prim")


def shard(value, spec):
    """Lay ``value`` out over the module's mesh as ``spec`` (JAX's spelling: ``("data",
    None)``, ``P(None, "model")``) and return it: the spec goes on the function argument
    or on the op that makes it (``nn.sharding``, docs/distributed.md)."""
    from stepwell.core.sharding import ShardingError, annotate
    try:
        annotate(value, spec)
    except ShardingError as e:
        raise StepwellError(f"sw.shard: {e}") from None
    return value

# Heavier parts load on first use (``sw.jax`` imports JAX, ``sw.compile`` IREE).
_LAZY = {
    "lower": ("stepwell.compiler.stages", "lower"),
    "STAGES": ("stepwell.compiler.stages", "STAGES"),
    "compile": ("stepwell.compiler.driver", "compile"),
    "Executable": ("stepwell.compiler.runtime", "Executable"),
    "load": ("stepwell.distributed.stages", "load"),  # an export folder, or a pipeline of them
    "jax": ("stepwell.jax", None),
    "testing": ("stepwell.numerics.testing", None),
    "targets": ("stepwell.targets", None),
    "interpreter": ("stepwell.numerics.interpreter", None),
    "raising": ("stepwell.frontends.jax.raising", None),
    "cache": ("stepwell.compiler.cache", None),
    "checkpoints": ("stepwell.export.checkpoints", None),
    "distributed": ("stepwell.distributed", None),
    "tune": ("stepwell.tuner", "tune"),
    "generate": ("stepwell.generation", "generate"),
    "Sampler": ("stepwell.generation", "Sampler"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'stepwell' has no attribute '{name}'")


__all__ = ["Diagnostic", "PassError", "StepwellError", "VerifyError", "Module", "parse",
           "parse_file", "Pipeline", "TensorType", "nn", "prim", "shard", "Mesh", "__version__", *_LAZY]
