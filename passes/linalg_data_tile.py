"""The ``linalg-data-tile`` pass: contractions become pack -> ``linalg.mmt4d`` -> unpack,
with the work per workgroup (the distribution) chosen by stepwell.

IREE's own data tiling keeps its microkernels but distributes ``mmt4d`` far too finely
for a small machine (``research/autotune``: 1.2-1.6x lost on 2048^3). Writing the data
tiling into the IR keeps the microkernel and lets the ``compilation_info`` of the
``linalg.mmt4d`` say how much work each workgroup does. The inner tile (``m0 x n0 x k0``)
is the one IREE's data tiling gives these element types on ``target``
(``targets/iree_cpu.py``: 16x16x1 for f32 on AVX-512, 8x8x1 on AVX2). Before::

    %r = linalg.matmul ins(%a, %b : tensor<128x64xf32>, tensor<64x256xf32>)
           outs(%acc : tensor<128x256xf32>) -> tensor<128x256xf32>

after ``linalg-data-tile{inner-tiles=16,16,1 workgroup=64,64}``::

    %pa = linalg.pack %a outer_dims_perm = [0, 1] inner_dims_pos = [0, 1] inner_tiles = [16, 1]
            into %e0 : tensor<128x64xf32> -> tensor<8x64x16x1xf32>
    %pb = linalg.pack %b outer_dims_perm = [1, 0] inner_dims_pos = [1, 0] inner_tiles = [16, 1]
            into %e1 : tensor<64x256xf32> -> tensor<16x64x16x1xf32>
    %mm = linalg.mmt4d {compilation_info = #iree_codegen.compilation_info<lowering_config =
            #iree_cpu.lowering_config<distribution = [4, 4, 0, 0, 0, 0], ...>, ...>}
            ins(%pa, %pb : ...) outs(%acc4 : tensor<8x16x16x16xf32>) -> tensor<8x16x16x16xf32>
    %r = linalg.unpack %mm outer_dims_perm = [0, 1] inner_dims_pos = [0, 1] inner_tiles = [16, 16]
            into %e2 : tensor<8x16x16x16xf32> -> tensor<128x256xf32>

``linalg.batch_matmul`` becomes ``linalg.batch_mmt4d``; a ``linalg.generic`` contraction
(transposed operands, a linear layer's) is packed the same way; its epilogue (bias,
activation) reads the unpacked result, and IREE fuses the two. A packed constant or
global weight is packed once: IREE evaluates ``pack(constant)`` at compile time and
hoists ``pack(global)`` into the module's initializer (run at load); a weight that is a
function argument is packed on every call, as IREE's own data tiling does.

A narrow contraction, with fewer rows or columns than the inner tile (a batch-1 linear,
GPT-2's next-token head: 1x768 @ 768x50257), is left to IREE, whose data tiling picks a
narrow tile for it (``stepwell tune`` measured ours, padded to 16 rows, 2.3x slower).

Options: ``target`` (whose inner tiles), ``workgroup`` (elements of the result per
workgroup, m,n; ``0,0`` leaves the distribution to IREE), ``inner-tiles`` (m0,n0,k0 instead
of IREE's), ``min-flops`` (smaller contractions are left to IREE), ``quantized`` (also
tile contractions of a dequantized weight: the float weight is then made per call),
``threads`` (the default distribution leaves at least two workgroups per thread; 0:
this machine's cores).
An op that has a ``compilation_info`` is left alone; ``stepwell.data_tile = false`` on an
op leaves it to IREE, and ``stepwell.data_tile = {distribution = array<i64: d0, d1>,
inner_tiles = array<i64: m0, n0, k0>}`` (both optional: the tuning database's choice)
overrides the options for that op.
"""

from __future__ import annotations

import os

from stepwell.core.ir import context, ir
from stepwell.core.passes_base import Pass, register
from stepwell.core.types import TensorType
from stepwell.core.verifier import walk
from stepwell.passes._contraction import NAMED, analyze, dequantized
from stepwell.passes._linalg_text import function_text, splice
from stepwell.targets import iree_config, iree_cpu

ATTR = "stepwell.data_tile"
# elements of the result (m, n) per workgroup by default: the best of the measured
# distributions on both 2-core machines (docs/tuning.md: 1.2-1.6x IREE's on 2048^3)
WORKGROUP = (64, 64)


def threads() -> int:
    """Cores this process may run on (IREE's local-task runs one worker per core)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_distribution(c, tiles, workgroup, n_threads: int = 0) -> list[int]:
    """Outer tiles per workgroup along m and n: ``workgroup`` elements, clipped to the
    shape, halved (the larger first) until each of ``n_threads`` (0: this machine's
    cores) gets at least two workgroups."""
    m1, n1 = -(-c.m // tiles[0]), -(-c.n // tiles[1])
    d = [max(1, min(m1, workgroup[0] // tiles[0])), max(1, min(n1, workgroup[1] // tiles[1]))]
    while c.b * -(-m1 // d[0]) * -(-n1 // d[1]) < 2 * (n_threads or threads()) and max(d) > 1:
        i = 0 if d[0] >= d[1] else 1
        d[i] = max(1, d[i] // 2)
    return d


def _ints(attr) -> list[int] | None:
    return [int(v) for v in ir.DenseI64ArrayAttr(attr)] if isinstance(attr, ir.DenseI64ArrayAttr) else None


@register
class LinalgDataTile(Pass):
    """Data-tile contractions into linalg.pack -> linalg.mmt4d (with a chosen distribution) -> linalg.unpack.

    See the module docstring for the rewrite, the options and the per-op attribute.
    """

    name = "linalg-data-tile"
    target: str = "cpu"
    workgroup: tuple = WORKGROUP
    inner_tiles: tuple = ()
    min_flops: int = 1 << 21
    quantized: bool = False
    threads: int = 0

    def run(self, module) -> None:
        with context():
            for op in [o for o in walk(module.operation) if o.name in (*NAMED, "linalg.generic")]:
                plan = self.plan(op)
                if plan is not None:
                    _rewrite(op, *plan)

    def plan(self, op):
        """(contraction, inner tiles, distribution or None) for ``op``, or None to leave it."""
        if "compilation_info" in op.attributes or "lowering_config" in op.attributes:
            return None  # a configuration chosen by someone else
        override = op.attributes[ATTR] if ATTR in op.attributes else None
        if isinstance(override, ir.BoolAttr) and not override.value:
            return None
        c = analyze(op)
        if c is None:
            return None
        given = isinstance(override, ir.DictAttr)
        if not self.quantized and not given and any(dequantized(v) for v in op.operands[:2]):
            return None  # one dispatch dequantizes and multiplies: keep it (docs/low-precision.md)
        if not given and c.flops < self.min_flops:
            return None
        tiles = _ints(override["inner_tiles"]) if given and "inner_tiles" in override else None
        tiles = tiles or list(self.inner_tiles) or iree_cpu.inner_tiles(self.target, *c.types)
        if not tiles or len(tiles) != 3:
            return None
        if not given and (c.m < tiles[0] or c.n < tiles[1]):
            return None  # narrow (m = 1: a matrix-vector): IREE picks a narrow tile, ours would pad it
        if given and "distribution" in override:
            dist = _ints(override["distribution"])
        elif any(self.workgroup):
            dist = default_distribution(c, tiles, self.workgroup, self.threads)
        else:
            dist = None
        return c, list(tiles), dist


def _pack_spec(where: dict, outer: list[str], inner: list[str]):
    """(outer_dims_perm, inner_dims_pos) that lay an operand out as ``outer`` roles then
    ``inner`` tiles (``where``: role -> its dimension in the operand)."""
    return [where[r] for r in outer], [where[r] for r in inner]


# contraction -> pack(lhs), pack(rhs), fill or pack(acc), (batch_)mmt4d with the distribution, unpack
def _rewrite(op, c, tiles, dist) -> None:
    m0, n0, k0 = tiles
    m1, n1, k1 = -(-c.m // m0), -(-c.n // n0), -(-c.k // k0)
    lt, rt, ot = (TensorType.from_mlir(v.type) for v in op.operands)
    batch = [c.b] if c.batched else []
    b = ["b"] if c.batched else []
    packed = [
        TensorType((*batch, m1, k1, m0, k0), lt.dtype),
        TensorType((*batch, n1, k1, n0, k0), rt.dtype),
        TensorType((*batch, m1, n1, m0, n0), ot.dtype),
    ]
    specs = [_pack_spec(c.pos[0], b + ["m", "k"], ["m", "k"]),
             _pack_spec(c.pos[1], b + ["n", "k"], ["n", "k"]),
             _pack_spec(c.pos[2], b + ["m", "n"], ["m", "n"])]
    inner = [[m0, k0], [n0, k0], [m0, n0]]
    pads = [c.m % m0 or c.k % k0, c.n % n0 or c.k % k0, c.m % m0 or c.n % n0]
    init = op.operands[2]
    fill = _fill_of(init)
    operands = [op.operands[0], op.operands[1], fill.operands[0] if fill is not None else init]
    name = "linalg.batch_mmt4d" if c.batched else "linalg.mmt4d"
    info = _compilation_info(c, tiles, dist)

    def pack(e, value, i, t):
        perm, pos = specs[i]
        pad = f" padding_value({e.const(0, t.dtype)} : {t.dtype})" if pads[i] else ""
        return e(f"linalg.pack {value}{pad} outer_dims_perm = {perm} inner_dims_pos = {pos} "
                 f"inner_tiles = {inner[i]} into {e(f'tensor.empty() : {packed[i]}')} : {t} -> {packed[i]}")

    def emit(e, args):
        pa, pb = pack(e, args[0], 0, lt), pack(e, args[1], 1, rt)
        if fill is not None:
            acc = e(f"linalg.fill ins({args[2]} : {ot.dtype}) outs({e(f'tensor.empty() : {packed[2]}')} "
                    f": {packed[2]}) -> {packed[2]}")
        else:
            acc = pack(e, args[2], 2, ot)
        attrs = f" {{compilation_info = {info}}}" if info else ""
        mm = e(f"{name}{attrs} ins({pa}, {pb} : {packed[0]}, {packed[1]}) outs({acc} : {packed[2]}) "
               f"-> {packed[2]}")
        perm, pos = specs[2]
        return e(f"linalg.unpack {mm} outer_dims_perm = {perm} inner_dims_pos = {pos} "
                 f"inner_tiles = {inner[2]} into {e(f'tensor.empty() : {ot}')} : {packed[2]} -> {ot}")

    scalar = fill.operands[0].type if fill is not None else None
    types = [lt, rt, scalar if scalar is not None else ot]
    splice(op, function_text(types, [ot], emit), operands)
    if fill is not None and not list(fill.results[0].uses):
        fill.erase()


def _fill_of(value):
    """The ``linalg.fill`` of a scalar that defines ``value`` (the zero accumulator)."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    owner = owner.operation
    return owner if owner.name == "linalg.fill" else None


def _compilation_info(c, tiles, dist) -> str | None:
    if dist is None:
        return None
    m0, n0, k0 = tiles
    lead = [1] if c.batched else []
    zero = [0] if c.batched else []
    return iree_config.compilation_info(
        "mmt4d", lead + [*dist, 0, 0, 0, 0], lead + [1, 1, 0, m0, n0, 0],
        zero + [0, 0, 1, 0, 0, k0])
