"""stablehlo-low-float-convert: ``stablehlo.convert`` to bf16 (and int -> f16) as linalg.

Two IREE 3.13 problems with conversions to bf16 that JAX programs reach:

* ``stablehlo.convert %x : (tensor<4xi32>) -> tensor<4xbf16>`` becomes
  ``arith.sitofp %x : i32 to bf16``, which LLVM turns into a call of ``__truncsfbf2``
  on CPUs without native bf16 (AVX2-only x86-64, target ``cpu-generic``): IREE's
  embedded linker cannot resolve it and the compile fails;
* a float -> bf16 convert whose result is extended again loses its rounding in some
  fusions (``x[::-1].astype(bf16).astype(f32)`` keeps f32 precision: found by the JAX
  fuzzer).

This pass writes such a conversion as the ``linalg.generic`` that ``prim-to-linalg``
emits for ``nn.cast``: (int ->) f32, then rounded to nearest even in integer ops (NaN
kept), which IREE takes as it is. Before::

    %0 = stablehlo.convert %arg0 : (tensor<4xi32>) -> tensor<4xbf16>

after::

    %0 = tensor.empty() : tensor<4xbf16>
    %1 = linalg.generic {...} ins(%arg0 : tensor<4xi32>) outs(%0 : tensor<4xbf16>) {
    ^bb0(%in: i32, %out: bf16):
      %f = arith.sitofp %in : i32 to f32
      ...                                   // bitcast, shrui, andi, addi, trunci
      linalg.yield %b : bf16
    } -> tensor<4xbf16>

Integer -> f16 goes through f32 the same way (``arith.truncf`` to f16, which IREE's
own f16 support resolves); float -> f16 is left to IREE.
"""

from __future__ import annotations

from stepwell.core.passes_base import NO_MATCH, Pass, apply_patterns, register
from stepwell.core.types import TensorType
from stepwell.passes._linalg_text import convert, function_text, splice

SIGNLESS = ("i1", "i8", "i16", "i32", "i64")
FLOATS = ("f16", "f32", "f64")


def needs_rewrite(src: str, dst: str) -> bool:
    """Whether a convert from ``src`` to ``dst`` is one this pass writes as linalg."""
    return (src in SIGNLESS and dst in ("bf16", "f16")) or (src in FLOATS and dst == "bf16")


# stablehlo.convert to bf16 (or int -> f16): a linalg.generic of prim-to-linalg's convert.
def low_float_convert(op, rewriter):
    x = TensorType.from_mlir(op.operands[0].type)
    res = TensorType.from_mlir(op.results[0].type)
    if x is None or res is None or not needs_rewrite(x.dtype, res.dtype):
        return NO_MATCH  # (unsigned sources, complex, and the rest stay IREE's)

    def emit(e, args):
        return e.elementwise([(args[0], x)], res, lambda s, xs: convert(s, xs[0], x.dtype, res.dtype),
                             {i: (args[0], x, i) for i in range(res.rank)})
    splice(op, function_text([x], [res], emit))
    return None


@register
class StablehloLowFloatConvert(Pass):
    """Write stablehlo.convert to bf16 (and int -> f16) as a linalg.generic without libcalls."""
    name = "stablehlo-low-float-convert"

    def run(self, module) -> None:
        apply_patterns(module, {"stablehlo.convert": low_float_convert})
