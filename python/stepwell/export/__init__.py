"""Export a JAX model as a deployable folder, and load it back.

    import stepwell as sw
    sw.jax.export(model.apply, params, x, path="mlp/", target="cpu")   # fn(params, *args)
    model = sw.load("mlp/")          # checks the manifest and the files' hashes
    logits = model(x)                # numpy in, numpy out (fn's output pytree)

The folder holds three files:

``model.vmfb``
    the compiled module. Every parameter is a ``util.global`` initialised from
    ``#flow.parameter.named<"model"::"params/Dense_0/kernel">``: weights are never
    MLIR constants, so the module is small and compiles as fast as without weights.
``params.irpa``
    the weights, an IREE parameter archive keyed by each leaf's pytree path
    (``params/Dense_0/kernel``). It is written leaf by leaf from views of the
    arrays (no copy of the weights is made for float32/contiguous leaves).
``manifest.json``
    format and schema, each entry point's inputs and outputs (names, shapes with
    ``null`` for dynamic dimensions and ``dims`` naming their symbols, dtypes, pytree
    structure, its state), the target, the stepwell/IREE/JAX versions, each
    parameter's name, shape and dtype, and the size and SHA-256 of the two other files.

How: ``fn`` is lowered by JAX with the parameters as arguments (from their shapes
only: ``jax.ShapeDtypeStruct``), optionally raised to ``nn`` (``raise_ops``), then
``@main`` is renamed and wrapped by a new ``@main`` that takes only the inputs,
loads every parameter from its global and calls the original. IREE inlines the
call. With ``dynamic_batch=True`` the leading dimension of every input is JAX's
symbolic ``b`` (``dynamic_dims=`` names others: ``"b, s"``); JAX's dimension arguments
are computed from the inputs' sizes (``stepwell.frontends.jax.dims``). Several entry
points (``{"prefill": f, "decode": g}``) share one set of parameter globals; a
``state`` (a KV cache) stays on the device between calls (docs/llm.md).

``quantize="int8"|"int4"`` stores the linear layers' weights quantized (i8 or packed
int4 weights, f32 scales, optional zero points as parameters of their own, read by
``nn.quantized_linear``; ``quantized.py``, docs/low-precision.md).

The folder is written to a temporary sibling and renamed into place: a reader sees
the previous export or the whole new one. Loading needs only numpy and IREE's
runtime (JAX is not imported).

=================  ====================================================================
``writer``         ``export()``: trace, raise, quantize, compile, write the folder
``entries``        the entry points: traced with symbolic dims, names, manifest records
``wrapper``        the module: parameters as globals, one function per entry point
``state``          ``State``: a value kept on the device between calls (a KV cache)
``params``         the parameter archive (``params.irpa``)
``manifest``       ``manifest.json``: written, read and checked
``loader``         ``load()`` and ``ExportedModel``
``calls``          one entry point's call: inputs checked (shapes, named dims, limits, states)
``pytree``         input/output structure as JSON, names from pytree paths
``quantized``      weight-only quantization of the exported linear layers
``checkpoints``    weights from checkpoint files (npz, safetensors, msgpack, Orbax)
=================  ====================================================================
"""

from __future__ import annotations

from stepwell.export.loader import ExportedModel, load
from stepwell.export.manifest import (FORMAT, MANIFEST, PARAMS, SCHEMA, SCOPE, VMFB, read_manifest,
                                      verify_files)
from stepwell.export.params import write_parameters
from stepwell.export.pytree import path_name
from stepwell.export.writer import export


def dim_vars(main) -> list[str]:
    """JAX's dimension variables of a lowered ``@main`` (``stepwell.frontends.jax.dims``;
    imported on use: loading an export never imports JAX)."""
    from stepwell.frontends.jax.dims import dim_vars as find
    return find(main)

__all__ = ["export", "load", "ExportedModel", "read_manifest", "verify_files", "write_parameters",
           "path_name", "dim_vars", "MANIFEST", "VMFB", "PARAMS", "FORMAT", "SCHEMA", "SCOPE"]
