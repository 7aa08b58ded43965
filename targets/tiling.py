"""Tile and vector sizes for the ``vector`` stage: a small per-target heuristic.

``choose_tile_sizes(op_name, loop_ranges, target)`` gives one tile size per loop of a
linalg op (``0`` leaves a loop untiled); ``linalg-vectorize`` tiles with them and
vectorizes each tile whole, so a tile is also the shape of its vector ops. The
rules, for a target whose SIMD registers hold ``lanes`` elements (16 f32 on AVX-512):

* contractions (``linalg.matmul``, ``batch_matmul``, generics that multiply and add):
  ``M x N x K = 8 x 2*lanes x lanes`` on the innermost m, n and k loops, 1 on the
  others (batch, outer m/n/k): ``[8, 32, 16]`` for an f32 matmul on AVX-512;
* convolutions (``linalg.conv_2d_nhwc_hwcf``, depthwise, pooling): one output row
  at a time (1 on batch, output rows and filter rows, the filter width whole),
  ``matmul_m`` output columns, ``2*lanes`` output channels and ``lanes`` input
  (or depthwise) channels, so the tile decomposes to a 1-D convolution;
* everything else (elementwise, reductions, broadcasts, transposes, fills): the
  innermost loop gets ``lanes``, the one before it 8, the rest 1;
* sizes follow the shapes: a loop no larger than its tile is left whole; otherwise a
  divisor of the loop's static size is preferred (a power of two for the vector
  lane loop, any divisor at least half the wanted size for the others), and where
  none fits the wanted size stays: ``linalg-vectorize`` peels the loop (whole tiles,
  then one smaller static tile), and masks tiles of dynamic loops.

``linalg-vectorize{tile-sizes=...}`` overrides all of this. A target's width and
matmul rows are fields of its table entry (``Target.vector_bits``, ``matmul_m``): a new
target is still one entry. ``target="cpu"`` is this machine, measured from
``/proc/cpuinfo``; ``STEPWELL_VECTOR_BITS=256`` pretends otherwise.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class VectorTarget:
    """What the heuristic needs to know of a target."""
    name: str
    vector_bits: int   # SIMD register (CPU) or per-thread vector load (GPU) width
    matmul_m: int = 8  # rows of a matmul tile (accumulator registers)
    note: str = ""


# A target's vector facts live in its table entry (targets/<family>.py: vector_bits,
# matmul_m, vector_note); the host CPU ("cpu", vector_bits None) is measured at run
# time: AVX-512 -> 512 bits, AVX2 -> 256, else 128.

# Named contractions: (batch, m, n, k) loop indices, for callers without the op itself.
CONTRACTIONS = {
    "linalg.matmul": ((), (0,), (1,), (2,)),
    "linalg.batch_matmul": ((0,), (1,), (2,), (3,)),
    "linalg.matvec": ((), (0,), (), (1,)),
    "linalg.vecmat": ((), (), (0,), (1,)),
    "linalg.dot": ((), (), (), (0,)),
}

# Named convolutions: loop roles as ``linalg.infer_convolution_dimensions`` gives them.
CONVOLUTIONS = {
    "linalg.conv_2d_nhwc_hwcf": dict(batch=(0,), output_image=(1, 2), output_channel=(3,),
                                     filter_loop=(4, 5), input_channel=(6,), depth=()),
    "linalg.depthwise_conv_2d_nhwc_hwc": dict(batch=(0,), output_image=(1, 2), output_channel=(),
                                              filter_loop=(4, 5), input_channel=(), depth=(3,)),
}


@lru_cache(maxsize=None)
def host_vector_bits() -> int:
    """SIMD width of this machine: 512 with AVX-512F, 256 with AVX2, else 128."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return 128
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if "avx512f" in flags:
        return 512
    if "avx2" in flags:
        return 256
    return 128


def vector_target(target="cpu") -> VectorTarget:
    """The vector facts of ``target`` (a name, ``"cuda:sm_80"``, or a Target), from its
    table entry; ``"cpu"`` is this machine."""
    from stepwell import targets
    name = getattr(target, "name", None) or str(target).split(":", 1)[0].strip()
    entry = targets.REGISTRY.get(name)
    if entry is None:
        raise ValueError(f"no tiling rules for target '{target}' "
                         f"(targets: {', '.join(targets.REGISTRY)})")
    if entry.vector_bits is None:
        bits = int(os.environ.get("STEPWELL_VECTOR_BITS", "0")) or host_vector_bits()
        return VectorTarget(name, bits, entry.matmul_m, note=f"this machine ({bits}-bit SIMD)")
    return VectorTarget(name, entry.vector_bits, entry.matmul_m, note=entry.vector_note)


def lanes(target: str = "cpu", element_bits: int = 32) -> int:
    """Elements of ``element_bits`` in one vector register of ``target``."""
    return max(1, vector_target(target).vector_bits // max(8, element_bits))


def _fit(size: int | None, want: int, *, power_of_two: bool) -> int:
    """The tile for a loop of ``size`` iterations when ``want`` is wanted (0: untiled)."""
    if want <= 0:
        return 0
    if size is None:
        return want  # dynamic: tile and let the vectorizer mask the last tile
    if size <= want:
        return 0     # the whole loop fits in one tile
    for t in range(want, 0, -1):
        if size % t:
            continue
        if power_of_two and t & (t - 1):
            continue
        if t * 2 >= want:
            return t
        break
    return want      # no good divisor: the last tile is partial (peeled)


def choose_tile_sizes(op_name: str, loop_ranges, target: str = "cpu", *,
                      iterator_types=None, contraction=None, convolution=None,
                      element_bits: int = 32) -> list[int]:
    """One tile size per loop of a linalg op (0: the loop is not tiled).

    ``loop_ranges``: the static trip count of each loop (``None`` if dynamic).
    ``contraction``: ``(batch, m, n, k)`` loop indices when the op is a contraction;
    ``convolution``: a dict of loop roles (``batch``, ``output_image``,
    ``output_channel``, ``filter_loop``, ``input_channel``, ``depth``) when it is a
    convolution or pooling. Named ops (``linalg.matmul``, ``linalg.batch_matmul``,
    ``linalg.conv_2d_nhwc_hwcf``, ...) need neither.
    ``iterator_types`` is accepted for symmetry with the op's attributes; the rules
    place sizes by loop role and position only.
    """
    del iterator_types  # reductions tile like parallel loops of the same position
    ranges = list(loop_ranges)
    n = len(ranges)
    if n == 0:
        return []
    vt = vector_target(target)
    width = lanes(target, element_bits)
    want = [1] * n
    vector_loops: set[int] = set()
    if convolution is None and contraction is None:
        convolution = CONVOLUTIONS.get(op_name)
    if contraction is None:
        contraction = CONTRACTIONS.get(op_name)
    if convolution is not None:
        _convolution_wants(convolution, want, vector_loops, vt.matmul_m, width)
    elif contraction is not None and any(len(d) for d in contraction[1:]):
        _, m, nn, k = (list(d) for d in contraction)
        for dims, size in ((m, vt.matmul_m), (nn, 2 * width), (k, width)):
            if dims:
                want[dims[-1]] = size
        if nn:
            vector_loops.add(nn[-1])
        if k:
            vector_loops.add(k[-1])
    else:
        want[-1] = width
        vector_loops.add(n - 1)
        if n >= 2:
            want[-2] = 8
    return [_fit(ranges[i], want[i], power_of_two=i in vector_loops) for i in range(n)]


def _convolution_wants(conv, want, vector_loops, rows, width) -> None:
    """Fill ``want`` for a convolution: one output row, ``rows`` output columns,
    ``2*width`` output channels, ``width`` input or depthwise channels."""
    roles = {k: list(conv.get(k, ())) for k in
             ("batch", "output_image", "output_channel", "filter_loop", "input_channel", "depth")}
    depth = roles["depth"]
    image = roles["output_image"]
    if not depth and not roles["output_channel"] and image:
        # pooling: the channel loop is reported as a batch loop after the image loops
        depth = [d for d in roles["batch"] if d > max(image)]
    if image:
        want[image[-1]] = rows
    if roles["filter_loop"]:
        want[roles["filter_loop"][-1]] = 0  # the filter width stays whole
    for dims, size in ((roles["output_channel"], 2 * width), (roles["input_channel"], width),
                       (depth, width)):
        if dims:
            want[dims[-1]] = size
            vector_loops.add(dims[-1])


def vector_sizes(tile_sizes, loop_ranges) -> list[int] | None:
    """The vector shape the vectorizer must mask to when a tiled loop is dynamic
    (its tiles have unknown sizes up to the tile), else None (tiles are static).
    Raises ValueError when an untiled loop is dynamic: no vector shape bounds it."""
    ranges = list(loop_ranges)
    tiles = _padded(tile_sizes, len(ranges))
    needs_mask = False
    shape = []
    for size, tile in zip(ranges, tiles):
        if tile == 0:
            if size is None:
                raise ValueError("an untiled dynamic loop cannot be vectorized")
            shape.append(size)
            continue
        needs_mask |= size is None
        shape.append(tile)
    return shape if needs_mask else None


def peeled_loops(tile_sizes, loop_ranges) -> list[int]:
    """The loops whose static size the tile does not divide: they are peeled into
    whole tiles and one smaller (static) remainder tile."""
    tiles = _padded(tile_sizes, len(loop_ranges))
    return [i for i, (size, tile) in enumerate(zip(loop_ranges, tiles))
            if tile and size is not None and size > tile and size % tile]


def _padded(tile_sizes, n: int) -> list[int]:
    return (list(tile_sizes) + [0] * n)[:n]
