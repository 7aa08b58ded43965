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

Not supported (each fails with an error naming it): multi-device programs
(``shard_map``, more than one partition), host callbacks, and the StableHLO ops IREE
3.13 cannot compile (``stepwell.compiler.stablehlo_screen``: non-power-of-two ``fft``,
``triangular_solve`` and other LAPACK calls, overlapping ``select_and_scatter``).
With ``jax_enable_x64``, IREE demotes f64 to f32: results come back as f64 arrays
holding f32 precision.
"""

from __future__ import annotations

from stepwell.frontends.jax.importer import JaxModule, import_function, raise_available
from stepwell.frontends.jax.jit import JitFunction, jit
from stepwell.export import export  # sw.jax.export(fn, params, *args, path=...): stepwell/export/

__all__ = ["import_function", "jit", "export", "JaxModule", "JitFunction", "raise_available"]
