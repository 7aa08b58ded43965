"""Fuzzing stepwell: random programs, mutated texts, random JAX functions.

``python -m stepwell.fuzz programs|text|jax --count N --seed S --report DIR`` runs a
campaign; ``pytest -m fuzz`` runs a fixed-seed slice of each (``tests/python/test_fuzz.py``,
part of CI). Three kinds:

* :mod:`~stepwell.fuzz.run_programs` (programs): random valid ``nn`` programs
  (:mod:`~stepwell.fuzz.programs`, also a hypothesis strategy) compiled through
  stepwell and compared with the op references and with JAX;
* :mod:`~stepwell.fuzz.text` (text): mutated programs for ``stepwell-opt``: no
  crash, no traceback, every error located;
* :mod:`~stepwell.fuzz.jax_programs` (jax): random JAX functions through
  ``sw.jax.jit`` against ``jax.jit``: no crash, every failure a clear error naming the op.

A case is named by ``(seed, index)``: ``--seed S --index I`` reruns it alone. Reports
(``report.Report``) hold the counts and every failure with its reproducer.
docs/reliability.md has the campaigns run and their figures.
"""
