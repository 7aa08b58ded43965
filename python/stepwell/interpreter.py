"""Evaluate ``nn``/``prim``-level IR with the ops' numpy reference semantics.

The oracle for every lowering: a function whose body holds custom ops,
``arith.constant``, ``func.call`` and ``func.return`` runs here without compiling::

    outs = sw.interpreter.run(module, x, w)           # func @main
"""

from __future__ import annotations

import numpy as np

from stepwell import opspec
from stepwell.diagnostics import StepwellError, at
from stepwell.ir import ir
from stepwell.types import TensorType, numpy_dtype


def constant_value(attr, result_type) -> np.ndarray:
    """The numpy value of a dense ``arith.constant`` attribute."""
    t = TensorType.from_mlir(result_type)
    dtype = numpy_dtype(t.dtype)
    if isinstance(attr, (ir.DenseFPElementsAttr, ir.DenseIntElementsAttr)) and attr.is_splat:
        return np.full(t.shape, attr.get_splat_value().value, dtype=dtype)
    if t.dtype == "bf16":  # no buffer protocol and no element access: read the printed form
        return _bf16_from_text(str(attr)).reshape(t.shape)
    if t.dtype == "i1":  # no buffer protocol: go element by element
        return np.array([attr[i] for i in range(len(attr))], dtype=dtype).reshape(t.shape)
    return np.array(attr, copy=True).astype(dtype).reshape(t.shape)


def _bf16_from_text(text: str) -> np.ndarray:
    """The flat values of a printed bf16 dense attribute: ``dense<"0x...">`` (raw
    little-endian bits) or ``dense<[1.0, ...]>``."""
    import re
    m = re.match(r'dense<"0x([0-9A-Fa-f]*)">', text)
    if m:
        return np.frombuffer(bytes.fromhex(m[1]), np.uint16).view(numpy_dtype("bf16")).copy()
    body = text[text.index("<") + 1:].split(">")[0]
    bits = [int(v, 16) if v.startswith("0x") else  # MLIR prints nan/inf as their bits
            int(np.array(float(v), np.float32).astype(numpy_dtype("bf16")).view(np.uint16))
            for v in re.findall(r"0x[0-9A-Fa-f]+|[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?", body)]
    return np.array(bits, np.uint16).view(numpy_dtype("bf16"))


def _attrs(op) -> dict:
    return {name: opspec.attr_to_python(op.attributes[name])[1] for name in op.attributes
            if "." not in name}


def _function(module, name: str):
    for f in module.body.operations:
        if f.operation.name == "func.func" and ir.StringAttr(f.attributes["sym_name"]).value == name:
            return f
    raise StepwellError(f"no function '{name}' in the module")


def run(module, *inputs, function: str = "main") -> list[np.ndarray]:
    """Run ``function`` on numpy ``inputs``; returns its results as a list."""
    mlir_module = getattr(module, "mlir", module)
    f = _function(mlir_module, function)
    block = f.regions[0].blocks[0]
    if len(inputs) != len(block.arguments):
        raise StepwellError(f"function '{function}' takes {len(block.arguments)} inputs, got {len(inputs)}")
    env = {}
    for arg, value in zip(block.arguments, inputs):
        env[arg] = np.asarray(value)
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
