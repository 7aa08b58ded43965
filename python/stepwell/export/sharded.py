"""A sharded export: the model partitioned over a mesh, each device's weights in the archive.

    sw.jax.export(fn, params, ids, path="gpt2-tp", in_shardings=(param_shardings, rep))
    model = sw.load("gpt2-tp")          # on as many devices as the mesh has
    logits = model(ids)                 # global arrays in and out

``fn(params, *args)`` is lowered with JAX's shardings (``in_shardings`` as ``jax.jit``
takes them for ``(params, *args)``), partitioned (``nn-partition``), and wrapped: every
parameter becomes one ``util.global`` per device, placed there (``stream.affinity``)
and read from the archive entry of the block that device holds (``name#0,64``: the
block's first index in each dimension; a replicated parameter is one entry that every
device reads). ``@main`` takes only the inputs, each as its shards, like any partitioned
module. The manifest adds the mesh and the device count; its ``parameters`` are the
archive's entries (local shapes).
"""

from __future__ import annotations

import json
import time

import numpy as np

from stepwell.core import sharding as sh
from stepwell.core.diagnostics import StepwellError


def export_sharded(fn, params, *example_args, path, in_shardings, out_shardings=None, target="cpu",
                   flags=(), cache=None, raise_ops: bool | None = None, name: str | None = None) -> dict:
    import jax

    from stepwell import targets
    from stepwell.compiler import devices, driver
    from stepwell.export.manifest import FORMAT, SCHEMA, SCOPE, io, versions
    from stepwell.export.pytree import is_array, json_tree, path_name, tree_spec
    from stepwell.export.entries import input_names
    from stepwell.export.writer import _write, check_destination
    from stepwell.frontends.jax import importer, shardy

    if path is None:
        raise StepwellError("export needs a path: the folder to write")
    tgt = targets.get(target)
    check_destination(str(path))
    start = time.perf_counter()
    flat_params = jax.tree_util.tree_flatten_with_path(params)[0]
    names = [path_name(p) for p, _ in flat_params]
    param_specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), params)
    sig = importer.signature((param_specs, *example_args), {})
    avals = [importer.aval_of(leaf) for leaf in sig.leaves]
    shardings = shardy.flat_shardings(fn, sig, avals, in_shardings, out_shardings)
    fn_name = name or getattr(fn, "__name__", None) or type(fn).__name__
    want_raise = raise_ops is not False and importer.raise_available()
    module = importer._import(fn, sig, avals, raise_ops=want_raise, shardings=shardings,
                              name=f"<export:{fn_name}>")
    if sh.MESH not in module.operation.attributes:
        raise StepwellError("export(in_shardings=...): the shardings name no mesh of several devices")
    part = devices.partition(module)
    leaves, keys, types, symbols = wrap_sharded(part, len(names), names, [leaf for _, leaf in flat_params])
    vmfb = driver.compile_vmfb(part, tgt, flags=flags, cache=cache)
    mesh = sh.mesh_of(part.operation)
    arg_leaves = jax.tree_util.tree_flatten_with_path(example_args)[0]
    out_struct = jax.tree.unflatten(module.out_tree, list(range(len(module.out_avals))))
    from stepwell.core.types import dtype_of
    manifest = {
        "format": FORMAT, "schema": SCHEMA, "name": fn_name, "target": tgt.spec,
        "backend": tgt.backend, "driver": tgt.driver, "dynamic_batch": False, "raised": module.raised,
        "versions": versions(jax.__version__),
        "mesh": {"axes": list(mesh.axes), "shape": list(mesh.shape)}, "devices": mesh.size,
        "entry_points": {"main": {
            "inputs": [io(n, a.shape, dtype_of(np.dtype(a.dtype)))
                       for n, a in zip(input_names(fn, arg_leaves), avals[len(names):])],
            "outputs": [io(path_name(p, "output"), a.shape, dtype_of(np.dtype(a.dtype)))
                        for (p, _), a in zip(jax.tree_util.tree_flatten_with_path(out_struct)[0],
                                             module.out_avals)],
            "input_tree": json_tree(tree_spec(tuple(example_args), is_array)),
            "output_tree": json_tree(tree_spec(out_struct, lambda x: isinstance(x, int)))}},
        "parameter_scope": SCOPE,
        "parameters": [{"name": k, "symbol": s, "shape": list(t.shape), "dtype": t.numpy_dtype().name}
                       for k, s, t in zip(keys, symbols, types)],
        "compile_seconds": round(time.perf_counter() - start, 3),
    }
    _write(str(path), vmfb, [(None, leaf) for leaf in leaves], keys, types, manifest)
    return manifest


def wrap_sharded(module, n_params: int, names: list, arrays: list):
    """Make the partitioned ``@main``'s first ``n_params`` arguments per-device globals read
    from the archive; returns the archive's (arrays, keys, types) and one symbol per entry."""
    from stepwell.core.ir import context, ir
    from stepwell.core.types import TensorType
    from stepwell.export.manifest import SCOPE
    from stepwell.export.pytree import symbol
    from stepwell.export.wrapper import fresh
    from stepwell.passes._partition_expand import REFLECTION_KEY, device_symbol

    with context():
        main = next(op.operation for op in module.body.operations if op.operation.name == "func.func"
                    and ir.StringAttr(op.operation.attributes["sym_name"]).value == "main")
        meta = json.loads(ir.StringAttr(ir.DictAttr(main.attributes["iree.reflection"])[REFLECTION_KEY]).value)
        mesh = sh.Mesh(tuple(meta["mesh"]["axes"]), tuple(meta["mesh"]["shape"]))
        n = mesh.size
        ftype = ir.FunctionType(ir.TypeAttr(main.attributes["function_type"]).value)
        arg_types, res_types = [str(t) for t in ftype.inputs], [str(t) for t in ftype.results]
        taken = {ir.StringAttr(op.attributes["sym_name"]).value
                 for op in module.body.operations if "sym_name" in op.attributes}
        inner = fresh("main_sharded", taken)
        main.attributes["sym_name"] = ir.StringAttr.get(inner)
        main.attributes["sym_visibility"] = ir.StringAttr.get("private")
        del main.attributes["iree.reflection"]

        leaves, keys, types, symbols, lines, loads = [], [], [], [], [], []
        for i, (name, array) in enumerate(zip(names, arrays)):
            spec = tuple(tuple(a) for a in meta["inputs"][i]["spec"])
            array = np.asarray(array)
            for d in range(n):
                index = sh.shard_index(array.shape, spec, mesh, d)
                key = name if not any(spec) else f"{name}#{','.join(str(s.start) for s in index)}"
                t = arg_types[i * n + d]
                if key not in keys:
                    keys.append(key)
                    leaves.append(np.ascontiguousarray(array[index]))
                    types.append(TensorType.parse(t))
                sym = symbol(f"{name}.d{d}", taken)
                if key == keys[-1] and len(symbols) < len(keys):
                    symbols.append(sym)
                lines.append(f"util.global private @{sym} {{stream.affinity = #hal.device.promise<"
                             f"@{device_symbol(d)}>}} = #flow.parameter.named<{json.dumps(SCOPE)}::"
                             f"{json.dumps(key)}> : {t}")
                loads.append((sym, t))
        inputs = arg_types[n_params * n:]
        aff = lambda k: f"{{iree.abi.affinity = #hal.device.promise<@{device_symbol(k % n)}>}}"  # noqa: E731
        ins = ", ".join(f"%in{j}: {t} {aff(j)}" for j, t in enumerate(inputs))
        outs = ", ".join(f"{t} {aff(j)}" for j, t in enumerate(res_types))
        lines.append(f"func.func private @{inner}({', '.join(arg_types)}) -> ({', '.join(res_types)})")
        lines.append(f"func.func @main({ins}) -> ({outs}) {{")
        for k, (sym, t) in enumerate(loads):
            lines.append(f"  %p{k} = util.global.load @{sym} : {t}")
        call_args = [f"%p{k}" for k in range(len(loads))] + [f"%in{j}" for j in range(len(inputs))]
        lines.append(f"  %r:{len(res_types)} = func.call @{inner}({', '.join(call_args)}) : "
                     f"({', '.join(arg_types)}) -> ({', '.join(res_types)})")
        lines.append(f"  func.return {', '.join(f'%r#{j}' for j in range(len(res_types)))} : "
                     f"{', '.join(res_types)}")
        lines.append("}")
        snippet = ir.Module.parse("\n".join(lines), context())
        for op in list(snippet.body.operations):
            if op.operation.name == "func.func" and "sym_visibility" in op.operation.attributes \
                    and not op.operation.regions[0].blocks:
                continue  # the declaration of the inner function
            module.body.append(op)
        new_main = module.body.operations[len(module.body.operations) - 1].operation
        meta = {**meta, "inputs": meta["inputs"][n_params:]}
        new_main.attributes["iree.reflection"] = ir.DictAttr.get(
            {REFLECTION_KEY: ir.StringAttr.get(json.dumps(meta, separators=(",", ":")))})
    return leaves, keys, types, symbols
