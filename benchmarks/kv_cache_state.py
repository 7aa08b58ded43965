"""Where a KV cache lives between decode steps: module state or a buffer updated in place.

    python benchmarks/kv_cache_state.py                 # GPT-2 small's cache, context 256 and 1024
    python benchmarks/kv_cache_state.py --batch 8 --context 256

One decode step is modelled by what it does to the cache: write one position of keys
and values for every layer, then read the whole cache once (attention reads every
cached position). Three ways to keep the cache across calls, compiled by IREE for the
host CPU and timed in one process (median of interleaved calls):

``buffer``   the cache is an input and an output (what ``sw.jax.export(..., state=...)``
             does): the caller keeps the result on the device and passes it back; IREE
             writes the new position into the buffer it was given (no copy)
``global``   the cache is a mutable ``util.global`` of the module: load, insert, store
``host``     the cache goes through numpy each call (copied to the device and back)
``read``     the whole-cache read alone (no update), the floor of the three

stepwell uses ``buffer`` (docs/llm.md): it costs what ``global`` costs, and the cache
then belongs to the caller, so a batch size or a second conversation is a second
cache instead of a re-export, and a cache is a value the loader can check (its model,
its batch).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _module(kind: str, shape: tuple) -> str:
    layers2, b, t, h, d = shape
    s = f"tensor<{layers2}x{b}x{t}x{h}x{d}xf32>"
    n = f"tensor<{layers2}x{b}x1x{h}x{d}xf32>"
    r = f"tensor<{layers2}x{b}xf32>"
    read = f"""
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : {r}
  %f = linalg.fill ins(%z : f32) outs(%e : {r}) -> {r}
  %sum = linalg.reduce ins(%upd : {s}) outs(%f : {r}) dimensions = [2, 3, 4]
    (%in: f32, %acc: f32) {{
      %a = arith.addf %in, %acc : f32
      linalg.yield %a : f32
    }}"""
    update = f"""
  %pi = tensor.extract %pos[] : tensor<i32>
  %p = arith.index_cast %pi : i32 to index
  %upd = tensor.insert_slice %new into %c[0, 0, %p, 0, 0] [{layers2}, {b}, 1, {h}, {d}] [1, 1, 1, 1, 1] : {n} into {s}"""
    if kind == "global":
        return f"""util.global private mutable @cache = dense<0.0> : {s}
func.func @step(%new: {n}, %pos: tensor<i32>) -> {r} {{
  %c = util.global.load @cache : {s}{update}
  util.global.store %upd, @cache : {s}{read}
  return %sum : {r}
}}"""
    if kind == "read":
        return f"""func.func @step(%upd: {s}) -> {r} {{{read}
  return %sum : {r}
}}"""
    return f"""func.func @step(%c: {s}, %new: {n}, %pos: tensor<i32>) -> ({r}, {s}) {{{update}{read}
  return %sum, %upd : {r}, {s}
}}"""


def measure(shape: tuple, calls: int = 20, rounds: int = 5) -> dict:
    """Median ms per step of each way (interleaved rounds)."""
    import iree.runtime as rt

    from stepwell.compiler import driver as compiler
    from stepwell.compiler import runtime
    dev, _ = runtime.device("local-task")
    new = rt.asdevicearray(dev, np.ones((shape[0], shape[1], 1, *shape[3:]), np.float32))
    host = np.zeros(shape, np.float32)
    fns, states = {}, {}
    for kind in ("buffer", "global", "host", "read"):
        exe = compiler.compile(_module(kind, shape), "cpu")
        fns[kind] = exe._invoker(exe.function("step"))
        states[kind] = rt.asdevicearray(dev, host)

    def step(kind, i):
        pos = np.array(i % shape[2], np.int32)
        f = fns[kind]
        if kind == "buffer":
            s, states[kind] = f(states[kind], new, pos)
        elif kind == "global":
            s = f(new, pos)
        elif kind == "host":
            s, c = f(host, new, pos)
            host[...] = c.to_host()
        else:
            s = f(states[kind])
        s.to_host()

    times = {k: [] for k in fns}
    for kind in fns:
        step(kind, 0)
    for _ in range(rounds):
        for kind in fns:
            start = time.perf_counter()
            for i in range(calls):
                step(kind, i)
            times[kind].append((time.perf_counter() - start) / calls * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--context", type=int, action="append", help="cache positions (default: 256 and 1024)")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=64)
    a = p.parse_args()
    print("ms per decode step's cache work (GPT-2 small layout: 2 x layers, batch, context, heads, 64)")
    print(f"{'context':>8} {'MiB':>6} {'buffer':>8} {'global':>8} {'host':>8} {'read only':>10}")
    for t in a.context or (256, 1024):
        shape = (2 * a.layers, a.batch, t, a.heads, a.head_dim)
        ms = measure(shape)
        mib = 4 * np.prod(shape) / 2 ** 20
        print(f"{t:>8} {mib:>6.1f} {ms['buffer']:>8.2f} {ms['global']:>8.2f} {ms['host']:>8.2f} {ms['read']:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
