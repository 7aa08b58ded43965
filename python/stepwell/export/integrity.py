"""What makes an export folder trustworthy before anything in it is loaded.

``sw.load`` refuses, with one clear error naming the file, a folder that:

* was written by a newer stepwell (a higher manifest schema, or a newer version);
* has a manifest that is malformed (a missing or mistyped entry: never a KeyError) or
  was edited after the export (``manifest_sha256``, the SHA-256 of the manifest's
  canonical JSON without that key, no longer matches);
* holds a module compiled for a CPU with features this one lacks (target ``cpu``
  compiles for the exporting machine: ``cpu_features`` lists what its code may use;
  running it here could die on an illegal instruction).

File sizes and hashes (a flipped bit, a cut-short archive, a missing file) are checked
by ``manifest.verify_files``.
"""

from __future__ import annotations

import hashlib
import json
import re

from stepwell.core.diagnostics import StepwellError

SEAL = "manifest_sha256"


def digest(manifest: dict) -> str:
    """SHA-256 of the manifest's canonical JSON, without its own seal."""
    body = {k: v for k, v in manifest.items() if k != SEAL}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal(manifest: dict) -> dict:
    """``manifest`` with its seal set (the writer calls this last)."""
    manifest[SEAL] = digest(manifest)
    return manifest


def _version(text) -> tuple:
    parts = re.findall(r"\d+", str(text).split("+")[0])[:3]
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


def check_not_newer(file: str, manifest: dict, schema: int) -> None:
    """Refuse a folder written by a newer stepwell (schema or version)."""
    from stepwell.core.version import __version__
    found = manifest.get("schema")
    written_by = (manifest.get("versions") or {}).get("stepwell") if isinstance(
        manifest.get("versions"), dict) else None
    by = f" (written by stepwell {written_by})" if written_by else ""
    if isinstance(found, int) and not isinstance(found, bool) and found > schema:
        raise StepwellError(f"'{file}' has schema {found}; this stepwell reads schema {schema}: "
                            f"the folder was written by a newer stepwell{by}; upgrade stepwell "
                            f"(this is {__version__}) to load it")
    if written_by is not None and _version(written_by) > _version(__version__):
        raise StepwellError(f"'{file}' was written by stepwell {written_by}, newer than this "
                            f"stepwell {__version__}: upgrade stepwell to load it")


def check_seal(file: str, manifest: dict) -> None:
    """Refuse a manifest edited since the export (or one without its seal)."""
    found = manifest.get(SEAL)
    if not isinstance(found, str):
        raise StepwellError(f"'{file}' has no \"{SEAL}\": it was not written by sw.jax.export "
                            "of this stepwell, or was edited (export the model again)")
    if found != digest(manifest):
        raise StepwellError(f"'{file}' was edited after the export (its contents no longer "
                            f"match \"{SEAL}\"): export the model again")


# -- structure: each entry the loader reads, with its type -----------------------------
def _is_shape(v) -> bool:
    return isinstance(v, list) and all(d is None or (isinstance(d, int) and not isinstance(d, bool)
                                                     and d >= 0) for d in v)


def _tensor_problem(entry, where: str, need_name: bool = True) -> str | None:
    from stepwell.export.manifest import np_dtype
    if not isinstance(entry, dict):
        return f"{where} is not an object"
    for key, ok, what in (("name", lambda v: isinstance(v, str), "a string"),
                          ("shape", _is_shape, "a list of sizes (null for a dynamic one)"),
                          ("dtype", lambda v: isinstance(v, str), "a dtype name")):
        if key == "name" and not need_name:
            continue
        if key not in entry:
            return f"{where} has no \"{key}\""
        if not ok(entry[key]):
            return f"{where}'s \"{key}\" is not {what}: {entry[key]!r}"
    try:
        np_dtype(entry["dtype"])
    except TypeError:
        return f"{where}'s \"dtype\" is not a dtype numpy knows: {entry['dtype']!r}"
    return None


def structure_problems(manifest: dict) -> list[str]:
    """Every entry the loader reads that is missing or of the wrong type."""
    problems = []
    if not isinstance(manifest.get("target"), str):
        problems.append("\"target\" is not a target name")
    entries = manifest.get("entry_points")
    if not isinstance(entries, dict) or not entries:
        problems.append("\"entry_points\" is not an object of entry points")
        entries = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            problems.append(f"entry_points.{name} is not an object")
            continue
        for side in ("inputs", "outputs"):
            if not isinstance(entry.get(side), list):
                problems.append(f"entry_points.{name} has no list \"{side}\"")
                continue
            problems += filter(None, (_tensor_problem(t, f"entry_points.{name}.{side}[{i}]")
                                      for i, t in enumerate(entry[side])))
    params = manifest.get("parameters")
    if not isinstance(params, list):
        problems.append("\"parameters\" is not a list")
    else:
        problems += filter(None, (_tensor_problem(p, f"parameters[{i}]") for i, p in enumerate(params)))
    files = manifest.get("files")
    if not isinstance(files, dict):
        problems.append("\"files\" is not an object")
    else:
        for fname, entry in files.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
                    and isinstance(entry.get("sha256"), str)):
                problems.append(f"files.{fname} needs \"bytes\" (an integer) and \"sha256\" (a string)")
    return problems


def check_structure(file: str, manifest: dict) -> None:
    problems = structure_problems(manifest)
    if problems:
        from stepwell.core.diagnostics import Diagnostic
        raise StepwellError([Diagnostic(f"'{file}' is malformed: {p}", "error") for p in problems[:5]])


# -- the CPU the module was compiled for -------------------------------------------------
def check_cpu(file: str, manifest: dict, target) -> None:
    """Refuse host-CPU code (target ``cpu``) exported on a CPU with features this one
    lacks, or compiled for another machine."""
    from stepwell import targets
    if target.backend != "llvm-cpu":
        return
    recorded = manifest.get("cpu")
    if not isinstance(recorded, dict):
        return  # a portable target (cpu-generic, cross) records none
    arch, here = recorded.get("arch"), targets.host_arch()
    if arch and arch != here:
        raise StepwellError(f"'{file}': the module was compiled for this kind of CPU on a {arch} "
                            f"machine and this one is {here}: export it with target "
                            f"'cpu-{here}' or 'cpu-generic' for a portable module")
    missing = sorted(set(recorded.get("features") or ()) - targets.cpu.codegen_features())
    if missing:
        raise StepwellError(f"'{file}': the module was compiled for a CPU with "
                            f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}, "
                            f"which this CPU lacks: running it could crash on an illegal "
                            f"instruction. Export with target 'cpu-generic' for any x86-64, "
                            f"or export again on this machine")
