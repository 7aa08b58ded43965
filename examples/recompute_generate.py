"""Greedy generation without a KV cache: each step runs the whole token buffer again.

    python examples/recompute_generate.py --model out/mixtral --prompt 5,17,30 --steps 10

For models exported as ``next_token_logits(params, ids, lengths)`` over a fixed-length
buffer (``examples/mixtral.py``): each step writes the argmax token after the prompt and
calls the model again. ``examples/generate.py`` is the KV-cache path (GPT-2's
``prefill``/``decode`` entry points). Only stepwell and numpy are imported for
``--model``; :func:`generate_jax` runs the same loop under ``jax.jit``.
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
    p.add_argument("--model", required=True, help="an export folder of next_token_logits")
    p.add_argument("--prompt", required=True, help="comma-separated token ids")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--json", action="store_true", help="print the tokens as JSON")
    a = p.parse_args()
    tokens = generate_exported(a.model, [int(t) for t in a.prompt.split(",")], a.steps)
    print(json.dumps({"tokens": tokens}) if a.json else " ".join(map(str, tokens)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
