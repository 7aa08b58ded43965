"""Concurrency and endurance (issue 17): threads, processes, a dying compiler, 10,000 calls.

* One ``Executable`` called from 8 threads at once gives every thread its own right
  results (distinct inputs per thread, checked against numpy).
* One ``sw.jax.jit`` function called from several threads, at the same and at new
  shapes (compiles racing each other), matches ``jax.jit``.
* Two processes compiling the same module at the same moment share the disk cache:
  both succeed with equal results and leave one whole entry, no partial file.
* An ``iree-compile`` that dies (SIGKILL, or a real segfault) leaves no cache entry.
* 10,000 calls leave the resident memory flat.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import cache, driver as compiler

MLP = """
func.func @main(%x: tensor<4x16xf32>, %w: tensor<16x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.linear"(%x, %w, %b) : (tensor<4x16xf32>, tensor<16x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %1 = "nn.gelu"(%0) {approximate = true} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %1 : tensor<4x8xf32>
}
"""


def _mlp_reference(x, w, b):
    y = x.astype(np.float64) @ w + b
    return 0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y ** 3)))


@pytest.fixture(scope="module")
def mlp():
    return sw.compile(sw.parse(MLP), target="cpu")


def _run_threads(n, work):
    """Start ``n`` threads on ``work(i)`` together (a barrier); re-raise the first error."""
    barrier = threading.Barrier(n)
    errors = []

    def run(i):
        try:
            barrier.wait(timeout=120)
            work(i)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_one_executable_from_8_threads(mlp):
    rng = np.random.default_rng(8)
    inputs = [(rng.standard_normal((4, 16)).astype(np.float32),
               rng.standard_normal((16, 8)).astype(np.float32) * 0.25,
               rng.standard_normal(8).astype(np.float32)) for _ in range(8)]
    wrong = []

    def work(i):
        want = _mlp_reference(*inputs[i])
        for _ in range(200):
            got = mlp(*inputs[i])
            if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
                wrong.append(i)
                return
    _run_threads(8, work)
    assert not wrong, f"threads {sorted(set(wrong))} got another thread's (or a torn) result"


def test_jit_from_several_threads():
    def f(x, y):
        return jnp.tanh(x @ y) + x.sum()

    jitted = sw.jax.jit(f)
    shapes = [(2, 3, 4), (2, 3, 4), (5, 3, 2), (5, 3, 2), (1, 7, 3), (4, 4, 4)]
    rng = np.random.default_rng(4)
    cases = [(rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32))
             for m, k, n in shapes]
    results = [None] * len(cases)

    def work(i):
        for _ in range(3):
            results[i] = np.asarray(jitted(*cases[i]))
    _run_threads(len(cases), work)
    for (x, y), got in zip(cases, results):
        np.testing.assert_allclose(got, np.asarray(jax.jit(f)(x, y)), rtol=1e-5, atol=1e-5)


CHILD = """
import json, sys, numpy as np
import stepwell as sw
m = sw.parse(sys.argv[1])
exe = sw.compile(m, target="cpu")
out = exe(np.arange(8, dtype=np.float32))
print(json.dumps({"stats": sw.cache.stats(), "out": out.tolist()}))
"""

# A module no other test compiles (a fresh cache entry).
SHARED = """
func.func @main(%x: tensor<8xf32>) -> tensor<8xf32> {
  %0 = "nn.tanh"(%x) : (tensor<8xf32>) -> tensor<8xf32>
  %1 = "nn.mul"(%0, %x) : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  %2 = "nn.sigmoid"(%1) : (tensor<8xf32>) -> tensor<8xf32>
  return %2 : tensor<8xf32>
}
"""


def _files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_two_processes_compile_the_same_module_into_one_cache(tmp_path):
    folder = tmp_path / "cache"
    env = dict(os.environ, STEPWELL_CACHE_DIR=str(folder))
    env.pop("STEPWELL_NO_CACHE", None)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, SHARED], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert outs[0]["out"] == outs[1]["out"]
    x = np.arange(8, dtype=np.float64)
    np.testing.assert_allclose(outs[0]["out"], 1 / (1 + np.exp(-np.tanh(x) * x)), rtol=1e-5)
    assert sum(o["stats"]["writes"] for o in outs) >= 1
    assert all(o["stats"]["corrupt"] == 0 for o in outs)
    files = _files(folder)
    assert len(files) == 1 and files[0].name.endswith(cache.SUFFIX), files  # no partial file
    assert cache._unpack(files[0].read_bytes()) is not None  # whole and hash-checked


KILLED = """#!/bin/sh
# an iree-compile that writes part of a module and dies by SIGKILL (as the OOM killer does)
for a in "$@"; do case "$a" in -o) out=1;; *) [ -n "$out" ] && { printf 'IREE partial' > "$a"; out=; };; esac; done
printf 'IREE partial'
kill -9 $$
"""

DYING = """
import json, sys
import stepwell as sw
try:
    sw.compile(sw.parse(sys.argv[1]), target="cpu")
    print(json.dumps({"ok": True}))
except sw.StepwellError as e:
    print(json.dumps({"ok": False, "error": str(e), "stats": sw.cache.stats()}))
"""


def test_a_killed_compiler_leaves_no_cache_entry(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    fake = tools / "iree-compile"
    fake.write_text(KILLED)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    folder = tmp_path / "cache"
    env = dict(os.environ, STEPWELL_CACHE_DIR=str(folder), IREE_TOOL_PATH=str(tools))
    env.pop("STEPWELL_NO_CACHE", None)
    r = subprocess.run([sys.executable, "-c", DYING, SHARED.replace("nn.tanh", "nn.exp")],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert not result["ok"] and "iree-compile crashed (signal 9)" in result["error"], result
    assert "Traceback" not in result["error"]
    assert result["stats"]["writes"] == 0
    assert not folder.exists() or _files(folder) == []


def test_a_crashing_compiler_leaves_no_cache_entry(tmp_path, monkeypatch):
    """A real iree-compile segfault (stablehlo_screen's crash fact, bypassing the screen)."""
    from stepwell.compiler import stablehlo_screen as screen
    folder = tmp_path / "cache"
    monkeypatch.setenv("STEPWELL_CACHE_DIR", str(folder))
    monkeypatch.delenv("STEPWELL_NO_CACHE", raising=False)
    crash = next(f for f in screen.FACTS if f.crashes)
    with pytest.raises(sw.StepwellError, match=r"iree-compile crashed \(signal 11\)"):
        compiler._run_iree(sw.parse(crash.probe), sw.targets.get("cpu"), (), "stablehlo", cache=True)
    assert not folder.exists() or _files(folder) == []


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc (Linux)")
def test_10000_calls_leave_resident_memory_flat(mlp):
    import gc
    x = np.ones((4, 16), np.float32)
    w = np.full((16, 8), 0.1, np.float32)
    b = np.zeros(8, np.float32)
    want = _mlp_reference(x, w, b)
    for _ in range(1000):  # warm up: allocator pools, first-call caches
        mlp(x, w, b)
    gc.collect()
    before = _rss_bytes()
    for i in range(10_000):
        out = mlp(x, w, b)
    gc.collect()
    grown = _rss_bytes() - before
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    # 10,000 results of 128 bytes each would be 1.3 MB if every one leaked; the
    # descriptors, buffers and invocations around each call would be far more.
    assert grown < 4 << 20, f"resident memory grew by {grown / 2**20:.1f} MiB over 10,000 calls"
