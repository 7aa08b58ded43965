"""IREE CPU codegen configurations as numbers, and their attribute text per IREE version.

A configuration is a pipeline and three lists of tile sizes, one per loop of the op:
``distribution`` (work per workgroup), ``parallel`` (the vector tile of the parallel
loops) and ``reduction`` (of the reduction loops). The tuning database stores these
numbers, never attribute text: IREE's syntax changed in March 2026 (IREE 3.13:
``#iree_cpu.pipeline<DoubleTilingExpert>``; before: ``pipeline = CPUDoubleTilingExpert``,
now a parse error), so the text is made here, for the IREE that runs::

    compilation_info("mmt4d", [4, 4, 0, 0, 0, 0], [1, 1, 0, 16, 16, 0], [0, 0, 1, 0, 0, 1])
    # '#iree_codegen.compilation_info<lowering_config = #iree_cpu.lowering_config<
    #    distribution = [4, 4, 0, 0, 0, 0], ...>, translation_info = ... Mmt4dTilingExpert ...>'

What IREE 3.13 rejects or runs badly (measured, ``research/autotune``): a bare
``lowering_config`` without ``compilation_info``; vectors of 16 KB or more; scalable
sizes on x86 (an LLVM crash); the ``Default`` pipeline (scalar code); sizes that do
not divide the loop (correct, ~9x slower). :func:`problems` names them, so that a
configuration is pruned before IREE sees it.
"""

from __future__ import annotations

import math
import re

__all__ = ["PIPELINES", "compilation_info", "syntax", "problems", "MAX_VECTOR_BYTES"]

# stepwell's name -> IREE's pipeline (IREE 3.13 spelling, and the one before 2026)
PIPELINES = {
    "mmt4d": ("Mmt4dTilingExpert", "Mmt4dTilingExpert"),
    "double_tiling": ("DoubleTilingExpert", "CPUDoubleTilingExpert"),
    "conv": ("ConvTileAndDecomposeExpert", "CPUConvTileAndDecomposeExpert"),
}
MAX_VECTOR_BYTES = 16384  # "One or more operations with large vector sizes (16384 bytes)"


def _version_tuple(version: str) -> tuple[int, int]:
    m = re.match(r"\s*(\d+)\.(\d+)", version or "")
    return (int(m[1]), int(m[2])) if m else (999, 0)


def syntax(version: str | None = None) -> str:
    """``"2026"`` (IREE 3.13 and later: ``#iree_cpu.pipeline<...>``) or ``"2025"``."""
    if version is None:
        try:
            from iree.compiler import version as v
            version = v.VERSION
        except Exception:  # noqa: BLE001
            version = ""
    return "2026" if _version_tuple(version) >= (3, 13) else "2025"


def _list(values) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def compilation_info(pipeline: str, distribution, parallel, reduction,
                     version: str | None = None) -> str:
    """The ``#iree_codegen.compilation_info`` text of a configuration for ``version``
    (default: the installed IREE)."""
    new, old = PIPELINES[pipeline]
    lowering = (f"#iree_cpu.lowering_config<distribution = {_list(distribution)}, "
                f"vector_common_parallel = {_list(parallel)}, vector_reduction = {_list(reduction)}>")
    if syntax(version) == "2026":
        translation = f"#iree_codegen.translation_info<pipeline = #iree_cpu.pipeline<{new}>>"
    else:
        translation = f"#iree_codegen.translation_info<pipeline = {old}>"
    return (f"#iree_codegen.compilation_info<lowering_config = {lowering}, "
            f"translation_info = {translation}>")


def problems(loop_sizes, distribution, parallel, reduction, element_bytes: int = 4) -> list[str]:
    """Why IREE 3.13 would reject or badly run this configuration (empty: none known).
    ``loop_sizes`` are the op's static loop ranges, in loop order."""
    out = []
    n = len(loop_sizes)
    if not (len(distribution) == len(parallel) == len(reduction) == n):
        out.append(f"a configuration needs {n} sizes per level")
        return out
    for level, sizes in (("distribution", distribution), ("parallel", parallel), ("reduction", reduction)):
        if any(int(s) < 0 for s in sizes):
            out.append(f"negative {level} size")
    vector = [max(int(p), int(r)) for p, r in zip(parallel, reduction)]
    if math.prod(v for v in vector if v) * element_bytes >= MAX_VECTOR_BYTES:
        out.append(f"vector tile of {math.prod(v for v in vector if v) * element_bytes} bytes "
                   f"(IREE rejects {MAX_VECTOR_BYTES} or more)")
    for i, (size, d, v) in enumerate(zip(loop_sizes, distribution, vector)):
        if d and size % int(d):
            out.append(f"distribution {d} does not divide loop {i} ({size})")
        tile = int(d) or size
        if v and tile % int(v):
            out.append(f"vector size {v} does not divide the tile {tile} of loop {i}")
    return out
