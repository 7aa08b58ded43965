"""Export integrity (issue 17): every way an export folder can be untrustworthy is
refused with one clear error naming the file, before anything is bound to the runtime.

A flipped bit or a cut-short archive, an edited manifest, a malformed manifest entry,
a missing file, a module compiled for another target or for a CPU with features this
one lacks, and a folder written by a newer stepwell.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import runtime
from stepwell.core.diagnostics import StepwellError
from stepwell.export import integrity
from stepwell.export.manifest import MANIFEST, PARAMS, VMFB, sha256


def mlp(params, x):
    return jax.nn.relu(x @ params["w"] + params["b"])


PARAMS_ = {"w": np.linspace(-1, 1, 8 * 4, dtype=np.float32).reshape(8, 4),
           "b": np.arange(4, dtype=np.float32)}
X = np.linspace(0, 1, 2 * 8, dtype=np.float32).reshape(2, 8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("integrity") / "mlp")
    sw.jax.export(mlp, PARAMS_, X, path=path)
    return path


@pytest.fixture
def folder(exported, tmp_path):
    path = str(tmp_path / "copy")
    shutil.copytree(exported, path)
    return path


def edit_manifest(path, edit, reseal=True):
    file = os.path.join(path, MANIFEST)
    with open(file) as f:
        manifest = json.load(f)
    edit(manifest)
    if reseal:  # as a writer would: the folder is consistent, the content is what is wrong
        integrity.seal(manifest)
    with open(file, "w") as f:
        json.dump(manifest, f)


def rehash(path):
    def edit(m):
        for name in (VMFB, PARAMS):
            file = os.path.join(path, name)
            m["files"][name] = {"bytes": os.path.getsize(file), "sha256": sha256(file)}
    edit_manifest(path, edit)


def refused(path, match):
    """sw.load raises a StepwellError matching ``match`` and creates no Executable."""
    created = []
    init = runtime.Executable.__init__

    def spy(self, *args, **kwargs):
        created.append(self)
        init(self, *args, **kwargs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runtime.Executable, "__init__", spy)
        with pytest.raises(StepwellError, match=match) as info:
            sw.load(path)
    assert not created, "a module was bound before the refusal"
    return str(info.value)


def test_intact_folder_loads(exported):
    manifest = json.load(open(os.path.join(exported, MANIFEST)))
    assert manifest[integrity.SEAL] == integrity.digest(manifest)
    assert manifest["cpu"]["arch"] == sw.targets.host_arch()
    want = np.maximum(X @ PARAMS_["w"] + PARAMS_["b"], 0)
    np.testing.assert_allclose(sw.load(exported)(X), want, rtol=1e-6)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.99])
def test_flipped_bit_in_the_archive(folder, where):
    file = os.path.join(folder, PARAMS)
    offset = int(os.path.getsize(file) * where)
    with open(file, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))
    refused(folder, r"params\.irpa' does not match the SHA-256 in its manifest")


def test_flipped_bit_in_the_module(folder):
    file = os.path.join(folder, VMFB)
    with open(file, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)[0]
        f.seek(1000)
        f.write(bytes([byte ^ 1]))
    refused(folder, r"model\.vmfb' does not match the SHA-256")


def _cut(folder, keep) -> None:
    """Truncate the archive: to ``keep`` bytes, by ``-keep`` bytes, or ("data") in
    the middle of its last parameter's data."""
    file = os.path.join(folder, PARAMS)
    size = os.path.getsize(file)
    if keep == "data":
        import iree.runtime as rt
        index = rt.ParameterIndex()
        index.load(file)
        entry = max((e for _, e in index.items()), key=lambda e: e.file_storage[1])
        keep = entry.file_storage[1] + entry.length // 2
    elif keep < 0:
        keep = size + keep
    with open(file, "r+b") as f:
        f.truncate(keep)


@pytest.mark.parametrize("keep", [0, 16, "data", -1])
def test_archive_cut_short(folder, keep):
    _cut(folder, keep)
    refused(folder, r"params\.irpa' has \d+ bytes, the manifest says")


@pytest.mark.parametrize("keep", [16, "data"])
def test_archive_cut_short_with_an_agreeing_manifest(folder, keep):
    """Sizes and hashes rewritten to match the short file: the archive itself fails
    (in its header: IREE's index; in its data: the entry runs past the end)."""
    _cut(folder, keep)
    rehash(folder)
    refused(folder, r"params\.irpa' is not a valid parameter archive|is cut short")


@pytest.mark.parametrize("edit", [
    lambda m: m["entry_points"]["main"]["inputs"][0].update(shape=[3, 8]),
    lambda m: m["parameters"][0].update(dtype="float16"),
    lambda m: m.update(target="cpu-generic"),
    lambda m: m["files"][PARAMS].update(sha256="0" * 64),
], ids=["input-shape", "parameter-dtype", "target", "file-hash"])
def test_edited_manifest(folder, edit):
    edit_manifest(folder, edit, reseal=False)
    refused(folder, "was edited after the export")


def test_manifest_without_its_seal(folder):
    edit_manifest(folder, lambda m: m.pop(integrity.SEAL), reseal=False)
    refused(folder, f'has no "{integrity.SEAL}"')


@pytest.mark.parametrize("name", [VMFB, PARAMS, MANIFEST])
def test_missing_file(folder, name):
    os.remove(os.path.join(folder, name))
    refused(folder, "is missing from the export" if name != MANIFEST else "has no manifest.json")


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["parameters"][0].pop("dtype"), r'parameters\[0\] has no "dtype"'),
    (lambda m: m["parameters"][1].update(shape="4"), r'parameters\[1\]\'s "shape" is not a list'),
    (lambda m: m["entry_points"]["main"]["inputs"][0].pop("name"), r'inputs\[0\] has no "name"'),
    (lambda m: m["entry_points"]["main"]["outputs"][0].update(dtype="float99"), "not a dtype numpy knows"),
    (lambda m: m["entry_points"].pop("main"), r'"entry_points" is not an object of entry points'),
    (lambda m: m["files"][VMFB].pop("bytes"), r'files\.model\.vmfb needs "bytes"'),
    (lambda m: m.update(parameters={}), r'"parameters" is not a list'),
    (lambda m: m.update(target=7), r'"target" is not a target name'),
], ids=["param-dtype", "param-shape", "input-name", "output-dtype", "no-entry-points", "file-bytes",
        "params-type", "target-type"])
def test_malformed_entries_are_named_not_keyerrors(folder, edit, match):
    edit_manifest(folder, edit)
    message = refused(folder, "is malformed")
    assert __import__("re").search(match, message), message


def test_module_for_another_target(folder, tmp_path):
    """A consistent folder whose module was compiled for aarch64."""
    m = sw.jax.import_function(lambda x: mlp(PARAMS_, x), X)
    with open(os.path.join(folder, VMFB), "wb") as f:
        f.write(sw.compile(m, target="cpu-aarch64").vmfb)
    rehash(folder)
    refused(folder, r"model\.vmfb' holds code for llvm-cpu aarch64, not for target 'cpu'")


def test_module_for_a_cpu_with_more_features(folder):
    edit_manifest(folder, lambda m: m["cpu"]["features"].append("avx10_9"))
    refused(folder, "compiled for a CPU with avx10_9, which this CPU lacks")


def test_module_for_another_cpu_architecture(folder):
    other = "aarch64" if sw.targets.host_arch() != "aarch64" else "x86_64"
    edit_manifest(folder, lambda m: m["cpu"].update(arch=other))
    refused(folder, f"on a {other} machine")


def test_portable_export_records_no_cpu(tmp_path):
    path = str(tmp_path / "generic")
    manifest = sw.jax.export(mlp, PARAMS_, X, path=path, target="cpu-generic")
    assert "cpu" not in manifest
    if sw.targets.host_arch() == "x86_64":
        np.testing.assert_allclose(sw.load(path)(X), np.maximum(X @ PARAMS_["w"] + PARAMS_["b"], 0),
                                   rtol=1e-6)


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["versions"].update(stepwell="99.0.0"), "written by stepwell 99.0.0, newer than this"),
    (lambda m: m.update(schema=2), "schema 2; this stepwell reads schema 1: the folder was written by a newer"),
], ids=["version", "schema"])
def test_folder_from_a_newer_stepwell(folder, edit, match):
    edit_manifest(folder, edit)
    refused(folder, match)


def test_cli_run_refuses_without_traceback(folder, tmp_path):
    import subprocess
    import sys
    edit_manifest(folder, lambda m: m["parameters"][0].pop("dtype"))
    np.save(tmp_path / "x.npy", X)
    r = subprocess.run([sys.executable, "-m", "stepwell.tools.main", "run", folder, "--input",
                        str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "is malformed" in r.stderr and r.stdout == ""
