"""Evaluate ``nn``/``prim``-level IR with the ops' numpy reference semantics.

The oracle for every lowering: a function whose body holds custom ops,
``arith.constant``, ``func.call`` and ``func.return`` (and the size arithmetic of
dynamic shapes: ``tensor.dim``, ``tensor.from_elements``, integer ``arith`` ops on
``index`` and scalars) runs here without compiling::

    outs = sw.interpreter.run(module, x, w)           # func @main
"""

from __future__ import annotations

import numpy as np

from stepwell.core import opspec
from stepwell.core.diagnostics import StepwellError, at
from stepwell.core.ir import ir
from stepwell.core.constants import constant_value
from stepwell.core.types import TensorType


def _int_attr(op, name: str) -> int:
    return ir.IntegerAttr(op.attributes[name]).value


def _scalar_type(t):
    """The numpy type of a scalar MLIR type (index: Python int)."""
    if isinstance(t, ir.IndexType):
        return int
    from stepwell.core.types import numpy_dtype
    return numpy_dtype(str(t)).type


def _cast(op, x):
    return _scalar_type(op.results[0].type)(x)


_CMPI = {0: np.equal, 1: np.not_equal, 2: np.less, 3: np.less_equal, 4: np.greater, 5: np.greater_equal}

# The size arithmetic of dynamic shapes (scalars and index values).
SCALAR_OPS = {
    "tensor.dim": lambda op, x, i: int(np.shape(x)[int(i)]),
    "tensor.from_elements": lambda op, *xs: np.asarray(xs, dtype=TensorType.from_mlir(
        op.results[0].type).numpy_dtype()).reshape(TensorType.from_mlir(op.results[0].type).shape),
    "tensor.extract": lambda op, x, *idx: np.asarray(x)[tuple(int(i) for i in idx)].item(),
    "arith.muli": lambda op, a, b: _cast(op, a * b),
    "arith.addi": lambda op, a, b: _cast(op, a + b),
    "arith.subi": lambda op, a, b: _cast(op, a - b),
    "arith.divsi": lambda op, a, b: _cast(op, int(a / b)),
    "arith.divui": lambda op, a, b: _cast(op, a // b),
    "arith.ceildivsi": lambda op, a, b: _cast(op, -(-a // b)),
    "arith.floordivsi": lambda op, a, b: _cast(op, a // b),
    "arith.remsi": lambda op, a, b: _cast(op, int(np.fmod(a, b))),
    "arith.maxsi": lambda op, a, b: _cast(op, max(a, b)),
    "arith.minsi": lambda op, a, b: _cast(op, min(a, b)),
    "arith.cmpi": lambda op, a, b: bool(_CMPI[_int_attr(op, "predicate")](a, b)),
    "arith.select": lambda op, c, a, b: a if c else b,
    "arith.index_cast": _cast,
    "arith.extsi": _cast,
    "arith.trunci": _cast,
    "arith.sitofp": _cast,
}


def _scalar_attr(attr):
    if isinstance(attr, ir.BoolAttr):
        return attr.value
    if isinstance(attr, ir.IntegerAttr):
        return attr.value
    return ir.FloatAttr(attr).value


def _attrs(op) -> dict:
    return {name: opspec.attr_to_python(op.attributes[name])[1] for name in op.attributes
            if "." not in name}


def _function(module, name: str):
    for f in module.body.operations:
        if f.operation.name == "func.func" and ir.StringAttr(f.attributes["sym_name"]).value == name:
            return f
    raise StepwellError(f"no function '{name}' in the module")


def _checked_input(value: np.ndarray, mlir_type, function: str, index: int) -> np.ndarray:
    """``value`` if it fits the argument's tensor type (static dims and dtype), else a
    StepwellError saying what was expected, like a compiled Executable does."""
    t = TensorType.from_mlir(mlir_type)
    if t is None:
        return value
    fits = value.ndim == t.rank and all(d is None or d == n for d, n in zip(t.shape, value.shape))
    try:
        fits = fits and value.dtype == t.numpy_dtype()
    except ValueError:  # an element type numpy lacks: the shape check is all there is
        pass
    if not fits:
        got = f"{value.dtype}[{','.join(map(str, value.shape))}]"
        raise StepwellError(f"function '{function}' argument {index} expects {t}, got {got}")
    return value


def run(module, *inputs, function: str = "main") -> list[np.ndarray]:
    """Run ``function`` on numpy ``inputs``; returns its results as a list."""
    mlir_module = getattr(module, "mlir", module)
    f = _function(mlir_module, function)
    block = f.regions[0].blocks[0]
    if len(inputs) != len(block.arguments):
        raise StepwellError(f"function '{function}' takes {len(block.arguments)} inputs, got {len(inputs)}")
    env = {}
    for i, (arg, value) in enumerate(zip(block.arguments, inputs)):
        env[arg] = _checked_input(np.asarray(value), arg.type, function, i)
    for view in block.operations:
        op = view.operation
        args = [env[v] for v in op.operands]
        if op.name == "func.return":
            return args
        if op.name == "arith.constant" and not isinstance(op.results[0].type, ir.ShapedType):
            outs = [_scalar_type(op.results[0].type)(_scalar_attr(op.attributes["value"]))]
        elif op.name == "arith.constant":
            outs = [constant_value(op.attributes["value"], op.results[0].type)]
        elif op.name in SCALAR_OPS:
            outs = [SCALAR_OPS[op.name](op, *args)]
        elif op.name == "func.call":
            callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
            outs = run(module, *args, function=callee)
        elif opspec.is_custom(op.name):
            spec = opspec.lookup(op.name)
            results = [TensorType.from_mlir(r.type) for r in op.results]
            present = list(args)
            outs = spec.evaluate(present, _attrs(op), results)
        else:
            raise StepwellError([at(op.location, f"the numpy interpreter cannot run '{op.name}'")])
        for r, value in zip(op.results, outs):
            env[r] = value
    raise StepwellError(f"function '{function}' has no return")
