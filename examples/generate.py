"""Greedy text generation with the exported GPT-2-style model, checked against JAX.

    python examples/generate.py --config tiny --steps 16     # export, generate both ways, compare
    python examples/generate.py --config small --steps 8     # GPT-2 small (124M): slower
    python examples/generate.py --model out/gpt2 --prompt 464,2068,7586 --steps 20   # stepwell only

The exported ``next_token_logits(params, ids, lengths)`` (examples/gpt2.py) takes a
fixed-length token buffer; each step writes the argmax token after the prompt and
calls it again. The same loop runs on the model under ``jax.jit``; greedy decoding
makes both produce the same tokens when the logits agree. With ``--model`` only
stepwell and numpy are imported (no JAX): what a deployment runs. No tokenizer
ships here, so prompts and outputs are token ids.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def greedy(next_token_logits, prompt, steps: int, seq_len: int) -> list[int]:
    """``steps`` greedy tokens after ``prompt``; ``next_token_logits(ids, lengths)``
    takes ``[1, seq_len]`` and ``[1]`` int32 arrays and returns ``[1, vocab]`` logits."""
    prompt = [int(t) for t in prompt]
    if not prompt:
        raise ValueError("the prompt needs at least one token")
    if len(prompt) + steps > seq_len:
        raise ValueError(f"prompt ({len(prompt)}) + steps ({steps}) exceed the model's "
                         f"sequence length {seq_len}")
    ids = np.zeros((1, seq_len), np.int32)
    ids[0, :len(prompt)] = prompt
    n, out = len(prompt), []
    for _ in range(steps):
        logits = np.asarray(next_token_logits(ids, np.array([n], np.int32)))
        token = int(np.argmax(logits[0]))
        out.append(token)
        ids[0, n] = token
        n += 1
    return out


def generate_exported(folder: str, prompt, steps: int) -> list[int]:
    """Greedy tokens from an export folder, with stepwell only."""
    import stepwell as sw
    model = sw.load(folder)
    seq_len = model.inputs[0]["shape"][1]
    return greedy(model, prompt, steps, seq_len)


def generate_fresh(folder: str, prompt, steps: int, timeout: float = 600) -> list[int]:
    """:func:`generate_exported` in a new Python process (JSON on stdout)."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--model", folder,
                           "--prompt", ",".join(map(str, prompt)), "--steps", str(steps), "--json"],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"generation in a fresh process failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["tokens"]


def generate_jax(fn, params, prompt, steps: int, seq_len: int) -> list[int]:
    import jax
    step = jax.jit(fn)
    return greedy(lambda ids, lengths: step(params, ids, lengths), prompt, steps, seq_len)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", choices=("tiny", "small"))
    p.add_argument("--model", help="an export folder: generate with stepwell only")
    p.add_argument("--prompt", help="comma-separated token ids (default: 8 fixed random ids)")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--out", help="export folder to write (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print the tokens as JSON")
    a = p.parse_args()
    prompt = ([int(t) for t in a.prompt.split(",")] if a.prompt else None)

    if a.model:
        tokens = generate_exported(a.model, prompt or [0], a.steps)
        print(json.dumps({"tokens": tokens}) if a.json else " ".join(map(str, tokens)))
        return 0

    import tempfile
    import time

    import gpt2

    import stepwell as sw
    fn, params, (ids, lengths) = gpt2.factory(config=a.config)
    cfg = gpt2.CONFIGS[a.config]
    prompt = prompt or np.random.default_rng(42).integers(0, cfg.vocab, 8).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.out or os.path.join(tmp, "gpt2")
        t = time.perf_counter()
        sw.jax.export(fn, params, ids, lengths, path=folder)
        print(f"exported GPT-2 '{a.config}' ({gpt2.parameter_count(params):,} parameters) "
              f"in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        ours = generate_fresh(folder, prompt, a.steps)
        print(f"stepwell (fresh process): {ours}  ({time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    theirs = generate_jax(fn, params, prompt, a.steps, cfg.seq_len)
    print(f"JAX:                      {theirs}  ({time.perf_counter() - t:.1f} s)")
    same = ours == theirs
    print("same tokens" if same else "the tokens differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
