"""``sw.jax.export``: trace, raise, quantize, compile and write the folder.

The folder is written to a temporary sibling and renamed into place: a reader sees the
previous export or the whole new one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time

import numpy as np

from stepwell.core.diagnostics import Diagnostic, StepwellError
from stepwell.export import integrity
from stepwell.export.manifest import (BATCH, FORMAT, MANIFEST, PARAMS, SCHEMA, SCOPE, VMFB, dtype_name,
                                      io, sha256, versions)
from stepwell.export.params import quantized_leaves, write_parameters
from stepwell.export.pytree import is_array, json_tree, path_name, tree_spec
from stepwell.export.tracing import check_batch, input_names, input_spec
from stepwell.export.wrapper import wrap

log = logging.getLogger("stepwell.export")


def export(fn, params, *example_args, path, target="cpu", dynamic_batch: bool = False,
           raise_ops: bool | None = None, flags=(), cache: bool | None = None,
           name: str | None = None, quantize: str | None = None, group_size: int = 128,
           symmetric: bool = True, tuning="auto") -> dict:
    """Compile ``fn(params, *example_args)`` for ``target`` and write the folder ``path``.

    ``params`` is any pytree of arrays (Flax ``variables``: ``{"params": ...,
    "batch_stats": ...}``); its leaves go to ``params.irpa``, keyed by their pytree
    path. ``example_args`` (arrays or ``jax.ShapeDtypeStruct``, any pytree of them)
    fix the input shapes and dtypes. ``dynamic_batch=True`` makes the leading
    dimension of every input of rank >= 1 symbolic, so any batch size runs.
    ``raise_ops``: raise StableHLO to ``nn`` first (None: when the pass is
    installed, falling back to plain StableHLO if raising or compiling the raised
    module fails, with the manifest's ``raised`` false and ``raise_failure`` saying
    why; True: raise or fail; False: never). ``flags``: extra iree-compile
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
    ``tuning``: the tuning database the compile applies (``"auto"``, ``"off"``, a path).
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
    check_destination(path)

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
    arg_specs = [input_spec(leaf, batch) for _, leaf in arg_leaves]
    if dynamic_batch:
        check_batch(arg_leaves)
    arg_names = input_names(fn, arg_leaves)
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
    raise_failure = None  # why the raised module was not used (recorded in the manifest)
    vmfb = None
    if want_raise:
        candidate = module.clone()
        try:
            jimport.raise_stablehlo(candidate)
            if qopts is not None:
                plan = xq.rewrite(candidate, names, len(names), qopts)
                wrapped = wrap(candidate, len(plan.keep),
                                [names[j] for j in plan.keep] + [p[0] for p in plan.new_params],
                                n_trailing=len(plan.new_params))
            else:
                wrapped = wrap(candidate, len(names), names)
            vmfb = _compile(wrapped, tgt, _quant_flags(plan, wrapped, tgt, flags), cache, tuning)
            module, raised = wrapped, True
        except StepwellError as e:
            if raise_ops or qopts is not None:
                raise
            raise_failure = e.diagnostics[0].message
            log.warning("export: the raised module did not compile (%s); compiling the "
                        "StableHLO as JAX emitted it", raise_failure)
    if vmfb is None:
        module = wrap(module, len(names), names)
        try:
            vmfb = _compile(module, tgt, flags, cache, tuning)
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
        leaves, param_quant = quantized_leaves(plan, flat_params, qopts)
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
        "versions": versions(jax.__version__),
        "entry_points": {"main": {
            "inputs": [io(n, s.shape, s.dtype) for n, s in zip(arg_names, module.input_types)],
            "outputs": [io(path_name(p, "output"), t.shape, t.dtype)
                        for (p, _), t in zip(out_paths, module.output_types)],
            "input_tree": json_tree(tree_spec(tuple(example_args), is_array)),
            "output_tree": json_tree(tree_spec(out_struct, lambda x: isinstance(x, int))),
        }},
        "parameter_scope": SCOPE,
        "parameters": [{"name": n, "symbol": sym, "shape": list(t.shape), "dtype": dtype_name(t.dtype),
                        **({"quantization": qp} if qp is not None else {})}
                       for n, sym, t, qp in zip(param_names, module.param_symbols, param_types,
                                                param_quant)],
        "compile_seconds": round(compile_s, 3),
    }
    if raise_failure is not None:
        manifest["raise_failure"] = raise_failure
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


def _compile(module, tgt, flags, cache, tuning="auto") -> bytes:
    from stepwell.compiler import driver as compiler
    return compiler.compile_vmfb(module, tgt, flags=flags, cache=cache, tuning=tuning)


def check_destination(path: str) -> None:
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise StepwellError(f"cannot export to '{path}': it is a file, not a folder")
        entries = os.listdir(path)
        if entries and MANIFEST not in entries:
            raise StepwellError(f"cannot export to '{path}': the folder is not empty and holds "
                                "no stepwell export (refusing to replace it)")


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
                    "sha256": sha256(os.path.join(tmp, fname))}
            for fname in (VMFB, PARAMS)}
        manifest["parameter_bytes"] = sum(
            int(np.prod(t.shape, dtype=np.int64)) * t.numpy_dtype().itemsize for t in types)
        if manifest.get("target", "").split(":")[0] == "cpu":  # host code: the CPU it may need
            from stepwell import targets
            manifest["cpu"] = {"arch": targets.host_arch(),
                               "features": sorted(targets.cpu.codegen_features())}
        integrity.seal(manifest)
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
            check_destination(path)
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
