"""stablehlo-reverse-to-linalg: ``stablehlo.reverse`` as a linalg.generic.

IREE 3.13 miscompiles a ``stablehlo.reverse`` followed by a round trip through a
narrower float (``x[::-1].astype(bf16).astype(f32)``): the rounding is dropped and
the result keeps f32 precision (found by the JAX fuzzer; ``jax.jit`` rounds). Written
as a linalg.generic whose input map reads the reversed index, the same program
compiles right. Reversed dims must be static (a dynamic one stays IREE's). Before::

    %0 = stablehlo.reverse %arg0, dims = [0] : tensor<3x4xf32>

after::

    %0 = tensor.empty() : tensor<3x4xf32>
    %1 = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (-d0 + 2, d1)>,
                                          affine_map<(d0, d1) -> (d0, d1)>], ...}
        ins(%arg0 : tensor<3x4xf32>) outs(%0 : tensor<3x4xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    } -> tensor<3x4xf32>
"""

from __future__ import annotations

from stepwell.core.ir import ir
from stepwell.core.passes_base import NO_MATCH, Pass, apply_patterns, register
from stepwell.core.types import TensorType
from stepwell.passes._linalg_text import amap, function_text, identity, splice


# stablehlo.reverse with static reversed dims: a linalg.generic reading index size-1-i.
def reverse_as_generic(op, rewriter):
    x = TensorType.from_mlir(op.operands[0].type)
    dims = [int(d) for d in ir.DenseI64ArrayAttr(op.attributes["dimensions"])] \
        if "dimensions" in op.attributes else []
    if x is None or any(x.shape[d] is None for d in dims):
        return NO_MATCH
    exprs = [f"{x.shape[i] - 1} - d{i}" if i in dims else i for i in range(x.rank)]

    def emit(e, args):
        init = e.empty(x, {i: (args[0], x, i) for i in range(x.rank)})
        return e.generic([(args[0], x)], init, x, [amap(x.rank, exprs), identity(x.rank)],
                         ["parallel"] * x.rank, lambda s, a: a[0])
    splice(op, function_text([x], [x], emit))
    return None


@register
class StablehloReverseToLinalg(Pass):
    """Write stablehlo.reverse (static reversed dims) as a linalg.generic."""
    name = "stablehlo-reverse-to-linalg"

    def run(self, module) -> None:
        apply_patterns(module, {"stablehlo.reverse": reverse_as_generic})
