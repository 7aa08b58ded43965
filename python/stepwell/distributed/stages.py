"""A model cut into pipeline stages: one export folder per stage (docs/distributed.md).

    sw.jax.export(fn, params, *args, path="gpt2-pp", stages=2)         # balanced by FLOPs
    sw.jax.export(fn, params, *args, path="gpt2-pp", stages=["h_1"])   # cut before layer h_1
    sw.jax.export([embed, blocks, head], [p0, p1, p2], *args, path="pp")  # your own stages
    model = sw.load("gpt2-pp")                    # runs the stages one after the other
    model = sw.distributed.RayPipeline("gpt2-pp") # one Ray actor per stage

``fn`` is traced and raised once; the ops of its ``@main`` are cut in program order.
Stage ``k`` takes what stage ``k - 1`` returns: every value made before the cut and used
after it (the function's own inputs are passed along while a later stage needs them).
Constants are copied into each stage that uses them; each stage loads only the
parameters it uses. A layer name matches a component of the JAX location path
(Flax's module names: ``h_1`` in ``GPT2.hidden/h_1/attn/...``).

The folder holds ``manifest.json`` (format ``stepwell-pipeline``: the stages, each one's
inputs and outputs, the whole function's inputs and outputs) and ``stage0/``,
``stage1/``...: ordinary export folders (``sw.load`` loads each). With explicit stage
functions, stage ``k + 1`` is traced on what stage ``k`` returns; a stage that cannot
take it is an error at export.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time

import numpy as np

from stepwell.core.diagnostics import StepwellError

FORMAT = "stepwell-pipeline"
SCHEMA = 1
_HEAVY = {"nn.linear", "nn.matmul", "prim.contract", "nn.attention", "nn.conv2d",
          "stablehlo.dot_general", "stablehlo.convolution", "nn.quantized_linear"}


def export_stages(fn, params, *args, path, stages=2, target="cpu", flags=(), cache=None,
                  raise_ops: bool | None = None, name: str | None = None) -> dict:
    """Write a pipeline folder (see the module docstring); returns its manifest."""
    import jax

    from stepwell import targets
    from stepwell.export.pytree import is_array, json_tree, path_name, tree_spec
    from stepwell.export.entries import input_names
    from stepwell.export.writer import check_destination
    from stepwell.frontends.jax import importer

    if path is None:
        raise StepwellError("export needs a path: the folder to write")
    path = os.fspath(path)
    tgt = targets.get(target)
    _check_pipeline_destination(path, check_destination)
    want_raise = raise_ops is not False and importer.raise_available()
    start = time.perf_counter()
    if isinstance(fn, (list, tuple)):
        parts = _traced_stages(fn, params, args, want_raise)
        whole_in = parts[0][1].in_avals[sum(len(jax.tree.leaves(p)) for p in params[:1]):]
        out_tree, out_avals, fn_name = parts[-1][1].out_tree, parts[-1][1].out_avals, name or "pipeline"
        first_fn = fn[0]
    else:
        module = _trace(fn, params, args, want_raise)
        flat = jax.tree_util.tree_flatten_with_path(params)[0]
        parts = _cut(module, [path_name(p) for p, _ in flat], [leaf for _, leaf in flat], stages)
        whole_in = module.in_avals[len(flat):]
        out_tree, out_avals = module.out_tree, module.out_avals
        fn_name, first_fn = name or getattr(fn, "__name__", "pipeline"), fn
    arg_leaves = jax.tree_util.tree_flatten_with_path(args)[0]
    out_struct = jax.tree.unflatten(out_tree, list(range(len(out_avals))))
    manifest = {
        "format": FORMAT, "schema": SCHEMA, "name": fn_name, "target": tgt.spec,
        "entry_points": {"main": {
            "inputs": [_io(n, a) for n, a in zip(input_names(first_fn, arg_leaves), whole_in)],
            "outputs": [_io(path_name(p, "output"), a) for (p, _), a in
                        zip(jax.tree_util.tree_flatten_with_path(out_struct)[0], out_avals)],
            "input_tree": json_tree(tree_spec(tuple(args), is_array)),
            "output_tree": json_tree(tree_spec(out_struct, lambda x: isinstance(x, int)))}},
        "stages": [],
    }
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.tmp-", dir=parent)
    try:
        for k, (names, module, leaves) in enumerate(parts):
            folder = f"stage{k}"
            stage = _write_stage(os.path.join(tmp, folder), module, names, leaves, tgt, flags, cache,
                                 f"{fn_name}/stage{k}")
            manifest["stages"].append({"folder": folder, "inputs": stage["entry_points"]["main"]["inputs"],
                                       "outputs": stage["entry_points"]["main"]["outputs"],
                                       "parameters": len(names)})
        _check_chain(manifest["stages"])
        manifest["compile_seconds"] = round(time.perf_counter() - start, 3)
        with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
        if os.path.exists(path):
            shutil.rmtree(path)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _check_pipeline_destination(path, check_destination) -> None:
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "manifest.json")):
        with open(os.path.join(path, "manifest.json"), encoding="utf-8") as f:
            try:
                if json.load(f).get("format") == FORMAT:
                    return  # an earlier pipeline export: replaced
            except json.JSONDecodeError:
                pass
    check_destination(path)


def _io(name, aval) -> dict:
    from stepwell.core.types import dtype_of
    from stepwell.export.manifest import io
    return io(name, aval.shape, dtype_of(np.dtype(aval.dtype)))


def _trace(fn, params, args, want_raise):
    import jax

    from stepwell.frontends.jax import importer
    specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(
        np.shape(a), a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype), params)
    module = importer.import_function(fn, specs, *args, raise_ops=False)
    if want_raise:
        importer.raise_stablehlo(module)
    return module


def _traced_stages(fns, params, args, want_raise):
    """Explicit stage functions: each traced on what the one before returns."""
    import jax

    from stepwell.export.pytree import path_name
    if not isinstance(params, (list, tuple)) or len(params) != len(fns):
        raise StepwellError(f"export: {len(fns)} stage functions need a list of {len(fns)} parameter "
                            f"pytrees, one per stage")
    parts, inputs = [], args
    for k, (fn, p) in enumerate(zip(fns, params)):
        try:
            module = _trace(fn, p, inputs, want_raise)
        except (TypeError, ValueError) as e:
            if k == 0:
                raise
            got = ", ".join(f"{np.dtype(a.dtype).name}{list(a.shape)}" for a in jax.tree.leaves(inputs))
            first = str(e).strip().splitlines()[0]
            raise StepwellError(f"export: stage {k} does not take what stage {k - 1} returns "
                                f"({got}): {first}") from None
        flat = jax.tree_util.tree_flatten_with_path(p)[0]
        parts.append(([f"stage{k}/{path_name(q)}" for q, _ in flat], module, [leaf for _, leaf in flat]))
        inputs = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in module.out_avals)
    return [(names, module, leaves) for names, module, leaves in parts]


# -- cutting one traced module ------------------------------------------------------------
def _cost(op) -> float:
    from stepwell.core.types import TensorType
    out = [TensorType.from_mlir(r.type) for r in op.results]
    size = sum(int(np.prod([d or 1 for d in t.shape])) for t in out if t is not None)
    if op.name in _HEAVY and op.operands:
        k = TensorType.from_mlir(op.operands[0].type)
        return 2.0 * size * (k.shape[-1] or 1 if k is not None and k.shape else 1)
    return float(size)


def _free(op) -> bool:
    """Ops that are copied into each stage that uses them (constants, iotas)."""
    return not op.operands and not op.regions and len(op.results) == 1


def _layer_index(body, layer: str) -> int:
    pattern = re.compile(r"[/\"]" + re.escape(layer) + r"[/\"]")
    for i, op in enumerate(body):
        if pattern.search(str(op.location)):
            return i
    raise StepwellError(f"export: no op belongs to a layer named '{layer}' (layer names are "
                        "components of JAX's location path, such as Flax module names)")


def _cut(module, names, leaves, stages):
    """Cut @main into stages; returns [(param names, stage module, param leaves)]."""
    from stepwell.core.ir import ir
    main = next(op.operation for op in module.body.operations if op.operation.name == "func.func"
                and ir.StringAttr(op.operation.attributes["sym_name"]).value == "main")
    block = main.regions[0].blocks[0]
    ops = [op.operation for op in block.operations]
    ret, body = ops[-1], [op for op in ops[:-1] if not _free(op)]
    if isinstance(stages, int):
        if stages < 1 or stages > len(body):
            raise StepwellError(f"export: stages={stages}: the function has {len(body)} ops to share")
        costs = np.cumsum([_cost(op) for op in body])
        cuts = [int(np.searchsorted(costs, costs[-1] * k / stages)) + 1 for k in range(1, stages)]
    else:
        cuts = [_layer_index(body, layer) for layer in stages]
    bounds = [0, *cuts, len(body)]
    if any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise StepwellError(f"export: the cuts {list(stages) if not isinstance(stages, int) else stages} "
                            "leave a stage without ops (give layer names in program order)")
    n_params = len(names)
    params, inputs = list(block.arguments)[:n_params], list(block.arguments)[n_params:]
    groups = [body[a:b] for a, b in zip(bounds, bounds[1:])]
    stage_of = {op: k for k, g in enumerate(groups) for op in g}

    def last_use(v) -> int:
        return max((len(groups) if u.owner.operation == ret else stage_of.get(_top(u.owner.operation, block), -1)
                    for u in v.uses), default=-1)
    made = list(inputs)
    crossing = [list(inputs)]
    for k, g in enumerate(groups[:-1]):
        made += [r for op in g for r in op.results]
        crossing.append([v for v in made if last_use(v) > k])
    crossing.append(list(ret.operands))
    out = []
    for k, g in enumerate(groups):
        used = [p for p in params if any(stage_of.get(_top(u.owner.operation, block)) == k for u in p.uses)]
        idx = [params.index(p) for p in used]
        stage = _stage_module(module, g, used, crossing[k], crossing[k + 1], ops)
        out.append(([names[i] for i in idx], stage, [leaves[i] for i in idx]))
    return out


def _top(op, block):
    """The op of ``block`` that holds ``op`` (itself, or the op whose region it is in)."""
    while op is not None and op.block != block:
        parent = op.parent
        op = parent.operation if parent is not None else None
    return op


def _stage_module(module, ops, params, ins, outs, all_ops):
    """A module whose @main(params..., ins...) runs ``ops`` and returns ``outs``."""
    from stepwell.core.ir import context, ir
    from stepwell.core.module import Module
    with context(), ir.Location.unknown():
        new = ir.Module.create()
        types = [v.type for v in params + ins]
        with ir.InsertionPoint(new.body):
            fn = ir.Operation.create("func.func", regions=1, attributes={
                "sym_name": ir.StringAttr.get("main"),
                "function_type": ir.TypeAttr.get(ir.FunctionType.get(types, [v.type for v in outs]))})
            block = fn.regions[0].blocks.append(*types)
        mapping = dict(zip(params + ins, block.arguments))
        free = {op.results[0]: op for op in all_ops if _free(op)}

        def value(v):
            if v not in mapping and v in free:
                with ir.InsertionPoint.at_block_begin(block):
                    mapping[v] = free[v].clone().results[0]
            if v not in mapping:
                raise StepwellError("export: a stage uses a value no earlier stage passes on "
                                    "(a bug in the cut)")
            return mapping[v]
        from stepwell.passes._partition_expand import clone_into, uses
        with ir.InsertionPoint(block):
            for op in ops:
                for v in uses(op):
                    value(v)
                clone_into(op, mapping)
            ir.Operation.create("func.return", operands=[value(v) for v in outs])
    return Module(new, getattr(module, "name", "-"))


def _write_stage(folder, module, names, leaves, tgt, flags, cache, label) -> dict:
    from stepwell.compiler import driver
    from stepwell.export.manifest import FORMAT as EXPORT_FORMAT, SCHEMA as EXPORT_SCHEMA
    from stepwell.export.manifest import SCOPE, io, versions
    from stepwell.export.wrapper import wrap_main
    from stepwell.export.writer import _write
    import jax
    start = time.perf_counter()
    raised = bool(getattr(module, "raised", False))
    merged, wrapped = wrap_main(module, names, getattr(module, "name", label))
    vmfb = driver.compile_vmfb(merged, tgt, flags=flags, cache=cache)
    manifest = {
        "format": EXPORT_FORMAT, "schema": EXPORT_SCHEMA, "name": label, "target": tgt.spec,
        "backend": tgt.backend, "driver": tgt.driver, "dynamic_batch": False,
        "raised": raised, "versions": versions(jax.__version__),
        "entry_points": {"main": {
            "inputs": [io(f"x{i}", t.shape, t.dtype) for i, t in enumerate(wrapped.input_types["main"])],
            "outputs": [io(f"y{i}", t.shape, t.dtype) for i, t in enumerate(wrapped.output_types["main"])]}},
        "parameter_scope": SCOPE,
        "parameters": [{"name": n, "symbol": s, "shape": list(t.shape), "dtype": t.numpy_dtype().name}
                       for n, s, t in zip(names, wrapped.param_symbols, wrapped.param_types)],
        "compile_seconds": round(time.perf_counter() - start, 3),
    }
    _write(folder, vmfb, [(None, leaf) for leaf in leaves], names, wrapped.param_types, manifest)
    return manifest


def _check_chain(stages: list) -> None:
    """Each stage's outputs are the next one's inputs (count, shapes, dtypes)."""
    for k in range(len(stages) - 1):
        outs = [(o["shape"], o["dtype"]) for o in stages[k]["outputs"]]
        ins = [(i["shape"], i["dtype"]) for i in stages[k + 1]["inputs"]]
        if outs != ins:
            raise StepwellError(f"export: stage {k} returns {_types(stages[k]['outputs'])} but stage "
                                f"{k + 1} takes {_types(stages[k + 1]['inputs'])}")


def _types(ios) -> str:
    return "(" + ", ".join(f"{i['dtype']}{i['shape']}" for i in ios) + ")"


# -- loading ------------------------------------------------------------------------------
def read_pipeline(path) -> dict | None:
    """The pipeline manifest of ``path``, or None when it is not a pipeline folder."""
    file = os.path.join(os.fspath(path), "manifest.json")
    if not os.path.isfile(file):
        return None
    try:
        with open(file, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    if manifest.get("schema") != SCHEMA:
        raise StepwellError(f"'{file}' has pipeline schema {manifest.get('schema')!r}; this stepwell "
                            f"reads schema {SCHEMA}")
    return manifest


class LocalPipeline:
    """The stages of a pipeline folder run one after the other in this process."""

    def __init__(self, path, manifest: dict, **load_kwargs):
        from stepwell.export import load
        self.path, self.manifest = os.fspath(path), manifest
        self.stages = [load(os.path.join(self.path, s["folder"]), **load_kwargs)
                       for s in manifest["stages"]]
        entry = manifest["entry_points"]["main"]
        self.inputs, self.outputs = entry["inputs"], entry["outputs"]

    def __repr__(self) -> str:
        return f"<stepwell.LocalPipeline {self.manifest.get('name')}: {len(self.stages)} stages>"

    def flat_inputs(self, args) -> list:
        from stepwell.export.pytree import OPAQUE, flatten
        tree = (self.manifest["entry_points"]["main"].get("input_tree") or {}).get("spec", OPAQUE)
        leaves = list(args) if tree is OPAQUE else flatten(tree, tuple(args))
        return self.stages[0].check_inputs(leaves)

    def result(self, flat):
        from stepwell.export.pytree import OPAQUE, unflatten
        tree = (self.manifest["entry_points"]["main"].get("output_tree") or {}).get("spec", OPAQUE)
        return tuple(flat) if tree is OPAQUE else unflatten(tree, list(flat))

    def __call__(self, *args):
        values = self.flat_inputs(args)
        for stage in self.stages:
            out = stage.executable.function("main")(*values)
            values = list(out) if isinstance(out, tuple) else [out]
        return self.result(values)


def load_stages(path, **load_kwargs) -> LocalPipeline:
    manifest = read_pipeline(path)
    if manifest is None:
        raise StepwellError(f"'{path}' is not a pipeline export (no \"format\": \"{FORMAT}\" manifest)")
    return LocalPipeline(path, manifest, **load_kwargs)


def load(path, **kwargs):
    """``sw.load``: a pipeline folder as a :class:`LocalPipeline`, any other export folder
    as ``stepwell.export.load`` loads it."""
    if read_pipeline(path) is not None:
        return load_stages(path, **kwargs)
    from stepwell.export import load as load_export
    return load_export(path, **kwargs)
