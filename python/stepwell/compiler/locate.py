"""Finding the op behind an IREE failure that names none.

Some IREE failures carry no location (``<unknown>:0: error: LLVM Translation failed
for operation: builtin.unrealized_conversion_cast``): the user would not know which
of their ops to change. :func:`first_failing_op` bisects the entry function: it
compiles copies that stop after op ``k`` (returning that op's results) and finds the
first ``k`` whose prefix fails. That op (with its location) completes the failing
computation: IREE compiles everything before it. A handful of compiles (``log2`` of
the op count); used only when IREE's error is unlocated.
"""

from __future__ import annotations

from stepwell.core import verifier
from stepwell.core.ir import ir

MAX_OPS = 4000  # bigger functions are not bisected (too many compiles)


def _entry(module):
    funcs = [op for op in module.mlir.body.operations if op.operation.name == "func.func"]
    public = [f for f in funcs if "sym_visibility" not in f.attributes
              or ir.StringAttr(f.attributes["sym_visibility"]).value == "public"]
    chosen = public or funcs
    return chosen[0].operation if len(chosen) == 1 else None


def _prefix(module, k: int):
    """A copy of ``module`` whose entry function returns the results of its op ``k``."""
    copy = module.clone()
    func = _entry(copy)
    block = func.regions[0].blocks[0]
    ops = [op.operation for op in block.operations]
    keep = ops[k]
    for op in reversed(ops[k + 1:]):
        op.erase()
    with ir.InsertionPoint(block), keep.location:
        ir.Operation.create("func.return", operands=list(keep.results))
    old = ir.FunctionType(ir.TypeAttr(func.attributes["function_type"]).value)
    new = ir.FunctionType.get(list(old.inputs), [r.type for r in keep.results], context=func.context)
    func.attributes["function_type"] = ir.TypeAttr.get(new, context=func.context)
    if "res_attrs" in func.attributes:
        del func.attributes["res_attrs"]
    return copy


def first_failing_op(module, fails):
    """The first top-level op of the entry function whose prefix makes ``fails(module)``
    true, or None (no single entry function, too big, or every prefix compiles)."""
    func = _entry(module)
    if func is None:
        return None
    ops = [op.operation for op in func.regions[0].blocks[0].operations]
    candidates = [i for i, op in enumerate(ops[:-1]) if op.results]
    if not candidates or sum(1 for _ in verifier.walk(module.operation)) > MAX_OPS:
        return None
    lo, hi = 0, len(candidates) - 1
    try:
        if not fails(_prefix(module, candidates[hi])):
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            if fails(_prefix(module, candidates[mid])):
                hi = mid
            else:
                lo = mid + 1
    except (ir.MLIRError, ValueError, TypeError, IndexError, RuntimeError):
        return None  # (a function this cannot cut: IREE's own error stands)
    return ops[candidates[lo]]
