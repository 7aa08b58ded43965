"""Choosing the next token from logits: greedy, or sampled with temperature, top-k and
top-p (nucleus), from a seeded numpy generator (the same seed gives the same text)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stepwell.core.diagnostics import StepwellError


@dataclass
class Sampler:
    """``temperature=0`` (the default) is greedy: the argmax, ties to the lowest id.
    Otherwise the logits are divided by ``temperature``, cut to the ``top_k`` largest
    (0: all) and to the smallest set whose probability reaches ``top_p`` (1.0: all),
    and a token is drawn from what remains."""
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = 0
    _rng: np.random.Generator = field(init=False, repr=False, default=None)

    def __post_init__(self):
        if not np.isfinite(self.temperature) or self.temperature < 0:
            raise StepwellError(f"temperature must be >= 0, found {self.temperature}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, (int, np.integer)) or self.top_k < 0:
            raise StepwellError(f"top_k must be a non-negative integer, found {self.top_k!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise StepwellError(f"top_p must be in (0, 1], found {self.top_p}")
        self._rng = np.random.default_rng(self.seed)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def __call__(self, logits) -> np.ndarray:
        """The next token of each row of ``logits`` [batch, vocab], as int32 [batch]."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.greedy:
            return logits.argmax(axis=-1).astype(np.int32)
        z = logits / self.temperature
        if self.top_k and self.top_k < z.shape[-1]:
            kth = np.partition(z, -self.top_k, axis=-1)[:, -self.top_k][:, None]
            z = np.where(z >= kth, z, -np.inf)
        p = np.exp(z - z.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        if self.top_p < 1.0:
            order = np.argsort(-p, axis=-1, kind="stable")
            sorted_p = np.take_along_axis(p, order, axis=-1)
            before = np.cumsum(sorted_p, axis=-1) - sorted_p   # mass of the tokens ranked higher
            keep = np.zeros_like(p, dtype=bool)
            np.put_along_axis(keep, order, before < self.top_p, axis=-1)
            p = np.where(keep, p, 0.0)
            p /= p.sum(axis=-1, keepdims=True)
        u = self._rng.random((p.shape[0], 1))
        return np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), p.shape[-1] - 1).astype(np.int32)
