"""stablehlo-split-full-sum: a sum down to one element over two or more wide dims, in two.

IREE 3.13 builds an invalid ``vector.contract`` ("invalid accumulator/result vector
shape") for a sum of a broadcast product down to one element, as ``jnp.sum(x * s)`` with
``x: 5x3`` and ``s: 3`` is: it sees a contraction whose result has no dims. Summing the
first wide dim in a second reduce leaves the first one a matrix-vector contraction,
which IREE compiles (``prim-to-linalg`` does the same for ``nn``/``prim`` programs).
Before::

    %0 = stablehlo.reduce(%x init: %c) applies stablehlo.add across dimensions = [0, 1]
        : (tensor<5x3xf32>, tensor<f32>) -> tensor<f32>

after::

    %0 = stablehlo.reduce(%x init: %c) applies stablehlo.add across dimensions = [1]
        : (tensor<5x3xf32>, tensor<f32>) -> tensor<5xf32>
    %1 = stablehlo.reduce(%0 init: %c) applies stablehlo.add across dimensions = [0]
        : (tensor<5xf32>, tensor<f32>) -> tensor<f32>

The init value is used by both reduces (StableHLO leaves a reduce whose init is not the
identity implementation-defined; JAX always passes 0).
"""

from __future__ import annotations

from stepwell.core.passes_base import NO_MATCH, Pass, apply_patterns, register
from stepwell.core.types import TensorType
from stepwell.passes._linalg_text import splice


def split_axes(shape, axes, result_shape):
    """(first axes, last axis in the reduced shape) for a sum to one element over two or
    more wide dims (size not 1, or dynamic), else None."""
    wide = [a for a in axes if shape[a] != 1]
    if len(wide) < 2 or any(d != 1 for d in result_shape):
        return None
    first = [a for a in sorted(axes) if a != wide[0]]
    return first, wide[0] - sum(a < wide[0] for a in first)


def _is_add(op) -> bool:
    body = [o.operation.name for o in op.regions[0].blocks[0].operations]
    return body == ["stablehlo.add", "stablehlo.return"]


# stablehlo.reduce (add, one operand, to one element over two wide dims): two reduces.
def split_full_sum(op, rewriter):
    if len(op.operands) != 2 or not _is_add(op):
        return NO_MATCH  # (variadic reduces, max/min/mul and the rest stay as they are)
    x, init = (TensorType.from_mlir(v.type) for v in op.operands)
    res = TensorType.from_mlir(op.results[0].type)
    if x is None or init is None or res is None:
        return NO_MATCH
    split = split_axes(x.shape, list(op.attributes["dimensions"]), res.shape)
    if split is None:
        return NO_MATCH
    first, last = split
    mid = x.with_shape([d for i, d in enumerate(x.shape) if i not in first])
    dims = ", ".join(map(str, first))
    splice(op, f"""func.func @f(%x: {x}, %c: {init}) -> {res} {{
  %0 = stablehlo.reduce(%x init: %c) applies stablehlo.add across dimensions = [{dims}] : ({x}, {init}) -> {mid}
  %1 = stablehlo.reduce(%0 init: %c) applies stablehlo.add across dimensions = [{last}] : ({mid}, {init}) -> {res}
  return %1 : {res}
}}""")
    return None


@register
class StablehloSplitFullSum(Pass):
    """Sum a reduction to one element over two or more wide dims in two reduces."""
    name = "stablehlo-split-full-sum"

    def run(self, module) -> None:
        apply_patterns(module, {"stablehlo.reduce": split_full_sum})
