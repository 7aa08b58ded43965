"""The keys of the tuning database: what an op is, on what target, with which IREE.

An op's *signature* is canonical: its kind (``matmul``, ``batch_matmul``,
``contraction``, ``conv_2d_nhwc_hwcf``, ...), operand shapes and element types, indexing
maps, the elementwise epilogue IREE fuses with it (the body ops of the chain of
single-use elementwise consumers, ``["arith.addf", "math.tanh"]``), which operands are
stored weights (constants, globals) rather than arguments, and a convolution's strides
and dilations. Its key is a hash of that. The *target key* is the stepwell target, the
CPU IREE resolves it to with its features, and the thread count. The *IREE version*
is the compiler's version string. A lookup matches all three.

:func:`roots` walks a linalg-level module and lists the ops that root IREE's
dispatches: contractions and convolutions (tunable) and the others (reductions,
attention, softmax, dynamic shapes: listed as untunable, with why).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from stepwell.core.ir import ir, linalg
from stepwell.core.types import TensorType
from stepwell.core.verifier import walk
from stepwell.passes._contraction import analyze, dequantized
from stepwell.passes.linalg_data_tile import threads

__all__ = ["RootOp", "roots", "target_key", "iree_version", "stored", "CONVOLUTIONS"]

CONVOLUTIONS = ("linalg.conv_2d_nhwc_hwcf", "linalg.depthwise_conv_2d_nhwc_hwc")
_VIEWS = ("tensor.expand_shape", "tensor.collapse_shape", "tensor.cast", "linalg.transpose")
_OTHER_ROOTS = ("linalg.softmax", "iree_linalg_ext.attention", "linalg.reduce",
                "linalg.pooling_nhwc_max", "linalg.pooling_nhwc_sum",
                "linalg.depthwise_conv_2d_nhwc_hwcm")


@dataclass
class RootOp:
    """One dispatch root: the op, its signature and key; ``why`` says why it is not tunable."""
    op: object
    kind: str
    signature: dict
    key: str
    flops: int = 0
    why: str = ""            # empty: tunable
    loops: list = field(default_factory=list)  # static loop sizes, in the op's loop order
    roles: dict = field(default_factory=dict)  # "m"/"n"/"k"/"b" -> loop index (contractions)
    contraction: object = None

    @property
    def tunable(self) -> bool:
        return not self.why

    def describe(self) -> str:
        """``matmul 256x1024 * 1024x4096 f32`` style."""
        shapes = " * ".join("x".join(map(str, s)) for s in self.signature.get("shapes", [])[:2])
        dtypes = sorted(set(self.signature.get("dtypes", [])[:2]))
        return f"{self.kind} {shapes} {','.join(dtypes)}".strip()


def iree_version() -> str:
    try:
        from iree.compiler import version
        return str(version.VERSION)
    except Exception:  # noqa: BLE001
        from stepwell.compiler.cache import compiler_version
        return compiler_version()


def target_key(target) -> str:
    """``spec|cpu+features-hash|threads=N`` for a CPU target (``spec|-|-`` otherwise)."""
    from stepwell import targets
    from stepwell.targets import iree_cpu
    t = targets.get(target)
    info = iree_cpu.info(t)
    if info is None:
        return f"{t.spec}|-|-"
    return f"{t.spec}|{info.key()}|threads={threads()}"


def stored(value, depth: int = 4) -> bool:
    """Whether ``value`` is (a view of) a stored weight: a constant or a global, or an
    argument of a private function that every call passes one (``sw.jax.export``'s
    wrapper calls the model with its globals: IREE inlines it)."""
    owner = value.owner
    while isinstance(owner, ir.OpView) and owner.operation.name in _VIEWS:
        value = owner.operands[0]
        owner = value.owner
    if isinstance(owner, ir.OpView):
        return owner.operation.name in ("arith.constant", "util.global.load")
    if depth == 0 or not isinstance(owner, ir.Block):
        return False
    fn = getattr(owner.owner, "operation", owner.owner)
    if fn is None or fn.name != "func.func" or "sym_name" not in fn.attributes:
        return False
    name = ir.StringAttr(fn.attributes["sym_name"]).value
    index = ir.BlockArgument(value).arg_number
    calls = [op for op in walk(fn.parent) if op.name == "func.call"
             and ir.FlatSymbolRefAttr(op.attributes["callee"]).value == name]
    return bool(calls) and all(stored(c.operands[index], depth - 1) for c in calls)


def _epilogue(op, limit: int = 16) -> list[str]:
    """Body ops of the chain of single-use elementwise consumers of ``op``'s result."""
    out: list[str] = []
    value = op.results[0]
    while len(out) < limit:
        uses = list(value.uses)
        if len(uses) != 1:
            break
        user = getattr(uses[0].owner, "operation", uses[0].owner)
        if user.name != "linalg.generic" or "reduction" in str(user.attributes["iterator_types"]):
            break
        out += [o.operation.name for o in user.regions[0].blocks[0].operations
                if o.operation.name != "linalg.yield"]
        value = user.results[0]
    return out[:limit]


def _types(op) -> tuple[list, list]:
    shapes, dtypes = [], []
    for v in op.operands:
        t = TensorType.from_mlir(v.type)
        shapes.append(list(t.shape) if t is not None else [])
        dtypes.append(t.dtype if t is not None else str(v.type))
    return shapes, dtypes


def _key(signature: dict) -> str:
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:32]


def _signature(op, kind: str) -> dict:
    shapes, dtypes = _types(op)
    maps = [str(a) for a in op.attributes["indexing_maps"]] if "indexing_maps" in op.attributes else []
    sig = {"kind": kind, "shapes": shapes, "dtypes": dtypes, "maps": maps,
           "epilogue": _epilogue(op), "stored": [stored(v) for v in op.operands[:2]]}
    for name in ("strides", "dilations"):
        if name in op.attributes:
            sig[name] = str(op.attributes[name])
    if any(dequantized(v) for v in op.operands[:2]):
        sig["dequantized"] = True
    return sig


def loop_ranges(op) -> list[int | None]:
    """The op's loop sizes, read through its indexing maps (None: dynamic)."""
    maps = [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]
    ranges: list[int | None] = [None] * maps[0].n_dims
    for amap, operand in zip(maps, op.operands):
        t = TensorType.from_mlir(operand.type)
        if t is None:
            continue
        for pos, expr in enumerate(amap.results):
            if isinstance(expr, ir.AffineDimExpr) and ranges[expr.position] is None:
                ranges[expr.position] = t.shape[pos]
    return ranges


def _roles(op) -> dict:
    dims = linalg.infer_contraction_dimensions(op)
    roles = {"b": list(dims.batch), "m": list(dims.m), "n": list(dims.n), "k": list(dims.k)}
    return {r: v[0] for r, v in roles.items() if v}


def _root(op) -> RootOp | None:
    name = op.name
    if name in ("linalg.matmul", "linalg.batch_matmul", "linalg.generic"):
        c = analyze(op)
        if c is not None:
            kind = name.split(".", 1)[1] if name != "linalg.generic" else "contraction"
            sig = _signature(op, kind)
            return RootOp(op, kind, sig, _key(sig), c.flops, loops=loop_ranges(op), roles=_roles(op),
                          contraction=c)
        if name != "linalg.generic" or linalg.isa_contraction_op(op):
            sig = _signature(op, name.split(".", 1)[1])
            return RootOp(op, sig["kind"], sig, _key(sig), why="a contraction with dynamic sizes or "
                          "several m/n/k loops (IREE configures it)")
        if "reduction" in str(op.attributes["iterator_types"]):
            sig = _signature(op, "reduction")
            return RootOp(op, "reduction", sig, _key(sig), why="a reduction (IREE configures it)")
        return None
    if name in CONVOLUTIONS:
        sig = _signature(op, name.split(".", 1)[1])
        out = TensorType.from_mlir(op.operands[2].type)
        w = TensorType.from_mlir(op.operands[1].type)
        if out is None or None in out.shape or None in w.shape:
            return RootOp(op, sig["kind"], sig, _key(sig), why="a convolution with dynamic sizes")
        # loop order of the named ops: (n, oh, ow, f, kh, kw, c) and (n, oh, ow, c, kh, kw)
        loops = [*out.shape, *w.shape[:2]] + ([w.shape[2]] if name.endswith("hwcf") else [])
        flops = 2 * math.prod(loops)
        return RootOp(op, sig["kind"], sig, _key(sig), flops, loops=loops)
    if name in _OTHER_ROOTS:
        sig = _signature(op, name.split(".", 1)[1]) if "indexing_maps" in op.attributes else \
            {"kind": name.split(".", 1)[1], "shapes": _types(op)[0], "dtypes": _types(op)[1]}
        return RootOp(op, sig["kind"], sig, _key(sig), why=f"'{name}' is configured by IREE "
                      "(no tuning space here)")
    return None


def roots(module) -> list[RootOp]:
    """The dispatch roots of a linalg-level module, in program order."""
    out = []
    for op in walk(module.operation):
        r = _root(op)
        if r is None:
            continue
        parent = op.operation.parent
        if r.tunable and parent is not None and parent.name != "func.func":  # e.g. MoE's tile loop
            r.why = f"inside '{parent.name}' (a loop body: its micro-module cannot be cut out)"
        out.append(r)
    return out
