"""Checking numbers: the reference interpreter, ``--check-numerics``, tolerances, JAX as oracle.

================  =======================================================================
``interpreter``   run ``nn``/``prim`` IR with the ops' numpy references
``check``         ``Pipeline(..., check_numerics=True)``: the first pass that changes results
``testing``       per-dtype tolerances, ``assert_close``, ``assert_matches_jax``
================  =======================================================================
"""
