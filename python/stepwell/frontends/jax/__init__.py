"""The JAX frontend (public as ``sw.jax``, ``stepwell/jax/__init__.py``).

============  ============================================================================
``importer``  JAX function -> StableHLO -> stepwell ``Module`` (``sw.jax.import_function``)
``raising``   StableHLO raised to ``nn``/``prim``, and the report of what was found
``jit``       ``sw.jax.jit``: a drop-in for ``jax.jit`` that compiles through stepwell
============  ============================================================================
"""
