"""stablehlo-int-to-bf16: lower integer -> bf16/f16 ``stablehlo.convert`` to linalg.

IREE lowers ``stablehlo.convert %x : (tensor<4xi32>) -> tensor<4xbf16>`` to
``arith.sitofp %x : i32 to bf16``, which LLVM turns into a call of ``__truncsfbf2`` on
CPUs without native bf16 (AVX2-only x86-64, target ``cpu-generic``): IREE's embedded
linker cannot resolve it and the compile fails. This pass writes such a conversion as
the ``linalg.generic`` that ``prim-to-linalg`` emits for ``nn.cast`` (int -> f32, then
round to nearest even in integer ops), which IREE takes as it is. Before::

    %0 = stablehlo.convert %arg0 : (tensor<4xi32>) -> tensor<4xbf16>

after::

    %0 = tensor.empty() : tensor<4xbf16>
    %1 = linalg.generic {...} ins(%arg0 : tensor<4xi32>) outs(%0 : tensor<4xbf16>) {
    ^bb0(%in: i32, %out: bf16):
      %f = arith.sitofp %in : i32 to f32
      ...                                   // bitcast, shrui, andi, addi, trunci
      linalg.yield %b : bf16
    } -> tensor<4xbf16>

Integer -> f16 goes through f32 the same way (``arith.truncf``, which IREE's own
f16 support library resolves). Float -> bf16/f16 is left to IREE (it expands
``truncf`` itself).
"""

from __future__ import annotations

from stepwell.core.passes_base import NO_MATCH, Pass, apply_patterns, register
from stepwell.core.types import TensorType
from stepwell.passes._linalg_text import convert, function_text, splice

SIGNLESS = ("i1", "i8", "i16", "i32", "i64")


# stablehlo.convert int -> bf16/f16: a linalg.generic doing int -> f32 -> bf16/f16.
def int_to_low_float(op, rewriter):
    x = TensorType.from_mlir(op.operands[0].type)
    res = TensorType.from_mlir(op.results[0].type)
    if x is None or res is None or res.dtype not in ("bf16", "f16") or x.dtype not in SIGNLESS:
        return NO_MATCH  # unsigned (ui32) sources stay IREE's

    def emit(e, args):
        return e.elementwise([(args[0], x)], res, lambda s, xs: convert(s, xs[0], x.dtype, res.dtype),
                             {i: (args[0], x, i) for i in range(res.rank)})
    splice(op, function_text([x], [res], emit))
    return None


@register
class StablehloIntToBf16(Pass):
    """Lower integer -> bf16/f16 stablehlo.convert to a linalg.generic without libcalls."""
    name = "stablehlo-int-to-bf16"

    def run(self, module) -> None:
        apply_patterns(module, {"stablehlo.convert": int_to_low_float})
