"""Extension points: where a lower layer calls into a higher one without importing it.

The layers import one way (``core`` <- dialects, targets <- passes <- compiler <- ...;
``tests/python/test_layering.py`` checks it). A few calls must still go the other way:

=====================  =====================================================  ==========
hook                   who calls it, for what                                  provider
=====================  =====================================================  ==========
``dialects``           ``core.opspec``: load the op specs (on first lookup)     dialects
``passes``             ``core.pipeline``: the pass registry (``get``,          passes
                       ``names``)
``pipelines``          ``core.pipeline``: the named pipelines                  pipelines
``numerics_checker``   ``core.pipeline``: ``check_numerics=True``              numerics
``probe_driver``       ``targets.available``: can this runtime driver run?     compiler
``tune``               ``frontends.jax.jit``: ``sw.jax.jit(f).tune(*args)``    tuner
=====================  =====================================================  ==========

The lower layer calls ``hooks.get(name)(...)``; the package root
(``stepwell/__init__.py``), which every ``import stepwell.<anything>`` runs first,
provides each hook with a function that imports its provider on first use.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["provide", "get", "names"]

_PROVIDERS: dict[str, Callable] = {}


def provide(name: str, fn: Callable) -> None:
    """Make ``fn`` what ``get(name)`` returns (a later call replaces it)."""
    _PROVIDERS[name] = fn


def get(name: str) -> Callable:
    """The function provided for hook ``name``; LookupError if none was provided."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise LookupError(f"no provider for stepwell hook '{name}' (the stepwell package "
                          f"root provides it: was stepwell/__init__.py bypassed?)") from None


def names() -> list[str]:
    return sorted(_PROVIDERS)
