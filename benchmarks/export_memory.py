"""Peak memory of exporting the GPT-2 small example (124M parameters, ~498 MB of f32).

    python benchmarks/export_memory.py [--config small|tiny] [--json out.json]

Run in its own process. The weights are created first (Flax init under JAX, as a
user would have them); then the process's peak RSS is reset (``/proc/self/clear_refs``)
and ``sw.jax.export`` runs with the compilation cache off. Reported:

- ``weights``: bytes of all parameter leaves;
- ``rss_before``: the process's RSS with the weights in memory (JAX, IREE's compiler
  bindings and the weights);
- ``peak``: the process's peak RSS during the export, and ``extra = peak - rss_before``:
  what exporting added on top of what was already there;
- ``python_peak``: tracemalloc's peak of Python-level allocations during the export
  (numpy copies of weights would show here);

``iree-compile`` runs as a subprocess on the module text, which holds no weights (its
own peak is not in these numbers; ``getrusage`` of children would count the forked
parent's pages).

The goal (issue 7) is ``peak < 3 x weights``, with the export itself holding at most
one extra copy of the weights (``extra <= 1 x weights``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small", choices=("small", "tiny"))
    p.add_argument("--json", help="write the numbers to this file")
    a = p.parse_args()

    import gc

    import jax
    import numpy as np

    import gpt2
    import stepwell as sw
    from stepwell.bench.memory import reset_hwm, status_kib

    fn, params, args = gpt2.factory(config=a.config)
    jax.block_until_ready(params)
    weights = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(params))
    gc.collect()
    rss_before = status_kib("VmRSS") * 1024
    reset = reset_hwm()
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        manifest = sw.jax.export(fn, params, *args, path=os.path.join(tmp, "gpt2"), cache=False)
        seconds = time.perf_counter() - t
        _, python_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak = status_kib("VmHWM") * 1024
        irpa = manifest["files"]["params.irpa"]["bytes"]
    mb = 1 << 20
    out = {
        "config": a.config, "parameters": gpt2.parameter_count(params),
        "weights_mb": round(weights / mb, 1), "irpa_mb": round(irpa / mb, 1),
        "rss_before_mb": round(rss_before / mb, 1), "peak_mb": round(peak / mb, 1),
        "extra_mb": round((peak - rss_before) / mb, 1),
        "peak_over_weights": round(peak / weights, 2),
        "extra_over_weights": round((peak - rss_before) / weights, 2),
        "python_peak_mb": round(python_peak / mb, 1),
        "export_seconds": round(seconds, 1), "peak_reset": reset,
    }
    for k, v in out.items():
        print(f"{k:20s} {v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    ok = peak < 3 * weights
    print("peak < 3x weights: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
