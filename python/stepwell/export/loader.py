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
from stepwell.export.calls import EntryPoint, describe_io


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
    """A loaded export: call it like the exported function without its ``params``
    (``model(x)`` runs ``main``; an export with several entry points runs each as
    ``model.prefill(...)``, ``model.decode(...)`` or ``model.entry("decode")(...)``)."""

    def __init__(self, path: str, manifest: dict, exe):
        self.path = path
        self.manifest = manifest
        self.executable = exe
        files = manifest.get("files", {})
        # what a State checks it comes from: this module with these parameters
        self.model_id = "".join(files.get(f, {}).get("sha256", "") for f in (VMFB, PARAMS)) or path
        self.name = manifest.get("name", "") or os.path.basename(path)
        self.entries = {n: EntryPoint(self, n, r) for n, r in manifest["entry_points"].items()
                        if "specializes" not in r}
        for n, r in manifest["entry_points"].items():   # static copies the entry calls for their sizes
            base = self.entries.get(r.get("specializes", {}).get("entry"))
            if base is not None:
                base.specializations.append((r["specializes"]["dims"], n))
        main = self.entries.get("main") or (next(iter(self.entries.values())) if len(self.entries) == 1
                                            else None)
        self.inputs = main.inputs if main else []
        self.outputs = main.outputs if main else []

    @property
    def entry_points(self) -> list[str]:
        return list(self.entries)

    def entry(self, name: str) -> EntryPoint:
        if name not in self.entries:
            raise StepwellError(f"the model has no entry point '{name}' (entry points: "
                                f"{', '.join(self.entries)})")
        return self.entries[name]

    def __getattr__(self, name: str):
        entries = self.__dict__.get("entries") or {}
        if name in entries:
            return entries[name]
        raise AttributeError(name)

    @property
    def target(self):
        return self.executable.target

    @property
    def parameters(self) -> list[dict]:
        return self.manifest["parameters"]

    @property
    def metadata(self) -> dict:
        return self.manifest.get("metadata", {})

    def __repr__(self) -> str:
        sigs = "; ".join(_signature(n, e) for n, e in self.entries.items())
        return (f"<stepwell.ExportedModel {self.manifest.get('name', '')}: {sigs} "
                f"on {self.target.spec}, {len(self.parameters)} parameters>")

    def _main(self) -> EntryPoint:
        if "main" in self.entries:
            return self.entries["main"]
        if len(self.entries) == 1:
            return next(iter(self.entries.values()))
        raise StepwellError(f"the model has several entry points ({', '.join(self.entries)}): call one, "
                            f"e.g. model.{next(iter(self.entries))}(...)")

    def check_inputs(self, args) -> list:
        """The call's arguments as the flat inputs ``main`` takes, checked against the
        manifest (count, structure, shape, dtype, named dimensions and their limits)."""
        return self._main().check_inputs(args)

    def __call__(self, *args):
        return self._main()(*args)


def _signature(name: str, entry) -> str:
    ins = ", ".join(f"{i['name']}: {describe_io(i)}" for i in entry.inputs)
    return f"{name}({ins}) -> ({', '.join(describe_io(o) for o in entry.outputs)})"
