"""CPU targets: the host, a portable x86-64 build, and cross-compiled aarch64/riscv64.

Measured on IREE 3.13 (TOOLCHAIN.md): without a target CPU IREE runs ~10x slower
and warns; without data tiling a matmul runs ~3x slower; microkernels need data
tiling. Cross targets embed an ELF for their machine (e_machine 183 / 243).
"""

from __future__ import annotations

import platform

from stepwell.targets._base import Capabilities, Target

# --iree-global-opt-data-tiling rather than --iree-opt-data-tiling=true: the latter (the
# dispatch-creation path in IREE 3.13) fails on an i1 elementwise consumer of a matmul
# ("linalg.pack op expected padding_value has i8 but got i1"); both run at the same speed.
_FAST = ("--iree-global-opt-data-tiling", "--iree-llvmcpu-enable-ukernels=all")
# f16/bf16 contractions in f32 on x86-64: IREE 3.13's f16/bf16 microkernels there run
# slower than its f32 one (measured on AVX-512 with avx512_fp16/bf16: 2048^3 f16 161 ->
# 85 ms, bf16 101 -> 84 ms; 512^3 f16 4.4 -> 1.5 ms). Not measured on Arm/RISC-V: left off.
_WIDEN = ("prim-to-linalg{widen=true}",)
# stepwell's data tiling (passes/linalg_data_tile.py): IREE's microkernels with a coarser
# distribution than IREE picks; measured in docs/tuning.md on the host x86 target (1.3x on
# 2048^3). On cpu-generic (SSE, 8x4 tiles) it measured level with IREE's: off there, and
# not measured on Arm/RISC-V: off.
_DATA_TILING = "linalg-data-tile"


def _host_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


# The /proc/cpuinfo flags that convert f16/bf16 in hardware, per machine. Without them
# the type still compiles and runs correctly (IREE and prim-to-linalg emulate the
# conversions in integer code) but is listed as emulated.
NATIVE = {
    "x86_64": {"f16": {"f16c"}, "bf16": {"avx512_bf16", "avx_ne_convert"}},
    "aarch64": {"f16": {"fp"}, "bf16": {"bf16"}},  # fcvt h<->s is base ARMv8 FP
}
_VNNI = {"avx512_vnni", "avx_vnni", "asimddp"}


def host_capabilities(flags: set[str], arch: str) -> Capabilities:
    """What the host CPU with these /proc/cpuinfo ``flags`` does natively: int8 dot
    products (VNNI / Arm dot product) and f16/bf16 conversions (else emulated)."""
    native = NATIVE.get(arch, {})
    emulated = tuple(t for t in ("f16", "bf16") if not flags & native.get(t, set()))
    return Capabilities(i8_dot=bool(flags & _VNNI), emulated=emulated)


# /proc/cpuinfo flags that name instruction-set extensions LLVM may use for
# --iree-llvmcpu-target-cpu=host (x86-64); on aarch64 every "Features" entry is one.
_X86_ISA = ("sse", "ssse", "pni", "avx", "fma", "f16c", "bmi", "abm", "amx", "sha", "gfni", "vaes",
            "vpclmul", "pclmul", "aes", "popcnt", "movbe", "adx", "xop", "cx16", "lzcnt")


def codegen_features(flags: set[str] | None = None, arch: str | None = None) -> set[str]:
    """The instruction-set extensions of the host CPU (or of ``flags`` on ``arch``) that
    code compiled for target ``cpu`` may use: an export records them, and a machine
    lacking one refuses to load it."""
    flags = _host_flags() if flags is None else set(flags)
    arch = arch or host_arch()
    if arch == "x86_64":
        return {f for f in flags if f.startswith(_X86_ISA)}
    return flags


# f16/bf16 compile and run everywhere: natively, or emulated where the CPU lacks them.
_HOST = host_capabilities(_host_flags(), host_arch())
_GENERIC = Capabilities(i8_dot=False, emulated=("f16", "bf16"))  # x86-64 baseline: SSE2
_AARCH64 = Capabilities(i8_dot=False, emulated=("bf16",))        # armv8-a: fcvt h<->s only
_RISCV64 = Capabilities(i8_dot=False, emulated=("f16", "bf16"))  # no zfh/zvfbfmin asked for

TARGETS = [
    Target("cpu", "llvm-cpu", "local-task",
           ("--iree-llvmcpu-target-cpu=host", *_FAST), _HOST,
           "this machine's CPU, with its features, data tiling and microkernels",
           arch=host_arch(), pass_options=_WIDEN if host_arch() == "x86_64" else (),
           data_tiling=_DATA_TILING if host_arch() == "x86_64" else "", vector_bits=None),
    Target("cpu-generic", "llvm-cpu", "local-task",
           ("--iree-llvmcpu-target-triple=x86_64-linux-gnu", "--iree-llvmcpu-target-cpu=x86-64",
            *_FAST), _GENERIC,
           "portable x86-64 (no host CPU features): runs on any x86-64 machine",
           arch="x86_64", pass_options=_WIDEN, vector_note="x86-64 baseline (SSE2)"),
    Target("cpu-aarch64", "llvm-cpu", "local-task",
           ("--iree-llvmcpu-target-triple=aarch64-linux-gnu", *_FAST), _AARCH64,
           "64-bit Arm Linux (cross-compiled; runs only on an aarch64 host)",
           arch="aarch64", vector_note="Arm NEON"),
    Target("cpu-riscv64", "llvm-cpu", "local-task",
           ("--iree-llvmcpu-target-triple=riscv64-linux-gnu",
            "--iree-llvmcpu-target-cpu-features=+m,+a,+f,+d,+c,+v",
            "--iree-llvmcpu-target-abi=lp64d", *_FAST), _RISCV64,
           "RISC-V 64 Linux with RVV (cross-compiled; runs only on a riscv64 host)",
           arch="riscv64", vector_note="RVV at the minimum VLEN of 128"),
]
