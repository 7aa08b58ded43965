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
    format and schema, the entry point's inputs and outputs (names, shapes with
    ``null`` for the dynamic batch, dtypes, pytree structure), the target, the
    stepwell/IREE/JAX versions, each parameter's name, shape and dtype, and the
    size and SHA-256 of the two other files.

How: ``fn`` is lowered by JAX with the parameters as arguments (from their shapes
only: ``jax.ShapeDtypeStruct``), optionally raised to ``nn`` (``raise_ops``), then
``@main`` is renamed and wrapped by a new ``@main`` that takes only the inputs,
loads every parameter from its global and calls the original. IREE inlines the
call. With ``dynamic_batch=True`` the leading dimension of every input is JAX's
symbolic ``b``; the wrapper passes JAX's dimension argument from the input's shape.

``quantize="int8"|"int4"`` stores the linear layers' weights quantized (i8 or packed
int4 weights, f32 scales, optional zero points as parameters of their own, read by
``nn.quantized_linear``; ``stepwell/_export_quant.py``, docs/low-precision.md).

The folder is written to a temporary sibling and renamed into place: a reader sees
the previous export or the whole new one. Loading needs only numpy and IREE's
runtime (JAX is not imported).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time

import numpy as np

from stepwell.core.diagnostics import Diagnostic, StepwellError

__all__ = ["export", "load", "ExportedModel", "read_manifest", "MANIFEST", "VMFB", "PARAMS",
           "FORMAT", "SCHEMA", "SCOPE"]

log = logging.getLogger("stepwell.export")

FORMAT = "stepwell-export"
SCHEMA = 1
SCOPE = "model"                 # the parameter scope in #flow.parameter.named<"model"::...>
MANIFEST = "manifest.json"
VMFB = "model.vmfb"
PARAMS = "params.irpa"
BATCH = "b"                     # the symbolic leading dimension of dynamic_batch exports
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------
# Pytrees without JAX: the structure of inputs and outputs, as JSON.
# ---------------------------------------------------------------------------
# A spec is "*" (a leaf), null (None: no leaves), {"tuple": [...]}, {"list": [...]} or
# {"dict": [[key, spec], ...]} with keys in JAX's flattening order (sorted).

def _tree_spec(tree, is_leaf):
    """The JSON spec of a pytree of plain containers, or None if it holds other nodes."""
    if tree is None:
        return None
    if is_leaf(tree):
        return "*"
    if isinstance(tree, (tuple, list)) and not hasattr(tree, "_fields"):
        items = [_tree_spec(t, is_leaf) for t in tree]
        if any(i is _OPAQUE for i in items):
            return _OPAQUE
        return {"tuple" if isinstance(tree, tuple) else "list": items}
    if isinstance(tree, dict) or type(tree).__name__ == "FrozenDict":
        try:
            keys = sorted(tree.keys())
        except TypeError:
            return _OPAQUE
        if not all(isinstance(k, str) for k in keys):
            return _OPAQUE
        items = [[k, _tree_spec(tree[k], is_leaf)] for k in keys]
        if any(v is _OPAQUE for _, v in items):
            return _OPAQUE
        return {"dict": items}
    return _OPAQUE


_OPAQUE = object()


def _flatten(spec, value, where="inputs"):
    """Leaves of ``value`` following ``spec``; StepwellError if the structure differs."""
    if spec is None:
        if value is not None:
            raise StepwellError(f"{where}: expected None, got {type(value).__name__}")
        return []
    if spec == "*":
        return [value]
    if "dict" in spec:
        if not isinstance(value, dict) and not hasattr(value, "keys"):
            raise StepwellError(f"{where}: expected a dict with keys "
                                f"{[k for k, _ in spec['dict']]}, got {type(value).__name__}")
        want = [k for k, _ in spec["dict"]]
        if sorted(value.keys()) != want:
            raise StepwellError(f"{where}: expected a dict with keys {want}, got keys "
                                f"{sorted(value.keys())}")
        return [leaf for k, s in spec["dict"] for leaf in _flatten(s, value[k], f"{where}[{k!r}]")]
    items = spec.get("tuple", spec.get("list"))
    if not isinstance(value, (tuple, list)) or len(value) != len(items):
        raise StepwellError(f"{where}: expected a sequence of {len(items)}, got "
                            f"{type(value).__name__}"
                            + (f" of {len(value)}" if isinstance(value, (tuple, list)) else ""))
    return [leaf for i, (s, v) in enumerate(zip(items, value))
            for leaf in _flatten(s, v, f"{where}[{i}]")]


def _unflatten(spec, leaves):
    it = iter(leaves)

    def build(s):
        if s is None:
            return None
        if s == "*":
            return next(it)
        if "dict" in s:
            return {k: build(v) for k, v in s["dict"]}
        if "tuple" in s:
            return tuple(build(v) for v in s["tuple"])
        return [build(v) for v in s["list"]]
    return build(spec)


# ---------------------------------------------------------------------------
# Names: parameter keys from pytree paths, MLIR symbols from keys.
# ---------------------------------------------------------------------------
def _key_part(entry) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def path_name(path, root: str = "") -> str:
    """``(DictKey('params'), DictKey('Dense_0'), DictKey('kernel'))`` -> ``params/Dense_0/kernel``."""
    parts = [root] if root else []
    parts += [_key_part(p) for p in path]
    return "/".join(parts) or "param"


def _symbol(name: str, taken: set) -> str:
    base = "param." + (re.sub(r"[^A-Za-z0-9_$.]", "_", name.replace("/", ".")) or "_")
    sym, n = base, 1
    while sym in taken:
        sym, n = f"{base}_{n}", n + 1
    taken.add(sym)
    return sym


# ---------------------------------------------------------------------------
# Export.
# ---------------------------------------------------------------------------
def export(fn, params, *example_args, path, target="cpu", dynamic_batch: bool = False,
           raise_ops: bool | None = None, flags=(), cache: bool | None = None,
           name: str | None = None, quantize: str | None = None, group_size: int = 128,
           symmetric: bool = True) -> dict:
    """Compile ``fn(params, *example_args)`` for ``target`` and write the folder ``path``.

    ``params`` is any pytree of arrays (Flax ``variables``: ``{"params": ...,
    "batch_stats": ...}``); its leaves go to ``params.irpa``, keyed by their pytree
    path. ``example_args`` (arrays or ``jax.ShapeDtypeStruct``, any pytree of them)
    fix the input shapes and dtypes. ``dynamic_batch=True`` makes the leading
    dimension of every input of rank >= 1 symbolic, so any batch size runs.
    ``raise_ops``: raise StableHLO to ``nn`` first (None: when the pass is
    installed, falling back to plain StableHLO if raising or compiling the raised
    module fails; True: raise or fail; False: never). ``flags``: extra iree-compile
    flags. Returns the manifest (a dict, also written to ``manifest.json``).

    ``quantize="int8"|"int4"`` stores the weights of the linear layers quantized
    (weight-only, as ``nn-quantize-weights{bits group_size symmetric}``): each
    parameter used as an ``nn.linear``/``nn.matmul`` weight ``[in, out]`` (or, transposed,
    as a tied output projection) is quantized on the host (``stepwell.quantize``) and
    written as ``<name>.qweight`` (i8; int4 packed two per byte), ``<name>.scales`` (f32,
    ``group_size`` elements of ``in`` per scale; 0/-1: per output channel) and, with
    ``symmetric=False``, ``<name>.zero_points``; the layer becomes ``nn.quantized_linear``.
    Biases, norms, embeddings and layers the group size does not fit stay float; the
    manifest's ``quantization`` says which is which. Quantizing needs the ``nn`` raising.
    """
    import jax

    from stepwell.export import quantized as xq
    from stepwell import targets
    from stepwell.frontends.jax import importer as jimport

    qopts = xq.options(quantize, group_size, symmetric)
    if path is None:
        raise StepwellError("export needs a path: the folder to write")
    path = os.fspath(path)
    tgt = targets.get(target)
    if qopts is not None and qopts.bits == 4:
        from stepwell.passes.nn_precision import check_target
        check_target("int4", tgt)       # (the StableHLO path of a dynamic batch too)
    _check_destination(path)

    # Parameters: names, shapes and dtypes (no data is touched until they are written).
    flat_params = jax.tree_util.tree_flatten_with_path(params)[0]
    names = [path_name(p) for p, _ in flat_params]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise StepwellError(f"export: parameters with the same path name: {', '.join(dup)}")
    param_avals = [jimport.aval_of(leaf) for _, leaf in flat_params]
    param_specs = jax.tree.unflatten(jax.tree.structure(params),
                                     [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in param_avals])

    # Inputs: shapes (with the symbolic batch), names and structure.
    arg_leaves, arg_tree = jax.tree_util.tree_flatten_with_path(example_args)
    # One symbol for every input: symbols from separate symbolic_shape calls never unify.
    batch = jax.export.symbolic_shape(BATCH)[0] if dynamic_batch else None
    arg_specs = [_input_spec(leaf, batch) for _, leaf in arg_leaves]
    if dynamic_batch:
        _check_batch(arg_leaves)
    arg_names = _input_names(fn, arg_leaves)
    spec_args = jax.tree.unflatten(jax.tree.structure(example_args), arg_specs)
    fn_name = name or getattr(fn, "__name__", None) or type(fn).__name__

    start = time.perf_counter()
    want_raise = raise_ops is not False and jimport.raise_available()
    if qopts is not None and not want_raise:
        raise StepwellError(f"export(quantize={quantize!r}) finds the linear layers at the nn level: "
                            + ("it cannot be combined with raise_ops=False" if raise_ops is False
                               else "the stablehlo-to-nn raising is not available"))
    plan = None
    module = jimport.import_function(fn, param_specs, *spec_args, raise_ops=False,
                                     name=f"<export:{fn_name}>")
    raised = False
    vmfb = None
    if want_raise:
        candidate = module.clone()
        try:
            jimport.raise_stablehlo(candidate)
            if qopts is not None:
                plan = xq.rewrite(candidate, names, len(names), qopts)
                wrapped = _wrap(candidate, len(plan.keep),
                                [names[j] for j in plan.keep] + [p[0] for p in plan.new_params],
                                n_trailing=len(plan.new_params))
            else:
                wrapped = _wrap(candidate, len(names), names)
            vmfb = _compile(wrapped, tgt, _quant_flags(plan, wrapped, tgt, flags), cache)
            module, raised = wrapped, True
        except StepwellError as e:
            if raise_ops or qopts is not None:
                raise
            log.warning("export: the raised module did not compile (%s); compiling the "
                        "StableHLO as JAX emitted it", e.diagnostics[0].message)
    if vmfb is None:
        module = _wrap(module, len(names), names)
        try:
            vmfb = _compile(module, tgt, flags, cache)
        except StepwellError as e:
            if not dynamic_batch:
                raise
            raise StepwellError(e.diagnostics + [Diagnostic(
                "dynamic_batch: IREE 3.13's StableHLO input fails on some ops with a symbolic "
                "batch (gathers in JAX's default 'fill' mode, such as flax.linen.Embed lookups); "
                "export with a fixed batch (one export per batch size)", "note")]) from None
    compile_s = time.perf_counter() - start

    out_avals = module.out_avals
    out_struct = jax.tree.unflatten(module.out_tree, list(range(len(out_avals))))
    out_paths = jax.tree_util.tree_flatten_with_path(out_struct)[0]
    param_types = module.param_types
    param_names = names
    param_quant = [None] * len(names)
    leaves = flat_params
    if plan is not None:
        leaves, param_quant = _quantized_leaves(plan, flat_params, qopts)
        param_names = [names[j] for j in plan.keep] + [p[0] for p in plan.new_params]
        if not plan.weights:
            log.warning("export(quantize=%r): no parameter is the weight of a linear layer "
                        "that can be quantized; every parameter stays float", quantize)
    manifest = {
        "format": FORMAT,
        "schema": SCHEMA,
        "name": fn_name,
        "target": tgt.spec,
        "backend": tgt.backend,
        "driver": tgt.driver,
        "dynamic_batch": bool(dynamic_batch),
        "raised": raised,
        "versions": _versions(jax.__version__),
        "entry_points": {"main": {
            "inputs": [_io(n, s.shape, s.dtype) for n, s in zip(arg_names, module.input_types)],
            "outputs": [_io(path_name(p, "output"), t.shape, t.dtype)
                        for (p, _), t in zip(out_paths, module.output_types)],
            "input_tree": _json_tree(_tree_spec(tuple(example_args), _is_array)),
            "output_tree": _json_tree(_tree_spec(out_struct, lambda x: isinstance(x, int))),
        }},
        "parameter_scope": SCOPE,
        "parameters": [{"name": n, "symbol": sym, "shape": list(t.shape), "dtype": _dtype_name(t.dtype),
                        **({"quantization": qp} if qp is not None else {})}
                       for n, sym, t, qp in zip(param_names, module.param_symbols, param_types,
                                                param_quant)],
        "compile_seconds": round(compile_s, 3),
    }
    if plan is not None:
        manifest["quantization"] = xq.summary(plan, qopts, {
            w.source: int(np.prod(param_avals[w.source].shape, dtype=np.int64))
            * np.dtype(param_avals[w.source].dtype).itemsize for w in plan.weights})
    _write(path, vmfb, leaves, param_names, param_types, manifest)
    return manifest


def _quant_flags(plan, module, tgt, flags) -> tuple:
    """``flags`` plus IREE's fused-dequantization flags (``stepwell.compiler.quant_flags``)
    for weights dequantized in StableHLO, which the linalg-level check does not see."""
    from stepwell.compiler import quant_flags as qz
    from stepwell.core.verifier import walk
    flags = tuple(flags.split() if isinstance(flags, str) else flags)
    if plan is None or not plan.stablehlo or any(
            op.name == "nn.quantized_linear" for op in walk(module.operation)):
        return flags       # (nn.quantized_linear modules get them from iree_flags)
    extra = qz.dequant_flags(tgt)
    given = {f.split("=")[0] for f in flags}
    return flags + tuple(f for f in extra if f.split("=")[0] not in given)


def _quantized_leaves(plan, flat_params, qopts):
    """The archive's leaves after quantization: the float parameters kept, then each
    quantized weight's arrays (computed here, on the host), with their manifest records."""
    from stepwell.export import quantized as xq
    leaves = [flat_params[j] for j in plan.keep]
    records = [None] * len(plan.keep)
    arrays = {}
    for name, _, w, role in plan.new_params:
        key = (w.source, w.transposed)
        if key not in arrays:
            arrays[key] = w.arrays(flat_params[w.source][1], qopts)
        leaves.append((None, arrays[key][role]))
        records.append(xq.manifest_entry(w, role, qopts))
    return leaves, records


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _json_tree(spec):
    return None if spec is _OPAQUE else {"spec": spec}


def _input_spec(leaf, batch):
    import jax

    from stepwell.frontends.jax.importer import aval_of
    aval = aval_of(leaf)
    shape = tuple(aval.shape)
    if batch is not None and shape:
        shape = (batch, *shape[1:])
    return jax.ShapeDtypeStruct(shape, aval.dtype, weak_type=getattr(aval, "weak_type", False))


def _check_batch(arg_leaves) -> None:
    sizes = {tuple(np.shape(leaf))[0] for _, leaf in arg_leaves if np.ndim(leaf) >= 1}
    if not arg_leaves or not sizes:
        raise StepwellError("export(dynamic_batch=True): no input has a leading (batch) "
                            "dimension to make dynamic")
    if len(sizes) > 1:
        raise StepwellError(f"export(dynamic_batch=True): the example inputs' leading "
                            f"dimensions differ ({sorted(sizes)}); they must all be the batch")


def _input_names(fn, arg_leaves) -> list[str]:
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


def _io(name: str, shape, dtype) -> dict:
    from stepwell.core.types import TensorType
    return {"name": name, "shape": [None if d is None else int(d) for d in shape],
            "dtype": _dtype_name(dtype), "type": str(TensorType(tuple(shape), dtype))}


def _dtype_name(mlir_dtype: str) -> str:
    from stepwell.core.types import numpy_dtype
    return numpy_dtype(mlir_dtype).name


def _versions(jax_version: str) -> dict:
    from importlib import metadata

    from stepwell.core.version import __version__
    from stepwell.compiler.cache import compiler_version
    out = {"stepwell": __version__, "iree_compiler": compiler_version(), "jax": jax_version}
    try:
        out["iree_runtime"] = metadata.version("iree-base-runtime")
    except metadata.PackageNotFoundError:
        out["iree_runtime"] = "unknown"
    return out


def _compile(module, tgt, flags, cache) -> bytes:
    from stepwell.compiler import driver as compiler
    return compiler.compile_vmfb(module, tgt, flags=flags, cache=cache)


# ---------------------------------------------------------------------------
# The wrapper: parameters become globals, @main takes only the inputs.
# ---------------------------------------------------------------------------
def dim_vars(main) -> list[str]:
    """JAX's dimension variables: the leading ``jax.global_constant`` arguments of ``main``."""
    from stepwell.core.ir import ir
    out = []
    arg_attrs = list(ir.ArrayAttr(main.attributes["arg_attrs"])) if "arg_attrs" in main.attributes else []
    for attrs in arg_attrs:
        d = ir.DictAttr(attrs) if attrs is not None else None
        if d is not None and "jax.global_constant" in d:
            out.append(ir.StringAttr(d["jax.global_constant"]).value)
        else:
            break
    return out


def _wrap(module, n_params: int, names: list[str], n_trailing: int = 0):
    """Rename JAX's ``@main`` to a private function and add a new ``@main`` that
    loads the ``n_params`` arguments after the dimension arguments, and the last
    ``n_trailing`` (quantized weights), from ``util.global``s bound to the parameter
    archive (``names``: theirs, in that order; JAX's dimension arguments are computed
    from the inputs)."""
    from stepwell.core.ir import context, ir
    from stepwell.core.types import TensorType

    with context():
        funcs = {ir.StringAttr(op.attributes["sym_name"]).value: op
                 for op in module.body.operations if op.operation.name == "func.func"}
        taken = {ir.StringAttr(op.attributes["sym_name"]).value
                 for op in module.body.operations if "sym_name" in op.attributes}
        main = funcs.get("main")
        if main is None:
            raise StepwellError("export: the lowered module has no @main")
        ftype = ir.FunctionType(ir.TypeAttr(main.attributes["function_type"]).value)
        arg_types = [str(t) for t in ftype.inputs]
        res_types = [str(t) for t in ftype.results]
        dims = dim_vars(main)
        n_dims = len(dims)
        if len(arg_types) < n_dims + n_params + n_trailing:
            raise StepwellError(f"export: @main has {len(arg_types)} arguments, fewer than "
                                f"the {n_params} parameters")
        inner = _fresh("main_exported", taken)
        main.attributes["sym_name"] = ir.StringAttr.get(inner)
        main.attributes["sym_visibility"] = ir.StringAttr.get("private")

        end = len(arg_types) - n_trailing
        param_types = arg_types[n_dims:n_dims + n_params] + arg_types[end:]
        input_types = arg_types[n_dims + n_params:end]
        symbols = [_symbol(n, taken) for n in names]
        lines = [f"func.func private @{inner}({', '.join(arg_types)}) -> ({', '.join(res_types)})"]
        for sym, n, t in zip(symbols, names, param_types):
            lines.append(f"util.global private @{sym} = #flow.parameter.named<"
                         f"{json.dumps(SCOPE)}::{json.dumps(n, ensure_ascii=False)}> : {t}")
        ins = ", ".join(f"%in{i}: {t}" for i, t in enumerate(input_types))
        lines.append(f"func.func @main({ins}) -> ({', '.join(res_types)}) {{")
        call_args = []
        for k, var in enumerate(dims):
            if var != BATCH:
                raise StepwellError(f"export: the lowered function has the dimension variable "
                                    f"'{var}'; only the batch ('{BATCH}') is supported")
            src = next((i for i, t in enumerate(input_types)
                        if t.startswith("tensor<?")), None)
            if src is None:
                raise StepwellError("export: no input has a dynamic leading dimension")
            elem = TensorType.parse(arg_types[k]).dtype
            lines += [f"  %c0_{k} = arith.constant 0 : index",
                      f"  %dim_{k} = tensor.dim %in{src}, %c0_{k} : {input_types[src]}",
                      f"  %dimi_{k} = arith.index_cast %dim_{k} : index to {elem}",
                      f"  %dv{k} = tensor.from_elements %dimi_{k} : {arg_types[k]}"]
            call_args.append(f"%dv{k}")
        loads = []
        for i, (sym, t) in enumerate(zip(symbols, param_types)):
            lines.append(f"  %p{i} = util.global.load @{sym} : {t}")
            loads.append(f"%p{i}")
        call_args += loads[:n_params]
        call_args += [f"%in{i}" for i in range(len(input_types))]
        call_args += loads[n_params:]
        results = f"%r:{len(res_types)} = " if len(res_types) > 1 else ("%r = " if res_types else "")
        lines.append(f"  {results}func.call @{inner}({', '.join(call_args)}) : "
                     f"({', '.join(arg_types)}) -> ({', '.join(res_types)})")
        rets = [f"%r#{i}" for i in range(len(res_types))] if len(res_types) > 1 else (
            ["%r"] if res_types else [])
        lines.append(f"  func.return {', '.join(rets)}{' : ' if rets else ''}{', '.join(res_types)}")
        lines.append("}")
        text = "\n".join(lines)
        try:
            snippet = ir.Module.parse(text, context())
        except ir.MLIRError as e:  # a bug of ours, not the user's: say what was built
            raise StepwellError(f"export: the wrapper module does not parse: {e}") from None
        for op in list(snippet.body.operations)[1:]:  # the declaration stays behind
            module.body.append(op)
    module.param_types = [TensorType.parse(t) for t in param_types]
    module.param_symbols = symbols
    module.input_types = [TensorType.parse(t) for t in input_types]
    module.output_types = [TensorType.parse(t) for t in res_types]
    return module


def _fresh(base: str, taken: set) -> str:
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


# ---------------------------------------------------------------------------
# Writing the folder.
# ---------------------------------------------------------------------------
def _check_destination(path: str) -> None:
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise StepwellError(f"cannot export to '{path}': it is a file, not a folder")
        entries = os.listdir(path)
        if entries and MANIFEST not in entries:
            raise StepwellError(f"cannot export to '{path}': the folder is not empty and holds "
                                "no stepwell export (refusing to replace it)")


def _metadata(array: np.ndarray) -> str:
    """IREE's tensor metadata (``TENSORv0:{json}``), readable by iree-turbine."""
    d = {"type": "Tensor", "dtype": array.dtype.name, "shape": list(array.shape),
         "dtype_desc": {"class_name": type(array.dtype).__name__,
                        "is_complex": array.dtype.kind == "c",
                        "is_floating_point": array.dtype.kind == "f" or array.dtype.name == "bfloat16",
                        "is_signed": array.dtype.kind in "if" or array.dtype.name == "bfloat16",
                        "itemsize": array.dtype.itemsize}}
    return "TENSORv0:" + json.dumps(d)


def write_parameters(file: str, flat_params, names, types) -> None:
    """Write the archive leaf by leaf from byte views of the arrays: a leaf is copied
    only when it is not a contiguous host array of the declared dtype."""
    import iree.runtime as rt
    index = rt.ParameterIndex()
    for (_, leaf), n, t in zip(flat_params, names, types):
        array = np.asarray(leaf)
        want = t.numpy_dtype()
        if array.dtype != want:
            array = array.astype(want)
        if tuple(array.shape) != tuple(t.shape):
            raise StepwellError(f"export: parameter '{n}' has shape {list(array.shape)}, "
                                f"the module expects {list(t.shape)}")
        array = np.ascontiguousarray(array)
        index.add_buffer(n, array.reshape(-1).view(np.uint8), metadata=_metadata(array))
    index.create_archive_file(file)


def _sha256(file: str) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _write(path: str, vmfb: bytes, flat_params, names, types, manifest: dict) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(os.path.abspath(path))
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    old = None
    try:
        with open(os.path.join(tmp, VMFB), "wb") as f:
            f.write(vmfb)
        write_parameters(os.path.join(tmp, PARAMS), flat_params, names, types)
        manifest["files"] = {
            fname: {"bytes": os.path.getsize(os.path.join(tmp, fname)),
                    "sha256": _sha256(os.path.join(tmp, fname))}
            for fname in (VMFB, PARAMS)}
        manifest["parameter_bytes"] = sum(
            int(np.prod(t.shape, dtype=np.int64)) * t.numpy_dtype().itemsize for t in types)
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
        for fname in (VMFB, PARAMS, MANIFEST):
            fd = os.open(os.path.join(tmp, fname), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(tmp, 0o777 & ~_umask())
        if os.path.exists(path):
            _check_destination(path)
            old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.rename(path, os.path.join(old, base))
        os.rename(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.exists(path):
            os.rename(os.path.join(old, base), path)  # put the previous export back
        if isinstance(e, OSError):
            raise StepwellError(f"cannot write the export to '{path}': "
                                f"{e.strerror or e}") from None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------
# Loading.
# ---------------------------------------------------------------------------
def read_manifest(path) -> dict:
    """The manifest of the export folder ``path``, checked for format and schema."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise StepwellError(f"no such export folder: '{path}'")
    if not os.path.isdir(path):
        raise StepwellError(f"'{path}' is not an export folder (sw.load takes the folder "
                            "that sw.jax.export wrote; a bare .vmfb loads with "
                            "sw.Executable.load)")
    file = os.path.join(path, MANIFEST)
    try:
        with open(file, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise StepwellError(f"'{path}' is not a stepwell export: it has no {MANIFEST}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StepwellError(f"'{file}' is not a readable manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StepwellError(f"'{file}' is not a stepwell export manifest (no \"format\": "
                            f"\"{FORMAT}\")")
    schema = manifest.get("schema")
    if schema != SCHEMA:
        raise StepwellError(f"'{file}' has schema {schema!r}; this stepwell reads schema "
                            f"{SCHEMA} (export the model again with this version)")
    for key in ("target", "entry_points", "parameters", "files"):
        if key not in manifest:
            raise StepwellError(f"'{file}' is missing \"{key}\"")
    return manifest


def verify_files(path, manifest: dict, *, hashes: bool = True) -> None:
    """Each file the manifest lists exists with its size and (``hashes``) SHA-256."""
    for fname in (VMFB, PARAMS):
        entry = manifest["files"].get(fname)
        file = os.path.join(path, fname)
        if entry is None:
            raise StepwellError(f"'{os.path.join(path, MANIFEST)}' does not list {fname}")
        if not os.path.isfile(file):
            raise StepwellError(f"'{file}' is missing from the export")
        size = os.path.getsize(file)
        if size != entry.get("bytes"):
            raise StepwellError(f"'{file}' has {size} bytes, the manifest says {entry.get('bytes')}: "
                                "the file is truncated or was changed (export the model again)")
        if hashes and _sha256(file) != entry.get("sha256"):
            raise StepwellError(f"'{file}' does not match the SHA-256 in its manifest: the file "
                                "is corrupt or was changed (export the model again)")


def load(path, *, target=None, verify: bool = True) -> "ExportedModel":
    """Load an export folder: the manifest is checked, each file's size and SHA-256
    (``verify=False`` checks sizes only), then the parameter archive is opened
    (memory-mapped) and the module bound to it on the target's runtime driver
    (``target``: override the manifest's, e.g. ``cpu-generic`` code on ``cpu``)."""
    import iree.runtime as rt

    from stepwell import targets
    from stepwell.compiler.runtime import Executable

    path = os.fspath(path)
    manifest = read_manifest(path)
    verify_files(path, manifest, hashes=verify)
    tgt = targets.get(target or manifest["target"])
    _check_versions(manifest)

    params_file = os.path.join(path, PARAMS)
    index = rt.ParameterIndex()
    try:
        index.load(params_file)
    except Exception as e:  # noqa: BLE001  (IREE raises ValueError/IndexError/RuntimeError)
        from stepwell.compiler.runtime import _clean_iree_message
        why = _clean_iree_message(str(e).replace("Could not parse parameter file index: ", ""))
        raise StepwellError(f"'{params_file}' is not a valid parameter archive: {why}") from None
    entries = {k: v for k, v in index.items()}
    problems = []
    for p in manifest["parameters"]:
        entry = entries.get(p["name"])
        want = int(np.prod(p["shape"], dtype=np.int64)) * np.dtype(_np_dtype(p["dtype"])).itemsize
        if entry is None:
            problems.append(f"parameter '{p['name']}' is missing from '{params_file}'")
        elif entry.length != want:
            problems.append(f"parameter '{p['name']}' in '{params_file}' has {entry.length} bytes, "
                            f"expected {want} ({p['dtype']}{p['shape']})")
    if problems:
        raise StepwellError([Diagnostic(m, "error") for m in problems])

    try:
        with open(os.path.join(path, VMFB), "rb") as f:
            vmfb = f.read()
    except OSError as e:
        raise StepwellError(f"cannot read '{os.path.join(path, VMFB)}': {e.strerror}") from None
    exe = Executable(vmfb, tgt, parameters=index, parameter_scope=manifest.get("parameter_scope", SCOPE))
    exe._vm_module(os.path.join(path, VMFB))  # a bad module fails here, not at the first call
    return ExportedModel(path, manifest, exe)


def _check_versions(manifest: dict) -> None:
    from importlib import metadata
    built = manifest.get("versions", {}).get("iree_compiler", "").split(" ")[0]
    try:
        here = metadata.version("iree-base-runtime")
    except metadata.PackageNotFoundError:
        return
    if built and built.split(".")[:2] != here.split(".")[:2]:
        log.warning("this export was compiled by IREE %s and runs on IREE runtime %s: "
                    "re-export it if loading fails", built, here)


def _np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class ExportedModel:
    """A loaded export: call it like the exported function without its ``params``."""

    def __init__(self, path: str, manifest: dict, exe):
        self.path = path
        self.manifest = manifest
        self.executable = exe
        entry = manifest["entry_points"]["main"]
        self.inputs = entry["inputs"]
        self.outputs = entry["outputs"]
        self._in_tree = (entry.get("input_tree") or {}).get("spec", _OPAQUE)
        self._out_tree = (entry.get("output_tree") or {}).get("spec", _OPAQUE)

    @property
    def target(self):
        return self.executable.target

    @property
    def parameters(self) -> list[dict]:
        return self.manifest["parameters"]

    def __repr__(self) -> str:
        ins = ", ".join(f"{i['name']}: {_describe_io(i)}" for i in self.inputs)
        outs = ", ".join(_describe_io(o) for o in self.outputs)
        return (f"<stepwell.ExportedModel {self.manifest.get('name', '')}({ins}) -> ({outs}) "
                f"on {self.target.spec}, {len(self.parameters)} parameters>")

    def check_inputs(self, args) -> list[np.ndarray]:
        """The call's arguments as the flat numpy inputs the module takes, checked
        against the manifest (count, structure, shape, dtype, one batch size)."""
        top = None if self._in_tree in (_OPAQUE, None) else self._in_tree.get("tuple")
        if top is not None and len(args) != len(top) and len(args) != len(self.inputs):
            self._count_error(len(args), len(top))
        if self._in_tree is _OPAQUE or self._in_tree is None:
            leaves = list(args)
        else:
            try:
                leaves = _flatten(self._in_tree, tuple(args))
            except StepwellError:
                if len(args) != len(self.inputs) or not all(_is_array(a) for a in args):
                    raise
                leaves = list(args)   # the flat leaves, in manifest order
        if len(leaves) != len(self.inputs):
            self._count_error(len(leaves), len(self.inputs))
        arrays, batch = [], None
        for spec, value in zip(self.inputs, leaves):
            want = _np_dtype(spec["dtype"])
            try:
                if isinstance(value, (list, tuple, int, float, bool)):
                    a = np.asarray(value, dtype=want)   # Python values take the input's dtype
                else:
                    a = np.asarray(value)
            except (TypeError, ValueError) as e:
                raise StepwellError(f"input '{spec['name']}': {e}") from None
            a = _cast(a, want, spec)
            shape = spec["shape"]
            ok = a.ndim == len(shape) and all(w is None or w == d for w, d in zip(shape, a.shape))
            if not ok:
                raise StepwellError(f"input '{spec['name']}' expects shape {_shape_text(shape)} "
                                    f"({spec['dtype']}), got {_shape_text(list(a.shape))}")
            if shape and shape[0] is None:
                if batch is not None and a.shape[0] != batch:
                    raise StepwellError(f"input '{spec['name']}' has batch size {a.shape[0]}, "
                                        f"the inputs before it {batch}: every input shares "
                                        "the batch dimension")
                batch = a.shape[0]
            arrays.append(np.ascontiguousarray(a) if a.ndim else a)
        return arrays

    def _count_error(self, got: int, want: int):
        names = ", ".join(i["name"] for i in self.inputs)
        raise StepwellError(f"the model takes {want} input{'s' if want != 1 else ''} "
                            f"({names}), got {got}")

    def __call__(self, *args):
        arrays = self.check_inputs(args)
        out = self.executable.function("main")(*arrays)
        outs = list(out) if isinstance(out, tuple) else ([] if out is None else [out])
        if self._out_tree is _OPAQUE:
            return out
        return _unflatten(self._out_tree, outs)


def _cast(a: np.ndarray, want: np.dtype, spec: dict) -> np.ndarray:
    """``a`` as ``want``: same-kind conversions that lose nothing the caller meant
    (int64 -> int32 within range, float64 -> float32); others are errors."""
    if a.dtype == want:
        return a
    kinds = {"f": "f", "V": "f", "i": "i", "u": "i", "b": "b"}
    src_kind = "f" if a.dtype.name == "bfloat16" else kinds.get(a.dtype.kind)
    dst_kind = "f" if np.dtype(want).name == "bfloat16" else kinds.get(np.dtype(want).kind)
    if src_kind != dst_kind:
        raise StepwellError(f"input '{spec['name']}' expects {spec['dtype']}, got {a.dtype.name}")
    if dst_kind == "i" and a.size:
        info = np.iinfo(want)
        if a.min() < info.min or a.max() > info.max:
            raise StepwellError(f"input '{spec['name']}' ({spec['dtype']}) holds values outside "
                                f"[{info.min}, {info.max}]")
    return a.astype(want)


def _shape_text(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _describe_io(spec: dict) -> str:
    return f"{spec['dtype']}{_shape_text(spec['shape'])}"
