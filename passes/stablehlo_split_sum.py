"""stablehlo-split-sum: a sum over two or more wide (not unit) dims, in two reduces.

IREE 3.13 builds an invalid ``vector.contract`` ("invalid accumulator/result vector
shape") for a sum of a broadcast product over two wide dims, as ``jnp.sum(x * s)`` with
``x: 5x3`` and ``s: 3`` is (found by the program fuzzer). Summing the last wide dim
first (with the unit ones) leaves a contraction over one dim, which IREE compiles; the
other dims are summed by a second reduce of that result (``prim-to-linalg`` does the
same for ``nn``/``prim`` programs).
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
from stepwell.passes._linalg_shapes import split_sum
from stepwell.passes._linalg_text import splice


def _is_add(op) -> bool:
    body = [o.operation.name for o in op.regions[0].blocks[0].operations]
    return body == ["stablehlo.add", "stablehlo.return"]


# stablehlo.reduce (add, one operand, over two or more wide dims): two reduces.
def split_sum_reduce(op, rewriter):
    if len(op.operands) != 2 or not _is_add(op):
        return NO_MATCH  # (variadic reduces, max/min/mul and the rest stay as they are)
    x, init = (TensorType.from_mlir(v.type) for v in op.operands)
    res = TensorType.from_mlir(op.results[0].type)
    if x is None or init is None or res is None:
        return NO_MATCH
    split = split_sum(x.shape, list(op.attributes["dimensions"]))
    if split is None:
        return NO_MATCH
    first, rest = split
    mid = x.with_shape([d for i, d in enumerate(x.shape) if i not in first])
    dims = ", ".join(map(str, first))
    splice(op, f"""func.func @f(%x: {x}, %c: {init}) -> {res} {{
  %0 = stablehlo.reduce(%x init: %c) applies stablehlo.add across dimensions = [{dims}] : ({x}, {init}) -> {mid}
  %1 = stablehlo.reduce(%0 init: %c) applies stablehlo.add across dimensions = [{', '.join(map(str, rest))}] : ({mid}, {init}) -> {res}
  return %1 : {res}
}}""")
    return None


@register
class StablehloSplitSum(Pass):
    """Sum a reduction over two or more wide dims in two reduces (the last wide dim first)."""
    name = "stablehlo-split-sum"

    def run(self, module) -> None:
        apply_patterns(module, {"stablehlo.reduce": split_sum_reduce})
