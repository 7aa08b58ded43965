"""``stepwell demo``: a transformer block down the whole stage ladder, checked against JAX."""

from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="build a transformer block in nn, compile it for the CPU, check it against JAX",
        description="Build a small transformer block (embedding, layer norm, causal attention, "
                    "gelu MLP) in the nn dialect, show each stage with its op counts, compile it "
                    "for the CPU, run it and compare with the same block written in JAX.")
    p.add_argument("--target", default="cpu", help="target to compile for (default: cpu)")
    p.add_argument("--repeat", type=int, default=20, help="timed runs (default: 20)")
    return p


def _top(counts: dict, n: int = 4) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{name} x{count}" for name, count in items)


def _median_ms(fn, repeat: int) -> float:
    import statistics
    import time
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def run(args) -> int:
    import time

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    import stepwell as sw
    from stepwell import models

    console = Console(highlight=False)
    cfg = models.BlockConfig()
    params = models.block_params(cfg)
    ids = models.block_inputs(cfg)
    console.print(f"[bold]stepwell demo[/bold]: transformer block (seq {cfg.seq}, width {cfg.width}, "
                  f"{cfg.heads} heads, MLP {cfg.hidden}, vocab {cfg.vocab})")

    module = models.transformer_block(cfg)
    table = Table(title="stage ladder")
    for col in ("stage", "ops", "most frequent"):
        table.add_column(col)
    table.add_row("nn", str(sum(module.op_counts().values())), _top(module.op_counts()))
    stage_times = {}
    for stage in ("prim", "linalg", "vector"):  # every stage of the ladder, then IREE's two
        start = time.perf_counter()
        staged = sw.lower(module, to=stage, target=args.target)
        stage_times[stage] = time.perf_counter() - start
        counts = staged.op_counts()
        table.add_row(stage, str(sum(counts.values())), _top(counts))
        if stage == "linalg":
            lowered = staged
    import re
    from collections import Counter
    flow = sw.lower(lowered, to="dispatch", target=args.target)
    kinds = Counter(re.sub(r"^\w+_dispatch_\d+_", "", k).split("_")[0]
                    for k in re.findall(r"flow\.executable\.export public @(\w+)", flow))
    table.add_row("dispatch", f"{sum(kinds.values())} dispatches", _top(kinds))

    start = time.perf_counter()
    exe = sw.compile(lowered, target=args.target)
    compile_s = time.perf_counter() - start
    table.add_row("vmfb", f"{len(exe.vmfb) / 1024:.0f} KiB", f"for {exe.target.spec}")
    console.print(table)
    args_np = [ids, *params.values()]
    got = exe(*args_np)

    import jax
    ref_fn = jax.jit(models.transformer_block_jax(cfg))
    want = np.asarray(ref_fn(*args_np))
    err = float(np.max(np.abs(got - want)))
    rel = err / float(np.max(np.abs(want)))

    ours_ms = _median_ms(lambda: exe(*args_np), args.repeat)
    jax_ms = _median_ms(lambda: ref_fn(*args_np).block_until_ready(), args.repeat)
    console.print(f"passes: nn->prim {stage_times['prim'] * 1e3:.0f} ms, nn->linalg "
                  f"{stage_times['linalg'] * 1e3:.0f} ms, nn->vector {stage_times['vector'] * 1e3:.0f} ms; "
                  f"IREE compile for {args.target}: {compile_s:.2f} s")
    console.print(f"output {tuple(got.shape)} {got.dtype}; largest error against JAX: "
                  f"{err:.2e} (relative {rel:.2e})")
    console.print(f"run time (median of {args.repeat}): stepwell {ours_ms:.3f} ms, jax.jit {jax_ms:.3f} ms")
    ok = rel < 1e-4
    console.print("[green]agrees with JAX[/green]" if ok else "[red]DISAGREES with JAX[/red]")
    return 0 if ok else 1
