"""Vulkan (SPIR-V) targets; the option is IREE's ``--iree-vulkan-target`` profile.

``llvmpipe`` (the default) is IREE's profile for Mesa's software driver lavapipe,
which CI runs on: the generic Vulkan profile cannot compile f16 and gives wrong i8
matmul results there, and ``rdna3``/``ampere`` modules fail to load on it (subgroup
size 32 against 8). Every name below was compiled with IREE 3.13; an unknown name
crashes ``iree-compile``, so only these are accepted. The capabilities follow the
profiles' ``#iree_gpu.target`` (``compute = fp64|fp32|fp16|int64|...``): Mali (valhall),
Adreno and the Android baseline have no f64/i64, the baseline no f16. No profile has bf16.
"""

from __future__ import annotations

import functools

from stepwell.targets._base import Capabilities, Option, Target

# No profile has bf16; IREE 3.13's SPIR-V codegen cannot compile iree_linalg_ext.attention
# (prim-to-linalg{attention=true}): "online_attention op result #0 must be ... tensor".
_caps = functools.partial(Capabilities, bf16=False, fused_attention=False)
_SOFT = _caps(f16=True, i8_dot=False, subgroup_size=8)
_RDNA = _caps(f16=True, i8_dot=True, subgroup_size=32)
_CDNA = _caps(f16=True, i8_dot=True, subgroup_size=64)
_NVIDIA = _caps(f16=True, i8_dot=True, subgroup_size=32)
_MALI = _caps(f16=True, f64=False, i64=False, i8_dot=True, subgroup_size=16)
_ADRENO = _caps(f16=True, f64=False, i64=False, i8_dot=False, subgroup_size=64)
_BASELINE = _caps(f16=False, f64=False, i64=False, i8_dot=False, subgroup_size=64)

TARGETS = [
    Target("vulkan", "vulkan-spirv", "vulkan", (), _SOFT,
           "Vulkan GPUs through SPIR-V (default profile: Mesa lavapipe, software)",
           matmul_m=4, vector_note="vec4 per invocation",
           option_flag="--iree-vulkan-target={}", default_option="llvmpipe",
           options=(
               Option("llvmpipe", _SOFT),
               Option("rdna2", _RDNA), Option("rdna3", _RDNA), Option("rdna4", _RDNA),
               Option("rx7900xtx", _RDNA),
               Option("cdna2", _CDNA), Option("cdna3", _CDNA), Option("mi300x", _CDNA),
               Option("pascal", _NVIDIA), Option("volta", _NVIDIA), Option("turing", _NVIDIA),
               Option("ampere", _NVIDIA), Option("ada", _NVIDIA),
               Option("a100", _NVIDIA), Option("rtx3090", _NVIDIA), Option("rtx4090", _NVIDIA),
               Option("valhall", _MALI), Option("valhall4", _MALI),
               Option("adreno", _ADRENO),
               Option("vp_android_baseline_2022", _BASELINE),
           ),
           rejected=(("apple", "iree-compile 3.13 crashes (signal 11) on this profile"),)),
]
