"""The one module that imports the MLIR bindings (from ``iree.compiler``).

Everything else in stepwell imports ``ir``, ``passmanager``, ``rewrite`` and the
upstream dialect builders from here, so a change of binding package touches one file.
"""

from __future__ import annotations

import atexit
import gc
import sys
import types

from iree.compiler import ir, passmanager, rewrite  # noqa: F401  (re-exported)
from iree.compiler.dialects import arith, func, linalg, math, tensor  # noqa: F401
from iree.compiler import tools as iree_tools  # noqa: F401  (iree-compile driver: compile_str)

__all__ = ["ir", "passmanager", "rewrite", "arith", "func", "linalg", "math", "tensor",
           "iree_tools", "context", "cache", "Location"]

Location = ir.Location
_CONTEXT: ir.Context | None = None
_CACHES: list[dict] = []

# The bindings look up a Python module per dialect (``iree.compiler.dialects.<ns>``)
# whenever they wrap an op, and remember only the lookups that succeed: for our
# unregistered dialects every ``value.owner`` of an ``nn``/``prim`` op searched
# sys.path again (half of the passes' time on GPT-2). An empty module per custom
# dialect makes the lookup succeed once; ops stay generic ``OpView``s.
CUSTOM_DIALECTS = ("nn", "prim")


def _stub_dialect_modules(namespaces=CUSTOM_DIALECTS) -> None:
    for ns in namespaces:
        name = f"iree.compiler.dialects.{ns}"
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name, f"stepwell: no Python classes for '{ns}' ops")


_stub_dialect_modules()


def context() -> ir.Context:
    """The process-wide MLIR context: unregistered (``nn``/``prim``) ops allowed,
    the upstream and IREE dialects loaded."""
    global _CONTEXT
    if _CONTEXT is None:
        ctx = ir.Context()
        ctx.allow_unregistered_dialects = True
        ctx.load_all_available_dialects()
        _CONTEXT = ctx
    return _CONTEXT


def cache() -> dict:
    """A dict keyed by MLIR types and attributes (uniqued in the context, hashed by
    pointer, so a lookup costs no printing), emptied when the context is dropped."""
    _CACHES.append({})
    return _CACHES[-1]


@atexit.register
def _release() -> None:
    # nanobind reports every MLIR object still alive at interpreter exit as a
    # "leak"; dropping our context and collecting cycles before that silences it
    # at the source instead of filtering stderr.
    global _CONTEXT
    _CONTEXT = None
    for c in _CACHES:
        c.clear()
    gc.collect()
