"""IREE flags that keep a dequantized weight fused into its matmul.

Measured with IREE 3.13 on CPU (docs/low-precision.md): a dequantization (a
linalg.generic widening i8 to float) feeding a matmul is cloned into the matmul's
dispatch only without "matmul producer fusion blocking"; global data tiling would pack
(materialize) the dequantized weight in a dispatch of its own every call; and constant
expression hoisting would evaluate dequantize(constant) at compile time, storing the
f32 weight in the module. These flags keep the weight quantized end to end.
"""

from __future__ import annotations

from stepwell.core.verifier import walk
from stepwell.passes._contraction import widens_narrow_ints

DEQUANT_FLAGS = ("--iree-opt-const-expr-hoisting=false", "--iree-opt-const-expr-max-size-increase-threshold=0")
DEQUANT_FLAGS_CPU = ("--iree-dispatch-creation-block-matmul-producer-fusion=false",
                     "--iree-global-opt-data-tiling=false")
_CONTRACTIONS = ("linalg.matmul", "linalg.batch_matmul", "linalg.matvec", "linalg.vecmat",
                 "linalg.batch_matvec", "linalg.contract", "linalg.mmt4d", "linalg.batch_mmt4d")
# (linalg.pack: a dequantized weight data-tiled by stepwell, docs/tuning.md, stays quantized)
_PASS_THROUGH = ("linalg.generic", "linalg.broadcast", "tensor.expand_shape", "tensor.collapse_shape",
                 "tensor.cast", "linalg.transpose", "linalg.pack")


def _is_contraction(op) -> bool:
    if op.name in _CONTRACTIONS:
        return True
    return op.name == "linalg.generic" and "reduction" in str(op.attributes["iterator_types"])


def _feeds_contraction(op, depth: int = 8) -> bool:
    """Whether a result of ``op`` reaches a contraction through elementwise/shape ops."""
    frontier = [op]
    for _ in range(depth):  # (bounded: no visited set, the wrappers' ids are not stable)
        users = []
        for o in frontier:
            for r in o.results:
                for use in r.uses:
                    user = getattr(use.owner, "operation", use.owner)
                    if _is_contraction(user):
                        return True
                    if user.name in _PASS_THROUGH:
                        users.append(user)
        frontier = users[:64]
    return False


def has_weight_dequantization(module) -> bool:
    """Whether a linalg-level module dequantizes integers into a contraction."""
    return any(op.name == "linalg.generic" and widens_narrow_ints(op) and _feeds_contraction(op)
               for op in walk(module.operation))


def dequant_flags(target) -> tuple[str, ...]:
    """The iree-compile flags that keep a dequantized weight fused, for ``target``."""
    return DEQUANT_FLAGS + (DEQUANT_FLAGS_CPU if target.backend == "llvm-cpu" else ())


def iree_flags(module, target) -> tuple[str, ...]:
    """Extra iree-compile flags for a linalg-level ``module``: the dequantization flags
    when it dequantizes weights into contractions, else none."""
    return dequant_flags(target) if has_weight_dequantization(module) else ()
