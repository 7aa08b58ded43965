"""The package is layered and imports run one way: down.

Every module of the ``stepwell`` package belongs to one concern (its subpackage) and each
concern to one layer. A module may import modules of its own concern and of lower layers,
never of a higher layer or of another concern in its own layer: not at the top, not inside
a function, not through ``importlib.import_module("stepwell...")``. The few calls that go
upward go through ``stepwell.core.hooks``, provided by the package root.

A new subpackage must be given a layer here (the test fails until it is).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. "api" is the public facade: the package root (sw.*) and sw.jax.
LAYERS = [
    {"core"},
    {"dialects", "targets", "pipelines", "models"},
    {"passes"},
    {"compiler"},
    {"frontends"},
    {"export", "numerics"},
    {"tuner"},
    {"bench", "distributed", "generation"},
    {"api"},
    {"tools"},
    {"fuzz"},  # drives the CLIs (stepwell-opt in a worker) and sw.jax.jit
]
RANK = {concern: i for i, layer in enumerate(LAYERS) for concern in layer}
FACADE = {"stepwell", "stepwell._compat", "stepwell.jax"}


def _sources() -> dict[str, Path]:
    """Module name -> file, for every module of the package (as pyproject.toml maps them)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        tool = tomllib.load(f)["tool"]["setuptools"]
    dirs = tool["package-dir"]
    out = {}
    for package in tool["packages"]:
        top = max((p for p in dirs if package == p or package.startswith(p + ".")), key=len)
        folder = ROOT / dirs[top] / Path(*package[len(top):].strip(".").split(".")) \
            if package != top else ROOT / dirs[top]
        for py in folder.glob("*.py"):
            name = package if py.stem == "__init__" else f"{package}.{py.stem}"
            out[name] = py
    return out


SOURCES = _sources()


def concern(module: str) -> str:
    if module in FACADE or module.startswith("stepwell.jax."):
        return "api"
    return module.split(".")[1]


def _resolve(name: str) -> str:
    """The module an imported name refers to: the longest prefix that is a module."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in SOURCES:
            return candidate
    return "stepwell"


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported stepwell module) for every import in the file, nested ones too."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for a in node.names:  # `from pkg import mod` imports the module pkg.mod
                sub = f"{base}.{a.name}"
                found.append((node.lineno, sub if sub in SOURCES else base))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              == "import_module" and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, node.args[0].value))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              == "import_module" and node.args and isinstance(node.args[0], ast.JoinedStr)):
            head = node.args[0].values[0]
            if isinstance(head, ast.Constant) and head.value.startswith("stepwell."):
                found.append((node.lineno, head.value.rstrip(".")))
    return [(line, _resolve(name)) for line, name in found
            if name == "stepwell" or name.startswith("stepwell.")]


def violations() -> list[str]:
    from stepwell._compat import ALIASES
    bad = []
    for module, path in sorted(SOURCES.items()):
        mine = concern(module)
        for line, target in imports_of(module, path):
            theirs = concern(target)
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"
            if target in ALIASES:
                bad.append(f"{where}: imports the old path {target} (now {ALIASES[target]})")
            elif theirs == mine:
                continue
            elif RANK[theirs] >= RANK[mine]:
                bad.append(f"{where}: {module} ({mine}, layer {RANK[mine]}) imports {target} "
                           f"({theirs}, layer {RANK[theirs]})")
    return bad


def test_every_concern_has_a_layer():
    concerns = {concern(m) for m in SOURCES}
    assert not concerns - set(RANK), f"give these subpackages a layer: {sorted(concerns - set(RANK))}"


def test_imports_run_down_the_layers():
    bad = violations()
    assert not bad, "imports from a higher (or sibling) layer:\n" + "\n".join(bad)


def test_no_module_over_500_lines():
    long = {m: n for m, p in SOURCES.items() if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these modules (over 500 lines): {long}"


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    # an upward import inside a function is found, as is one through importlib
    f = tmp_path / "bad.py"
    f.write_text("def g():\n    from stepwell.compiler import driver\n"
                 "    import importlib\n    importlib.import_module('stepwell.export')\n")
    found = imports_of("stepwell.core.bad", f)
    assert [t for _, t in found] == ["stepwell.compiler.driver", "stepwell.export"]
    monkeypatch.setitem(SOURCES, "stepwell.core.bad", f)
    assert sum("stepwell.core.bad" in v for v in violations()) == 2


@pytest.mark.parametrize("old", sorted(__import__("stepwell._compat", fromlist=["ALIASES"]).ALIASES))
def test_old_module_paths_still_import(old):
    import importlib

    from stepwell._compat import ALIASES
    alias, real = importlib.import_module(old), importlib.import_module(ALIASES[old])
    assert alias is real and real.__name__ == ALIASES[old] and real.__spec__.name == ALIASES[old]
