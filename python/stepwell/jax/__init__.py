"""``sw.jax``: the JAX frontend's public names (the code is in ``stepwell.frontends.jax``
and ``stepwell.export``). Import JAX functions as stepwell modules, and run them through stepwell.

    import stepwell as sw
    m = sw.jax.import_function(fn, *example_args)   # JaxModule: StableHLO raised to nn/prim
    f = sw.jax.jit(fn, target="cpu")                # drop-in for jax.jit
    y = f(*args)                                    # same output pytree as fn

``import_function`` lowers with ``jax.jit(fn).lower`` for one device (the StableHLO
keeps JAX's Python source locations, so errors point at the user's lines), parses it
into stepwell's MLIR context, and, with ``raise_ops=True``, runs the
``stablehlo-to-nn`` pass when it is installed: recognized patterns become ``nn``/``prim``
ops, the rest stays StableHLO. ``sw.compile`` compiles such mixed modules (``nn``/``prim``
lowered to linalg, StableHLO given to IREE's StableHLO input).

``jit(fn, in_shardings=..., out_shardings=...)`` takes JAX's shardings and runs the
function partitioned over the mesh's devices (docs/distributed.md). Not supported (each
fails with an error naming it): ``shard_map``, host callbacks, and the StableHLO ops IREE
3.13 cannot compile (``stepwell.compiler.stablehlo_screen``: non-power-of-two ``fft``,
``triangular_solve`` and other LAPACK calls, overlapping ``select_and_scatter``).
With ``jax_enable_x64``, IREE demotes f64 to f32: results come back as f64 arrays
holding f32 precision.
"""

from __future__ import annotations

from stepwell.frontends.jax.importer import JaxModule, import_function, raise_available
from stepwell.frontends.jax.jit import JitFunction, jit
from stepwell.export import export as _export  # sw.jax.export(fn, params, *args, path=...)


def export(fn, params, *example_args, stages=None, **kwargs) -> dict:
    """``sw.jax.export(fn, params, *args, path=..., target=...)``: a deployable folder
    (``stepwell/export/``). ``stages=N`` (or layer names, or ``fn`` a list of stage
    functions with one params pytree each) writes a pipeline: one export folder per
    stage (``stepwell/distributed/stages.py``, docs/distributed.md). ``in_shardings=``
    (and ``out_shardings=``), as ``jax.jit`` takes them for ``fn(params, *args)``, writes
    one module over the mesh's devices and each device's weights
    (``stepwell/export/sharded.py``)."""
    if "in_shardings" in kwargs or "out_shardings" in kwargs:
        from stepwell.export.sharded import export_sharded
        return export_sharded(fn, params, *example_args, **kwargs)
    if stages is None and not isinstance(fn, (list, tuple)):
        return _export(fn, params, *example_args, **kwargs)
    from stepwell.distributed.stages import export_stages
    return export_stages(fn, params, *example_args, stages=2 if stages is None else stages, **kwargs)


__all__ = ["import_function", "jit", "export", "JaxModule", "JitFunction", "raise_available"]
