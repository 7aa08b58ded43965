"""What passes on this machine must pass on any x86-64 (issue 17).

An AVX2-only CPU (AMD znver3: no AVX-512, no native bf16) failed to compile a bool ->
bf16 cast: ``arith.uitofp i1 to bf16`` became a call of ``__truncsfbf2``, which IREE's
embedded linker cannot resolve. Target ``cpu-generic`` (baseline x86-64) reproduces
that on any machine, so these tests compile every integer/float -> bf16/f16 conversion
for it, from ``nn.cast`` and from StableHLO, and check the values against ml_dtypes
(numpy's bf16). The capability table must say which types the host CPU emulates.
"""

from __future__ import annotations

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import stepwell as sw
from stepwell.core.types import numpy_dtype
from stepwell.targets import cpu as cpu_table

# /proc/cpuinfo flags of real CPUs (abridged to what the table reads).
ZNVER3 = {"sse2", "avx", "avx2", "f16c", "fma"}                               # EPYC 7003
ZNVER4 = ZNVER3 | {"avx512f", "avx512_bf16", "avx512_vnni"}                    # EPYC 9004
SAPPHIRE_RAPIDS = ZNVER4 | {"avx512_fp16", "amx_bf16"}
NEOVERSE_V1 = {"fp", "asimd", "fphp", "asimdhp", "asimddp", "bf16"}            # Graviton3
CORTEX_A72 = {"fp", "asimd", "crc32"}                                          # Raspberry Pi 4

INTS = ("i1", "i8", "i32", "i64")
FLOATS = ("f32", "f16", "bf16")
PAIRS = [(s, d) for s in (*INTS, *FLOATS) for d in ("bf16", "f16") if s != d]
VALUES = np.array([0, 1, -3, 7.5, 0x1008001, 300, -129.75, 2.0 ** 20 + 1], np.float64)


@pytest.mark.parametrize("flags, arch, emulated, i8_dot", [
    (ZNVER3, "x86_64", ("bf16",), False),
    (ZNVER4, "x86_64", (), True),
    (SAPPHIRE_RAPIDS, "x86_64", (), True),
    ({"sse2"}, "x86_64", ("f16", "bf16"), False),
    (NEOVERSE_V1, "aarch64", (), True),
    (CORTEX_A72, "aarch64", ("bf16",), False),
    (set(), "riscv64", ("f16", "bf16"), False),
])
def test_host_capabilities_follow_the_cpu_flags(flags, arch, emulated, i8_dot):
    caps = cpu_table.host_capabilities(flags, arch)
    assert caps.emulated == emulated and caps.i8_dot == i8_dot
    assert caps.f16 and caps.bf16  # emulated still compiles and runs correctly


def test_host_entry_is_this_machines_cpu():
    here = cpu_table.host_capabilities(cpu_table._host_flags(), cpu_table.host_arch())
    assert sw.targets.get("cpu").capabilities == here
    assert sw.targets.get("cpu-generic").capabilities.emulated == ("f16", "bf16")


def test_targets_listing_says_emulated():
    r = subprocess.run([sys.executable, "-m", "stepwell.tools.main", "targets", "cpu-generic", "cpu"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    generic = next(line for line in r.stdout.splitlines() if line.startswith("cpu-generic"))
    assert generic.split()[3:5] == ["emulated", "emulated"], generic
    host = next(line for line in r.stdout.splitlines() if line.startswith("cpu "))
    want = ["emulated" if t in sw.targets.get("cpu").capabilities.emulated else "yes"
            for t in ("f16", "bf16")]
    assert host.split()[3:5] == want, host


def _inputs(src: str) -> np.ndarray:
    if src == "i1":
        return VALUES != 0
    if src.startswith("i"):
        return np.trunc(VALUES).astype(np.int64).astype(numpy_dtype(src))
    return VALUES.astype(numpy_dtype(src))


def _want(x: np.ndarray, dst: str) -> np.ndarray:
    """numpy's conversion: an integer goes through f32 first, as ml_dtypes and XLA do."""
    if x.dtype.kind in "biu":
        x = x.astype(np.float32)
    return x.astype(numpy_dtype(dst))


def _check(outs, pairs) -> None:
    bad = []
    for (s, d), y in zip(pairs, outs):
        want = _want(_inputs(s), d)
        if np.asarray(y).dtype != want.dtype or not np.array_equal(
                np.asarray(y).astype(np.float64), want.astype(np.float64)):
            bad.append(f"{s}->{d}: {np.asarray(y)} != {want}")
    assert not bad, "\n".join(bad)


def _module(op: str, pairs) -> str:
    args = ", ".join(f"%a{i}: tensor<8x{s}>" for i, (s, _) in enumerate(pairs))
    res = ", ".join(f"tensor<8x{d}>" for _, d in pairs)
    if op == "nn.cast":
        body = [f'%r{i} = "nn.cast"(%a{i}) : (tensor<8x{s}>) -> tensor<8x{d}>' for i, (s, d) in enumerate(pairs)]
    else:
        body = [f"%r{i} = stablehlo.convert %a{i} : (tensor<8x{s}>) -> tensor<8x{d}>"
                for i, (s, d) in enumerate(pairs)]
    rets = ", ".join(f"%r{i}" for i in range(len(pairs)))
    return (f"func.func @main({args}) -> ({res}) {{\n  " + "\n  ".join(body)
            + f"\n  return {rets} : {res}\n}}\n")


def test_no_low_float_conversion_is_left_to_a_libcall():
    """prim-to-linalg never emits ``sitofp/uitofp ... to bf16`` (LLVM's __truncsfbf2)."""
    linalg = str(sw.lower(sw.parse(_module("nn.cast", PAIRS)), "linalg"))
    assert "to bf16" in linalg  # the float -> bf16 truncf stays
    left = [line.strip() for line in linalg.splitlines() if "itofp" in line and line.rstrip().endswith("to bf16")]
    assert not left, left


@pytest.mark.skipif(sw.targets.host_arch() != "x86_64", reason="cpu-generic code runs on x86-64 only")
@pytest.mark.parametrize("op", ["nn.cast", "stablehlo.convert"])
def test_every_conversion_to_bf16_and_f16_runs_on_baseline_x86_64(op):
    pairs = PAIRS if op == "nn.cast" else [(s, d) for s, d in PAIRS if s in INTS + ("f32",)]
    exe = sw.compile(_module(op, pairs), target="cpu-generic")
    _check(exe(*(_inputs(s) for s, _ in pairs)), pairs)


def test_reference_rounding_is_numpys():
    """The oracle above: ml_dtypes rounds an int32 to bf16 through f32 (double rounding
    included: 0x1008001 -> 2**24), as does XLA."""
    x = np.array([0x1008001], np.int32)
    assert x.astype(ml_dtypes.bfloat16).astype(np.float64)[0] == 2.0 ** 24
    assert _want(x, "bf16").astype(np.float64)[0] == 2.0 ** 24
