"""The primitive rules of ``stablehlo-to-nn``: one StableHLO (or CHLO) op each, into
``prim`` ops, ``nn.matmul``/``nn.conv2d``/``nn.embedding`` or ``arith.constant``.

Each rule is ``rule(op, b) -> value | None``: it returns the replacement of the op's
single result, built with ``b`` (a :class:`Builder` at the op), or None when the op is
outside what it raises (the op then stays StableHLO and IREE compiles it). Rules check
before they build.
"""

from __future__ import annotations

import math
import re

import numpy as np

from stepwell.core.ir import arith, ir
from stepwell.core.types import FLOAT_DTYPES, INT_DTYPES

from stepwell.passes._stablehlo_match import attr, shape, splat, ttype

# StableHLO elementwise op -> prim.map fn (same operands, same order).
ELEMENTWISE = {
    "add": "add", "subtract": "sub", "multiply": "mul", "divide": "div", "maximum": "max",
    "minimum": "min", "power": "pow", "remainder": "rem", "and": "and", "or": "or", "xor": "xor",
    "not": "not", "negate": "neg", "abs": "abs", "exponential": "exp", "log": "log", "tanh": "tanh",
    "logistic": "logistic", "sqrt": "sqrt", "rsqrt": "rsqrt", "sine": "sin", "cosine": "cos",
    "floor": "floor", "ceil": "ceil", "round_nearest_even": "round",
}
COMPARISONS = {"EQ": "eq", "NE": "ne", "LT": "lt", "LE": "le", "GT": "gt", "GE": "ge"}
# reduce body op -> (prim.reduce kind, identity element test on the init value)
REDUCERS = {
    "stablehlo.add": ("sum", lambda c, t: c == 0),
    "stablehlo.multiply": ("prod", lambda c, t: c == 1),
    "stablehlo.maximum": ("max", lambda c, t: c == (-math.inf if t in FLOAT_DTYPES else _int_min(t))),
    "stablehlo.minimum": ("min", lambda c, t: c == (math.inf if t in FLOAT_DTYPES else _int_max(t))),
    "stablehlo.and": (None, lambda c, t: c is True),
    "stablehlo.or": (None, lambda c, t: c is False),
}


def _int_min(t: str) -> int:
    return -(1 << (int(t[1:]) - 1)) if t != "i1" else 0


def _int_max(t: str) -> int:
    return (1 << (int(t[1:]) - 1)) - 1 if t != "i1" else 1


def supported(op) -> bool:
    """Every operand and result is a ranked tensor of a type prim handles (dynamic
    dimensions included)."""
    for v in list(op.operands) + list(op.results):
        t = ttype(v)
        if t is None or t.dtype not in FLOAT_DTYPES + INT_DTYPES:
            return False
    return True


def _fields(text: str) -> dict:
    """``name = [1, 2]`` / ``name = 3`` fields of a StableHLO attribute's text."""
    out = {}
    for key, value in re.findall(r"(\w+)\s*=\s*(\[[^\]]*\]|-?\d+)", text):
        out[key] = [int(x) for x in value.strip("[]").split(",") if x.strip()] \
            if value.startswith("[") else int(value)
    return out


# -- elementwise --------------------------------------------------------------------------


def _scalar_to(b, x, like):
    """A rank-0 operand broadcast to the shape of ``like`` (StableHLO allows it in a few ops)."""
    return b.broadcast(x, [], b.shape_of(like)) if shape(x) == () and shape(like) != () else x


# add/subtract/.../tanh -> prim.map with the matching fn.
def elementwise(op, b):
    fn = ELEMENTWISE[op.name.split(".", 1)[1]]
    return b.map(fn, *op.operands)


# compare {direction} -> prim.map eq/ne/lt/le/gt/ge (TOTALORDER float compares stay).
def compare(op, b):
    direction = re.search(r"comparison_direction (\w+)", str(op.attributes["comparison_direction"]))
    kind = op.attributes["compare_type"] if "compare_type" in op.attributes else None
    if direction is None or (kind is not None and "TOTALORDER" in str(kind)):
        return None
    return b.map(COMPARISONS[direction.group(1)], *op.operands)


# select(pred, a, b) -> prim.map select (a scalar pred is broadcast first).
def select(op, b):
    pred, x, y = op.operands
    return b.map("select", _scalar_to(b, pred, x), x, y)


# clamp(lo, x, hi) -> max(min(x, hi), lo) (scalar bounds are broadcast).
def clamp(op, b):
    lo, x, hi = op.operands
    return b.map("max", b.map("min", x, _scalar_to(b, hi, x)), _scalar_to(b, lo, x))


# chlo.erf -> prim.map erf.
def erf(op, b):
    return b.map("erf", op.operands[0])


# chlo.erfc(x) -> 1 - erf(x).
def erfc(op, b):
    x = op.operands[0]
    return b.map("sub", b.like(1.0, x), b.map("erf", x))


# chlo.square(x) -> x * x.
def square(op, b):
    x = op.operands[0]
    return b.map("mul", x, x)


# convert -> prim.cast (an identity convert is its operand).
def convert(op, b):
    x = op.operands[0]
    return x if x.type == op.results[0].type else b._op("prim.cast", x, result_type=op.results[0].type)


# constant -> arith.constant with the same dense attribute.
def constant(op, b):
    value = op.attributes["value"]
    if not isinstance(value, ir.DenseElementsAttr) and "dense_resource" not in str(value)[:16]:
        return None
    return arith.ConstantOp(op.results[0].type, value).result


# -- shape ops ----------------------------------------------------------------------------


# broadcast_in_dim -> reshape (drop expanding size-1 dims) + transpose (unsorted dims) + prim.broadcast.
def broadcast_in_dim(op, b):
    from stepwell.passes._stablehlo_dynamic import broadcast_dims
    x = op.operands[0]
    dims, out = list(attr(op, "broadcast_dimensions")), shape(op.results[0])
    full = [d if d is not None else b.dim(x, dims.index(i)) for i, d in enumerate(out)]
    return broadcast_dims(b, x, dims, full)


# reshape -> prim.reshape.
def reshape(op, b):
    return b.reshape(op.operands[0], shape(op.results[0]))


# transpose -> prim.transpose.
def transpose(op, b):
    return b.transpose(op.operands[0], attr(op, "permutation"))


# iota {dim} -> prim.iota.
def iota(op, b):
    return b._op("prim.iota", dim=attr(op, "iota_dimension"), result_type=op.results[0].type)


# concatenate {dimension} -> prim.concat.
def concatenate(op, b):
    return b._op("prim.concat", *op.operands, axis=attr(op, "dimension"))


# slice -> prim.slice (start, limit, stride).
def slice_(op, b):
    return b._op("prim.slice", op.operands[0], start=attr(op, "start_indices"),
                 limit=attr(op, "limit_indices"), stride=attr(op, "strides"))


# pad with a constant value, no interior and no negative padding -> prim.pad.
def pad(op, b):
    x, value = op.operands
    low, high = attr(op, "edge_padding_low"), attr(op, "edge_padding_high")
    c = splat(value)
    if c is None or any(attr(op, "interior_padding")) or min(low + high, default=0) < 0:
        return None
    return b._op("prim.pad", x, low=low, high=high, value=float(c))


# -- reductions ---------------------------------------------------------------------------


def _reduce_body(op):
    """The single body op name of a one-operand reduce whose block returns it, else None."""
    block = op.regions[0].blocks[0]
    body = [o.operation for o in block.operations]
    if len(body) != 2 or body[1].name != "stablehlo.return":
        return None
    inner = body[0]
    args = list(block.arguments)
    if list(inner.operands) not in (args, args[::-1]) or list(body[1].operands) != [inner.results[0]]:
        return None
    return inner.name


# reduce with an add/mul/max/min body and its identity init -> prim.reduce (unit axes: reshape).
def reduce(op, b):
    if len(op.operands) != 2:
        return None
    x, init = op.operands
    body, c = _reduce_body(op), splat(init)
    if body not in REDUCERS or c is None:
        return None
    kind, is_identity = REDUCERS[body]
    if not is_identity(c, ttype(x).dtype):
        return None
    axes = list(attr(op, "dimensions"))
    if all(shape(x)[a] == 1 for a in axes):  # nothing is combined: a reshape
        return b.reshape(x, shape(op.results[0]))
    return b.reduce(x, kind, axes) if kind else None


# -- contractions, convolutions, gathers ----------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def contract_spec(lhs_rank, rhs_rank, lb, rb, lc, rc) -> str:
    """The einsum spec of a dot_general: result = batch dims, lhs free, rhs free."""
    letters = iter(_LETTERS)
    lhs, rhs = [None] * lhs_rank, [None] * rhs_rank
    for i, j in zip(lb + lc, rb + rc):
        lhs[i] = rhs[j] = next(letters)
    lhs = [c or next(letters) for c in lhs]
    rhs = [c or next(letters) for c in rhs]
    out = [lhs[i] for i in lb] + [lhs[i] for i in range(lhs_rank) if i not in lb + lc] + \
          [rhs[j] for j in range(rhs_rank) if j not in rb + rc]
    return f"{''.join(lhs)},{''.join(rhs)}->{''.join(out)}"


# dot_general -> prim.contract with the einsum spec of its batching/contracting dims.
def dot_general(op, b):
    a, w = op.operands
    f = _fields(str(op.attributes["dot_dimension_numbers"]))
    lb, rb = f.get("lhs_batching_dimensions", []), f.get("rhs_batching_dimensions", [])
    lc, rc = f.get("lhs_contracting_dimensions", []), f.get("rhs_contracting_dimensions", [])
    if len(shape(a)) + len(shape(w)) - len(lb) - len(lc) > len(_LETTERS):
        return None
    spec = contract_spec(len(shape(a)), len(shape(w)), lb, rb, lc, rc)
    return b._op("prim.contract", a, w, spec=spec, result_type=op.results[0].type)


def _conv_layout(text: str):
    """``[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]`` -> three lists of dim labels."""
    m = re.search(r"\[([^\]]*)\]x\[([^\]]*)\]->\[([^\]]*)\]", text)
    return None if m is None else [[s.strip() for s in g.split(",")] for g in m.groups()]


def _to_order(labels, want):
    """The permutation that puts ``labels`` in the order ``want``."""
    return [labels.index(w) for w in want]


# 2-D convolution -> nn.conv2d (NHWC/HWIO; other layouts get transposes around it).
def convolution(op, b):
    x, w = op.operands
    layout = _conv_layout(str(op.attributes["dimension_numbers"]))
    if layout is None or len(layout[0]) != 4:
        return None
    lhs_l, rhs_l, out_l = layout
    pads = np.asarray(op.attributes["padding"]).reshape(-1).tolist() if "padding" in op.attributes else [0] * 4
    lhs_dil = attr(op, "lhs_dilation") or [1, 1]
    reversal = [bool(v) for v in op.attributes["window_reversal"]] if "window_reversal" in op.attributes else []
    if any(d != 1 for d in lhs_dil) or any(reversal) or attr(op, "batch_group_count") != 1 or min(pads) < 0:
        return None
    if ttype(x).dtype != ttype(w).dtype or ttype(x).dtype != ttype(op.results[0]).dtype:
        return None
    x = b.transpose(x, _to_order(lhs_l, ["b", "0", "1", "f"]))
    w = b.transpose(w, _to_order(rhs_l, ["0", "1", "i", "o"]))
    y = b.nn("conv2d", x, w, strides=list(attr(op, "window_strides") or [1, 1]), padding=pads,
             dilation=list(attr(op, "rhs_dilation") or [1, 1]), groups=attr(op, "feature_group_count"))
    nhwc = ["b", "0", "1", "f"]
    return b.transpose(y, [nhwc.index(label) for label in out_l])


# gather of whole slices along one axis (jnp.take / table[ids]) -> nn.embedding or prim.gather.
def gather(op, b):
    table, idx = op.operands
    f = _fields(str(op.attributes["dimension_numbers"]))
    ts, ishape, sizes = shape(table), shape(idx), list(attr(op, "slice_sizes"))
    collapsed, start_map = f.get("collapsed_slice_dims", []), f.get("start_index_map", [])
    ivd = f.get("index_vector_dim", len(ishape))
    if f.get("operand_batching_dims") or len(collapsed) != 1 or start_map != collapsed:
        return None
    axis = collapsed[0]
    if ivd < len(ishape) and ishape[ivd] != 1:
        return None
    if any(sizes[i] != (1 if i == axis else ts[i]) for i in range(len(ts))):
        return None
    batch = len(ishape) - (1 if ivd < len(ishape) else 0)
    if f.get("offset_dims", []) != list(range(axis)) + list(range(axis + batch, len(ts) - 1 + batch)):
        return None
    ids = b.reshape(idx, [d for i, d in enumerate(ishape) if i != ivd])
    if axis == 0 and len(ts) == 2 and ttype(table).dtype in FLOAT_DTYPES and ttype(ids).dtype in ("i32", "i64"):
        return b.nn("embedding", table, ids)
    return b._op("prim.gather", table, ids, axis=axis)


# op name -> rule; "stablehlo.<elementwise>" entries come from ELEMENTWISE.
RULES = {
    **{f"stablehlo.{name}": elementwise for name in ELEMENTWISE},
    "stablehlo.compare": compare,
    "stablehlo.select": select,
    "stablehlo.clamp": clamp,
    "chlo.erf": erf,
    "chlo.erfc": erfc,
    "chlo.square": square,
    "stablehlo.convert": convert,
    "stablehlo.constant": constant,
    "stablehlo.broadcast_in_dim": broadcast_in_dim,
    "stablehlo.reshape": reshape,
    "stablehlo.transpose": transpose,
    "stablehlo.iota": iota,
    "stablehlo.concatenate": concatenate,
    "stablehlo.slice": slice_,
    "stablehlo.pad": pad,
    "stablehlo.reduce": reduce,
    "stablehlo.dot_general": dot_general,
    "stablehlo.convolution": convolution,
    "stablehlo.gather": gather,
}
