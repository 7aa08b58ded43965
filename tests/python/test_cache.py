"""The on-disk compilation cache (stepwell.cache): keys, atomic entries, corruption,
a second process finding the first one's compile, and the ways to turn it off.

Hits and misses are read from ``cache.stats()`` (in-process) or printed by a child
process, never inferred from wall-clock time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import cache, driver as compiler

MODULE = """
func.func @main(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "nn.add"(%a, %b) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %1 = "nn.relu"(%0) : (tensor<4xf32>) -> tensor<4xf32>
  return %1 : tensor<4xf32>
}
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache folder, counters at zero and no in-memory copies."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("STEPWELL_CACHE_DIR", str(folder))
    monkeypatch.delenv("STEPWELL_NO_CACHE", raising=False)
    compiler.clear_cache()
    cache.reset_stats()
    yield folder
    compiler.clear_cache()


def _entries(folder) -> list:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------
def test_keys_differ_by_everything_that_changes_the_binary():
    base = cache.key("text", "cpu", "llvm-cpu", "auto", ["--a"])
    assert base == cache.key("text", "cpu", "llvm-cpu", "auto", ["--a"])
    assert len({base,
                cache.key("text2", "cpu", "llvm-cpu", "auto", ["--a"]),
                cache.key("text", "cpu-generic", "llvm-cpu", "auto", ["--a"]),
                cache.key("text", "cpu", "llvm-cpu", "stablehlo", ["--a"]),
                cache.key("text", "cpu", "llvm-cpu", "auto", ["--b"]),
                cache.key("text", "cpu", "llvm-cpu", "auto", [])}) == 6


def test_key_includes_the_versions(monkeypatch):
    base = cache.key("t", "cpu", "llvm-cpu", "auto", [])
    from importlib import metadata

    from stepwell.core import version
    monkeypatch.setattr(version, "__version__", "999.0")
    assert cache.key("t", "cpu", "llvm-cpu", "auto", []) != base
    monkeypatch.undo()
    # the real compiler version is part of the key: the installed IREE's, read afresh
    # (not a value an earlier call or test left in the module)
    monkeypatch.setattr(cache, "_COMPILER_VERSION", None)
    assert cache.compiler_version().startswith(metadata.version("iree-base-compiler"))
    assert cache.key("t", "cpu", "llvm-cpu", "auto", []) == base
    monkeypatch.setattr(cache, "_COMPILER_VERSION", "other-iree")
    assert cache.key("t", "cpu", "llvm-cpu", "auto", []) != base


def test_default_folder_is_the_user_cache(monkeypatch):
    monkeypatch.delenv("STEPWELL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    if sys.platform.startswith("linux"):
        assert cache.cache_dir() == "/x/cache/stepwell"
    monkeypatch.setenv("STEPWELL_CACHE_DIR", "/y/sw")
    assert cache.cache_dir() == "/y/sw"


def test_put_get_round_trip_is_atomic(cache_dir):
    k = cache.key("m", "cpu", "llvm-cpu", "auto", [])
    assert cache.get(k) is None
    assert cache.put(k, b"\x00vmfb bytes")
    assert cache.get(k) == b"\x00vmfb bytes"
    (entry,) = _entries(cache_dir)  # no temporary file left behind
    assert entry.name == k + cache.SUFFIX
    assert cache.stats() == {"hits": 1, "misses": 1, "writes": 1, "corrupt": 0, "errors": 0}


@pytest.mark.parametrize("damage", ["truncate", "flip", "header", "empty"])
def test_a_corrupt_entry_is_ignored_and_removed(cache_dir, damage):
    k = cache.key("m", "cpu", "llvm-cpu", "auto", [damage])
    cache.put(k, bytes(range(256)) * 4)
    (entry,) = _entries(cache_dir)
    data = entry.read_bytes()
    data = {"truncate": data[:-10], "flip": data[:-1] + bytes([data[-1] ^ 1]),
            "header": b"X" + data[1:], "empty": b""}[damage]
    entry.write_bytes(data)
    assert cache.get(k) is None
    assert cache.stats()["corrupt"] == 1 and not entry.exists()


def test_an_unwritable_folder_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("STEPWELL_CACHE_DIR", str(blocker / "cache"))
    cache.reset_stats()
    assert cache.put("ab" * 32, b"x") is False
    assert cache.stats()["errors"] == 1


def test_old_entries_are_pruned_past_the_size_limit(cache_dir, monkeypatch):
    monkeypatch.setenv("STEPWELL_CACHE_MAX_BYTES", "2500")
    for i in range(4):
        k = cache.key(f"m{i}", "cpu", "llvm-cpu", "auto", [])
        cache.put(k, b"x" * 1000)
        os.utime(cache._path(k), (1000 + i, 1000 + i))  # written in this order
    remaining = _entries(cache_dir)
    assert len(remaining) == 2
    assert cache.get(cache.key("m3", "cpu", "llvm-cpu", "auto", [])) == b"x" * 1000


# ---------------------------------------------------------------------------
# sw.compile and the cache
def test_compile_writes_then_reads_the_cache(cache_dir):
    sw.compile(MODULE)
    assert cache.stats()["writes"] == 1 and cache.stats()["misses"] == 1
    compiler.clear_cache()  # drop the in-memory copy: the next compile reads the disk
    exe = sw.compile(MODULE)
    assert cache.stats()["hits"] == 1 and cache.stats()["writes"] == 1
    a, b = np.array([1, -2, 3, -4], np.float32), np.ones(4, np.float32)
    np.testing.assert_array_equal(exe(a, b), np.maximum(a + b, 0))


def test_a_corrupt_compiled_entry_is_rebuilt(cache_dir):
    sw.compile(MODULE)
    (entry,) = _entries(cache_dir)
    entry.write_bytes(entry.read_bytes()[: len(entry.read_bytes()) // 2])
    compiler.clear_cache()
    exe = sw.compile(MODULE)
    s = cache.stats()
    assert s["corrupt"] == 1 and s["writes"] == 2
    np.testing.assert_array_equal(exe(np.ones(4, np.float32), np.ones(4, np.float32)), np.full(4, 2.0))
    compiler.clear_cache()
    sw.compile(MODULE)
    assert cache.stats()["hits"] == 1


def test_flags_and_targets_make_separate_entries(cache_dir):
    sw.compile(MODULE)
    sw.compile(MODULE, flags=["--iree-opt-level=O1"])
    assert len(_entries(cache_dir)) == 2


def test_turning_the_cache_off(cache_dir, monkeypatch, tmp_path):
    sw.compile(MODULE, cache=False)
    assert not cache_dir.exists() or _entries(cache_dir) == []
    compiler.clear_cache()
    monkeypatch.setenv("STEPWELL_NO_CACHE", "1")
    sw.compile(MODULE)
    assert not cache_dir.exists() or _entries(cache_dir) == []
    assert cache.stats()["misses"] == 0  # never even looked
    monkeypatch.delenv("STEPWELL_NO_CACHE")
    compiler.clear_cache()
    src = tmp_path / "m.mlir"
    src.write_text(MODULE)
    from stepwell.tools import main
    assert main.main(["compile", str(src), "--no-cache", "-o", str(tmp_path / "m.vmfb")]) == 0
    assert not cache_dir.exists() or _entries(cache_dir) == []
    compiler.clear_cache()  # (the in-memory copy would answer first)
    assert main.main(["compile", str(src), "-o", str(tmp_path / "m.vmfb")]) == 0
    assert len(_entries(cache_dir)) == 1


CHILD = """
import json, sys
import jax.numpy as jnp, numpy as np
import stepwell as sw

def f(x, y):
    return jnp.tanh(x @ y) + 1.0

out = sw.jax.jit(f)(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))
print(json.dumps({"stats": sw.cache.stats(), "out": np.asarray(out).tolist()}))
"""


def test_a_second_process_finds_the_first_ones_compile(cache_dir, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, STEPWELL_CACHE_DIR=str(cache_dir))

    def child():
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                           timeout=600)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])
    first, second = child(), child()
    assert first["stats"]["misses"] == 1 and first["stats"]["writes"] == 1
    assert second["stats"]["hits"] == 1 and second["stats"]["misses"] == 0
    assert second["stats"]["writes"] == 0 and second["out"] == first["out"]
