#!/usr/bin/env python3
"""Accuracy, weight memory and speed of the precision policies: ``python -m benchmarks.quant_report``.

For a 2-layer MLP (256-1024-256, gelu; batch 1 and 64) and a GPT-2-style decoder
(stepwell.bench's ``gpt2`` workload, small; 32 tokens, and 1 token as in decoding), all imported from JAX with their weights closed over as
constants, every policy (f32, bf16, f16, int8, int4, ...: ``sw.compile(precision=)``)
is compiled for the CPU and reported against the f32 JAX model:

* error: max and mean relative error of the outputs (``max|y - y32| / max|y32|``,
  ``mean|y - y32| / mean|y32|``); for GPT-2 also the top-1 token agreement (argmax of
  the logits at every position of a fixed prompt set);
* memory: the bytes of the module's constants after the policy (weights, scales, zero
  points; the embeddings too) and the ``.vmfb`` size;
* speed: the median time per call, the policies timed round-robin in one process and
  ``jax.jit`` f32 after them (interleaved, JAX's spinning thread pool slows IREE down),
  as milliseconds and as ratios to stepwell f32 and to JAX; and the number of IREE
  dispatches per call.

``--quick`` shrinks the rounds; ``--md``/``--json`` write the tables. Numbers come from
runs on a shared machine: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time

import numpy as np

POLICIES = ["f32", "bf16", "f16", "int8", "int4", "int4-g32-asym", "bf16+int8"]


def _policy(name: str) -> str:
    """A report policy as an ``sw.compile`` precision (or None for a custom pipeline)."""
    return {"int4-g32-asym": None}.get(name, name)


def _apply(module, name):
    from stepwell.core.pipeline import Pipeline
    from stepwell.passes.nn_precision import apply_policy
    if name == "int4-g32-asym":
        m = module.clone()
        Pipeline("nn-quantize-weights{bits=4 group_size=32 symmetric=false}").run(m)
        return m
    return apply_policy(module, name)


def _constant_bytes(module) -> int:
    from stepwell.core.types import TensorType
    from stepwell.core.verifier import walk
    total = 0
    for op in walk(module.operation):
        if op.name == "arith.constant":
            t = TensorType.from_mlir(op.results[0].type)
            if t is not None:
                total += int(np.prod(t.shape, dtype=np.int64)) * t.numpy_dtype().itemsize
    return total


def _dispatch_count(module) -> int:
    from stepwell import compiler
    return len(re.findall(r"flow\.dispatch @", compiler.compile_to(module, "dispatch")))


# -- models -----------------------------------------------------------------------------------


def mlp_model(batch: int):
    import jax
    rng = np.random.default_rng(0)
    d, h = 256, 1024
    w1 = (rng.standard_normal((d, h)) * d ** -0.5).astype(np.float32)
    b1 = (rng.standard_normal(h) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((h, d)) * h ** -0.5).astype(np.float32)
    b2 = (rng.standard_normal(d) * 0.1).astype(np.float32)

    def fn(x):
        return jax.nn.gelu(x @ w1 + b1) @ w2 + b2

    x = rng.standard_normal((batch, d)).astype(np.float32)
    return dict(name=f"mlp 256-1024-256 b{batch}", fn=fn, inputs=[[x]], tokens=False,
                params=w1.nbytes + b1.nbytes + w2.nbytes + b2.nbytes)


def gpt2_model(prompts: int = 4, seq: int = 32):
    import jax.numpy as jnp
    from stepwell.bench.workloads import GPT2Config, gpt2
    cfg = GPT2Config(layers=2, width=256, heads=4, vocab=2048, seq=seq, positions=64)
    w = gpt2(cfg)
    args = w.args()
    params = [jnp.asarray(a) for a in args[2:]]

    def fn(ids, pos):
        return w.jax_fn(ids, pos, *params)

    rng = np.random.default_rng(11)
    pos = np.arange(cfg.seq, dtype=np.int32)[None]
    inputs = [[rng.integers(0, cfg.vocab, (1, cfg.seq)).astype(np.int32), pos] for _ in range(prompts)]
    return dict(name=f"gpt2-style {cfg.layers}x{cfg.width} vocab {cfg.vocab} seq {cfg.seq}", fn=fn,
                inputs=inputs, tokens=True, params=sum(int(np.asarray(a).nbytes) for a in args[2:]))


# -- measuring ----------------------------------------------------------------------------------


def _time(fn, args, rounds: int, min_sample_s: float):
    """Median seconds per call of each runner, timed round-robin."""
    names = list(fn)
    calls = {}
    for n in names:  # warm up; calls per sample from one timed call
        fn[n](*args)
        t = time.perf_counter()
        fn[n](*args)
        calls[n] = max(1, int(min_sample_s / max(time.perf_counter() - t, 1e-6)))
    samples = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            for _ in range(calls[n]):
                fn[n](*args)
            samples[n].append((time.perf_counter() - t) / calls[n])
    return {n: statistics.median(s) for n, s in samples.items()}


def measure(model, policies, rounds: int, min_sample_s: float, log=print) -> list[dict]:
    import jax
    import stepwell as sw
    ref_fn = jax.jit(model["fn"])
    refs = [np.asarray(ref_fn(*a)) for a in model["inputs"]]
    log(f"# {model['name']}: importing")
    module = sw.jax.import_function(model["fn"], *model["inputs"][0])
    rows, runners = [], {"jax f32": lambda *a: np.asarray(ref_fn(*a))}
    for name in policies:
        t = time.perf_counter()
        m = _apply(module, name)
        exe = sw.compile(m, target="cpu")
        compile_s = time.perf_counter() - t
        outs = [np.asarray(exe(*a), np.float32) for a in model["inputs"]]
        diff = np.concatenate([np.abs(o - r).ravel() for o, r in zip(outs, refs)])
        ref = np.concatenate([np.abs(r).ravel() for r in refs])
        row = dict(model=model["name"], policy=name, max_rel=float(diff.max() / ref.max()),
                   mean_rel=float(diff.mean() / ref.mean()), const_bytes=_constant_bytes(m),
                   vmfb_bytes=len(exe.vmfb), dispatches=_dispatch_count(m), compile_s=compile_s)
        if model["tokens"]:
            agree = [np.mean(o.argmax(-1) == r.argmax(-1)) for o, r in zip(outs, refs)]
            row["top1"] = float(np.mean(agree))
        rows.append(row)
        runners[f"stepwell {name}"] = exe
        log(f"  {name}: max rel {row['max_rel']:.2e}, {row['const_bytes'] / 1e6:.2f} MB, "
            f"{row['dispatches']} dispatches, compiled in {compile_s:.1f} s")
    # JAX's CPU thread pool keeps spinning after a call and slows IREE's workers down when
    # the two are interleaved: stepwell's policies are timed round-robin among themselves,
    # then jax.jit on its own.
    jax_runner = {"jax f32": runners.pop("jax f32")}
    times = _time(runners, model["inputs"][0], rounds, min_sample_s)
    times.update(_time(jax_runner, model["inputs"][0], rounds, min_sample_s))
    base = times["stepwell f32"]
    for row in rows:
        row["ms"] = times[f"stepwell {row['policy']}"] * 1e3
        row["vs_f32"] = base / times[f"stepwell {row['policy']}"]
        row["vs_jax"] = times["jax f32"] / times[f"stepwell {row['policy']}"]
    rows.append(dict(model=model["name"], policy="jax f32 (reference)", ms=times["jax f32"] * 1e3,
                     vs_f32=base / times["jax f32"], vs_jax=1.0))
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = f"{names[0]} ({len(names)} logical cores)" if names else cpu
    except OSError:
        pass
    from importlib.metadata import version
    return (f"{cpu}; iree-base-compiler {version('iree-base-compiler')}, jax {version('jax')}, "
            f"Python {platform.python_version()}")


def markdown(rows: list[dict]) -> str:
    cols = [("model", "model", "{}"), ("policy", "policy", "{}"), ("max rel err", "max_rel", "{:.2e}"),
            ("mean rel err", "mean_rel", "{:.2e}"), ("top-1 agree", "top1", "{:.1%}"),
            ("constants MB", "const_mb", "{:.3f}"), ("vmfb MB", "vmfb_mb", "{:.3f}"),
            ("dispatches", "dispatches", "{}"), ("ms/call", "ms", "{:.3f}"),
            ("speed vs f32", "vs_f32", "{:.2f}x"), ("speed vs jax", "vs_jax", "{:.2f}x")]
    lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        r = dict(r)
        if "const_bytes" in r:
            r["const_mb"], r["vmfb_mb"] = r["const_bytes"] / 1e6, r["vmfb_bytes"] / 1e6
        lines.append("| " + " | ".join(f.format(r[k]) if k in r else "" for _, k, f in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer timing rounds")
    ap.add_argument("--policies", default=",".join(POLICIES), help="comma-separated policies")
    ap.add_argument("--models", default="mlp1,mlp64,gpt2,gpt2s1",
                    help="mlp1, mlp64 (batch 1, 64), gpt2 (seq 32), gpt2s1 (seq 1: one token, decode-like)")
    ap.add_argument("--md", help="write the Markdown table here")
    ap.add_argument("--json", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    policies = [p for p in args.policies.split(",") if p]
    rounds, sample = (5, 0.02) if args.quick else (15, 0.05)
    models = {"mlp1": lambda: mlp_model(1), "mlp64": lambda: mlp_model(64), "gpt2": gpt2_model,
              "gpt2s1": lambda: gpt2_model(prompts=32, seq=1)}
    rows = []
    for key in args.models.split(","):
        rows += measure(models[key](), policies, rounds, sample, log=lambda s: print(s, file=sys.stderr))
    text = f"Machine: {machine()}\n\n" + markdown(rows)
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
