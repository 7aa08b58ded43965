"""The ``nn-precision`` pass: run a module's compute in bf16 or f16, keeping accumulation
and numerically sensitive ops in f32.

Contractions (``matmul``, ``linear``, ``quantized_linear``), convolutions, elementwise
ops and activations take their f32 operands cast to ``compute`` (constants are converted
in place: the weights are stored in the low type); contractions declare an
``accumulate`` (f32) result, the rest give ``compute`` results cast back to f32. The ops
named in ``keep`` stay in f32 (default: norms, softmax, reductions and attention, whose
softmax sums many terms); a constant rearranged by transposes/reshapes (a tied output
embedding) becomes a low-type constant of the rearranged shape; shape ops (reshape, transpose, concat, embedding) follow their
operands: they run in the low type when their inputs already are. A cast back to f32
that is cast down again is not inserted (``cast(cast(x))`` to x's type is x), so the low
type flows between consecutive ops. Function signatures are unchanged: f32 in, f32 out.

    %0 = "nn.linear"(%x, %w) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    %1 = "nn.gelu"(%0) : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %2 = "nn.softmax"(%1) : (tensor<4x16xf32>) -> tensor<4x16xf32>
  with ``nn-precision{compute=bf16}`` becomes
    %w = arith.constant dense<...> : tensor<8x16xbf16>
    %x16 = "nn.cast"(%x) : (tensor<4x8xf32>) -> tensor<4x8xbf16>
    %0 = "nn.linear"(%x16, %w) : (tensor<4x8xbf16>, tensor<8x16xbf16>) -> tensor<4x16xf32>
    %a = "nn.cast"(%0) : (tensor<4x16xf32>) -> tensor<4x16xbf16>
    %1 = "nn.gelu"(%a) : (tensor<4x16xbf16>) -> tensor<4x16xbf16>
    %b = "nn.cast"(%1) : (tensor<4x16xbf16>) -> tensor<4x16xf32>
    %2 = "nn.softmax"(%b) : (tensor<4x16xf32>) -> tensor<4x16xf32>
"""

from __future__ import annotations

import numpy as np

from stepwell.core import opspec
from stepwell.core.diagnostics import StepwellError
from stepwell.core.ir import arith, context, ir
from stepwell.core.passes_base import Pass, register
from stepwell.core.types import TensorType, is_float, numpy_dtype

LOW = ("bf16", "f16")
DEFAULT_KEEP = ("layer_norm", "rms_norm", "softmax", "reduce_sum", "reduce_mean", "reduce_max", "attention")
CONTRACTIONS = ("matmul", "linear", "quantized_linear", "moe_ffn", "grouped_matmul")
COMPUTE = CONTRACTIONS + (
    "conv2d", "add", "sub", "mul", "div", "maximum", "minimum", "relu", "gelu", "silu", "sigmoid",
    "tanh", "exp", "attention", "softmax", "layer_norm", "rms_norm", "reduce_sum", "reduce_mean",
    "reduce_max")
FOLLOW = ("reshape", "transpose", "concat", "embedding")
# operands that stay f32 whatever the policy: quantization scales (nn_quant.py wants f32),
# MoE routing weights
F32_OPERANDS = {"quantized_linear": (2,), "moe_ffn": (1,)}  # (moe_ffn: the routing weights)


def _ttype(value) -> TensorType | None:
    return TensorType.from_mlir(value.type)


def _owner(value):
    owner = value.owner
    return None if isinstance(owner, ir.Block) else owner.operation


def _low_constant(const, dtype: str):
    """A dense f32 ``arith.constant`` converted to ``dtype`` (a new constant before it)."""
    t = _ttype(const.results[0]).with_dtype(dtype)
    attr = const.attributes["value"]
    with ir.InsertionPoint(const), const.location:
        if attr.is_splat:
            value = float(attr.get_splat_value().value)
            new = ir.DenseElementsAttr.get_splat(t.to_mlir(), ir.FloatAttr.get(t.to_mlir().element_type, value))
        else:
            data = np.array(attr, copy=True).astype(np.float32)
            new = _dense(data, t)
        return arith.ConstantOp(t.to_mlir(), new).result


def _dense(data: np.ndarray, t: TensorType):
    low = np.ascontiguousarray(data.astype(numpy_dtype(t.dtype)))
    return ir.DenseElementsAttr.get(low.view(np.uint16), type=t.to_mlir())


# shape ops whose result is a rearranged constant: folded (in numpy) into the low constant
_SHAPE_OPS = ("nn.transpose", "nn.reshape", "prim.transpose", "prim.reshape")


def _shaped_constant(value, depth: int = 4):
    """The numpy value of ``value`` when it is a dense f32 constant rearranged by shape
    ops (a transposed weight such as GPT-2's tied output embedding), else None."""
    owner = _owner(value)
    if owner is None or depth == 0 or owner.name not in _SHAPE_OPS or len(owner.operands) != 1:
        return None
    src = owner.operands[0]
    inner = _owner(src)
    if inner is not None and inner.name == "arith.constant":
        from stepwell.core.constants import constant_value
        if not isinstance(inner.attributes["value"], ir.DenseElementsAttr):
            return None
        data = constant_value(inner.attributes["value"], src.type)
    else:
        data = _shaped_constant(src, depth - 1)
    if data is None:
        return None
    spec = opspec.lookup(owner.name)
    attrs = {n: opspec.attr_to_python(owner.attributes[n])[1] for n in owner.attributes if "." not in n}
    return spec.evaluate([data], attrs, [_ttype(value)])[0]


@register
class NnPrecision(Pass):
    """Cast a module's compute to bf16/f16; contractions accumulate in f32; keep sensitive ops in f32.

    ``compute`` is ``bf16`` or ``f16`` (``f32``: nothing changes); ``accumulate`` is the
    result type of contractions (``f32``, or the compute type); ``keep`` lists nn op
    names (without ``nn.``) that stay in f32. See the module docstring for an example.
    """

    name = "nn-precision"
    compute: str = "bf16"
    accumulate: str = "f32"
    keep: tuple = DEFAULT_KEEP

    def run(self, module) -> None:
        if self.compute == "f32":
            return
        if self.compute not in LOW:
            raise StepwellError(f"nn-precision: compute must be bf16, f16 or f32, found '{self.compute}'")
        if self.accumulate not in ("f32", self.compute):
            raise StepwellError(f"nn-precision: accumulate must be f32 or {self.compute}, "
                                f"found '{self.accumulate}'")
        keep = {k.removeprefix("nn.") for k in (self.keep if isinstance(self.keep, (tuple, list)) else [self.keep])}
        bad = sorted(keep - {s.mnemonic for s in opspec.specs("nn")})
        if bad:
            raise StepwellError(f"nn-precision: keep names unknown nn ops: {', '.join(bad)}")
        with context():
            for f in module.body.operations:
                if f.operation.name == "func.func":
                    for block in f.regions[0].blocks:
                        _Rewriter(self.compute, self.accumulate, keep).run(block)


class _Rewriter:
    def __init__(self, compute: str, accumulate: str, keep: set):
        self.low, self.acc, self.keep = compute, accumulate, keep
        self.low_of = {}        # f32 value -> the same value in the low type
        self.cast_nn = opspec.lookup("nn.cast")
        self.replaced = []      # f32 constants (and shape ops of them) given a low-type copy

    def run(self, block) -> None:
        ops = [op.operation for op in block.operations]
        for i, op in enumerate(ops):
            if not op.name.startswith("nn."):
                continue
            kind = op.name[3:]
            if kind in self.keep or not self._from_f32(op):
                continue
            if kind in COMPUTE or (kind in FOLLOW and self._inputs_are_low(op)):
                self._convert(op, kind, ops[i + 1])
        _fold_cast_pairs(block)
        for op in reversed([o.operation for o in block.operations]):  # casts left unused
            if op.name == "nn.cast" and not list(op.results[0].uses):
                op.erase()
        for const in self.replaced:  # f32 constants whose users all took the converted copy
            if not list(const.results[0].uses):
                const.erase()

    def _from_f32(self, op) -> bool:
        """All float operands and results are f32 (the policy converts f32 programs)."""
        floats = [t for t in map(_ttype, [*op.operands, *op.results]) if t is not None and is_float(t.dtype)]
        return bool(floats) and all(t.dtype == "f32" for t in floats)

    def _inputs_are_low(self, op) -> bool:
        floats = [v for v in op.operands if is_float(_ttype(v).dtype)]
        return bool(floats) and all(v in self.low_of for v in floats)

    def _lowered(self, value, before):
        """``value`` (f32) in the low type: known, a converted constant, or a new cast."""
        if value in self.low_of:
            return self.low_of[value]
        owner = _owner(value)
        shaped = _shaped_constant(value)
        if owner is not None and owner.name == "arith.constant" and isinstance(
                owner.attributes["value"], ir.DenseElementsAttr):
            low = _low_constant(owner, self.low)
            self.replaced.append(owner)
        elif shaped is not None:
            t = _ttype(value).with_dtype(self.low)
            with ir.InsertionPoint(before), before.location:
                low = arith.ConstantOp(t.to_mlir(), _dense(shaped, t)).result
            self.replaced.append(owner)  # the shape op, erased if nothing else uses it
        else:
            with ir.InsertionPoint(before), before.location:
                low = self.cast_nn.build(value, result_type=_ttype(value).with_dtype(self.low))
        self.low_of[value] = low
        return low

    def _convert(self, op, kind: str, next_op) -> None:
        accumulates = kind in CONTRACTIONS and self.acc == "f32"
        for i, v in enumerate(list(op.operands)):
            t = _ttype(v)
            if not is_float(t.dtype) or i in F32_OPERANDS.get(kind, ()):
                continue
            if accumulates and kind in ("linear", "quantized_linear") and t.rank == 1 and i >= 2:
                continue  # the bias is added to the f32 accumulator in f32
            op.operands[i] = self._lowered(v, op)
        if accumulates:
            return  # the result stays f32: the contraction's accumulator type
        for r in op.results:
            t = _ttype(r)
            if not is_float(t.dtype):
                continue
            r.set_type(t.with_dtype(self.low).to_mlir())
            with ir.InsertionPoint(next_op), op.location:
                back = self.cast_nn.build(r, result_type=t)
            r.replace_all_uses_except(back, _owner(back))
            self.low_of[back] = r  # cast(cast(r)) to r's type is r: later users take r


_WIDTH = {"bf16": 1, "f16": 1, "f32": 2, "f64": 3}


def _fold_cast_pairs(block) -> None:
    """cast(cast(x : A -> B) : B -> A) is x when A -> B is exact (a widening)."""
    for op in [o.operation for o in block.operations]:
        if op.name != "nn.cast":
            continue
        inner = _owner(op.operands[0])
        if inner is None or inner.name != "nn.cast":
            continue
        x = inner.operands[0]
        a, b = _ttype(x).dtype, _ttype(inner.results[0]).dtype
        if x.type == op.results[0].type and _WIDTH.get(a, 9) < _WIDTH.get(b, 0):
            op.results[0].replace_all_uses_with(x)


POLICIES = {"bf16": "nn-precision{compute=bf16}", "f16": "nn-precision{compute=f16}", "f32": "",
            "int8": "nn-quantize-weights{bits=8}", "int4": "nn-quantize-weights{bits=4}"}


def policy_pipeline(precision: str) -> str:
    """The pass pipeline of a precision policy: ``"bf16"``, ``"f16"``, ``"f32"``, ``"int8"``,
    ``"int4"`` or a combination such as ``"bf16+int8"`` (weights quantized first)."""
    parts = [p.strip() for p in str(precision).replace(",", "+").split("+") if p.strip()]
    bad = [p for p in parts if p not in POLICIES]
    if not parts or bad:
        raise StepwellError(f"unknown precision '{precision}' (one of {', '.join(POLICIES)}, "
                            f"or a combination such as bf16+int8)")
    ordered = sorted(parts, key=lambda p: not p.startswith("int"))  # quantize before casting
    return ",".join(POLICIES[p] for p in ordered if POLICIES[p])


# Backends where int4 weights computed wrong results (IREE 3.13, Vulkan on lavapipe).
INT4_UNSUPPORTED = ("vulkan-spirv",)


def check_target(precision: str | None, target, module=None) -> None:
    """Reject a policy whose compute type the target lacks (its capabilities table), and
    int4 weights (a policy's or the module's own) on backends known to miscompile them."""
    if target is None:
        return
    if target.backend in INT4_UNSUPPORTED:
        from stepwell.core.verifier import walk
        int4 = precision is not None and "int4" in str(precision)
        int4 = int4 or module is not None and any(
            op.name in ("nn.quantized_linear", "nn.dequantize", "nn.quantize") and "bits" in op.attributes
            and opspec.attr_to_python(op.attributes["bits"])[1] == 4 for op in walk(module.operation))
        if int4:
            raise StepwellError(f"int4 weights are not supported on target '{target.spec}': IREE 3.13 "
                                "computed wrong results for them there; use int8")
    if precision is None:
        return
    for dtype in ("bf16", "f16"):
        if dtype in policy_pipeline(precision) and not getattr(target.capabilities, dtype, True):
            other = "f16" if dtype == "bf16" else "f32"
            raise StepwellError(f"precision '{precision}' computes in {dtype}, which target "
                                f"'{target.spec}' does not support: use {other} (or an int8/int4 policy)")


def apply_policy(module, precision: str):
    """A copy of an nn-level ``module`` with the precision policy applied."""
    from stepwell.core.pipeline import Pipeline
    from stepwell.core.verifier import walk
    text = policy_pipeline(precision)
    if text and not any(op.name.startswith("nn.") for op in walk(module.operation)):
        raise StepwellError(f"precision '{precision}' applies to nn-level modules: "
                            f"'{module.name}' holds no nn ops")
    copy = module.clone()
    if text:
        Pipeline(text).run(copy)
    return copy
