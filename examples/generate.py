"""Text generation with the exported GPT-2 and its KV cache, checked against JAX.

    python examples/generate.py --config tiny --steps 16            # export, generate both ways, compare
    python examples/generate.py --config tiny --temperature 0.8 --top-k 40 --top-p 0.9 --seed 1
    python examples/generate.py --config small --steps 8            # GPT-2 small (124M): slower
    python examples/generate.py --model out/gpt2 --prompt 464,2068,7586 --steps 20   # stepwell only
    stepwell generate out/gpt2 --prompt 464,2068,7586 --max-new-tokens 20            # the same, CLI

The decoder (``examples/gpt2.py:decoder``) is exported with two entry points over one
set of weights: ``prefill`` puts the prompt's keys and values into a cache and gives the
next logits, ``decode`` adds one token per step. The cache stays on the device between
the steps (``sw.load`` returns it as a ``State``) and IREE updates it in place. The
same loop (``sw.generate``) runs on the model under ``jax.jit``: greedy decoding makes
both produce the same tokens when the logits agree; sampling with the same seed draws
the same uniform numbers. With ``--model`` only stepwell and numpy are imported (no
JAX): what a deployment runs. No tokenizer ships here, so prompts and outputs are
token ids.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def export_decoder(config: str, folder: str, cache_len: int | None = None, **export_options):
    """Export GPT-2 ``config`` with its KV cache to ``folder``; returns (manifest, fns, params)."""
    import gpt2

    import stepwell as sw
    fns, params, args, options = gpt2.decoder(config=config, cache_len=cache_len)
    manifest = sw.jax.export(fns, params, args, path=folder, **options, **export_options)
    return manifest, fns, params


def jax_decoder(fns, params, config: str, cache_len: int | None = None):
    """The same prefill/decode under ``jax.jit``, as a ``stepwell.generation.Decoder``."""
    import gpt2
    import jax

    from stepwell.generation import Decoder
    prefill, decode = jax.jit(fns["prefill"]), jax.jit(fns["decode"])
    cfg = gpt2.CONFIGS[config]
    return Decoder(lambda ids, lengths: prefill(params, ids, lengths),
                   lambda token, position, cache: decode(params, token, position, cache),
                   cfg.vocab, cache_len or cfg.cache_len or cfg.context, f"GPT-2 {config} (jax.jit)")


def sampler_of(a):
    from stepwell.generation import Sampler
    return Sampler(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, seed=a.seed)


def generate_fresh(folder: str, prompts, steps: int, extra=(), timeout: float = 600) -> list:
    """Generate with the export in a new Python process (stepwell and numpy only)."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--model", folder, "--steps", str(steps),
                           *[f"--prompt={','.join(map(str, p))}" for p in prompts], "--json", *extra],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"generation in a fresh process failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["tokens"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", choices=("tiny", "small"))
    p.add_argument("--model", help="an export folder: generate with stepwell only")
    p.add_argument("--prompt", action="append", help="comma-separated token ids (repeat: a batch)")
    p.add_argument("--steps", type=int, default=16, help="new tokens per prompt")
    p.add_argument("--cache-len", type=int, default=None, help="KV cache positions (default: the context)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="export folder to write (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print the tokens as JSON")
    a = p.parse_args()
    prompts = [[int(t) for t in text.split(",")] for text in a.prompt] if a.prompt else None

    if a.model:
        import stepwell as sw
        result = sw.generate(a.model, prompts or [[0]], a.steps, sampler_of(a))
        print(json.dumps({"tokens": result.tokens}) if a.json else
              "\n".join(" ".join(map(str, t)) for t in result.tokens))
        return 0

    import tempfile
    import time

    import gpt2
    import numpy as np

    import stepwell as sw
    cfg = gpt2.CONFIGS[a.config]
    prompts = prompts or [np.random.default_rng(42).integers(0, cfg.vocab, 8).tolist()]
    extra = [f"--temperature={a.temperature}", f"--top-k={a.top_k}", f"--top-p={a.top_p}", f"--seed={a.seed}"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.out or os.path.join(tmp, "gpt2")
        t = time.perf_counter()
        _, fns, params = export_decoder(a.config, folder, a.cache_len)
        print(f"exported GPT-2 '{a.config}' with a KV cache ({gpt2.parameter_count(params):,} parameters) "
              f"in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        ours = generate_fresh(folder, prompts, a.steps, extra)
        print(f"stepwell (fresh process): {ours}  ({time.perf_counter() - t:.1f} s)")
    theirs = sw.generate(jax_decoder(fns, params, a.config, a.cache_len), prompts, a.steps, sampler_of(a))
    print(f"JAX:                      {theirs.tokens}  ({theirs.tokens_per_s:.0f} tokens/s)")
    same = ours == theirs.tokens
    print("same tokens" if same else "the tokens differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
