"""Target tables: name/option parsing and validation, availability, and compile-only
checks that each target's module holds code for the requested machine."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import driver as compiler
from stepwell.compiler.runtime import Executable
from stepwell.targets import Capabilities, Option, Target, _base

from target_checks import (EM_AARCH64, EM_AMDGPU, EM_RISCV, EM_X86_64, SPIRV_MAGIC,
                           amdgpu_archs, elf_machine, ptx_targets)

SRC = """
func.func @main(%a: tensor<4x8xf32>, %b: tensor<8x3xf32>) -> tensor<4x3xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x3xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<4x3xf32>) -> tensor<4x3xf32>
  %r = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x3xf32>)
                     outs(%f : tensor<4x3xf32>) -> tensor<4x3xf32>
  return %r : tensor<4x3xf32>
}
"""

_COMPILED: dict[str, bytes] = {}


def compiled(target: str) -> bytes:
    """SRC compiled for ``target`` once per test session."""
    if target not in _COMPILED:
        _COMPILED[target] = sw.compile(SRC, target=target).vmfb
    return _COMPILED[target]


# -- the registry -------------------------------------------------------------------
def test_names():
    assert sw.targets.names() == ["cpu", "cpu-generic", "cpu-aarch64", "cpu-riscv64",
                                  "vulkan", "cuda", "rocm"]


def test_tables_are_consistent():
    from stepwell.core.ir import iree_tools
    backends = set(iree_tools.query_available_targets())
    for t in sw.targets.REGISTRY.values():
        assert t.backend in backends, t
        assert t.driver in ("local-task", "vulkan", "cuda", "hip"), t
        names = t.option_names()
        assert len(names) == len(set(names)), t.name
        assert (t.default_option in names) if t.options else t.default_option is None
        assert not set(names) & {r for r, _ in t.rejected}, t.name
        assert (t.option_flag is not None) == bool(t.options), t.name
        assert t.option is None  # table entries are unresolved


@pytest.mark.parametrize("spec, flags", [
    ("cpu", ("--iree-llvmcpu-target-cpu=host", "--iree-llvmcpu-enable-ukernels=all")),
    ("cpu-aarch64", ("--iree-llvmcpu-target-triple=aarch64-linux-gnu",)),
    ("cpu-riscv64", ("--iree-llvmcpu-target-triple=riscv64-linux-gnu",
                     "--iree-llvmcpu-target-cpu-features=+m,+a,+f,+d,+c,+v")),
    ("vulkan", ("--iree-vulkan-target=llvmpipe",)),
    ("vulkan:rdna3", ("--iree-vulkan-target=rdna3",)),
    ("cuda", ("--iree-cuda-target=sm_80",)),
    ("cuda:sm_86", ("--iree-cuda-target=sm_86",)),
    ("rocm", ("--iree-rocm-target=gfx942",)),
    ("rocm:gfx1100", ("--iree-rocm-target=gfx1100",)),
])
def test_get_resolves_flags(spec, flags):
    t = sw.targets.get(spec)
    for f in flags:
        assert f in t.flags
    assert len([f for f in t.flags if f.startswith(("--iree-vulkan-target", "--iree-cuda-target",
                                                    "--iree-rocm-target"))]) <= 1


def test_cpu_targets_data_tile():
    # Data tiling is what makes the microkernels count (~3x on matmul).
    for name in ("cpu", "cpu-generic", "cpu-aarch64", "cpu-riscv64"):
        assert any("data-tiling" in f for f in sw.targets.get(name).flags), name


def test_x86_cpu_targets_widen_half_contractions():
    # prim-to-linalg{widen=true} on x86-64 (IREE's f16/bf16 microkernels are slower than f32's)
    from stepwell.compiler import stages
    assert "prim-to-linalg{widen=true}" in stages.pipeline_text("linalg", "cpu-generic").split(",")
    for name in ("vulkan", "cuda", "cpu-aarch64"):  # the plain pass (expanded: the target's tiles)
        assert "prim-to-linalg" in stages.pipeline_text("linalg", name).split(","), name
        assert "widen=true" not in stages.pipeline_text("linalg", name), name
    assert stages.pipeline_text("linalg") == "to-linalg"


def test_half_matmul_on_cpu_is_widened_and_exact():
    # sw.compile lowers with the target's pass options: the f16 matmul reads f32 copies of
    # its operands (behind a barrier) and still rounds like an f32-accumulated product.
    from stepwell import nn
    from stepwell.bench.workloads import nn_function
    from stepwell.core.types import TensorType
    types = [TensorType((16, 32), "f16"), TensorType((32, 8), "f16")]
    m = nn_function("half", types, lambda a, b: nn.matmul(a, b))
    linalg = sw.lower(m, to="linalg", target="cpu-generic")
    assert "util.optimization_barrier" in str(linalg)
    assert "util.optimization_barrier" not in str(sw.lower(m, to="linalg"))
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(t.shape).astype(np.float16) for t in types)
    got = np.asarray(sw.compile(m, target="cpu-generic")(a, b))
    want = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-3, atol=1e-3)


def test_resolved_names_and_defaults():
    assert sw.targets.get("cuda").spec == "cuda:sm_80"
    assert sw.targets.get("vulkan").option == "llvmpipe"
    assert sw.targets.get("rocm").spec == "rocm:gfx942"
    assert sw.targets.get("cpu").spec == "cpu"
    t = sw.targets.get("cuda:sm_86")
    assert sw.targets.get(t) is t  # a resolved Target passes through
    assert sw.targets.get(sw.targets.REGISTRY["cuda"]).option == "sm_80"
    assert "--iree-llvmcpu-target-cpu=host" not in sw.targets.get("cpu-generic").flags


def test_capabilities():
    assert sw.targets.get("vulkan").capabilities.subgroup_size == 8
    assert sw.targets.get("vulkan").capabilities.f16
    assert sw.targets.get("vulkan:rdna3").capabilities.subgroup_size == 32
    assert sw.targets.get("cuda").capabilities.bf16
    assert not sw.targets.get("cuda:sm_75").capabilities.bf16
    assert sw.targets.get("rocm").capabilities.subgroup_size == 64
    assert sw.targets.get("rocm:gfx1100").capabilities.subgroup_size == 32
    assert sw.targets.get("cpu").capabilities.subgroup_size is None


def test_sm90_is_compiled_as_sm80_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(_base, "_LOGGED", set())
    with caplog.at_level(logging.INFO, logger="stepwell.targets"):
        t = sw.targets.get("cuda:sm_90")
        sw.targets.get("cuda:sm_90")
    assert t.spec == "cuda:sm_90"
    assert "--iree-cuda-target=sm_80" in t.flags
    assert not any("sm_90" in f for f in t.flags)
    messages = [r.getMessage() for r in caplog.records if r.name == "stepwell.targets"]
    assert len(messages) == 1 and "cuda:sm_90 is compiled as sm_80" in messages[0]


@pytest.mark.parametrize("spec, message", [
    ("gpu", r"unknown target 'gpu' \(known targets: cpu, cpu-generic, cpu-aarch64, "
            r"cpu-riscv64, vulkan, cuda, rocm\)"),
    ("cpux", "did you mean 'cpu'"),
    ("cuda:hopper", "'cuda:hopper' is not supported: iree-compile 3.13 segfaults"),
    ("cuda:h100", "'cuda:h100' is not supported"),
    ("cuda:sm_99", r"target 'cuda' has no option 'sm_99' \(options: sm_60, "),
    ("cuda:ampre", "did you mean 'cuda:ampere'"),
    ("vulkan:bogus", "target 'vulkan' has no option 'bogus'"),
    ("vulkan:apple", "crashes"),
    ("rocm:gfx1030", "use vulkan:rdna2"),
    ("cuda:", "needs an option after ':'"),
    ("cpu:znver4", "target 'cpu' takes no options"),
])
def test_bad_targets(spec, message):
    with pytest.raises(sw.StepwellError, match=message):
        sw.targets.get(spec)


def test_bad_target_type():
    with pytest.raises(sw.StepwellError, match="not int"):
        sw.targets.get(3)


def test_bad_option_never_reaches_iree(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("iree-compile must not be called")
    monkeypatch.setattr(compiler.iree_tools, "compile_str", boom)
    for spec in ("vulkan:bogus", "cuda:hopper", "rocm:cdna3", "nope"):
        with pytest.raises(sw.StepwellError):
            sw.compile(SRC, target=spec)


def test_new_target_is_one_entry():
    entry = Target("npu", "llvm-cpu", "local-task", ("--x",), Capabilities(f16=False),
                   option_flag="--npu={}", options=(Option("a"), Option("b", compile_as="a")),
                   default_option="a")
    assert entry.resolve().flags == ("--x", "--npu=a")
    assert entry.resolve("b").flags == ("--x", "--npu=a") and entry.resolve("b").spec == "npu:b"
    assert not entry.resolve().capabilities.f16


def test_new_target_brings_its_tiles_in_its_entry(monkeypatch):
    """The vector stage's facts are fields of the entry: no second table to edit."""
    from stepwell.targets import tiling
    entry = Target("npu", "llvm-cpu", "local-task", vector_bits=256, matmul_m=2, vector_note="npu lanes")
    monkeypatch.setitem(sw.targets.REGISTRY, "npu", entry)
    vt = tiling.vector_target("npu")
    assert (vt.vector_bits, vt.matmul_m, vt.note) == (256, 2, "npu lanes")
    assert tiling.choose_tile_sizes("linalg.matmul", [64, 64, 64], "npu") == [2, 16, 8]
    with pytest.raises(ValueError, match="no tiling rules for target 'tpu'"):
        tiling.vector_target("tpu")


@pytest.mark.parametrize("spec, rows, cols", [("cuda:sm_80", 4, 8), ("cpu-aarch64", 8, 8), ("vulkan", 4, 8)])
def test_to_vector_for_a_target_uses_its_tiles(spec, rows, cols):
    """sw.lower(m, "vector", target=...) (and stepwell compile --compile-to vector
    --target ...) tiles for that target, not for this machine."""
    import re
    m = sw.parse("func.func @main(%a: tensor<64x128xf32>, %b: tensor<128x256xf32>) -> tensor<64x256xf32> {\n"
                 '  %0 = "nn.matmul"(%a, %b) : (tensor<64x128xf32>, tensor<128x256xf32>) -> tensor<64x256xf32>\n'
                 "  return %0 : tensor<64x256xf32>\n}\n")
    text = str(sw.lower(m, "vector", target=spec))
    # the accumulator tile is matmul_m x (2 * lanes): 128-bit vectors hold 4 f32
    assert f"vector<{rows}x{cols}xf32>" in text, sorted(set(re.findall(r"vector<[\dx]+xf32>", text)))


# -- availability -----------------------------------------------------------------
def test_available_host_cpu():
    av = sw.targets.available("cpu")
    assert av and av.ok and bool(av)


@pytest.mark.parametrize("spec, arch", [("cpu-aarch64", "aarch64"), ("cpu-riscv64", "riscv64")])
def test_cross_targets_are_compile_only(spec, arch):
    if sw.targets.host_arch() == arch:
        pytest.skip(f"this host is {arch}")
    av = sw.targets.available(spec)
    assert not av and "compile only" in av.reason and arch in av.reason


@pytest.mark.parametrize("spec", ["vulkan", "cuda", "rocm"])
def test_gpu_availability_has_a_reason(spec):
    av = sw.targets.available(spec)
    assert isinstance(av.ok, bool) and av.reason
    if not av:
        assert re.search(r"no '(vulkan|cuda|hip)' (device|driver)", av.reason)
    assert sw.targets.available(spec) is av  # cached per driver


# -- compile-only checks: the module holds code for the requested machine -----------
@pytest.mark.parametrize("spec, machine", [
    ("cpu-aarch64", EM_AARCH64),
    ("cpu-riscv64", EM_RISCV),
    ("cpu-generic", EM_X86_64),
    ("rocm", EM_AMDGPU),
])
def test_embedded_elf_machine(spec, machine):
    assert elf_machine(compiled(spec)) == machine


def test_host_cpu_elf_machine():
    want = {"x86_64": EM_X86_64, "aarch64": EM_AARCH64, "riscv64": EM_RISCV}.get(
        sw.targets.host_arch())
    if want is None:
        pytest.skip("unknown host machine")
    assert elf_machine(compiled("cpu")) == want


def test_cuda_module_holds_ptx_for_the_option():
    assert ptx_targets(compiled("cuda")) == {"sm_80"}
    assert ptx_targets(compiled("cuda:sm_86")) == {"sm_86"}


def test_rocm_module_holds_code_for_the_option():
    assert amdgpu_archs(compiled("rocm")) == {"gfx942"}
    blob = compiled("rocm:gfx1100")
    assert amdgpu_archs(blob) == {"gfx1100"} and b"gfx942" not in blob


def test_cross_target_executable_refuses_to_run():
    if sw.targets.host_arch() == "aarch64":
        pytest.skip("this host is aarch64")
    exe = Executable(compiled("cpu-aarch64"), "cpu-aarch64")
    assert exe.function_names == ["main"]
    with pytest.raises(sw.StepwellError, match="cannot run on target 'cpu-aarch64'.*compile only"):
        exe(np.ones((4, 8), np.float32), np.ones((8, 3), np.float32))


@pytest.mark.parametrize("spec, detected", [
    ("cpu", "cpu"), ("cpu-aarch64", "cpu-aarch64"), ("cpu-riscv64", "cpu-riscv64"),
    ("cuda:sm_86", "cuda:sm_80"), ("rocm", "rocm:gfx942"), ("vulkan", "vulkan:llvmpipe"),
])
def test_detect_target_of_a_module(spec, detected, tmp_path):
    if sw.targets.host_arch() != "x86_64":
        pytest.skip("expectations written for an x86-64 host")
    vmfb = compiled(spec)
    assert sw.targets.detect(vmfb).spec == detected
    (tmp_path / "m.vmfb").write_bytes(vmfb)
    assert Executable.load(tmp_path / "m.vmfb").target.spec == detected
    assert sw.targets.detect(b"no device code") is None


def test_module_for_another_target_is_refused_clearly():
    exe = Executable(compiled("cuda"), "cpu")
    with pytest.raises(sw.StepwellError, match="compiled for a 'cuda' device, not for 'llvm-cpu'"):
        exe(np.ones((4, 8), np.float32), np.ones((8, 3), np.float32))


def test_vulkan_module_holds_spirv():
    assert SPIRV_MAGIC in compiled("vulkan")


def test_cpu_generic_runs_here():
    if sw.targets.host_arch() != "x86_64":
        pytest.skip("cpu-generic is x86-64 code")
    exe = Executable(compiled("cpu-generic"), "cpu-generic")
    a = np.arange(32, dtype=np.float32).reshape(4, 8)
    b = np.ones((8, 3), np.float32)
    np.testing.assert_allclose(exe(a, b), a @ b)


@pytest.mark.vulkan
def test_vulkan_runs_when_available():
    av = sw.targets.available("vulkan")
    if not av:
        pytest.skip(av.reason)
    exe = Executable(compiled("vulkan"), "vulkan")
    a = np.arange(32, dtype=np.float32).reshape(4, 8)
    b = np.ones((8, 3), np.float32)
    np.testing.assert_allclose(exe(a, b), a @ b)


@pytest.mark.gpu
def test_cuda_runs_when_available():
    av = sw.targets.available("cuda")
    if not av:
        pytest.skip(av.reason)
    exe = Executable(compiled("cuda"), "cuda")
    a = np.arange(32, dtype=np.float32).reshape(4, 8)
    b = np.ones((8, 3), np.float32)
    np.testing.assert_allclose(exe(a, b), a @ b)
