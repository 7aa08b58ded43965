"""Helpers shared by the target tests: which targets the numeric suites run on, what a
target lacks for a case (from its capabilities table), and what a compiled module
holds code for (embedded ELF machine, PTX target, AMDGPU architecture).

The numeric suites (``test_nn_e2e.py``, ``test_prim_to_linalg.py``) take the
``run_target`` fixture from ``conftest.py``, parametrized over :func:`suite_targets`;
a target that cannot run here skips with the reason from ``stepwell.targets.available``,
and a case needing a capability the target lacks (bf16 on Vulkan) skips naming it.
"""

from __future__ import annotations

import os
import re

import pytest

# Mesa's software Vulkan driver: CI pins the Vulkan loader to it.
LAVAPIPE = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"

# Targets the numeric suites run on, with the marker that selects them. cpu, cpu-generic
# (baseline x86-64: what a CPU without AVX-512 or native bf16 compiles) and vulkan
# are always listed (one that cannot run skips with the reason); the GPU targets only
# where their device is found. STEPWELL_TEST_TARGETS=cpu,cuda:sm_86 chooses others.
RUN_TARGETS = {"cpu": None, "cpu-generic": None, "vulkan": "vulkan", "cuda": "gpu", "rocm": "gpu"}
ALWAYS = ("cpu", "cpu-generic", "vulkan")

# Targets that only compile here (no device): the same programs are compiled for them.
COMPILE_ONLY = ("cpu-aarch64", "cpu-riscv64", "cuda", "rocm")

# Element types a target must support natively, named after their Capabilities field.
DTYPE_FEATURES = ("f16", "bf16", "f64", "i64")

EM_X86_64, EM_AARCH64, EM_RISCV, EM_AMDGPU = 62, 183, 243, 224
ELF_MACHINES = {"x86_64": EM_X86_64, "aarch64": EM_AARCH64, "riscv64": EM_RISCV}


def pin_lavapipe() -> None:
    """Point the Vulkan loader at lavapipe when it is installed and nothing else is chosen."""
    if os.path.exists(LAVAPIPE):
        os.environ.setdefault("VK_ICD_FILENAMES", LAVAPIPE)


def suite_targets() -> list[str]:
    """The targets the numeric suites are parametrized over (see :data:`RUN_TARGETS`)."""
    chosen = os.environ.get("STEPWELL_TEST_TARGETS")
    if chosen:
        return [t.strip() for t in chosen.split(",") if t.strip()]
    import stepwell as sw
    return [*ALWAYS, *(t for t in RUN_TARGETS if t not in ALWAYS and sw.targets.available(t))]


def target_params() -> list:
    """:func:`suite_targets` as pytest params, each carrying its marker."""
    out = []
    for spec in suite_targets():
        mark = RUN_TARGETS.get(spec.partition(":")[0])
        out.append(pytest.param(spec, marks=[getattr(pytest.mark, mark)] if mark else [], id=spec))
    return out


def runnable_targets() -> list[str]:
    """The :func:`suite_targets` that can run on this machine."""
    import stepwell as sw
    return [t for t in suite_targets() if sw.targets.available(t)]


_ELEMENT = re.compile(r"(?:^|[<x])(bf16|f16|f64|i64)>")


def element_types(types) -> set[str]:
    """The element types among ``tensor<...>`` type strings (or bare ``4x8xf32`` shapes)."""
    found = set()
    for t in types:
        t = str(t)
        found.update(_ELEMENT.findall(t if t.endswith(">") else f"{t}>"))
    return found


def missing_features(target, types=(), needs=()) -> list[str]:
    """The capabilities ``target`` lacks for values of ``types`` (e.g. ``["bf16"]``) and
    for the features in ``needs`` (Capabilities fields, e.g. ``"fused_attention"``)."""
    import stepwell as sw
    caps = sw.targets.get(target).capabilities
    wanted = {f for f in element_types(types) if f in DTYPE_FEATURES} | set(needs)
    return sorted(f for f in wanted if not getattr(caps, f))


def skip_unsupported(target, types=(), what: str = "this case", needs=()) -> None:
    """pytest.skip naming the missing capability when ``target`` cannot run ``what``."""
    missing = missing_features(target, types, needs)
    if missing:
        import stepwell as sw
        spec = sw.targets.get(target).spec
        pytest.skip(f"{spec} lacks {', '.join(missing)} (capabilities: "
                    f"{', '.join(f'{m}=False' for m in missing)}): {what} not run there")


# -- what a compiled module holds ---------------------------------------------------------
def elf_machines(vmfb: bytes) -> list[int]:
    """e_machine of every ELF image embedded in a module, in order."""
    out = []
    for m in re.finditer(rb"\x7fELF", vmfb):
        i = m.start()
        if i + 20 > len(vmfb) or vmfb[i + 4] not in (1, 2) or vmfb[i + 5] not in (1, 2):
            continue  # not an ELF header (the magic inside other data)
        order = "little" if vmfb[i + 5] == 1 else "big"
        out.append(int.from_bytes(vmfb[i + 18:i + 20], order))
    return out


def elf_machine(vmfb: bytes) -> int | None:
    """e_machine of the first ELF image embedded in a module."""
    machines = elf_machines(vmfb)
    return machines[0] if machines else None


def ptx_targets(vmfb: bytes) -> set[str]:
    """The ``.target sm_XX`` lines of the PTX a CUDA module holds."""
    return {t.decode() for t in re.findall(rb"\.target (sm_\d+\w*)", vmfb)}


def amdgpu_archs(vmfb: bytes) -> set[str]:
    """The ``gfxNNNN`` architectures of a ROCm module's code objects (from their
    ``amdhsa.target`` metadata, e.g. ``amdgcn-amd-amdhsa-unknown-gfx942``)."""
    return {t.decode() for t in re.findall(rb"amdhsa-\w*-(gfx[0-9a-f]+)", vmfb)}


SPIRV_MAGIC = b"\x03\x02\x23\x07"  # little-endian


def check_arch(target, vmfb: bytes) -> None:
    """Assert that ``vmfb`` holds code for ``target``'s machine and nothing else."""
    import stepwell as sw
    t = sw.targets.get(target)
    if t.backend == "llvm-cpu":
        machines = set(elf_machines(vmfb))
        assert machines == {ELF_MACHINES[t.arch]}, (t.spec, machines)
    elif t.backend == "cuda":
        want = next(f for f in t.flags if f.startswith("--iree-cuda-target=")).split("=", 1)[1]
        assert ptx_targets(vmfb) == {want}, (t.spec, ptx_targets(vmfb))
    elif t.backend == "rocm":
        want = next(f for f in t.flags if f.startswith("--iree-rocm-target=")).split("=", 1)[1]
        machines = set(elf_machines(vmfb))
        assert machines == {EM_AMDGPU}, (t.spec, machines)
        archs = amdgpu_archs(vmfb)  # a product name (mi300x) stands for one gfx name
        assert archs == {want} if want.startswith("gfx") else len(archs) == 1, (t.spec, archs)
    elif t.backend == "vulkan-spirv":
        assert SPIRV_MAGIC in vmfb, t.spec
    else:
        raise AssertionError(f"no architecture check for backend '{t.backend}'")
