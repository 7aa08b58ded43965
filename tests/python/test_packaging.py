"""The built wheel holds every subpackage and module, and works on its own.

Builds the wheel from a copy of the working tree (so the repo stays clean), unpacks
it, and imports every subpackage with only the unpacked wheel providing
``stepwell`` (the dependencies still come from the running environment).
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBPACKAGES = ["stepwell", "stepwell.bench", "stepwell.dialects", "stepwell.passes", "stepwell.pipelines",
               "stepwell.targets", "stepwell.tools"]
try:  # and whatever else pyproject.toml lists (Python >= 3.11)
    import tomllib
    with open(ROOT / "pyproject.toml", "rb") as _f:
        _listed = tomllib.load(_f)["tool"]["setuptools"]["packages"]
    SUBPACKAGES += [p for p in _listed if p not in SUBPACKAGES]
except ImportError:
    pass
# Source folder of each package, as pyproject.toml's package-dir maps them.
SOURCES = {"stepwell": "python/stepwell", "stepwell.dialects": "dialects", "stepwell.passes": "passes",
           "stepwell.pipelines": "pipelines", "stepwell.targets": "targets", "stepwell.tools": "tools"}
IGNORE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__",
                                ".pytest_cache", ".hypothesis", "Output", "benchmarks", "*.repro.mlir")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE, symlinks=True)
    out = tmp / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "--no-cache-dir", "-q", "-w", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (path,) = out.glob("stepwell-*.whl")
    return path


def test_wheel_holds_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, folder in SOURCES.items():
        for py in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in py.parts:
                continue
            rel = py.relative_to(ROOT / folder).as_posix()
            arc = package.replace(".", "/") + "/" + rel
            assert arc in names, f"{py.relative_to(ROOT)} is not in the wheel as {arc} " \
                                 "(a nested package missing from [tool.setuptools] packages?)"


def test_wheel_entry_points(wheel):
    with zipfile.ZipFile(wheel) as z:
        (ep,) = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(z.read(ep).decode())
    scripts = dict(parser["console_scripts"])
    assert scripts == {"stepwell-opt": "stepwell.tools.opt:main", "stepwell": "stepwell.tools.main:main"}


def test_every_subpackage_imports_from_the_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "\n".join([
        "import importlib, sys",
        f"site = {str(site)!r}",
        f"for name in {SUBPACKAGES!r}:",
        "    module = importlib.import_module(name)",
        "    assert module.__file__.startswith(site), (name, module.__file__)",
        "from stepwell import opspec, passes, pipelines",
        "assert len(opspec.specs('nn')) > 10 and len(opspec.specs('prim')) > 5",
        "assert 'nn-canonicalize' in passes.names() and pipelines.names()",
        "from stepwell.tools import opt, main",
        "sys.exit(opt.main(['--version']) or main.main(['version']))",
    ])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("stepwell-opt ")


def test_readme_opens_with_the_two_commands_and_ci_runs_them():
    readme = (ROOT / "README.md").read_text().splitlines()
    assert readme[:4] == [
        "```",
        'python -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && stepwell demo',
        "python -m pytest -n auto",
        "```",
    ]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in ci
    assert 'pip install -e ".[test]"' in ci and "stepwell demo" in ci and ci[-1] == readme[2]
    for script in ("run", "under-load", "scheduled"):
        assert os.access(ROOT / ".ci" / script, os.X_OK), script
    load = (ROOT / ".ci" / "under-load").read_text()
    assert ".ci/run" in load and "while :; do :; done" in load  # CI with every core busy
