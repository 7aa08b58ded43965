"""The same programs for every target: compile-only checks for the targets that cannot
run here (cross CPUs, CUDA, ROCm), GPU runs where a device is found, and the
capability table the numeric suites skip by.

The numeric suites themselves (every nn op, every prim op, the example programs) run on
each target of the ``run_target`` fixture (``conftest.py``): cpu, and vulkan on
lavapipe. Here the example programs (``examples/nn``: mlp, cnn, attention, one module)
are compiled for cpu-aarch64, cpu-riscv64, cuda and rocm, and each module is checked to
hold code for the requested architecture and the same entry points as the host's.
``-m slow`` also compiles the whole nn op module (``nn_cases``) for each of them, and
the programs for other options (``cuda:sm_90`` is compiled as sm_80).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler.runtime import Executable

import nn_cases
from target_checks import (COMPILE_ONLY, LAVAPIPE, check_arch, element_types, missing_features,
                           runnable_targets, suite_targets)

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "nn")
PROGRAM_NAMES = ("mlp", "cnn", "attention")


def programs_module() -> str:
    """The example programs in one module, ``@main`` of ``<name>.mlir`` renamed ``@<name>``."""
    parts = []
    for name in PROGRAM_NAMES:
        with open(os.path.join(EXAMPLES, f"{name}.mlir")) as f:
            text = f.read()
        assert text.count("@main") == 1, f"{name}.mlir: expected one @main"
        parts.append(text.replace("@main", f"@{name}"))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def programs():
    return sw.parse(programs_module(), name="programs.mlir")


@pytest.fixture(scope="module")
def host(programs):
    return sw.compile(programs, target="cpu")


def _signatures(exe: Executable, names) -> dict:
    return {n: (exe.function(n).arg_types, exe.function(n).result_types) for n in names}


# -- compile only: code for the requested architecture ------------------------------------
@pytest.mark.parametrize("spec", COMPILE_ONLY)
def test_programs_compile_for_target(programs, host, spec):
    vmfb = sw.compile(programs, target=spec).vmfb
    check_arch(spec, vmfb)
    exe = Executable(vmfb, spec)
    assert sorted(exe.function_names) == sorted(PROGRAM_NAMES)
    assert _signatures(exe, PROGRAM_NAMES) == _signatures(host, PROGRAM_NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["cuda:sm_86", "cuda:sm_90", "rocm:gfx1100", "vulkan:rdna3"])
def test_programs_compile_for_target_option(programs, spec):
    check_arch(spec, sw.compile(programs, target=spec).vmfb)


@pytest.mark.slow
@pytest.mark.parametrize("spec", COMPILE_ONLY)
def test_every_nn_op_compiles_for_target(spec):
    vmfb = sw.compile(sw.parse(nn_cases.module()), target=spec).vmfb
    check_arch(spec, vmfb)
    assert sorted(Executable(vmfb, spec).function_names) == sorted(c[0] for c in nn_cases.CASES)


@pytest.mark.parametrize("spec", [t for t in COMPILE_ONLY if t.startswith("cpu-")])
def test_cross_cpu_is_compile_only_here(spec):
    arch = sw.targets.get(spec).arch
    if sw.targets.host_arch() == arch:
        pytest.skip(f"this host is {arch}: {spec} runs here")
    av = sw.targets.available(spec)
    assert not av and "compile only" in av.reason


# -- GPUs: the programs run where a device is found ---------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("spec", ["cuda", "rocm"])
def test_programs_run_on_gpu(programs, host, spec):
    av = sw.targets.available(spec)
    if not av:
        pytest.skip(f"{spec}: {av.reason}")
    import jax

    from test_nn_e2e import PROGRAMS  # the programs' JAX twins: the oracle, not our CPU build
    exe = sw.compile(programs, target=spec)
    rng = np.random.default_rng(0)
    for name in PROGRAM_NAMES:
        fn = host.function(name)
        args = [rng.standard_normal(sw.TensorType.parse(t).shape).astype(np.float32) * 0.2
                for t in fn.arg_types]
        want = np.asarray(jax.jit(PROGRAMS[name][0])(*args))
        got = exe.function(name)(*args)
        rel = np.max(np.abs(got - want)) / np.max(np.abs(want))
        assert rel < 1e-4, f"{name} on {spec}: relative error {rel:.2e}"


# -- the suites' target list and the capability table they skip by -----------------------
def test_suite_runs_cpu_and_cpu_generic_and_lists_vulkan():
    targets = suite_targets()
    chosen = os.environ.get("STEPWELL_TEST_TARGETS")
    if chosen:
        assert targets == [t.strip() for t in chosen.split(",") if t.strip()]
    else:
        assert targets[:3] == ["cpu", "cpu-generic", "vulkan"]
    runnable = runnable_targets()
    assert "cpu" in runnable or "cpu" not in targets  # the host always runs its own code
    if sw.targets.host_arch() == "x86_64":  # baseline x86-64 code runs on every x86-64
        assert "cpu-generic" in runnable or "cpu-generic" not in targets
    assert runnable, "no target of the numeric suites runs here"


def test_lavapipe_is_pinned_and_found():
    if not os.path.exists(LAVAPIPE):
        pytest.skip(f"lavapipe is not installed ({LAVAPIPE}): "
                    "apt-get install mesa-vulkan-drivers libvulkan1")
    if os.environ.get("VK_ICD_FILENAMES") != LAVAPIPE:
        pytest.skip(f"VK_ICD_FILENAMES chooses another driver: {os.environ.get('VK_ICD_FILENAMES')}")
    av = sw.targets.available("vulkan")
    assert av, f"lavapipe is installed but no Vulkan device was created: {av.reason}"


def test_element_types():
    assert element_types(["4x8xbf16", "tensor<?x4xf16>", "tensor<f64>", "3xi64", "2xf32",
                          "tensor<2xi32>"]) == {"bf16", "f16", "f64", "i64"}
    assert element_types(["4xbf16"]) == {"bf16"}  # not f16 as well


@pytest.mark.parametrize("spec, types, needs, missing", [
    ("cpu", ["4xbf16", "4xf16", "2xf64", "2xi64"], ["fused_attention"], []),
    ("vulkan", ["4xbf16", "4xf16", "2xf64", "2xi64"], [], ["bf16"]),
    ("vulkan", ["4xf32"], ["fused_attention"], ["fused_attention"]),
    ("vulkan:valhall", ["4xf16", "2xf64", "2xi64"], [], ["f64", "i64"]),
    ("vulkan:vp_android_baseline_2022", ["4xf16"], [], ["f16"]),
    ("cuda", ["4xbf16"], ["fused_attention"], []),
    ("cuda:sm_75", ["4xbf16"], [], ["bf16"]),
    ("rocm", ["4xbf16", "2xf64"], ["fused_attention"], []),
])
def test_missing_features_follow_the_table(spec, types, needs, missing):
    assert missing_features(spec, types, needs) == missing


def test_capabilities_measured_on_lavapipe():
    caps = sw.targets.get("vulkan").capabilities
    # IREE's llvmpipe profile: compute = fp64|fp32|fp16|int64|int32|int16|int8, subgroup 8.
    assert (caps.f16, caps.f64, caps.i64, caps.subgroup_size) == (True, True, True, 8)
    assert not caps.bf16 and not caps.fused_attention


def test_docs_describe_every_target():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "targets.md")) as f:
        doc = f.read()
    for name in sw.targets.names():
        assert f"`{name}" in doc, f"docs/targets.md does not describe '{name}'"
