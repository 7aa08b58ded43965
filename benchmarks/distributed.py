#!/usr/bin/env python3
"""Several devices and several processes, measured (docs/distributed.md).

    python benchmarks/distributed.py compile          # compile time and executables vs N
    python benchmarks/distributed.py replicas         # requests/s: 1 vs 2 replicas (Ray)
    python benchmarks/distributed.py pipeline         # 2 stages on Ray: one by one vs overlapped
    python benchmarks/distributed.py all --model tiny

``compile``: GPT-2 tiny (nn builders, Megatron specs) on 1, 2, 4 and 8 devices, without
the compile cache: seconds (stepwell's partitioning and lowering, then IREE) and the
executables and dispatches in IREE's flow IR. ``replicas``: batch-1 GPT-2 requests
(``--model small``: GPT-2 small at sequence 32; ``tiny``) through ``Replicas`` with 1
and then 2 copies, one IREE thread each, interleaved ``--rounds`` times; the best round
of each. ``pipeline``: the same requests through a 2-stage ``RayPipeline``, one call at a
time and then all at once (``map``: overlapped micro-batches). Ratios are what to read;
on a shared machine say how loaded it was (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench_compile() -> None:
    import stepwell as sw
    from stepwell.compiler import devices, driver
    from distributed_cases import sharded, single  # noqa: F401
    print("devices  partition+lower s  iree s  executables  dispatches")
    for n in (1, 2, 4, 8):
        m, _, mesh = sharded("gpt2", max(n, 2))
        start = time.perf_counter()
        part = devices.partition(m, mesh) if n > 1 else m
        lowered = sw.lower(part, "linalg", target="cpu")
        mid = time.perf_counter()
        driver.compile_vmfb(lowered, "cpu", cache=False)
        end = time.perf_counter()
        flow = driver.compile_to(lowered, "dispatch", target="cpu")
        execs = len(re.findall(r"^\s*flow\.executable (?:private )?@", flow, re.M))
        print(f"{n:7d}  {mid - start:17.2f}  {end - mid:6.2f}  {execs:11d}  "
              f"{len(re.findall(r'flow.dispatch @', flow)):10d}")


def _export(model: str, tmp: str):
    import gpt2
    import stepwell as sw
    fn, params, (ids, lengths) = gpt2.factory(model, seq_len=32)
    single, pp = os.path.join(tmp, "single"), os.path.join(tmp, "pp")
    if not os.path.exists(single):  # ("all" measures both from one export)
        sw.jax.export(fn, params, ids, lengths, path=single)
        sw.jax.export(fn, params, ids, lengths, path=pp, stages=2)
    requests = [(ids, np.array([1 + i % 31], np.int32)) for i in range(32)]
    return single, pp, requests


def bench_replicas(model: str, rounds: int, tmp: str) -> None:
    import stepwell as sw
    from stepwell.distributed.actors import connect
    single, _, requests = _export(model, tmp)
    connect(None, num_cpus=4)
    best = {1: 0.0, 2: 0.0}
    pools = {n: sw.distributed.Replicas(single, replicas=n) for n in (1, 2)}
    for pool in pools.values():
        pool.map(requests[:4])  # warm up
    for _ in range(rounds):
        for n, pool in pools.items():
            start = time.perf_counter()
            pool.map(requests)
            best[n] = max(best[n], len(requests) / (time.perf_counter() - start))
    for pool in pools.values():
        pool.close()
    print(f"replicas ({model}, batch 1, {len(requests)} requests, best of {rounds}): "
          f"1 copy {best[1]:.1f} req/s, 2 copies {best[2]:.1f} req/s, ratio {best[2] / best[1]:.2f}")


def bench_pipeline(model: str, rounds: int, tmp: str) -> None:
    import stepwell as sw
    from stepwell.distributed.actors import connect
    _, pp, requests = _export(model, tmp)
    connect(None, num_cpus=4)
    with sw.distributed.RayPipeline(pp) as pipe:
        pipe.map(requests[:4])
        serial = overlapped = 0.0
        for _ in range(rounds):
            start = time.perf_counter()
            for r in requests:
                pipe(*r)
            serial = max(serial, len(requests) / (time.perf_counter() - start))
            start = time.perf_counter()
            pipe.map(requests)
            overlapped = max(overlapped, len(requests) / (time.perf_counter() - start))
    print(f"pipeline ({model}, 2 stages, {len(requests)} requests, best of {rounds}): one at a "
          f"time {serial:.1f} req/s, overlapped {overlapped:.1f} req/s, ratio {overlapped / serial:.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("compile", "replicas", "pipeline", "all"))
    p.add_argument("--model", default="small", choices=("tiny", "small"))
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    print(f"load average before: {load_average()} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as tmp:
        if a.what in ("compile", "all"):
            bench_compile()
        if a.what in ("replicas", "all"):
            bench_replicas(a.model, a.rounds, tmp)
        if a.what in ("pipeline", "all"):
            bench_pipeline(a.model, a.rounds, tmp)
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
