"""``linalg-vectorize``: tile linalg ops and vectorize the tiles with the transform dialect."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stepwell.targets import tiling
from stepwell.core.diagnostics import PassError
from stepwell.core.ir import context, ir, linalg, passmanager
from stepwell.core.module import Module
from stepwell.core.passes_base import Pass, register
from stepwell.core.verifier import walk

log = logging.getLogger(__name__)

TAG = "stepwell.vectorize_id"
NOT_VECTORIZED = "stepwell.not_vectorized"  # on an op left as is, saying why
# linalg ops that are not tiled-and-vectorized structured ops themselves
_NOT_STRUCTURED = {"linalg.yield", "linalg.index"}


def _int(value) -> int:
    return ir.IntegerAttr(value).value


def _element_bits(value) -> int:
    t = value.type
    elem = ir.ShapedType(t).element_type if isinstance(t, ir.ShapedType) else t
    return getattr(elem, "width", 32) or 32


class _Plan:
    """One op to tile and vectorize: its tag, tile sizes, the loops to peel and the
    vector sizes to mask to (dynamic tiles only)."""

    def __init__(self, tag: int, name: str, tiles: list[int], vsizes: list[int] | None,
                 peel: list[int] = (), decompose: bool = False, ranges=()):
        self.tag, self.name, self.tiles, self.vsizes = tag, name, tiles, vsizes
        self.ranges = list(ranges)  # static loop sizes (None: dynamic)
        self.peel = list(peel)      # loop dims whose last tile is partial
        self.decompose = decompose  # 2-D convolution tiles become 1-D ones first

    def script(self) -> str:
        """The transform IR that tiles and vectorizes this op."""
        t = self.tag
        any_op = "!transform.any_op"
        match = (f"transform.structured.match attributes {{{TAG} = {t} : i64}} in %root"
                 f" : ({any_op}) -> {any_op}")
        lines = [f"%op{t} = {match}"]
        tiled_dims = [d for d, size in enumerate(self.tiles) if size]
        h = f"%op{t}"
        if tiled_dims:
            results = ", ".join([any_op] * (len(tiled_dims) + 1))
            lines.append(f"%tiled{t}, %loops{t}:{len(tiled_dims)} = transform.structured.tile_using_for "
                         f"%op{t} tile_sizes [{', '.join(map(str, self.tiles))}] : ({any_op}) -> ({results})")
            h = f"%tiled{t}"
        if self.peel:
            # innermost first: peeling an outer loop then copies both inner loops
            for d in sorted(self.peel, reverse=True):
                i = tiled_dims.index(d)
                loop = '!transform.op<"scf.for">'
                lines.append(f"%for{t}_{i} = transform.cast %loops{t}#{i} : {any_op} to {loop}")
                lines.append(f"%main{t}_{i}, %rest{t}_{i} = transform.loop.peel %for{t}_{i}"
                             f" : ({loop}) -> ({any_op}, {any_op})")
            # folding the one-trip remainder loops makes the remainder tiles static;
            # the tiled op now has a copy per peeled loop nest: match them all by tag
            lines.append(f"%fn{t} = transform.structured.match ops{{[\"func.func\", \"util.func\"]}}"
                         f" in %root : ({any_op}) -> {any_op}")
            lines.append(f"transform.apply_patterns to %fn{t} {{ transform.apply_patterns.canonicalization }}"
                         f" : {any_op}")
            lines.append(f"%tiles{t} = {match}")
            h = f"%tiles{t}"
        if self.decompose:
            lines.append(f"%dec{t} = transform.structured.decompose {h} : ({any_op}) -> {any_op}")
            h = f"%dec{t}"
        sizes = f" vector_sizes [{', '.join(map(str, self.vsizes))}]" if self.vsizes else ""
        lines.append(f"transform.structured.vectorize {h}{sizes} : {any_op}")
        return "\n    ".join(lines)


def _script(plans: list[_Plan]) -> str:
    body = "\n    ".join(p.script() for p in plans)
    return f"""module attributes {{transform.with_named_sequence}} {{
  transform.named_sequence @__transform_main(%root: !transform.any_op {{transform.readonly}}) {{
    {body}
    %funcs = transform.structured.match ops{{["func.func", "util.func"]}} in %root
      : (!transform.any_op) -> !transform.any_op
    transform.apply_patterns to %funcs {{
      transform.apply_patterns.vector.reduction_to_contract
      transform.apply_patterns.vector.transfer_permutation_patterns
      transform.apply_patterns.canonicalization
    }} : !transform.any_op
    transform.apply_cse to %funcs : !transform.any_op
    transform.yield
  }}
}}"""


def _loop_info(op):
    """(loop ranges, convolution roles or None, contraction dims or None) of a
    ``linalg.generic``."""
    maps = [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]
    n = maps[0].n_dims
    ranges: list[int | None] = [None] * n
    for amap, operand in zip(maps, op.operands):
        t = operand.type
        if not isinstance(t, ir.ShapedType):
            continue
        shaped = ir.ShapedType(t)
        for pos, expr in enumerate(amap.results):
            if isinstance(expr, ir.AffineDimExpr) and ranges[expr.position] is None \
                    and not shaped.is_dynamic_dim(pos):
                ranges[expr.position] = shaped.shape[pos]
    return ranges, _convolution(op), _contraction(op)


def _convolution(op) -> dict | None:
    """Loop roles of a convolution or pooling ``linalg.generic``, else None."""
    try:
        dims = linalg.infer_convolution_dimensions(op)
    except Exception:  # noqa: BLE001 - the bindings raise when it is not one
        return None
    if dims is None or not len(dims.filter_loop) or not len(dims.output_image):
        return None
    roles = ("batch", "output_image", "output_channel", "filter_loop", "input_channel", "depth")
    return {r: tuple(int(d) for d in getattr(dims, r)) for r in roles}


def _contraction(op) -> tuple | None:
    """(batch, m, n, k) loops of a contraction ``linalg.generic`` (one with a k loop)."""
    try:
        dims = linalg.infer_contraction_dimensions(op)
    except Exception:  # noqa: BLE001
        return None
    if dims is None or not len(dims.k):
        return None
    return tuple(tuple(int(d) for d in part) for part in (dims.batch, dims.m, dims.n, dims.k))


@register
@dataclass
class LinalgVectorize(Pass):
    """Tile linalg ops and vectorize the tiles (vector.contract, transfer_read/write).

    Tile sizes come from ``stepwell.tiling`` for ``target`` (default ``cpu``, this
    machine's SIMD width) unless ``tile-sizes=8,32,16`` gives them (entry ``i`` tiles
    loop ``i``; ``0`` or a missing entry leaves the loop whole); ``ops=matmul`` limits
    the pass to some ops. A transform script (``tile_using_for``, ``decompose`` for
    2-D convolutions, ``vectorize``, then multiply-reduce folded into
    ``vector.contract``) runs through ``transform-interpreter``; ops it cannot handle
    (``linalg.softmax``, 3-D convolutions, untiled dynamic loops) stay as they are,
    marked ``stepwell.not_vectorized = "<why>"`` in the output; ``strict=true`` makes
    each of them an error at the op instead. Before::

        %0 = linalg.matmul ins(%a, %b : tensor<64x128xf32>, tensor<128x256xf32>)
                           outs(%c : tensor<64x256xf32>) -> tensor<64x256xf32>

    after ``linalg-vectorize{tile-sizes=8,32,16}``::

        %0 = scf.for %i = %c0 to %c64 step %c8 iter_args(%c0_ = %c) -> (tensor<64x256xf32>) {
          %1 = scf.for %j = %c0 to %c256 step %c32 iter_args(%c1_ = %c0_) -> (tensor<64x256xf32>) {
            %2 = scf.for %k = %c0 to %c128 step %c16 iter_args(%acc = %c1_) -> (tensor<64x256xf32>) {
              %sa = tensor.extract_slice %a[%i, %k] [8, 16] [1, 1] : tensor<64x128xf32> to tensor<8x16xf32>
              ...
              %va = vector.transfer_read %sa[%c0, %c0], %pad : tensor<8x16xf32>, vector<8x16xf32>
              %vb = vector.transfer_read %sb[%c0, %c0], %pad : tensor<16x32xf32>, vector<16x32xf32>
              %vc = vector.transfer_read %sc[%c0, %c0], %pad : tensor<8x32xf32>, vector<8x32xf32>
              %r = vector.contract {...} %va, %vb, %vc : vector<8x16xf32>, vector<16x32xf32> into vector<8x32xf32>
              %w = vector.transfer_write %r, %sc[%c0, %c0] : vector<8x32xf32>, tensor<8x32xf32>
              %u = tensor.insert_slice %w into %acc[%i, %j] [8, 32] [1, 1] : ...
              scf.yield %u : tensor<64x256xf32>
    """

    name = "linalg-vectorize"
    target: str = "cpu"
    tile_sizes: tuple = ()
    ops: tuple = ()
    strict: bool = False

    def run(self, module) -> None:
        try:
            tiling.vector_target(self.target)
        except ValueError as e:
            raise PassError(str(e)) from None
        if not all(isinstance(t, int) and t >= 0 for t in self.tile_sizes):
            raise PassError(f"linalg-vectorize: tile-sizes must be integers >= 0, "
                            f"found '{','.join(map(str, self.tile_sizes))}'")
        tagged = self._tag(module)
        if not tagged:
            return
        self._why: dict[int, str] = {}
        try:
            plans = self._plans(module, tagged)
            if plans:
                self._apply(module, plans)
        finally:
            left = self._untag(module, mark=True)
        if left and self.strict:
            from stepwell.core.diagnostics import at
            raise PassError([at(op.location, f"linalg-vectorize: '{op.name}' was not vectorized: {why}",
                                display_name=module.name) for op, why in left])

    def plan(self, module) -> list[tuple[str, list, list[int]]]:
        """What :meth:`run` would do, without doing it: ``(op name, loop sizes, tile
        sizes)`` for each op it would tile, in IR order (for reports and tuning)."""
        tagged = self._tag(module)
        self._why = {}
        try:
            plans = self._plans(module, tagged) if tagged else []
        finally:
            self._untag(module)
        return [(p.name, p.ranges, p.tiles) for p in sorted(plans, key=lambda p: p.tag)]

    # -- which ops, which sizes ------------------------------------------------

    def _tag(self, module) -> dict[int, str]:
        """Tag every candidate linalg op with a unique id; returns id -> op name."""
        tagged = {}
        i64 = ir.IntegerType.get_signless(64, context())
        for op in walk(module.operation):
            name = op.name
            if not name.startswith("linalg.") or name in _NOT_STRUCTURED:
                continue
            if self.ops and name not in self.ops and name.removeprefix("linalg.") not in self.ops:
                continue
            op.attributes[TAG] = ir.IntegerAttr.get(i64, len(tagged))
            tagged[len(tagged)] = name
        return tagged

    def _untag(self, module, mark: bool = False) -> list:
        """Remove the tags; ``mark``: an op still tagged was left as is: it gets
        ``stepwell.not_vectorized = "<why>"``. Returns those ops with the reason."""
        left = []
        for op in walk(module.operation):
            if TAG in op.attributes:
                tag = _int(op.attributes[TAG])
                del op.attributes[TAG]
                if mark:
                    why = getattr(self, "_why", {}).get(
                        tag, "no tiling rule applies (it is not a structured op a linalg.generic "
                             "can stand for)")
                    op.attributes[NOT_VECTORIZED] = ir.StringAttr.get(why, context())
                    left.append((op, why))
        return left

    def _plans(self, module, tagged: dict[int, str]) -> list[_Plan]:
        """Loop ranges come from a generalized copy: every structured op becomes a
        ``linalg.generic`` there, keeping its tag; other ops (softmax, pack) do not."""
        copy = ir.Module.parse(module.print(), context())
        passmanager.PassManager.parse("builtin.module(linalg-generalize-named-ops)",
                                      context()).run(copy.operation)
        plans = []
        for op in walk(copy.operation):
            if op.name != "linalg.generic" or TAG not in op.attributes:
                continue
            tag = _int(op.attributes[TAG])
            name = tagged[tag]
            ranges, convolution, contraction = _loop_info(op)
            if self.tile_sizes:
                tiles = [int(t) for t in self.tile_sizes][:len(ranges)]
                tiles += [0] * (len(ranges) - len(tiles))
            else:
                bits = _element_bits(op.operands[-1]) if len(op.operands) else 32
                tiles = tiling.choose_tile_sizes(name, ranges, self.target, contraction=contraction,
                                                 convolution=convolution, element_bits=bits)
            try:
                vsizes = tiling.vector_sizes(tiles, ranges)
            except ValueError:
                log.info("linalg-vectorize: skipping %s (a dynamic loop is not tiled)", name)
                self._why[tag] = "a dynamic loop is not tiled (no vector shape bounds it)"
                continue
            plans.append(_Plan(tag, name, tiles, vsizes, tiling.peeled_loops(tiles, ranges),
                               decompose=convolution is not None, ranges=ranges))
        return plans

    # -- running the transform script ------------------------------------------

    def _apply(self, module, plans: list[_Plan]) -> None:
        """Run all plans at once; if the script fails, run them one at a time from
        the original IR and keep each one that succeeds."""
        before = module.print(debuginfo=True)
        try:
            _interpret(module.mlir, plans)
            return
        except ir.MLIRError:
            pass
        current = before
        for plan in plans:
            trial = ir.Module.parse(current, context())
            try:
                _interpret(trial, [plan])
            except ir.MLIRError:
                log.info("linalg-vectorize: %s (tiles %s) left as is: the transform failed",
                         plan.name, plan.tiles)
                self._why[plan.tag] = f"the transform (tiles {plan.tiles}) failed on it"
                continue
            current = trial.operation.get_asm(enable_debug_info=True)
        module.replace_with(Module(ir.Module.parse(current, context()), module.name))


def _interpret(payload: ir.Module, plans: list[_Plan]) -> None:
    """Nest the transform script in ``payload``, run ``transform-interpreter``, and
    take the script out again (also when it fails)."""
    ctx = context()
    script = ir.Module.parse(_script(plans), ctx)
    attrs = payload.operation.attributes
    had_attr = "transform.with_named_sequence" in attrs
    attrs["transform.with_named_sequence"] = ir.UnitAttr.get(ctx)
    # a copy of the script goes in, so ``script`` keeps owning (and freeing) its own
    script_op = script.operation.clone(ir.InsertionPoint(payload.body))
    try:
        passmanager.PassManager.parse("builtin.module(transform-interpreter)", ctx).run(payload.operation)
    finally:
        script_op.erase()
        if not had_attr:
            del payload.operation.attributes["transform.with_named_sequence"]
