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
from stepwell.export.manifest import FORMAT, MANIFEST, PARAMS, SCHEMA, SCOPE, VMFB, dtype_name, sha256, versions
from stepwell.export.params import quantized_leaves, write_parameters
from stepwell.export.pytree import path_name

log = logging.getLogger("stepwell.export")


def export(fn, params, *example_args, path, target="cpu", dynamic_batch: bool = False,
           dynamic_dims=None, dim_limits: dict | None = None, state=(), metadata: dict | None = None,
           specialize: dict | None = None,
           raise_ops: bool | None = None, flags=(), cache: bool | None = None,
           name: str | None = None, quantize: str | None = None, group_size: int = 128,
           symmetric: bool = True, tuning="auto") -> dict:
    """Compile ``fn(params, *example_args)`` for ``target`` and write the folder ``path``.

    ``params`` is any pytree of arrays (Flax ``variables``: ``{"params": ...,
    "batch_stats": ...}``); its leaves go to ``params.irpa``, keyed by their pytree
    path. ``example_args`` (arrays or ``jax.ShapeDtypeStruct``, any pytree of them)
    fix the input shapes and dtypes. ``dynamic_batch=True`` makes the leading
    dimension of every input of rank >= 1 symbolic, so any batch size runs;
    ``dynamic_dims`` names dynamic dimensions per argument with ``jax.export`` specs
    (``("b, s", "b")``; ``stepwell.frontends.jax.dims``), and ``dim_limits`` bounds
    them (``{"s": 1024}``: ``sw.load`` refuses longer inputs, naming the limit).
    ``raise_ops``: raise StableHLO to ``nn`` first (None: when the pass is
    installed, falling back to plain StableHLO if raising or compiling the raised
    module fails, with the manifest's ``raised`` false and ``raise_failure`` saying
    why; True: raise or fail; False: never). ``flags``: extra iree-compile
    flags. Returns the manifest (a dict, also written to ``manifest.json``).

    Several entry points: ``fn`` a dict ``{name: fn}`` and one dict of example
    arguments ``{name: (args...)}`` (``dynamic_dims`` likewise a dict); every entry reads
    the same parameters (one copy in the archive and in memory). ``state="cache"``
    names a value that entry points take as an input called ``cache`` and return under
    the key ``"cache"`` of a dict result: ``sw.load`` keeps it on the device and IREE
    updates it in place. ``metadata``: JSON data stored in the manifest as it is.
    ``specialize={"b": [1]}`` adds, for each entry point whose only symbol is ``b``, a copy
    compiled for ``b = 1`` (``decode__b1``) that ``sw.load`` calls for that size: IREE
    tiles a dynamic row count for many rows, a static single row as a matrix-vector product.

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

    from stepwell.export import entries as xe
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
        check_target("int4", tgt)
    check_destination(path)
    state = (state,) if isinstance(state, str) else tuple(state or ())
    limits = _check_limits(dim_limits)

    # Parameters: names, shapes and dtypes (no data is touched until they are written).
    flat_params = jax.tree_util.tree_flatten_with_path(params)[0]
    names = [path_name(p) for p, _ in flat_params]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise StepwellError(f"export: parameters with the same path name: {', '.join(dup)}")
    param_avals = [jimport.aval_of(leaf) for _, leaf in flat_params]
    param_specs = jax.tree.unflatten(jax.tree.structure(params),
                                     [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in param_avals])
    fn_name = name or ("model" if isinstance(fn, dict) else getattr(fn, "__name__", None)
                       or type(fn).__name__)

    start = time.perf_counter()
    want_raise = raise_ops is not False and jimport.raise_available()
    if qopts is not None and not want_raise:
        raise StepwellError(f"export(quantize={quantize!r}) finds the linear layers at the nn level: "
                            + ("it cannot be combined with raise_ops=False" if raise_ops is False
                               else "the stablehlo-to-nn raising is not available"))
    entries = [xe.trace(n, f, args, dims, param_specs, names, dynamic_batch=dynamic_batch, limits=limits)
               for n, f, args, dims in xe.entries_of(fn, example_args, dynamic_dims)]
    if specialize:
        if not isinstance(specialize, dict) or not all(
                isinstance(k, str) and isinstance(v, (list, tuple)) and all(
                    isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 1 for x in v)
                for k, v in specialize.items()):
            raise StepwellError(f"export: specialize must map symbol names to lists of sizes "
                                f"({{'b': [1]}}), found {specialize!r}")
        entries += [sp for e in list(entries) for sp in xe.specializations(e, specialize, param_specs, names)]
    plan = vmfb = wrapped = module = None
    raised = False
    raise_failure = None  # why the raised module was not used (recorded in the manifest)
    if want_raise:
        try:
            plan, module, wrapped = _build(entries, names, qopts, raise_=True)
            vmfb = _compile(module, tgt, _quant_flags(plan, module, tgt, flags), cache, tuning)
            raised = True
        except StepwellError as e:
            if raise_ops or qopts is not None:
                raise
            raise_failure = e.diagnostics[0].message
            log.warning("export: the raised module did not compile (%s); compiling the "
                        "StableHLO as JAX emitted it", raise_failure)
            plan = None
    if vmfb is None:
        _, module, wrapped = _build(entries, names, None, raise_=False)
        try:
            vmfb = _compile(module, tgt, flags, cache, tuning)
        except StepwellError as e:
            if not (dynamic_batch or dynamic_dims is not None):
                raise
            raise StepwellError(e.diagnostics + [Diagnostic(
                "dynamic dimensions: IREE 3.13's StableHLO input fails on some dynamic ops that "
                "stepwell did not raise; export with fixed sizes (one export per size)", "note")]) from None
    compile_s = time.perf_counter() - start

    param_names, param_quant, leaves = names, [None] * len(names), flat_params
    if plan is not None:
        leaves, param_quant = quantized_leaves(plan, flat_params, qopts)
        param_names = [names[j] for j in plan.keep] + [p[0] for p in plan.new_params]
        if not plan.weights:
            log.warning("export(quantize=%r): no parameter is the weight of a linear layer "
                        "that can be quantized; every parameter stays float", quantize)
    by_name = dict(zip(wrapped.param_names, zip(wrapped.param_symbols, wrapped.param_types)))
    unused = [n for n in param_names if n not in by_name]
    if unused:  # (a parameter no entry point reads is not stored)
        keep = [i for i, n in enumerate(param_names) if n in by_name]
        leaves, param_quant = [leaves[i] for i in keep], [param_quant[i] for i in keep]
        param_names = [param_names[i] for i in keep]
    param_types = [by_name[n][1] for n in param_names]
    records = {e.name: xe.describe(e, wrapped.input_types[e.name], wrapped.output_types[e.name], state)
               for e in entries}
    xe.check_states(records, state)
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
        "entry_points": records,
        **({"dim_limits": limits} if limits else {}),
        **({"state": list(state)} if state else {}),
        **({"metadata": metadata} if metadata is not None else {}),
        "parameter_scope": SCOPE,
        "parameters": [{"name": n, "symbol": by_name[n][0], "shape": list(t.shape),
                        "dtype": dtype_name(t.dtype), **({"quantization": qp} if qp is not None else {})}
                       for n, t, qp in zip(param_names, param_types, param_quant)],
        "compile_seconds": round(compile_s, 3),
    }
    if raise_failure is not None:
        manifest["raise_failure"] = raise_failure
    if plan is not None:
        manifest["quantization"] = xq.summary(plan, qopts, xe.float_bytes(plan, param_avals))
    _write(path, vmfb, leaves, param_names, param_types, manifest)
    return manifest


def _build(entries, names, qopts, *, raise_: bool):
    """(quantization plan, the module with every entry point, its Wrapped description)."""
    from stepwell.core.ir import context, ir
    from stepwell.core.module import Module
    from stepwell.export import quantized as xq
    from stepwell.export.wrapper import wrap
    from stepwell.frontends.jax import importer as jimport

    plans, subs = [], []
    for e in entries:
        sub = e.module.clone()
        if raise_:
            jimport.raise_stablehlo(sub)
        if qopts is not None:
            p = xq.rewrite(sub, names, len(names), qopts)
            plans.append(p)
            subs.append((e.name, sub, ([names[j] for j in p.keep], [q[0] for q in p.new_params])))
        else:
            subs.append((e.name, sub, (list(names), [])))
    with context(), ir.Location.unknown():
        module = Module(ir.Module.create(), entries[0].module.name)
    wrapped = wrap(module, subs)
    if len(entries) == 1:
        module.name = entries[0].module.name
    return (xq.merge(plans) if plans else None), module, wrapped


def _check_limits(dim_limits) -> dict:
    if dim_limits is None:
        return {}
    if not isinstance(dim_limits, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
            for k, v in dim_limits.items()):
        raise StepwellError(f"export: dim_limits must map symbol names to positive sizes "
                            f"({{'s': 1024}}), found {dim_limits!r}")
    return {k: int(v) for k, v in dim_limits.items()}


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
