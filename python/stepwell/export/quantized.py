"""Weight-only quantization of exported parameters (``sw.jax.export(..., quantize="int8")``).

The export keeps every weight out of the module (``#flow.parameter.named`` globals), so
``nn-quantize-weights``, which rewrites dense constants, never sees them. Here the same
rewrite is done on the function arguments that carry the parameters, and the numbers
are computed on the host when the archive is written:

* a parameter used as the weight of an ``nn.linear`` / 2-D ``nn.matmul`` (``[in, out]``;
  also a plain ``x @ w`` ``stablehlo.dot_general``, which the raising leaves as it is
  when the batch is dynamic)
  becomes up to three parameters, ``<name>.qweight`` (i8 ``[in, out]``; int4: packed,
  ``[in, out/2]``), ``<name>.scales`` (f32 ``[in/group_size, out]``) and, asymmetric,
  ``<name>.zero_points`` (i8), and the layer an ``nn.quantized_linear``;
* a parameter used *transposed* as such a weight (the tied output embedding,
  ``h @ wte.T``) gets ``<name>.T.qweight`` ... for that use; its other uses (the
  embedding gather) keep the float table, which is therefore stored as well;
* a parameter used as the stacked expert weights ``[E, in, out]`` of ``nn.moe_ffn`` or
  ``nn.grouped_matmul`` is quantized per expert the same way (``<name>.qweight`` i8
  ``[E, in, out]``, ``<name>.scales`` f32 ``[E, in/group_size, out]``) and read through
  an ``nn.dequantize {axis = 1}`` (docs/moe.md);
* a float parameter left with no use is not written at all; every other parameter
  (biases, norms, embeddings, layers whose ``in`` the group size does not divide, int4
  layers with an odd ``out``) stays as it was.

Before (the function JAX lowers, parameters first)::

    func.func @main(%b: tensor<64xf32>, %w: tensor<256x64xf32>, %x: tensor<4x256xf32>) -> ... {
      %y = "nn.linear"(%x, %w, %b) : (...) -> tensor<4x64xf32>

after ``int4``, group size 128 (the new parameters are appended after the inputs)::

    func.func @main(%b: tensor<64xf32>, %x: tensor<4x256xf32>, %q: tensor<256x32xi8>,
                    %s: tensor<2x64xf32>) -> ... {
      %y = "nn.quantized_linear"(%x, %q, %s, %b) {bits = 4 : i64, group_size = 128 : i64} : ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from stepwell.core.diagnostics import StepwellError

MODES = {"int8": 8, "int4": 4}
ROLES = ("qweight", "scales", "zero_points")
_LINEAR = ("nn.linear", "nn.matmul")
_TRANSPOSE = ("prim.transpose", "nn.transpose")


@dataclass(frozen=True)
class Options:
    mode: str
    bits: int
    group_size: int
    symmetric: bool

    def as_json(self) -> dict:
        return {"mode": self.mode, "bits": self.bits, "group_size": self.group_size,
                "symmetric": self.symmetric}


def options(quantize, group_size, symmetric) -> Options | None:
    """The checked ``quantize=``/``group_size=``/``symmetric=`` options (None: float export)."""
    if quantize is None:
        return None
    if not isinstance(quantize, str) or quantize not in MODES:
        raise StepwellError(f"export: quantize must be one of None, 'int8', 'int4', found {quantize!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < -1:
        raise StepwellError(f"export: group_size must be a positive integer, or 0/-1 for one group "
                            f"per output channel, found {group_size!r}")
    if not isinstance(symmetric, (bool, np.bool_)):
        raise StepwellError(f"export: symmetric must be True or False, found {symmetric!r}")
    return Options(quantize, MODES[quantize], int(group_size), bool(symmetric))


@dataclass
class Weight:
    """One quantized use of a float parameter: the weight ``[in, out]`` it stands for
    (``transposed``: the parameter is ``[out, in]``) and its new parameters."""
    source: int                 # index of the float parameter
    name: str                   # the float parameter's name
    transposed: bool
    shape: tuple                # [in, out] of the weight as the layer uses it
    group_size: int             # effective: 0 is one group per output channel
    params: dict = field(default_factory=dict)   # role -> archive name
    layers: int = 0

    def arrays(self, leaf, opts: Options) -> dict:
        """role -> numpy array, computed from the float parameter's value."""
        from stepwell.core import quantize as qz
        w = np.asarray(leaf).astype(np.float32)
        if w.ndim == 3:  # stacked expert weights [E, in, out]: groups along `in`, per expert
            s, z = qz.compute_scales(w, opts.bits, self.group_size, 1, opts.symmetric)
            return {"qweight": qz.quantize(w, s, z, opts.bits, self.group_size, 1), "scales": s, "zero_points": z}
        if self.transposed:
            w = w.T
        q, s, z = qz.quantize_weight(w, opts.bits, self.group_size, opts.symmetric)
        return {"qweight": q, "scales": s, "zero_points": z}


@dataclass
class Plan:
    """What the rewrite did: the float parameters kept (indices, in order), the new
    parameters appended to the signature, and why linear weights stayed float."""
    keep: list
    weights: list               # Weight
    new_params: list            # (archive name, TensorType, Weight, role)
    skipped: dict               # float parameter name -> reason
    stablehlo: bool = False     # some weights are dequantized in StableHLO (dot_general uses)


def _owner(use):
    owner = use.owner
    return getattr(owner, "operation", owner)


def _is_transpose_2d(op) -> bool:
    from stepwell.core import opspec
    if op.name not in _TRANSPOSE or "permutation" not in op.attributes:
        return False
    return list(opspec.attr_to_python(op.attributes["permutation"])[1]) == [1, 0]


_DOT = re.compile(r"#stablehlo\.dot<lhs_contracting_dimensions = \[(\d+)\], "
                  r"rhs_contracting_dimensions = \[0\]>")


def _linear_weight_use(op, operand_number: int) -> bool:
    """``op`` takes the value as the ``[in, out]`` weight of a float linear layer: an
    ``nn.linear``/``nn.matmul``, or a ``stablehlo.dot_general`` contracting ``x``'s last
    dimension with the weight's first and nothing else (what the raising leaves
    unraised when the batch is dynamic)."""
    from stepwell.core.types import TensorType, is_float
    if op.name not in (*_LINEAR, "stablehlo.dot_general") or operand_number != 1:
        return False
    xt = TensorType.from_mlir(op.operands[0].type)
    wt = TensorType.from_mlir(op.operands[1].type)
    if xt is None or not is_float(xt.dtype) or xt.rank < 1 or wt is None or wt.rank != 2:
        return False
    if op.name == "stablehlo.dot_general":
        dims = _DOT.fullmatch(str(op.attributes["dot_dimension_numbers"]))
        return dims is not None and int(dims[1]) == xt.rank - 1
    return True


# op -> its operand numbers that are stacked [E, in, out] expert weights
_EXPERTS = {"nn.moe_ffn": lambda op: range(3, len(op.operands)), "nn.grouped_matmul": lambda op: (1,)}


def _expert_uses(value) -> list:
    """(op, operand number) where ``value`` is the stacked expert weights of an MoE op."""
    return [(_owner(u), u.operand_number) for u in value.uses
            if _owner(u).name in _EXPERTS and u.operand_number in _EXPERTS[_owner(u).name](_owner(u))]


def _unique(ops) -> list:
    out = []
    for op in ops:
        if not any(op == o for o in out):
            out.append(op)
    return out


def _linear_uses(value) -> list:
    return _unique(_owner(u) for u in value.uses if _linear_weight_use(_owner(u), u.operand_number))


def rewrite(module, names: list[str], n_params: int, opts: Options) -> Plan:
    """Quantize the linear weights among ``@main``'s parameter arguments (JAX's
    dimension arguments, then ``n_params`` parameters named ``names``, then the inputs)
    in place; returns the plan that says which arrays the archive gets."""
    from stepwell.core import opspec
    from stepwell.core import quantize as qz
    from stepwell.frontends.jax.dims import dim_vars
    from stepwell.core.ir import context, ir
    from stepwell.core.types import TensorType, is_float

    taken = set(names)
    weights, new_params, skipped = [], [], {}
    plan_hlo = [False]
    builder = opspec.lookup("nn.quantized_linear")
    with context():
        main = next((op for op in module.body.operations if op.operation.name == "func.func"
                     and ir.StringAttr(op.attributes["sym_name"]).value == "main"), None)
        if main is None:
            raise StepwellError("export: the lowered module has no @main")
        block = main.regions[0].blocks[0]
        n_dims = len(dim_vars(main))
        loc = ir.Location.unknown()

        def add_param(w: Weight, role: str, array_type: TensorType):
            base = f"{w.name}.T" if w.transposed else w.name
            name = f"{base}.{role}"
            if name in taken:
                raise StepwellError(f"export: cannot name the quantized parameter '{name}': "
                                    "a parameter of that name exists")
            taken.add(name)
            arg = block.add_argument(array_type.to_mlir(), loc)
            new_params.append((name, array_type, w, role))
            w.params[role] = name
            return arg

        def quantize_layers(j: int, layers: list, t: TensorType, transposed: bool) -> None:
            """Replace ``layers`` (linear ops whose weight is parameter j, or its transpose
            ``t``) by quantized_linear ops reading new parameters."""
            if not layers:
                return
            k, n = t.shape
            gs = qz.effective_group_size(opts.group_size, k)
            why = None
            if gs is None:
                why = f"group size {opts.group_size} does not divide in ({k})"
            elif opts.bits == 4 and n % 2:
                why = f"int4 needs an even out size, found {n}"
            if why is not None:
                skipped[names[j] + (" (transposed)" if transposed else "")] = why
                return
            w = Weight(j, names[j], transposed, (k, n), gs)
            groups = 1 if gs == 0 else k // gs
            q = add_param(w, "qweight", TensorType((k, n // 2 if opts.bits == 4 else n), "i8"))
            s = add_param(w, "scales", TensorType((groups, n), "f32"))
            z = None if opts.symmetric else add_param(w, "zero_points", TensorType((groups, n), "i8"))
            for op in layers:
                if op.name == "stablehlo.dot_general":
                    with ir.InsertionPoint(op), op.location:
                        op.operands[1] = _stablehlo_dequantize(q, s, z, t, opts.bits, gs)
                    w.layers += 1
                    plan_hlo[0] = True
                    continue
                bias = list(op.operands[2:]) if op.name in _LINEAR else []
                operands = [op.operands[0], q, s] + ([z] if z is not None else []) + bias
                with ir.InsertionPoint(op), op.location:
                    new = builder.build(*operands, result_type=op.results[0].type, bits=opts.bits,
                                        group_size=gs)
                op.results[0].replace_all_uses_with(new)
                op.erase()
                w.layers += 1
            weights.append(w)

        def quantize_experts(j: int, uses: list, t: TensorType) -> None:
            """Parameter j, the [E, in, out] experts of ``uses``, read through nn.dequantize."""
            e, k, n = t.shape
            gs = qz.effective_group_size(opts.group_size, k)
            if gs is None or (opts.bits == 4 and n % 2):
                skipped[names[j]] = f"group size {opts.group_size} does not divide in ({k})" if gs is None \
                    else f"int4 needs an even out size, found {n}"
                return
            w = Weight(j, names[j], False, (e, k, n), gs)
            groups = 1 if gs == 0 else k // gs
            q = add_param(w, "qweight", TensorType((e, k, n // 2 if opts.bits == 4 else n), "i8"))
            s = add_param(w, "scales", TensorType((e, groups, n), "f32"))
            z = None if opts.symmetric else add_param(w, "zero_points", TensorType((e, groups, n), "i8"))
            for op, i in uses:
                with ir.InsertionPoint(op), op.location:
                    op.operands[i] = opspec.lookup("nn.dequantize").build(
                        *[v for v in (q, s, z) if v is not None], bits=opts.bits, group_size=gs, axis=1)
                w.layers += 1
            weights.append(w)

        for j in range(n_params):
            arg = block.arguments[n_dims + j]
            t = TensorType.from_mlir(arg.type)
            if t is not None and t.rank == 3 and is_float(t.dtype) and None not in t.shape and _expert_uses(arg):
                quantize_experts(j, _expert_uses(arg), t)
                continue
            if t is None or t.rank != 2 or not is_float(t.dtype) or None in t.shape:
                continue
            quantize_layers(j, _linear_uses(arg), t, transposed=False)
            transposes = _unique(_owner(u) for u in arg.uses if _is_transpose_2d(_owner(u)))
            layers = _unique(layer for op in transposes for layer in _linear_uses(op.results[0]))
            quantize_layers(j, layers, TensorType((t.shape[1], t.shape[0]), t.dtype), transposed=True)
            for op in transposes:
                if not list(op.results[0].uses):
                    op.erase()

        keep = [j for j in range(n_params) if list(block.arguments[n_dims + j].uses)]
        gone = [j for j in range(n_params) if j not in keep]
        attrs = (list(ir.ArrayAttr(main.attributes["arg_attrs"])) if "arg_attrs" in main.attributes
                 else [ir.DictAttr.get({})] * (len(block.arguments) - len(new_params)))
        for j in reversed(gone):
            block.erase_argument(n_dims + j)
            del attrs[n_dims + j]
        attrs += [ir.DictAttr.get({})] * len(new_params)
        ftype = ir.FunctionType(ir.TypeAttr(main.attributes["function_type"]).value)
        main.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
            [a.type for a in block.arguments], list(ftype.results)))
        main.attributes["arg_attrs"] = ir.ArrayAttr.get(attrs)
    return Plan(keep, weights, new_params, skipped, plan_hlo[0])


def merge(plans: list) -> Plan:
    """One plan for several entry points' rewrites of the same parameters: the float
    parameters any of them keeps, each quantized array once (their names are the same)."""
    keep = sorted(set().union(*(p.keep for p in plans)))
    weights, seen = [], {}
    for p in plans:
        for w in p.weights:
            key = (w.source, w.transposed)
            if key in seen:
                seen[key].layers += w.layers
            else:
                seen[key] = w
                weights.append(w)
    new_params, names = [], set()
    for p in plans:
        for entry in p.new_params:
            if entry[0] not in names:
                names.add(entry[0])
                new_params.append((entry[0], entry[1], seen[(entry[2].source, entry[2].transposed)], entry[3]))
    skipped = {k: v for p in plans for k, v in p.skipped.items()}
    return Plan(keep, weights, new_params, skipped, any(p.stablehlo for p in plans))


def _hlo(name: str, operands, result: str, **attrs):
    """One StableHLO op (generic form) at the current insertion point."""
    from stepwell.core.ir import ir
    op = ir.Operation.create(name, results=[ir.Type.parse(result)], operands=list(operands),
                             attributes={k: ir.Attribute.parse(v) for k, v in attrs.items()})
    return op.results[0]


def _stablehlo_dequantize(q, s, z, t, bits: int, group_size: int):
    """The float ``[in, out]`` weight ``(q - z) * s`` in StableHLO, for a
    ``stablehlo.dot_general`` the raising left unraised (a dynamic batch: the ``nn``
    lowering of ``nn.quantized_linear`` needs static shapes). int4 nibbles are widened
    before they are shifted, as in ``passes/_quant_lowering.py`` (x86 has no byte shifts)."""
    from stepwell.core.types import TensorType
    k, n = t.shape
    ft = t.dtype
    typ = lambda shape, dtype: str(TensorType(tuple(shape), dtype))  # noqa: E731
    if bits == 8:
        w = _hlo("stablehlo.convert", [q], typ((k, n), ft))
    else:
        half = (k, n // 2)
        lo = _hlo("stablehlo.convert", [q], typ(half, "i16"))
        c12 = _hlo("stablehlo.constant", [], typ(half, "i16"), value=f"dense<12> : {typ(half, 'i16')}")
        lo = _hlo("stablehlo.shift_right_arithmetic",
                  [_hlo("stablehlo.shift_left", [lo, c12], typ(half, "i16")), c12], typ(half, "i16"))
        hi = _hlo("stablehlo.convert", [q], typ(half, "i32"))
        c4 = _hlo("stablehlo.constant", [], typ(half, "i32"), value=f"dense<4> : {typ(half, 'i32')}")
        hi = _hlo("stablehlo.shift_right_arithmetic", [hi, c4], typ(half, "i32"))
        w = _hlo("stablehlo.concatenate", [_hlo("stablehlo.convert", [lo], typ(half, ft)),
                                           _hlo("stablehlo.convert", [hi], typ(half, ft))],
                 typ((k, n), ft), dimension="1 : i64")
    groups = 1 if group_size == 0 else k // group_size
    g = k // groups
    wg = _hlo("stablehlo.reshape", [w], typ((groups, g, n), ft))

    def per_group(v):
        v = _hlo("stablehlo.convert", [v], typ((groups, n), ft))
        return _hlo("stablehlo.broadcast_in_dim", [v], typ((groups, g, n), ft),
                    broadcast_dimensions="array<i64: 0, 2>")
    if z is not None:
        wg = _hlo("stablehlo.subtract", [wg, per_group(z)], typ((groups, g, n), ft))
    wg = _hlo("stablehlo.multiply", [wg, per_group(s)], typ((groups, g, n), ft))
    return _hlo("stablehlo.reshape", [wg], typ((k, n), ft))


def manifest_entry(w: Weight, role: str, opts: Options) -> dict:
    """The ``quantization`` record of one new parameter in the manifest."""
    return {"of": w.name, "role": role, "bits": opts.bits, "group_size": w.group_size,
            "symmetric": opts.symmetric, "transposed": w.transposed, "weight_shape": list(w.shape)}


def summary(plan: Plan, opts: Options, float_bytes: dict) -> dict:
    """The manifest's top-level ``quantization`` record."""
    return {**opts.as_json(),
            "weights": [{"name": w.name, "transposed": w.transposed, "shape": list(w.shape),
                         "group_size": w.group_size, "layers": w.layers,
                         "float_bytes": float_bytes[w.source],
                         "parameters": [w.params[r] for r in ROLES if r in w.params]}
                        for w in plan.weights],
            "kept_float": dict(plan.skipped)}
