"""Tracing the exported function with JAX: input specs (with the symbolic batch) and names."""

from __future__ import annotations

import numpy as np

from stepwell.core.diagnostics import StepwellError
from stepwell.export.pytree import path_name


def input_spec(leaf, batch):
    import jax

    from stepwell.frontends.jax.importer import aval_of
    aval = aval_of(leaf)
    shape = tuple(aval.shape)
    if batch is not None and shape:
        shape = (batch, *shape[1:])
    return jax.ShapeDtypeStruct(shape, aval.dtype, weak_type=getattr(aval, "weak_type", False))


def check_batch(arg_leaves) -> None:
    sizes = {tuple(np.shape(leaf))[0] for _, leaf in arg_leaves if np.ndim(leaf) >= 1}
    if not arg_leaves or not sizes:
        raise StepwellError("export(dynamic_batch=True): no input has a leading (batch) "
                            "dimension to make dynamic")
    if len(sizes) > 1:
        raise StepwellError(f"export(dynamic_batch=True): the example inputs' leading "
                            f"dimensions differ ({sorted(sizes)}); they must all be the batch")


def input_names(fn, arg_leaves) -> list[str]:
    """``x``, ``batch/ids``: the function's parameter names (after ``params``) and the
    leaves' paths; ``input0``... where the signature does not name them."""
    import inspect
    try:
        positional = [p.name for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
    except (TypeError, ValueError):
        positional = []
    out = []
    for path, _ in arg_leaves:
        i = path[0].idx if path and hasattr(path[0], "idx") else 0
        root = positional[i] if i < len(positional) else f"input{i}"
        out.append(path_name(path[1:], root))
    return out
