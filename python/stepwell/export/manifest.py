"""The manifest (``manifest.json``): what an export folder holds, written and checked.

Format and schema, each entry point's inputs and outputs (names, shapes with ``null``
for dynamic dimensions and ``dims`` naming their symbols, dtypes, pytree structure,
the state it takes and returns), the symbols' limits, the target, the stepwell/IREE/JAX
versions, each parameter's name, shape and dtype, and the size and SHA-256 of the
module and the parameter archive.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np

from stepwell.core.diagnostics import StepwellError

log = logging.getLogger("stepwell.export")

FORMAT = "stepwell-export"
SCHEMA = 1
SCOPE = "model"                 # the parameter scope in #flow.parameter.named<"model"::...>
MANIFEST = "manifest.json"
VMFB = "model.vmfb"
PARAMS = "params.irpa"
BATCH = "b"                     # the symbolic leading dimension of dynamic_batch exports
_CHUNK = 1 << 20


def io(name: str, shape, dtype, dims=None) -> dict:
    """An input's or output's record; ``dims``: its dimensions with symbols (``["b", 16]``),
    kept when one is dynamic."""
    from stepwell.core.types import TensorType
    out = {"name": name, "shape": [None if d is None else int(d) for d in shape],
           "dtype": dtype_name(dtype), "type": str(TensorType(tuple(shape), dtype))}
    if dims is not None and any(isinstance(d, str) for d in dims):
        out["dims"] = list(dims)
    return out


def dtype_name(mlir_dtype: str) -> str:
    from stepwell.core.types import numpy_dtype
    return numpy_dtype(mlir_dtype).name


def versions(jax_version: str) -> dict:
    from importlib import metadata

    from stepwell.core.version import __version__
    from stepwell.compiler.cache import compiler_version
    out = {"stepwell": __version__, "iree_compiler": compiler_version(), "jax": jax_version}
    try:
        out["iree_runtime"] = metadata.version("iree-base-runtime")
    except metadata.PackageNotFoundError:
        out["iree_runtime"] = "unknown"
    return out


def sha256(file: str) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


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
    from stepwell.export import integrity
    integrity.check_not_newer(file, manifest, SCHEMA)
    schema = manifest.get("schema")
    if schema != SCHEMA:
        raise StepwellError(f"'{file}' has schema {schema!r}; this stepwell reads schema "
                            f"{SCHEMA} (export the model again with this version)")
    for key in ("target", "entry_points", "parameters", "files"):
        if key not in manifest:
            raise StepwellError(f"'{file}' is missing \"{key}\"")
    integrity.check_structure(file, manifest)
    integrity.check_seal(file, manifest)
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
        if hashes and sha256(file) != entry.get("sha256"):
            raise StepwellError(f"'{file}' does not match the SHA-256 in its manifest: the file "
                                "is corrupt or was changed (export the model again)")


def check_versions(manifest: dict) -> None:
    from importlib import metadata
    built = manifest.get("versions", {}).get("iree_compiler", "").split(" ")[0]
    try:
        here = metadata.version("iree-base-runtime")
    except metadata.PackageNotFoundError:
        return
    if built and built.split(".")[:2] != here.split(".")[:2]:
        log.warning("this export was compiled by IREE %s and runs on IREE runtime %s: "
                    "re-export it if loading fails", built, here)


def np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)
