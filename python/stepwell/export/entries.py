"""One entry point of an export: traced by JAX (symbolic dimensions bound to the inputs),
raised to ``nn``, its linear weights quantized, described for the manifest.

``sw.jax.export(fn, params, *args)`` has one entry, ``main``;
``sw.jax.export({"prefill": f, "decode": g}, params, {"prefill": args, "decode": args})``
has one per name, all reading the same parameters. A *state* (``state="cache"``) is an
input of that name and the output of that key of a dict result: ``sw.load`` keeps it on
the device between calls, where IREE updates it in place (docs/llm.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from stepwell.core.diagnostics import StepwellError
from stepwell.export.pytree import is_array, json_tree, path_name, tree_spec

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Entry:
    name: str
    fn: object
    example_args: tuple
    arg_names: list
    spec_args: tuple = ()           # example args with symbolic dimensions
    module: object = None           # the JaxModule (StableHLO, or raised)
    raised: bool = False
    plan: object = None             # quantized.Plan
    leading: list = field(default_factory=list)   # parameter names before the inputs
    trailing: list = field(default_factory=list)  # quantized parameter names after them
    specializes: tuple = ()         # (entry, {symbol: size}) of a static specialization


def entries_of(fn, example_args, dynamic_dims) -> list[tuple]:
    """``(name, fn, example args, dynamic_dims)`` per entry point."""
    if not isinstance(fn, dict):
        return [("main", fn, tuple(example_args), dynamic_dims)]
    if len(example_args) != 1 or not isinstance(example_args[0], dict):
        raise StepwellError("export with several entry points takes one dict of example arguments "
                            "after params: {entry name: (args...)}")
    args = example_args[0]
    if set(args) != set(fn):
        raise StepwellError(f"export: the entry points {sorted(fn)} and the example arguments' keys "
                            f"{sorted(args)} differ")
    if dynamic_dims is not None and not (isinstance(dynamic_dims, dict) and set(dynamic_dims) <= set(fn)):
        raise StepwellError("export with several entry points takes dynamic_dims as a dict "
                            "{entry name: (spec per argument)}")
    out = []
    for name in fn:
        if not isinstance(name, str) or not _NAME.match(name) or name.startswith("__"):
            raise StepwellError(f"export: entry point name {name!r} must be an identifier "
                                "(letters, digits, _) not starting with '__'")
        a = args[name]
        out.append((name, fn[name], tuple(a) if isinstance(a, (tuple, list)) else (a,),
                    (dynamic_dims or {}).get(name)))
    return out


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


def trace(name, fn, example_args, dims, param_specs, param_names, *, dynamic_batch: bool,
          limits=None) -> Entry:
    """Lower ``fn(params, *example_args)`` with JAX (symbolic dimensions as asked)."""
    import jax

    from stepwell.frontends.jax import importer as jimport
    from stepwell.frontends.jax.dims import symbolic_specs
    leaves = jax.tree_util.tree_flatten_with_path(example_args)[0]
    names = input_names(fn, leaves)
    specs = symbolic_specs(example_args, dynamic_batch=dynamic_batch, dynamic_dims=dims, names=names,
                           limits=limits)
    fn_name = getattr(fn, "__name__", None) or type(fn).__name__
    module = jimport.import_function(fn, param_specs, *specs, raise_ops=False, name=f"<export:{fn_name}>",
                                     input_names=list(param_names) + names)
    return Entry(name, fn, example_args, names, tuple(specs), module)


def specializations(entry: Entry, sizes: dict, param_specs, param_names) -> list[Entry]:
    """``entry`` traced again with each ``{symbol: [sizes]}`` fixed (``decode__b1``), for the
    entry points whose only symbol it is: IREE picks its kernels for the static size (a
    one-row matmul reads the weights once, where the dynamic one is tiled for 16 rows);
    sw.load calls it when the inputs have that size."""
    import jax

    from stepwell.frontends.jax import importer as jimport
    from stepwell.frontends.jax.dims import is_symbolic
    out = []
    leaves = jax.tree.leaves(entry.spec_args)
    used = {str(d) for leaf in leaves for d in leaf.shape if is_symbolic(d)}
    for sym, values in sizes.items():
        if used != {sym}:  # (only entry points it makes fully static: decode, not prefill's s)
            continue
        for value in values:
            specs = [jax.ShapeDtypeStruct(tuple(int(value) if str(d) == sym else d for d in leaf.shape),
                                          leaf.dtype) for leaf in leaves]
            specs = jax.tree.unflatten(jax.tree.structure(entry.spec_args), specs)
            module = jimport.import_function(entry.fn, param_specs, *specs, raise_ops=False,
                                             name=f"<export:{entry.name}[{sym}={value}]>",
                                             input_names=list(param_names) + entry.arg_names)
            out.append(Entry(f"{entry.name}__{sym}{value}", entry.fn, entry.example_args, entry.arg_names,
                             tuple(specs), module, specializes=(entry.name, {sym: int(value)})))
    return out


def describe(entry: Entry, input_types, output_types, state: tuple) -> dict:
    """The manifest's record of an entry point: inputs and outputs (names, shapes with
    null where dynamic, the symbols of the dynamic dims, dtypes, structure), its state."""
    import jax

    from stepwell.export.manifest import io
    from stepwell.frontends.jax.dims import symbols_of
    spec_leaves = jax.tree.leaves(entry.spec_args)
    dims = symbols_of([jax.ShapeDtypeStruct(s.shape, s.dtype) for s in spec_leaves])
    out_avals = entry.module.out_avals
    out_struct = jax.tree.unflatten(entry.module.out_tree, list(range(len(out_avals))))
    out_paths = jax.tree_util.tree_flatten_with_path(out_struct)[0]
    out_dims = symbols_of(out_avals)
    inputs = [io(n, t.shape, t.dtype, d) for n, t, d in zip(entry.arg_names, input_types, dims)]
    outputs = [io(path_name(p, "output"), t.shape, t.dtype, d)
               for (p, _), t, d in zip(out_paths, output_types, out_dims)]
    record = {"inputs": inputs, "outputs": outputs,
              "input_tree": json_tree(tree_spec(tuple(entry.example_args), is_array)),
              "output_tree": json_tree(tree_spec(out_struct, lambda x: isinstance(x, int)))}
    states = {}
    for s in state:
        i = next((k for k, x in enumerate(inputs) if x["name"] == s), None)
        o = next((k for k, x in enumerate(outputs) if x["name"] == f"output/{s}"), None)
        if o is None and i is not None:
            raise StepwellError(f"export: entry point '{entry.name}' takes the state '{s}' but does "
                                f"not return it (return a dict with the key '{s}')")
        if i is not None and (inputs[i]["dtype"], len(inputs[i]["shape"])) != (
                outputs[o]["dtype"], len(outputs[o]["shape"])):
            raise StepwellError(f"export: entry point '{entry.name}' returns the state '{s}' as "
                                f"{outputs[o]['type']}, it takes {inputs[i]['type']}")
        if o is not None:
            states[s] = {"input": i, "output": o}
    if states:
        record["state"] = states
    if entry.specializes:
        record["specializes"] = {"entry": entry.specializes[0], "dims": entry.specializes[1]}
    return record


def check_states(records: dict, state: tuple) -> None:
    """Every named state is returned by some entry point."""
    for s in state:
        if not any(s in r.get("state", {}) for r in records.values()):
            raise StepwellError(f"export: no entry point returns the state '{s}' (an output keyed "
                                f"'{s}' of a dict result)")


def float_bytes(plan, param_avals) -> dict:
    return {w.source: int(np.prod(param_avals[w.source].shape, dtype=np.int64))
            * np.dtype(param_avals[w.source].dtype).itemsize for w in plan.weights}
