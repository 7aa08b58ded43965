"""``sw.load``: an export folder, checked, bound to the runtime, called like the function.

Loading needs only numpy and IREE's runtime (JAX is not imported).
"""

from __future__ import annotations

import os

import numpy as np

from stepwell.core.diagnostics import Diagnostic, StepwellError
from stepwell.export import integrity
from stepwell.export.manifest import (MANIFEST, PARAMS, SCOPE, VMFB, check_versions, np_dtype,
                                      read_manifest, verify_files)
from stepwell.export.pytree import OPAQUE, flatten, is_array, unflatten


def load(path, *, target=None, verify: bool = True, devices: int | None = None) -> "ExportedModel":
    """Load an export folder: the manifest is checked, each file's size and SHA-256
    (``verify=False`` checks sizes only), then the parameter archive is opened
    (memory-mapped) and the module bound to it on the target's runtime driver
    (``target``: override the manifest's, e.g. ``cpu-generic`` code on ``cpu``;
    ``devices``: runtime devices for an export partitioned over several)."""
    import iree.runtime as rt

    from stepwell import targets
    from stepwell.compiler.runtime import Executable

    path = os.fspath(path)
    manifest = read_manifest(path)
    verify_files(path, manifest, hashes=verify)
    tgt = targets.get(target or manifest["target"])
    integrity.check_cpu(os.path.join(path, MANIFEST), manifest, targets.get(manifest["target"]))
    check_versions(manifest)

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
    size = os.path.getsize(params_file)
    for p in manifest["parameters"]:
        entry = entries.get(p["name"])
        want = int(np.prod(p["shape"], dtype=np.int64)) * np.dtype(np_dtype(p["dtype"])).itemsize
        if entry is None:
            problems.append(f"parameter '{p['name']}' is missing from '{params_file}'")
        elif entry.length != want:
            problems.append(f"parameter '{p['name']}' in '{params_file}' has {entry.length} bytes, "
                            f"expected {want} ({p['dtype']}{p['shape']})")
        elif entry.is_file and entry.file_storage[1] + entry.length > size:
            # IREE indexes an archive cut short in its data without complaint
            problems.append(f"parameter '{p['name']}' in '{params_file}' is cut short: its "
                            f"{entry.length} bytes at offset {entry.file_storage[1]} run past "
                            f"the end of the file ({size} bytes)")
    if problems:
        raise StepwellError([Diagnostic(m, "error") for m in problems])

    try:
        with open(os.path.join(path, VMFB), "rb") as f:
            vmfb = f.read()
    except OSError as e:
        raise StepwellError(f"cannot read '{os.path.join(path, VMFB)}': {e.strerror}") from None
    built_for = targets.detect(vmfb)
    if built_for is not None and (built_for.backend, built_for.arch) != (tgt.backend, tgt.arch):
        raise StepwellError(f"'{os.path.join(path, VMFB)}' holds code for {built_for.backend}"
                            f"{' ' + built_for.arch if built_for.arch else ''}, not for target "
                            f"'{tgt.spec}' ({tgt.backend}{' ' + tgt.arch if tgt.arch else ''})")
    exe = Executable(vmfb, tgt, parameters=index, parameter_scope=manifest.get("parameter_scope", SCOPE),
                     devices=devices)
    exe._vm_module(os.path.join(path, VMFB))  # a bad module fails here, not at the first call
    return ExportedModel(path, manifest, exe)


class ExportedModel:
    """A loaded export: call it like the exported function without its ``params``."""

    def __init__(self, path: str, manifest: dict, exe):
        self.path = path
        self.manifest = manifest
        self.executable = exe
        entry = manifest["entry_points"]["main"]
        self.inputs = entry["inputs"]
        self.outputs = entry["outputs"]
        self._in_tree = (entry.get("input_tree") or {}).get("spec", OPAQUE)
        self._out_tree = (entry.get("output_tree") or {}).get("spec", OPAQUE)

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
        top = None if self._in_tree in (OPAQUE, None) else self._in_tree.get("tuple")
        if top is not None and len(args) != len(top) and len(args) != len(self.inputs):
            self._count_error(len(args), len(top))
        if self._in_tree is OPAQUE or self._in_tree is None:
            leaves = list(args)
        else:
            try:
                leaves = flatten(self._in_tree, tuple(args))
            except StepwellError:
                if len(args) != len(self.inputs) or not all(is_array(a) for a in args):
                    raise
                leaves = list(args)   # the flat leaves, in manifest order
        if len(leaves) != len(self.inputs):
            self._count_error(len(leaves), len(self.inputs))
        arrays, batch = [], None
        for spec, value in zip(self.inputs, leaves):
            want = np_dtype(spec["dtype"])
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
        if self._out_tree is OPAQUE:
            return out
        return unflatten(self._out_tree, outs)


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
