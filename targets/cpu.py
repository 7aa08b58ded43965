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


# f16/bf16 compile everywhere (emulated where the hardware lacks them).
_HOST = Capabilities(i8_dot=bool(_host_flags() & {"avx512_vnni", "avx_vnni", "asimddp"}))
_PORTABLE = Capabilities(i8_dot=False)

TARGETS = [
    Target("cpu", "llvm-cpu", "local-task",
           ("--iree-llvmcpu-target-cpu=host", *_FAST), _HOST,
           "this machine's CPU, with its features, data tiling and microkernels",
           arch=host_arch(), pass_options=_WIDEN if host_arch() == "x86_64" else (),
           data_tiling=_DATA_TILING if host_arch() == "x86_64" else ""),
    Target("cpu-generic", "llvm-cpu", "local-task",
           ("--iree-llvmcpu-target-triple=x86_64-linux-gnu", "--iree-llvmcpu-target-cpu=x86-64",
            *_FAST), _PORTABLE,
           "portable x86-64 (no host CPU features): runs on any x86-64 machine",
           arch="x86_64", pass_options=_WIDEN),
    Target("cpu-aarch64", "llvm-cpu", "local-task",
           ("--iree-llvmcpu-target-triple=aarch64-linux-gnu", *_FAST), _PORTABLE,
           "64-bit Arm Linux (cross-compiled; runs only on an aarch64 host)",
           arch="aarch64"),
    Target("cpu-riscv64", "llvm-cpu", "local-task",
           ("--iree-llvmcpu-target-triple=riscv64-linux-gnu",
            "--iree-llvmcpu-target-cpu-features=+m,+a,+f,+d,+c,+v",
            "--iree-llvmcpu-target-abi=lp64d", *_FAST), _PORTABLE,
           "RISC-V 64 Linux with RVV (cross-compiled; runs only on a riscv64 host)",
           arch="riscv64"),
]
