"""``stepwell generate out/gpt2 --prompt 464,2068,7586 --max-new-tokens 32``: run an exported
decoder (prefill/decode entry points and a KV cache) on prompt token ids."""

from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "generate", help="generate tokens with an exported decoder (KV cache)",
        description="Generate tokens after prompt token ids with an export that has prefill/decode "
                    "entry points (e.g. 'stepwell export examples/gpt2.py:decoder'), showing a "
                    "progress bar, then the tokens and the tokens/s. Several --prompt run as one batch.")
    p.add_argument("model", help="the export folder")
    p.add_argument("--prompt", action="append", required=True, metavar="IDS",
                   help="comma-separated token ids, e.g. 464,2068,7586 (repeat for a batch)")
    p.add_argument("--max-new-tokens", type=int, default=16, metavar="N", help="tokens to generate per prompt")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy")
    p.add_argument("--top-k", type=int, default=0, metavar="K", help="sample among the K likeliest (0: all)")
    p.add_argument("--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling mass (1: all)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--eos", type=int, default=None, metavar="ID", help="stop a prompt at this token id")
    p.add_argument("--no-check-ids", dest="check_ids", action="store_false",
                   help="do not check prompt ids against the vocabulary (the model clamps them)")
    p.add_argument("--target", default=None, help="override the export's target")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


class _Bar:
    """A rich progress bar over the token steps (silent when stdout is not a terminal)."""

    def __init__(self, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        self.bar = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TextColumn("tokens"),
                            TimeElapsedColumn(), console=console, transient=True,
                            disable=not console.is_terminal)
        self.task = None

    def start(self, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("", total=total)

    def advance(self) -> None:
        self.bar.advance(self.task)

    def stop(self) -> None:
        self.bar.stop()


def _ids(text: str, i: int) -> list[int]:
    from stepwell.core.diagnostics import StepwellError
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise StepwellError(f"--prompt {i}: '{text}' is not a comma-separated list of token ids") from None
    if not ids:
        raise StepwellError(f"--prompt {i} is empty: give at least one token id")
    return ids


def run(args) -> int:
    import json

    from rich.console import Console

    from stepwell.export import load
    from stepwell.generation import Sampler, generate

    prompts = [_ids(t, i) for i, t in enumerate(args.prompt)]
    sampler = Sampler(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    model = load(args.model, target=args.target)
    console = Console(highlight=False)
    bar = _Bar(console)
    try:
        result = generate(model, prompts, args.max_new_tokens, sampler, check_ids=args.check_ids,
                          eos_id=args.eos, progress=bar)
    finally:
        bar.stop()
    if args.json:
        print(json.dumps({"tokens": result.tokens, "prefill_s": result.prefill_s, "decode_s": result.decode_s,
                          "tokens_per_s": result.tokens_per_s,
                          "decode_tokens_per_s": result.decode_tokens_per_s}))
        return 0
    for i, tokens in enumerate(result.tokens):
        print(f"[{i}] {','.join(map(str, tokens))}")
    print(f"{result.new_tokens} tokens in {result.prefill_s + result.decode_s:.2f} s: "
          f"{result.tokens_per_s:.1f} tokens/s (prefill of {result.prompt_tokens} prompt tokens "
          f"{result.prefill_s * 1e3:.0f} ms; decode {result.decode_tokens_per_s:.1f} tokens/s)")
    return 0
