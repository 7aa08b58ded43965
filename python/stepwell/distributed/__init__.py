"""Several devices and several hosts (docs/distributed.md).

One host, several devices: ``sw.compile(m, mesh=...)`` and ``sw.jax.jit(f,
in_shardings=...)`` partition a module (``passes/nn_partition.py``) into one IREE
module over the mesh's devices (``compiler/devices.py``, ``compiler/multidevice.py``).
This package holds what sits above the compiler and the export:

=============  =========================================================================
``schedule``   who waits for whom, read from IREE's stream IR of a partitioned module
``plans``      tensor-parallel specs for the usual layer names (Megatron's layout)
``stages``     a model cut into pipeline stages: one export folder per stage
``actors``     stages on Ray actors (pipeline parallelism), replicas behind one call
=============  =========================================================================

Ray is optional (``pip install 'stepwell[ray]'``); without it the Ray runners say so.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "tensor_parallel": ("stepwell.distributed.plans", "tensor_parallel"),
    "shard_arguments": ("stepwell.distributed.plans", "shard_arguments"),
    "export_stages": ("stepwell.distributed.stages", "export_stages"),
    "load_stages": ("stepwell.distributed.stages", "load_stages"),
    "RayPipeline": ("stepwell.distributed.actors", "RayPipeline"),
    "Replicas": ("stepwell.distributed.actors", "Replicas"),
    "compute_waits": ("stepwell.distributed.schedule", "compute_waits"),
}


_MODULES = ("schedule", "plans", "stages", "actors")


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"stepwell.distributed.{name}")
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'stepwell.distributed' has no attribute '{name}'")


__all__ = list(_LAZY)
