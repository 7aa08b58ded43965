"""``generate()``: prompts in, tokens out, with a KV cache kept on the device.

The prompts (token ids; several at once are one batch, right-padded, each row with its
own length) are checked first, each failure a clear error: an empty prompt, an id
outside the vocabulary (``check_ids``, on by default: ids are checked on the host, the
model itself clamps them like JAX's gathers), and a prompt that with the new tokens
would not fit in the cache (the limit is named). Then one ``prefill`` and
``max_new_tokens - 1`` ``decode`` steps, each sampling the next token of every row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from stepwell.core.diagnostics import StepwellError
from stepwell.generation.sampling import Sampler


@dataclass
class Decoder:
    """What generation needs of a model: its two steps, vocabulary size and cache length."""
    prefill: Callable          # (ids [b, s] int32, lengths [b] int32) -> {"logits", "cache"}
    decode: Callable           # (token [b], position [b], cache) -> {"logits", "cache"}
    vocab: int | None = None
    cache_len: int | None = None
    name: str = "model"

    @classmethod
    def of(cls, model) -> "Decoder":
        """A Decoder for a loaded export (its ``metadata["decoder"]`` names the entry
        points), an export folder, or a Decoder."""
        if isinstance(model, Decoder):
            return model
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            from stepwell.export import load
            model = load(model)
        meta = getattr(model, "metadata", {}).get("decoder")
        if meta is None:
            names = ", ".join(getattr(model, "entry_points", []) or ["main"])
            raise StepwellError(f"'{getattr(model, 'path', model)}' is not an exported decoder: its "
                                f"manifest has no metadata.decoder (entry points: {names}); export one "
                                "with prefill/decode entry points (examples/gpt2.py:decoder)")
        return cls(model.entry(meta.get("prefill", "prefill")), model.entry(meta.get("decode", "decode")),
                   meta.get("vocab"), meta.get("cache_len"), getattr(model, "name", "model"))


@dataclass
class Result:
    tokens: list                     # the new tokens of each prompt
    prompt_tokens: int
    prefill_s: float
    decode_s: float
    steps: int                       # decode steps run
    finished: list = field(default_factory=list)   # rows that produced eos_id

    @property
    def new_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)

    @property
    def tokens_per_s(self) -> float:
        """New tokens per second, prefill included."""
        total = self.prefill_s + self.decode_s
        return self.new_tokens / total if total else float("inf")

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens per second of the decode steps alone (the batch's rows together)."""
        return len(self.tokens) * self.steps / self.decode_s if self.decode_s else float("inf")


def prompts_of(prompts) -> list[list[int]]:
    """One prompt (a sequence of ids) or several, as lists of ints."""
    if isinstance(prompts, np.ndarray):
        prompts = prompts.tolist()
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise StepwellError("generate needs at least one prompt (a list of token ids)")
    if all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in prompts):
        prompts = [prompts]
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, np.ndarray):
            p = p.tolist()
        if not isinstance(p, (list, tuple)) or not all(
                isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in p):
            raise StepwellError(f"prompt {i} must be a list of integer token ids, found {p!r:.60}")
        if not p:
            raise StepwellError(f"prompt {i} is empty: it needs at least one token")
        out.append([int(t) for t in p])
    return out


def check(dec: Decoder, prompts: list, max_new_tokens: int, check_ids: bool) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
            or max_new_tokens < 1:
        raise StepwellError(f"max_new_tokens must be at least 1, found {max_new_tokens!r}")
    if check_ids and dec.vocab is not None:
        for i, p in enumerate(prompts):
            bad = next((j for j, t in enumerate(p) if not 0 <= t < dec.vocab), None)
            if bad is not None:
                raise StepwellError(f"prompt {i} has token id {p[bad]} at position {bad}, outside the "
                                    f"vocabulary of {dec.name} [0, {dec.vocab})")
    if dec.cache_len is not None:
        longest = max(range(len(prompts)), key=lambda i: len(prompts[i]))
        n = len(prompts[longest])
        if n > dec.cache_len:
            raise StepwellError(f"prompt {longest} has {n} tokens, more than the {dec.cache_len} "
                                f"positions of {dec.name}'s cache (cache_len)")
        if n + max_new_tokens - 1 > dec.cache_len:
            raise StepwellError(f"prompt {longest} ({n} tokens) and {max_new_tokens} new tokens need "
                                f"{n + max_new_tokens - 1} cache positions, more than the {dec.cache_len} "
                                f"of {dec.name}'s cache (cache_len): ask for at most "
                                f"{dec.cache_len - n + 1} new tokens")


def generate(model, prompts, max_new_tokens: int = 16, sampler: Sampler | None = None, *,
             check_ids: bool = True, eos_id: int | None = None, progress=None) -> Result:
    """Generate ``max_new_tokens`` after each prompt with ``model`` (a loaded export
    with a KV cache, its folder, or a :class:`Decoder`). ``sampler``: greedy by default.
    ``eos_id``: a row stops at it (the others go on). ``progress``: an object with
    ``start(total)``, ``advance()`` (called once per token step)."""
    dec = Decoder.of(model)
    prompts = prompts_of(prompts)
    check(dec, prompts, max_new_tokens, check_ids)
    sampler = sampler or Sampler()
    lengths = np.array([len(p) for p in prompts], np.int32)
    ids = np.zeros((len(prompts), int(lengths.max())), np.int32)
    for i, p in enumerate(prompts):
        ids[i, :len(p)] = p
    if progress is not None:
        progress.start(max_new_tokens)
    start = time.perf_counter()
    out = dec.prefill(ids, lengths)
    token = sampler(out["logits"])
    prefill_s = time.perf_counter() - start
    tokens, done = [[int(t)] for t in token], [eos_id is not None and int(t) == eos_id for t in token]
    if progress is not None:
        progress.advance()
    position, steps = lengths.copy(), 0
    start = time.perf_counter()
    while steps < max_new_tokens - 1 and not all(done):
        out = dec.decode(token, position, out["cache"])
        token = sampler(out["logits"])
        position += 1
        steps += 1
        for i, t in enumerate(token):
            if not done[i]:
                tokens[i].append(int(t))
                done[i] = eos_id is not None and int(t) == eos_id
        if progress is not None:
            progress.advance()
    return Result(tokens, int(lengths.sum()), prefill_s, time.perf_counter() - start, steps,
                  [i for i, d in enumerate(done) if d])
