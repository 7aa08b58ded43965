"""Text templates for ``prim-to-linalg``: emit a small MLIR function, splice it in.

Each lowering writes the linalg/tensor/arith IR for one op as MLIR text through an
:class:`Emitter` (fresh SSA names, constants, ``tensor.empty`` with dynamic sizes,
``linalg.generic``). :func:`splice` parses that text as ``func.func @f`` over the op's
operand types and moves its body in place of the op, each new op taking the op's
location.
"""

from __future__ import annotations

import itertools

import numpy as np

from stepwell.core.ir import context, ir
from stepwell.core.types import TensorType, is_float, numpy_dtype
from stepwell.core.verifier import walk


def float_literal(value: float, dtype: str) -> str:
    """``value`` rounded to ``dtype`` as an MLIR float literal (hex for inf/nan)."""
    x = np.array(value).astype(numpy_dtype(dtype))
    if np.isfinite(x):
        text = repr(float(x))
        return text.replace("e", ".0e") if "." not in text else text
    bits = x.view(f"u{x.dtype.itemsize}")
    return f"0x{int(bits):0{2 * x.dtype.itemsize}X}"


def scalar_literal(value, dtype: str) -> str:
    """``value`` as a literal of element type ``dtype`` (floats rounded, i1 as true/false)."""
    if is_float(dtype):
        return float_literal(value, dtype)
    if dtype == "i1":
        return "true" if value else "false"
    return str(int(value))


def amap(rank: int, exprs) -> str:
    """``affine_map<(d0, ..) -> (exprs)>``; ``exprs`` are dim indices or expression text."""
    dims = ", ".join(f"d{i}" for i in range(rank))
    body = ", ".join(e if isinstance(e, str) else f"d{e}" for e in exprs)
    return f"affine_map<({dims}) -> ({body})>"


def identity(rank: int) -> str:
    return amap(rank, range(rank))


class Emitter:
    """Accumulates lines of MLIR text with fresh SSA names (shared with nested bodies)."""

    def __init__(self, counter=None):
        self.lines: list[str] = []
        self._counter = counter or itertools.count()

    def __call__(self, rhs: str) -> str:
        """Emit ``%vN = rhs``; returns ``%vN``."""
        name = f"%v{next(self._counter)}"
        self.lines.append(f"{name} = {rhs}")
        return name

    def line(self, text: str) -> None:
        self.lines.append(text)

    def nested(self) -> "Emitter":
        return Emitter(self._counter)

    def const(self, value, dtype: str) -> str:
        if dtype == "i1":
            return self(f"arith.constant {scalar_literal(value, dtype)}")
        return self(f"arith.constant {scalar_literal(value, dtype)} : {dtype}")

    def index(self, value: int) -> str:
        return self(f"arith.constant {int(value)} : index")

    def dim(self, value: str, t: TensorType, i: int) -> str:
        return self(f"tensor.dim {value}, {self.index(i)} : {t}")

    def agree(self, value: str, t: TensorType, shape, what: str) -> tuple[str, TensorType]:
        """``value`` (of type ``t``) refined to the static sizes of ``shape`` where ``t`` is
        dynamic: each such size is checked at run time (``cf.assert`` naming ``what``),
        then ``tensor.cast``. Returns the value and its new type."""
        fixed = tuple(w if d is None and w is not None else d for d, w in zip(t.shape, shape))
        if fixed == t.shape:
            return value, t
        for i, (d, w) in enumerate(zip(t.shape, shape)):
            if d is None and w is not None:
                ok = self(f"arith.cmpi eq, {self.dim(value, t, i)}, {self.index(w)} : index")
                self.line(f'cf.assert {ok}, "stepwell: {what}: dimension {i} is not {w} at run time '
                          f'(a dynamic size must equal the static size it meets)"')
        refined = t.with_shape(fixed)
        return self.cast(value, t, refined), refined

    def cast(self, value: str, src: TensorType, dst: TensorType) -> str:
        """``value`` as type ``dst`` (a ``tensor.cast`` when static sizes differ)."""
        return value if src == dst else self(f"tensor.cast {value} : {src} to {dst}")

    def empty(self, t: TensorType, like=()) -> str:
        """``tensor.empty`` of ``t``; dynamic dim i is ``like[i]``: an index value or a
        (value, type, dim) to take the size of."""
        sizes = [like[i] if isinstance(like[i], str) else self.dim(*like[i])
                 for i, d in enumerate(t.shape) if d is None]
        return self(f"tensor.empty({', '.join(sizes)}) : {t}")

    def filled(self, value, t: TensorType, like=()) -> str:
        """``t`` filled with ``value``: tensor.empty + linalg.fill."""
        c = self.const(value, t.dtype)
        return self(f"linalg.fill ins({c} : {t.dtype}) outs({self.empty(t, like)} : {t}) -> {t}")

    def generic(self, ins, init: str, out: TensorType, maps, iterators, body) -> str:
        """``linalg.generic``: ``ins`` are (value, type); ``body(b, args)`` emits the
        scalar code on a nested emitter and returns the value to yield."""
        b = self.nested()
        args = [f"%in{next(b._counter)}" for _ in ins]
        out_arg = f"%out{next(b._counter)}"
        result = body(b, args + [out_arg])
        header = ", ".join(f"{a}: {t.dtype}" for a, (_, t) in zip(args, ins))
        header = ", ".join(filter(None, [header, f"{out_arg}: {out.dtype}"]))
        text = ("linalg.generic {indexing_maps = [" + ", ".join(maps) + "], iterator_types = ["
                + ", ".join(f'"{it}"' for it in iterators) + "]} ")
        if ins:
            text += f"ins({', '.join(v for v, _ in ins)} : {', '.join(str(t) for _, t in ins)}) "
        text += f"outs({init} : {out}) {{\n^bb0({header}):\n  "
        text += "\n  ".join(b.lines + [f"linalg.yield {result} : {out.dtype}"]) + f"\n}} -> {out}"
        return self(text)

    def elementwise(self, ins, out: TensorType, body, like=()) -> str:
        """An all-parallel identity-map ``linalg.generic`` producing ``out``."""
        rank = out.rank
        init = self.empty(out, like)
        return self.generic(ins, init, out, [identity(rank)] * (len(ins) + 1),
                            ["parallel"] * rank, body)


def function_text(operand_types, result_types, emit) -> str:
    """``func.func @f`` over the operand types whose body ``emit(e, args)`` writes."""
    e = Emitter()
    args = [f"%a{i}" for i in range(len(operand_types))]
    results = emit(e, args)
    results = [results] if isinstance(results, str) else list(results)
    params = ", ".join(f"{a}: {t}" for a, t in zip(args, operand_types))
    rtypes = ", ".join(str(t) for t in result_types)
    body = "\n  ".join(e.lines + [f"return {', '.join(results)} : {rtypes}"])
    return f"func.func @f({params}) -> ({rtypes}) {{\n  {body}\n}}"


def splice(op, text: str, operands=None) -> None:
    """Replace ``op`` by the body of the function in ``text`` (its arguments bound to
    ``operands``, by default ``op``'s); the new ops get ``op``'s location."""
    module = ir.Module.parse(text, context())
    block = module.body.operations[0].regions[0].blocks[0]
    for arg, value in zip(block.arguments, op.operands if operands is None else operands):
        arg.replace_all_uses_with(value)
    *ops, ret = list(block.operations)
    for inner in ops:
        inner = inner.operation
        inner.move_before(op)
        for nested in [inner, *walk(inner)]:
            nested.location = op.location
    for result, value in zip(op.results, list(ret.operation.operands)):
        result.replace_all_uses_with(value)
    op.erase()


# -- shared by the prim-to-linalg lowerings --------------------------------------------
class Unsupported(Exception):
    """A prim op case this pass has no lowering for (reported at the op)."""


def floats_wide(dtype: str) -> str:
    """The accumulator type for a float result: f32 for f16/bf16, else the type itself."""
    return "f32" if dtype in ("f16", "bf16") else dtype


def convert(b, value: str, src: str, dst: str) -> str:
    """Scalar conversion ``src`` -> ``dst`` (numpy ``astype`` semantics)."""
    if src == dst:
        return value
    if dst == "i1":  # nonzero -> true
        if is_float(src):
            return b(f"arith.cmpf une, {value}, {b.const(0, src)} : {src}")
        return b(f"arith.cmpi ne, {value}, {b.const(0, src)} : {src}")
    width = {"f16": 16, "bf16": 16, "f32": 32, "f64": 64}
    if is_float(src) and is_float(dst):
        if width[src] == width[dst]:  # f16 <-> bf16 goes through f32
            value, src = b(f"arith.extf {value} : {src} to f32"), "f32"
        if dst == "bf16":  # IREE 3.13 loses arith.truncf's rounding to bf16 in some fusions
            if src == "f64":
                value = b(f"arith.truncf {value} : f64 to f32")
            return f32_to_bf16_bits(b, value, nan=True)
        op = "extf" if width[src] < width[dst] else "truncf"
        return b(f"arith.{op} {value} : {src} to {dst}")
    if is_float(dst):
        op = "uitofp" if src == "i1" else "sitofp"
        if dst in ("f16", "bf16"):  # int -> f32 first: numpy's (ml_dtypes') rounding
            wide = b(f"arith.{op} {value} : {src} to f32")
            return f32_to_bf16_bits(b, wide) if dst == "bf16" else b(f"arith.truncf {wide} : f32 to f16")
        return b(f"arith.{op} {value} : {src} to {dst}")
    if is_float(src):
        return b(f"arith.fptosi {value} : {src} to {dst}")
    bits = lambda t: int(t[1:])  # noqa: E731
    op = "trunci" if bits(src) > bits(dst) else ("extui" if src == "i1" else "extsi")
    return b(f"arith.{op} {value} : {src} to {dst}")


def f32_to_bf16_bits(b, value: str, nan: bool = False) -> str:
    """Round an f32 to bf16, nearest-even, with integer ops (``nan``: a NaN stays a quiet
    NaN; without it the value must not be NaN, as an integer converted to f32 is not).

    ``arith.truncf`` would do, but (1) canonicalization folds ``truncf(sitofp(x))`` into
    ``sitofp(x) : i32 to bf16``, which LLVM lowers to a call of ``__truncsfbf2`` on CPUs
    without native bf16 (AVX2-only x86-64, ``cpu-generic``), a symbol IREE's embedded
    linker cannot resolve; (2) IREE 3.13 drops the rounding of ``truncf`` to bf16 when
    its result is extended again in some fusions (``x[::-1].astype(bf16).astype(f32)``
    keeps f32 precision: found by the JAX fuzzer). Inf stays inf; values past bf16's
    largest finite round to inf, as RNE does."""
    sixteen, one, half = b.const(16, "i32"), b.const(1, "i32"), b.const(0x7FFF, "i32")
    bits = b(f"arith.bitcast {value} : f32 to i32")
    lsb = b(f"arith.andi {b(f'arith.shrui {bits}, {sixteen} : i32')}, {one} : i32")
    rounded = b(f"arith.addi {bits}, {b(f'arith.addi {lsb}, {half} : i32')} : i32")
    high = b(f"arith.trunci {b(f'arith.shrui {rounded}, {sixteen} : i32')} : i32 to i16")
    if nan:
        is_nan = b(f"arith.cmpf uno, {value}, {value} : f32")
        high = b(f"arith.select {is_nan}, {b.const(0x7FC0, 'i16')}, {high} : i16")
    return b(f"arith.bitcast {high} : i16 to bf16")


def ttype(value) -> TensorType:
    return TensorType.from_mlir(value.type)


def attr(op, name, default=None):
    """An attribute as a Python value (``default`` when left out)."""
    if name not in op.attributes:
        return default
    attr = op.attributes[name]
    return [int(v) for v in attr] if isinstance(attr, ir.DenseI64ArrayAttr) else attr.value


def narrow(e, value: str, acc: TensorType, res: TensorType) -> str:
    """Round an f32 accumulator back to the f16/bf16 result type."""
    if acc == res:
        return value
    return e.elementwise([(value, acc)], res,
                         lambda s, xs: convert(s, xs[0], acc.dtype, res.dtype),
                         {i: (value, acc, i) for i in range(res.rank)})
