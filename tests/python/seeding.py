"""Random inputs that do not depend on test order, selection or process.

A module-level ``numpy.random.Generator`` (``RNG = np.random.default_rng(0)``) used
inside tests hands each test whatever the tests before it left: ``-k``, ``-n``, or a
new test above changes every later input. :func:`per_test_rngs` (autouse, from
``conftest.py``) gives each test fresh generators for the module's Generator globals,
seeded by CRC32 of the test's id and the global's name (``hash()`` of a string changes
per process). Values drawn at import time are untouched: they do not depend on order.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest


def rng(*key) -> np.random.Generator:
    """A generator seeded by ``key`` (stable across processes and runs)."""
    return np.random.default_rng(zlib.crc32(":".join(map(str, key)).encode()))


@pytest.fixture(autouse=True)
def per_test_rngs(request, monkeypatch):
    module = getattr(request, "module", None)
    if module is None:
        return
    test = request.node.nodeid.split("::", 1)[-1]
    for name, value in list(vars(module).items()):
        if isinstance(value, np.random.Generator):
            monkeypatch.setattr(module, name, rng(module.__name__, test, name))
