"""``stepwell bench``: the benchmark suite against jax.jit (XLA), plain IREE and numpy."""

from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "bench", help="benchmark stepwell against jax.jit, plain IREE and numpy",
        description="Run the benchmark suite (f32/bf16/f16 matmuls, an MLP, a CNN, an attention "
                    "layer, a transformer block, a GPT-2-style model) through stepwell (from nn and "
                    "from JAX), plain IREE on JAX's StableHLO, jax.jit and numpy, interleaved in "
                    "one process. Reports median and IQR, GFLOP/s, the ratio to jax.jit, compile "
                    "times, peak memory and the machine's measured f32 peak.")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (minutes)")
    p.add_argument("--tiny", action="store_true", help="toy sizes: checks the harness, measures nothing")
    p.add_argument("--target", default="cpu",
                   help="target (default: cpu); one that cannot run here is compiled only")
    p.add_argument("--filter", action="append", default=[], metavar="TEXT",
                   help="only workloads whose name contains TEXT (repeatable)")
    p.add_argument("--repeat", type=int, metavar="N", help="timed rounds per workload")
    p.add_argument("--runners", metavar="LIST",
                   help="comma-separated runners (default: all of stepwell, stepwell-tuned, stepwell-jax, "
                        "stepwell-params, iree, jax, numpy; --quick leaves out stepwell-params; the LLM "
                        "workloads' own: stepwell-int8, stepwell-int4, stepwell-nocache, stepwell-static)")
    p.add_argument("--budget", type=float, metavar="S", help="seconds of timed rounds per workload")
    p.add_argument("--dispatches", action="store_true",
                   help="count IREE dispatches of stepwell's and plain IREE's modules (extra compiles)")
    p.add_argument("--tune-budget", type=float, metavar="S",
                   help="seconds the stepwell-tuned runner tunes the suite first (default: 900, "
                        "--quick 90, --tiny 5); what earlier runs found is reused")
    p.add_argument("--no-probe", action="store_true", help="skip the peak FLOP/s probe")
    p.add_argument("--peak-gflops", type=float, metavar="X",
                   help="reference f32 peak: a probe below 75%% of it flags the run as contended")
    p.add_argument("--pipeline", default=None, metavar="PIPELINE",
                   help="stepwell pipeline from nn to linalg (default: to-linalg)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--md", metavar="FILE", help="write the report as Markdown")
    p.add_argument("--plot", metavar="FILE", help="write a PNG of the ratios to jax.jit")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p


class _RichProgress:
    def __init__(self, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True,
                            disable=not console.is_terminal)
        self.task = None

    def start(self, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("starting", total=total)

    def step(self, text: str) -> None:
        self.bar.update(self.task, description=text)

    def advance(self) -> None:
        self.bar.advance(self.task)

    def stop(self) -> None:
        self.bar.stop()


def run(args) -> int:
    from rich.console import Console

    from stepwell import targets
    from stepwell.bench import Options, RUNNERS, report, select
    from stepwell.core.diagnostics import StepwellError

    if args.quick and args.tiny:
        raise StepwellError("--quick and --tiny exclude each other")
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    if args.list:
        for w in select(mode, args.filter):
            print(f"{w.name:22s} {w.flops / 1e9:9.3f} GFLOP  {w.shapes}")
        return 0
    targets.get(args.target)  # a clear error for an unknown target, before any work
    runners = None
    if args.runners:
        runners = tuple(r.strip() for r in args.runners.split(",") if r.strip())
        known = list(dict.fromkeys([*RUNNERS, *(n for w in select(mode, args.filter) for n in (w.runners or {}))]))
        unknown = [r for r in runners if r not in known]  # (the LLM workloads have runners of their own)
        if unknown:
            raise StepwellError(f"unknown runner '{unknown[0]}' (runners: {', '.join(known)})")
    if args.repeat is not None and args.repeat < 1:
        raise StepwellError("--repeat must be at least 1")
    if not select(mode, args.filter):
        raise StepwellError(f"no workload matches --filter {' '.join(args.filter)} "
                            f"(workloads: {', '.join(w.name for w in select(mode))})")
    for path in (args.json, args.md, args.plot):
        _check_writable(path)
    options = Options(mode=mode, target=args.target, repeat=args.repeat, filter=tuple(args.filter),
                      runners=runners, budget_s=args.budget, dispatches=args.dispatches,
                      probe=not args.no_probe, peak_gflops=args.peak_gflops,
                      tune_budget_s=args.tune_budget,
                      **({"pipeline": args.pipeline} if args.pipeline else {}))
    console = Console(highlight=False)
    progress = _RichProgress(console)
    from stepwell.bench import harness
    try:
        doc = harness.run(options, progress)
    finally:
        progress.stop()
    report.render(doc, console)
    if args.json:
        report.write_json(doc, args.json)
    if args.md:
        report._atomic_write(args.md, report.markdown(doc))
    if args.plot:
        report.plot(doc, args.plot)
    return 0


def _check_writable(path) -> None:
    import os

    from stepwell.core.diagnostics import StepwellError
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StepwellError(f"cannot write '{path}': no such directory '{folder}'")
    if os.path.isdir(path):
        raise StepwellError(f"cannot write '{path}': it is a directory")
