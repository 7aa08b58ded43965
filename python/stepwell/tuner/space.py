"""Candidate configurations for one task, pruned and ordered most promising first.

A contraction (matmul, batch matmul, a linear layer's) gets:

``mmt4d``          stepwell's data tiling with a distribution of ``d0 x d1`` outer tiles
                   per workgroup (powers of two, within the shape, at least one
                   workgroup per thread, at most 256 x 512 elements), with IREE's inner
                   tile for the element types and, where m allows, one with half its m0
``iree``           IREE's own data tiling, alone and with the global flag
                   ``--iree-llvmcpu-matmul-tile-bytes`` (1.32x on an AVX2 machine)
``double_tiling``  no data tiling: ``DoubleTilingExpert`` with workgroup tiles of 32-128
                   and register tiles of 4-8 rows x 1-2 vectors, k unrolled 1-4 times
``default``        the baseline itself is always a candidate: "IREE's/stepwell's
                   default wins" is a result

A convolution (``conv_2d_nhwc_hwcf``, depthwise) gets ``ConvTileAndDecomposeExpert``
configurations: output rows/columns/channels per workgroup and vector tiles of
1-8 columns x 1-2 vectors of channels, input channels unrolled 1-lanes.

Every configuration is checked against what IREE 3.13 rejects or runs badly
(``targets.iree_config.problems``: vectors of 16 KB or more, sizes that do not divide
the loop) and dropped if it fails. Candidates are ordered by distance (in log2 of the
work per workgroup) from the measured default, so a small budget tries the likely
winners first.
"""

from __future__ import annotations

import itertools
import math

from stepwell.passes.linalg_data_tile import WORKGROUP, default_distribution, threads
from stepwell.targets import iree_config

__all__ = ["candidates", "TILE_BYTES"]

TILE_BYTES = (1 << 20,)
_POW2 = (1, 2, 4, 8, 16, 32)
_BYTES = {"f32": 4, "i32": 4, "f16": 2, "bf16": 2, "i8": 1, "f64": 8, "i64": 8}


def _order(configs, ideal):
    """Stable sort by log-distance of each config's work size from ``ideal``."""
    def dist(item):
        _, size = item
        return sum(abs(math.log2(max(a, 1)) - math.log2(max(b, 1))) for a, b in zip(size, ideal))
    return [c for c, _ in sorted(configs, key=dist)]


def _contraction(task, info) -> list[dict]:
    c = task.signature
    roles, loops = task.roles, task.loops
    m, n, k = (loops[roles[r]] for r in "mnk")
    b = loops[roles["b"]] if "b" in roles else 1
    lhs, rhs, out = c["dtypes"][:3]
    tiles = info.tiles.get(f"{lhs},{rhs},{out}") if info is not None else None
    out_list: list[dict] = []
    # a dequantized weight (weight-only int8/int4) is data-tiled only for many rows (a
    # prefill): its float weight is then made, packed, on every call
    if tiles and (not c.get("dequantized") or m >= 64):
        m0, n0, k0 = tiles
        inner = [list(tiles)] + ([[m0 // 2, n0, k0]] if m0 >= 4 and m >= 2 * m0 else [])
        mmt4d = []
        for t in inner:
            m1, n1 = -(-m // t[0]), -(-n // t[1])
            seen = set()
            for d0, d1 in itertools.product(_POW2, _POW2):
                d = (min(d0, m1), min(d1, n1))
                if d in seen or d[0] * t[0] > 256 or d[1] * t[1] > 512:
                    continue
                if b * -(-m1 // d[0]) * -(-n1 // d[1]) < threads():
                    continue
                if (m1 % d[0] and d[0] < m1) or (n1 % d[1] and d[1] < n1):
                    continue  # "sizes that do not divide the shape: correct but ~9x slower"
                seen.add(d)
                cfg = {"kind": "mmt4d", "distribution": list(d)}
                if t != list(tiles):
                    cfg["inner_tiles"] = t
                mmt4d.append((cfg, (d[0] * t[0], d[1] * t[1])))
        ranked = _order(mmt4d, (64, 64))
        own = [c for c in ranked if "inner_tiles" not in c]  # IREE's inner tile first
        other = [c for c in ranked if "inner_tiles" in c]
        out_list += own[:3] + other[:1] + own[3:6] + other[1:2] + own[6:] + other[2:]
    out_list.append({"kind": "iree"})
    out_list += [{"kind": "iree", "tile_bytes": tb} for tb in TILE_BYTES]
    out_list += _double_tiling(task, info, m, n, k, b)
    return out_list


def _double_tiling(task, info, m, n, k, b) -> list[dict]:
    roles, loops = task.roles, task.loops
    elem = _BYTES.get(task.signature["dtypes"][2], 4)
    lanes = max(1, (info.vector_bytes if info else 16) // elem)
    found = []
    for dm, dn, vm, vn, vk in itertools.product((32, 64, 128), (32, 64, 128), (4, 8), (1, 2), (1, 2, 4)):
        dm, dn, vn_ = min(dm, m), min(dn, n), min(vn * lanes, n)
        if m % dm or n % dn or dm % min(vm, dm) or dn % vn_ or k % vk:
            continue
        dist, par, red = [0] * len(loops), [0] * len(loops), [0] * len(loops)
        if "b" in roles:
            dist[roles["b"]], par[roles["b"]] = 1, 1
        dist[roles["m"]], dist[roles["n"]] = dm, dn
        par[roles["m"]], par[roles["n"]] = min(vm, dm), vn_
        red[roles["k"]] = vk
        if iree_config.problems(loops, dist, par, red, elem):
            continue
        cfg = {"kind": "double_tiling", "distribution": dist, "parallel": par, "reduction": red}
        if cfg not in [f for f, _ in found]:
            found.append((cfg, (dm, dn, min(vm, dm) * 8, vn_ * 8 // lanes)))
    return _order(found, (64, 64, 64, 64))[:6]


def _convolution(task, info) -> list[dict]:
    loops = task.loops
    depthwise = task.kind.startswith("depthwise")
    elem = _BYTES.get(task.signature["dtypes"][2], 4)
    lanes = max(1, (info.vector_bytes if info else 16) // elem)
    n, oh, ow, oc = loops[:4]
    ic = 1 if depthwise else loops[6]
    found = []
    for d_oh, vw, vc, vi in itertools.product((1, 2, 4), (1, 2, 4, 7, 8), (1, 2), (1, 4, 8, lanes)):
        vc_ = min(vc * lanes, oc)
        vi_ = 0 if depthwise else min(vi, ic)
        d_ow = ow
        d_oc = vc_ * max(1, min(oc // vc_, 4))
        if oh % d_oh or ow % vw or oc % vc_ or oc % d_oc or (vi_ and ic % vi_):
            continue
        dist = [1 if n > 1 else 0, d_oh, d_ow, d_oc, 0, 0] + ([] if depthwise else [0])
        par = [1, 1, vw, vc_, 0, 0] + ([] if depthwise else [0])
        red = [0, 0, 0, 0, 1, 1] + ([] if depthwise else [vi_])
        if iree_config.problems(loops, dist, par, red, elem):
            continue
        cfg = {"kind": "conv", "distribution": dist, "parallel": par, "reduction": red}
        if cfg not in [f for f, _ in found]:
            found.append((cfg, (d_oh, vw, vc_, max(vi_, 1))))
    return _order(found, (2, 7, lanes, 8))


def _default(task, info, target=None) -> dict | None:
    """The configuration the untuned compile uses (the baseline), for contractions it
    data-tiles (None: the baseline is IREE's own)."""
    from stepwell.passes._contraction import Contraction
    from stepwell.passes.linalg_data_tile import LinalgDataTile
    tiles = info.tiles.get(",".join(task.signature["dtypes"][:3])) if info is not None else None
    if not tiles or task.signature.get("dequantized") or task.flops < LinalgDataTile.min_flops \
            or (target is not None and not target.data_tiling):
        return None
    roles, loops = task.roles, task.loops
    c = Contraction(loops[roles["b"]] if "b" in roles else 1, loops[roles["m"]], loops[roles["n"]],
                    loops[roles["k"]], "b" in roles, (), ())
    return {"kind": "mmt4d", "distribution": default_distribution(c, tiles, WORKGROUP)}


def candidates(task, info, limit: int = 24, target=None) -> list[dict]:
    """At most ``limit`` configurations for ``task`` (``info``: the target's
    :class:`~stepwell.targets.iree_cpu.CpuInfo`), most promising first; the baseline's
    own configuration (on ``target``) is left out: it is the baseline."""
    if not task.roles:
        return _convolution(task, info)[:limit]
    default = _default(task, info, target)
    found = [f for f in _contraction(task, info) if f != default]
    mm = [f for f in found if f["kind"] == "mmt4d"]
    ir = [f for f in found if f["kind"] == "iree"]
    dt = [f for f in found if f["kind"] == "double_tiling"]
    # a small limit still samples each kind: the two likeliest distributions, IREE's data
    # tiling with the tile-bytes flag, one DoubleTilingExpert, then the rest
    ordered = mm[:2] + ir[1:2] + dt[:1] + mm[2:] + ir[:1] + dt[1:]
    return ordered[:limit]
