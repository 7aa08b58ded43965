"""``stepwell bench``: the benchmark suite, measured side by side in one process.

    from stepwell import bench
    doc = bench.run(bench.Options(mode="quick", filter=("matmul",)))
    bench.report.write_json(doc, "out.json"); bench.report.plot(doc, "out.png")

Workloads (``workloads.py``) are written once in JAX and, where the ``nn`` dialect
can express them, with the ``nn`` builders; runners (``runners.py``) are stepwell
from ``nn``, stepwell from JAX (``sw.jax.jit``, when present), plain IREE on JAX's
StableHLO, ``jax.jit`` and numpy. ``probe.py`` measures the machine's f32 peak;
``harness.py`` times the runners round-robin; ``report.py`` renders the results.
"""

from __future__ import annotations

from stepwell.bench import report
from stepwell.bench.harness import Options, run, select
from stepwell.bench.runners import RUNNERS
from stepwell.bench.workloads import MODES, Workload, suite

__all__ = ["Options", "run", "select", "suite", "report", "RUNNERS", "MODES", "Workload"]
