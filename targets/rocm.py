"""ROCm (HIP) targets; the option is IREE's ``--iree-rocm-target`` (a gfx name or a product).

Compiles without a GPU (IREE bundles the AMDGPU backend and linker); the module
holds AMDGPU code objects for the requested architecture. Every name below was
compiled with IREE 3.13.
"""

from __future__ import annotations

from stepwell.targets._base import Capabilities, Option, Target

_CDNA = Capabilities(f16=True, bf16=True, i8_dot=True, subgroup_size=64)
_RDNA = Capabilities(f16=True, bf16=True, i8_dot=True, subgroup_size=32)

TARGETS = [
    Target("rocm", "rocm", "hip", (), _CDNA, "AMD GPUs through ROCm/HIP",
           matmul_m=4, vector_note="128-bit loads per thread",
           option_flag="--iree-rocm-target={}", default_option="gfx942",
           options=(
               Option("gfx908", _CDNA), Option("gfx90a", _CDNA), Option("gfx942", _CDNA),
               Option("gfx950", _CDNA),
               Option("mi300x", _CDNA), Option("mi300a", _CDNA), Option("mi325x", _CDNA),
               Option("mi355x", _CDNA),
               Option("gfx1100", _RDNA), Option("gfx1101", _RDNA), Option("gfx1200", _RDNA),
               Option("gfx1201", _RDNA), Option("rx7900xtx", _RDNA), Option("w7900", _RDNA),
           ),
           rejected=(
               ("gfx1030", "IREE 3.13 has no ROCm target for gfx1030 (RDNA2); use vulkan:rdna2"),
               ("cdna3", "architecture families are not ROCm target names; use gfx942"),
               ("rdna3", "architecture families are not ROCm target names; use gfx1100"),
           )),
]
