"""CUDA targets; the option is IREE's ``--iree-cuda-target`` (an ``sm_XX`` or a name).

Compiles without a GPU. IREE 3.13 cannot compile for ``sm_90``/``sm_100`` ("missing
GPU target in #hal.executable.target"), so those are compiled as ``sm_80``: the PTX
is JIT-compiled forward on Hopper/Blackwell, which is correct but leaves their newer
instructions unused. Drop the ``compile_as`` entries when a newer IREE compiles
them. The names ``hopper`` and ``h100`` segfault the compiler and are refused.
"""

from __future__ import annotations

from stepwell.targets._base import Capabilities, Option, Target

_PASCAL = Capabilities(f16=True, bf16=False, i8_dot=False, subgroup_size=32)
_DP4A = Capabilities(f16=True, bf16=False, i8_dot=True, subgroup_size=32)
_AMPERE = Capabilities(f16=True, bf16=True, i8_dot=True, subgroup_size=32)

_AS_SM80 = ("IREE 3.13 cannot compile for this architecture; "
            "sm_80 PTX runs on it forward-compatibly")
_REFUSED = "iree-compile 3.13 segfaults on this name; use cuda:sm_90 (compiled as sm_80)"

TARGETS = [
    Target("cuda", "cuda", "cuda", (), _AMPERE, "NVIDIA GPUs through CUDA (PTX)",
           matmul_m=4, vector_note="128-bit loads per thread",
           option_flag="--iree-cuda-target={}", default_option="sm_80",
           options=(
               Option("sm_60", _PASCAL), Option("sm_61", _DP4A), Option("sm_70", _DP4A),
               Option("sm_72", _DP4A), Option("sm_75", _DP4A),
               Option("sm_80", _AMPERE), Option("sm_86", _AMPERE), Option("sm_87", _AMPERE),
               Option("sm_89", _AMPERE), Option("sm_120", _AMPERE), Option("sm_121", _AMPERE),
               Option("sm_90", _AMPERE, "sm_80", _AS_SM80),
               Option("sm_90a", _AMPERE, "sm_80", _AS_SM80),
               Option("sm_100", _AMPERE, "sm_80", _AS_SM80),
               Option("sm_100a", _AMPERE, "sm_80", _AS_SM80),
               Option("sm_103", _AMPERE, "sm_80", _AS_SM80),
               Option("volta", _DP4A), Option("turing", _DP4A), Option("ampere", _AMPERE),
               Option("ada", _AMPERE), Option("a100", _AMPERE), Option("rtx3090", _AMPERE),
               Option("rtx4090", _AMPERE),
           ),
           rejected=(("hopper", _REFUSED), ("h100", _REFUSED), ("h200", _REFUSED))),
]
