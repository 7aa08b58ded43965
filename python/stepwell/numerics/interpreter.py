"""Evaluate ``nn``/``prim``-level IR with the ops' numpy reference semantics.

The oracle for every lowering: a function whose body holds custom ops,
``arith.constant``, ``func.call`` and ``func.return`` runs here without compiling::

    outs = sw.interpreter.run(module, x, w)           # func @main
"""

from __future__ import annotations

import numpy as np

from stepwell.core import opspec
from stepwell.core.diagnostics import StepwellError, at
from stepwell.core.ir import ir
from stepwell.core.constants import constant_value
from stepwell.core.types import TensorType


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
        if op.name == "arith.constant":
            outs = [constant_value(op.attributes["value"], op.results[0].type)]
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
