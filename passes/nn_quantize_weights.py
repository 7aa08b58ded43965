"""The ``nn-quantize-weights`` pass: constant weights of ``nn.linear``/``nn.matmul`` become
int8/int4 ``nn.quantized_linear`` operands, their scales computed in numpy.

An ``nn.linear(x, w, b?)``, or an ``nn.matmul(x, w)`` with a 2-D ``w``, whose ``w`` is a
dense float ``arith.constant`` ``[in, out]`` is rewritten to ``nn.quantized_linear`` with
an i8 weight (int4: two per byte, ``[in, out/2]``), f32 scales ``[in/group_size, out]``
and, when ``symmetric=false``, i8 zero points (``stepwell.quantize``). ``group_size``
0 or -1, or one at least ``in``, means one group per output channel; a layer whose
``in`` the group size does not divide (or, for int4, with an odd ``out``) is left as it
is. Weights that are function arguments are not touched. Before::

    %w = arith.constant dense<...> : tensor<256x64xf32>
    %y = "nn.linear"(%x, %w, %b) : (tensor<4x256xf32>, tensor<256x64xf32>, tensor<64xf32>) -> tensor<4x64xf32>

after ``nn-quantize-weights{bits=4 group_size=128}``::

    %q = arith.constant dense<...> : tensor<256x32xi8>
    %s = arith.constant dense<...> : tensor<2x64xf32>
    %y = "nn.quantized_linear"(%x, %q, %s, %b) {bits = 4 : i64, group_size = 128 : i64}
           : (tensor<4x256xf32>, tensor<256x32xi8>, tensor<2x64xf32>, tensor<64xf32>) -> tensor<4x64xf32>
"""

from __future__ import annotations

import numpy as np

from stepwell.core import opspec
from stepwell.core import quantize as qz
from stepwell.core.diagnostics import StepwellError
from stepwell.core.constants import constant_value
from stepwell.core.ir import arith, context, ir
from stepwell.core.passes_base import Pass, register
from stepwell.core.types import TensorType, is_float
from stepwell.core.verifier import walk


def _constant_weight(value, rank: int = 2):
    """The numpy value of a dense float ``arith.constant`` of ``rank`` defining ``value``, else None."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    owner = owner.operation
    t = TensorType.from_mlir(value.type)
    if owner.name != "arith.constant" or t is None or t.rank != rank or not is_float(t.dtype) \
            or None in t.shape:
        return None
    attr = owner.attributes["value"]
    if not isinstance(attr, ir.DenseElementsAttr):
        return None
    return constant_value(attr, value.type).astype(np.float32)


def _dense(array: np.ndarray, dtype: str):
    t = TensorType(array.shape, dtype).to_mlir()
    return arith.ConstantOp(t, ir.DenseElementsAttr.get(np.ascontiguousarray(array), type=t)).result


# op -> the operand numbers of its stacked [E, in, out] expert weights
_EXPERT_WEIGHTS = {
    "nn.moe_ffn": lambda op: range(3, len(op.operands)),  # w_gate, w_up?, w_down
    "nn.grouped_matmul": lambda op: (1,),
}


@register
class NnQuantizeWeights(Pass):
    """Rewrite nn.linear/nn.matmul with constant weights to int8/int4 nn.quantized_linear.

    Options: ``bits`` (8 or 4), ``group_size`` (elements per scale along ``in``; 0 or -1:
    per output channel), ``symmetric`` (false: i8 zero points, the range min..max).
    """

    name = "nn-quantize-weights"
    bits: int = 8
    group_size: int = 128
    symmetric: bool = True

    def run(self, module) -> None:
        if self.bits not in qz.BITS:
            raise StepwellError(f"nn-quantize-weights: bits must be 8 or 4, found {self.bits}")
        if self.group_size < -1:
            raise StepwellError(f"nn-quantize-weights: group_size must be positive, or 0/-1 per channel, "
                             f"found {self.group_size}")
        with context():
            for op in [o for o in walk(module.operation) if o.name in ("nn.linear", "nn.matmul")]:
                self._rewrite(op)
            for op in [o for o in walk(module.operation) if o.name in _EXPERT_WEIGHTS]:
                for i in _EXPERT_WEIGHTS[op.name](op):
                    self._rewrite_experts(op, i)

    def _rewrite_experts(self, op, i: int) -> None:
        """Stacked expert weight operand ``i`` ([E, in, out] constant) -> nn.dequantize of int8/int4."""
        w = op.operands[i]
        weight = _constant_weight(w, rank=3)
        if weight is None:
            return
        gs = qz.effective_group_size(self.group_size, weight.shape[1])
        if gs is None or (self.bits == 4 and weight.shape[2] % 2):
            return
        scales, zero = qz.compute_scales(weight, self.bits, gs, 1, self.symmetric)
        q = qz.quantize(weight, scales, zero, self.bits, gs, 1)
        with ir.InsertionPoint(op), op.location:
            operands = [_dense(q, "i8"), _dense(scales.astype(np.float32), "f32")]
            if zero is not None:
                operands.append(_dense(zero, "i8"))
            deq = opspec.lookup("nn.dequantize").build(*operands, bits=self.bits, group_size=gs, axis=1)
        op.operands[i] = deq
        const = w.owner.operation
        if not list(const.results[0].uses):
            const.erase()

    def _rewrite(self, op) -> None:
        x, w = op.operands[0], op.operands[1]
        xt = TensorType.from_mlir(x.type)
        weight = _constant_weight(w)
        if weight is None or xt is None or not is_float(xt.dtype) or xt.rank < 1:
            return
        k, n = weight.shape
        gs = qz.effective_group_size(self.group_size, k)
        if gs is None or (self.bits == 4 and n % 2):
            return
        q, scales, zero = qz.quantize_weight(weight, self.bits, gs, self.symmetric)
        with ir.InsertionPoint(op), op.location:
            operands = [x, _dense(q, "i8"), _dense(scales, "f32")]
            if zero is not None:
                operands.append(_dense(zero, "i8"))
            operands += list(op.operands[2:])  # the bias
            new = opspec.lookup("nn.quantized_linear").build(
                *operands, result_type=op.results[0].type, bits=self.bits, group_size=gs)
        op.results[0].replace_all_uses_with(new)
        const = w.owner.operation
        op.erase()
        if not list(const.results[0].uses):
            const.erase()
