"""The dynamic-shape rules of ``stablehlo-to-nn``: JAX's shape-polymorphic ops into ``prim``.

With symbolic dimensions (``jax.export`` shapes such as ``"b, s"``) JAX writes every
broadcast, reshape and iota of a dynamic size as a ``stablehlo.dynamic_*`` op whose
shape is a small integer tensor computed from the dimension variables. The rules
here read that shape computation (``shape_entries``: constants, concatenates,
reshapes, converts, slices, ``get_dimension_size``, ``tensor.from_elements`` and the
integer arithmetic JAX emits on them) as ``index`` values, and emit the ``prim`` op
with those values as its ``sizes`` operands::

    %d = stablehlo.reshape %b : (tensor<i32>) -> tensor<1xi32>
    %s = stablehlo.concatenate %d, %c32, dim = 0 : (tensor<1xi32>, tensor<1xi32>) -> tensor<2xi32>
    %y = stablehlo.dynamic_broadcast_in_dim %x, %s, dims = [1] : (tensor<32xf32>, tensor<2xi32>) -> tensor<?x32xf32>

becomes (``%n`` the index value of ``%b``)::

    %y = "prim.broadcast"(%x, %n) {dims = array<i64: 1>} : (tensor<32xf32>, index) -> tensor<?x32xf32>

The shape computation is then dead and erased, so IREE sees no dynamic op. A size the
rules cannot read as arithmetic is read from its tensor (``tensor.extract``); a rule
returns None (the op stays) only when an op is outside what ``prim`` expresses.
"""

from __future__ import annotations

import numpy as np

from stepwell.core.ir import arith, ir, tensor

from stepwell.passes._stablehlo_match import attr, producer, shape, ttype

# dynamic op -> the positions of its shape operands (the rest is data)
SHAPE_OPERANDS = {
    "stablehlo.dynamic_broadcast_in_dim": (1,), "stablehlo.dynamic_reshape": (1,),
    "stablehlo.dynamic_iota": (0,), "stablehlo.real_dynamic_slice": (1, 2, 3),
    "stablehlo.dynamic_gather": (2,), "stablehlo.dynamic_pad": (2, 3, 4), "stablehlo.dynamic_conv": (2,),
}
_SAME_ELEMENTS = ("stablehlo.reshape", "stablehlo.convert", "prim.reshape", "prim.cast")
_ARITH = {"multiply": "muli", "add": "addi", "subtract": "subi", "divide": "divsi",
          "maximum": "maxsi", "minimum": "minsi", "remainder": "remsi"}
_FOLD = {"muli": lambda a, b: a * b, "addi": lambda a, b: a + b, "subi": lambda a, b: a - b,
         "divsi": lambda a, b: int(a / b), "maxsi": max, "minsi": min,
         "remsi": lambda a, b: int(np.fmod(a, b)), "floordivsi": lambda a, b: a // b}


# -- reading a shape operand --------------------------------------------------------------
# An entry is an int, or a recipe for an index value: ("dim", tensor, i), ("index", value),
# ("int", integer scalar value), ("extract", tensor, position), (arith op name, a, b).


def shape_entries(value, depth: int = 0) -> list | None:
    """The elements of a rank-0/1 static integer tensor, each an int or a recipe."""
    t = ttype(value)
    if t is None or t.dtype not in ("i32", "i64", "i16", "i8") or t.rank > 1 or None in t.shape:
        return None
    n = 1 if t.rank == 0 else t.shape[0]
    fallback = [("extract", value, () if t.rank == 0 else (i,)) for i in range(n)]
    op = producer(value)
    if op is None or depth > 32:
        return fallback
    name = op.name
    if name in ("stablehlo.constant", "arith.constant"):
        a = op.attributes["value"]
        if isinstance(a, ir.DenseIntElementsAttr):
            return [int(v) for v in np.asarray(a).reshape(-1)] if not a.is_splat else \
                [int(a.get_splat_value().value)] * n
        return fallback
    if name == "stablehlo.concatenate":
        parts = [shape_entries(v, depth + 1) for v in op.operands]
        return fallback if None in parts else [e for p in parts for e in p]
    if name in _SAME_ELEMENTS:
        inner = shape_entries(op.operands[0], depth + 1)
        return inner if inner is not None and len(inner) == n else fallback
    if name == "stablehlo.broadcast_in_dim":
        inner = shape_entries(op.operands[0], depth + 1)
        return inner * n if inner is not None and len(inner) == 1 else fallback
    if name == "stablehlo.slice":
        inner = shape_entries(op.operands[0], depth + 1)
        start, limit, stride = (attr(op, k) for k in ("start_indices", "limit_indices", "strides"))
        return fallback if inner is None else inner[start[0]:limit[0]:stride[0]]
    if name == "stablehlo.get_dimension_size":
        return [("dim", op.operands[0], attr(op, "dimension"))]
    if name == "tensor.from_elements":
        return [_scalar(v) for v in op.operands]
    fn = _ARITH.get(name.split(".", 1)[1]) if name.startswith("stablehlo.") else None
    if fn is not None and len(op.operands) == 2:
        a, b = (shape_entries(v, depth + 1) for v in op.operands)
        if a is None or b is None or len(a) != len(b):
            return fallback
        return [_fold(fn, x, y) for x, y in zip(a, b)]
    return fallback


def _scalar(v):
    """An integer scalar SSA value as an entry."""
    op = producer(v)
    if op is not None and op.name == "arith.index_cast" and isinstance(op.operands[0].type, ir.IndexType):
        return ("index", op.operands[0])
    if op is not None and op.name == "arith.constant":
        return int(ir.IntegerAttr(op.attributes["value"]).value)
    return ("int", v)


def _fold(fn: str, a, b):
    if isinstance(a, int) and isinstance(b, int) and (fn not in ("divsi", "remsi", "floordivsi") or b):
        return _FOLD[fn](a, b)
    return (fn, a, b)


class Emitter:
    """Materializes entries as ``index`` values at the builder's insertion point (once each)."""

    def __init__(self, b):
        self.b = b
        self.memo = {}

    def __call__(self, e):
        if isinstance(e, int):
            return e
        if e not in self.memo:  # (values hash by identity: one index value per recipe)
            self.memo[e] = self._emit(e)
        return self.memo[e]

    def _emit(self, e):
        kind = e[0]
        index = ir.IndexType.get()
        if kind == "dim":
            return self.b.dim(e[1], e[2])
        if kind == "index":
            return e[1]
        if kind == "int":
            return arith.IndexCastOp(index, e[1]).result
        if kind == "extract":
            pos = [self.b.index(i) for i in e[2]]
            return arith.IndexCastOp(index, tensor.ExtractOp(e[1], pos).result).result
        a, b = (self.value(x) for x in e[1:])
        return getattr(arith, {"muli": "MulIOp", "addi": "AddIOp", "subi": "SubIOp", "divsi": "DivSIOp",
                               "maxsi": "MaxSIOp", "minsi": "MinSIOp", "remsi": "RemSIOp",
                               "floordivsi": "FloorDivSIOp"}[kind])(a, b).result

    def value(self, e):
        """The entry as an index value (ints become constants)."""
        out = self(e)
        return self.b.index(out) if isinstance(out, int) else out


def _full_shape(emit, out_shape, entries):
    """The result shape: static dims as ints, dynamic ones as the entries' index values."""
    return [d if d is not None else emit.value(entries[i]) for i, d in enumerate(out_shape)]


# -- the rules -----------------------------------------------------------------------------


def broadcast_dims(b, x, dims, full):
    """``x`` broadcast into ``full`` (ints and index values) with operand dim i at result dim
    ``dims[i]``: expanding size-1 dims dropped, the rest transposed into order first."""
    src = shape(x)
    static = [d if isinstance(d, int) else None for d in full]
    keep = [i for i in range(len(src)) if not (src[i] == 1 and static[dims[i]] != 1)]
    x = b.reshape(x, [b.dim(x, i) for i in keep])
    kept = [dims[i] for i in keep]
    x = b.transpose(x, sorted(range(len(keep)), key=lambda i: kept[i]))
    return b.broadcast(x, sorted(kept), full)


# dynamic_broadcast_in_dim(x, shape) -> reshape (drop expanding 1-dims) + transpose + prim.broadcast with sizes.
def dynamic_broadcast_in_dim(op, b):
    x, shp = op.operands[:2]
    out = shape(op.results[0])
    entries = shape_entries(shp)
    if entries is None or len(entries) != len(out):
        return None
    return broadcast_dims(b, x, list(attr(op, "broadcast_dimensions")), _full_shape(Emitter(b), out, entries))


# dynamic_reshape(x, shape) -> prim.reshape with the shape's index values as sizes.
def dynamic_reshape(op, b):
    x, shp = op.operands
    out = shape(op.results[0])
    entries = shape_entries(shp)
    if entries is None or len(entries) != len(out):
        return None
    return b.reshape(x, _full_shape(Emitter(b), out, entries))


# dynamic_iota(shape) {iota_dimension} -> prim.iota with sizes.
def dynamic_iota(op, b):
    out = ttype(op.results[0])
    entries = shape_entries(op.operands[0])
    if entries is None or len(entries) != out.rank:
        return None
    return b.iota(_full_shape(Emitter(b), out.shape, entries), attr(op, "iota_dimension"), out.dtype)


# real_dynamic_slice(x, start, limit, stride) with constant starts and strides -> prim.slice
# (a dynamic result dim: limit -1 and the count ceil((limit - start) / stride) as its size).
def real_dynamic_slice(op, b):
    x = op.operands[0]
    xs, out = shape(x), shape(op.results[0])
    start, limit, stride = (shape_entries(v) for v in op.operands[1:4])
    if None in (start, limit, stride) or not all(isinstance(v, int) for v in start + stride):
        return None
    emit, limits, sizes = Emitter(b), [], []
    for i, d in enumerate(out):
        if d is not None:
            limits.append(start[i] + (d - 1) * stride[i] + 1 if d else start[i])
            continue
        count = _fold("floordivsi", _fold("addi", _fold("subi", limit[i], start[i]), stride[i] - 1), stride[i])
        limits.append(-1)
        sizes.append(emit.value(count))
    if any(lim > xd for lim, xd in zip(limits, xs) if xd is not None):
        return None
    return b._op("prim.slice", x, *sizes, start=start, limit=limits, stride=stride)


# dynamic_gather at constant start indices (x[:, :, 2] on dynamic dims) -> prim.slice + reshape.
def dynamic_gather(op, b):
    from stepwell.passes._stablehlo_raise import _fields
    x, idx, sizes_v = op.operands
    f = _fields(str(op.attributes["dimension_numbers"]))
    xs, ishape = shape(x), shape(idx)
    starts, sizes = shape_entries(idx), shape_entries(sizes_v)
    ivd = f.get("index_vector_dim", 0)  # (StableHLO leaves a 0 out when it prints it)
    collapsed, start_map = f.get("collapsed_slice_dims", []), f.get("start_index_map", [])
    if (starts is None or sizes is None or len(ishape) != 1 or ivd != 0 or f.get("operand_batching_dims")
            or not all(isinstance(s, int) for s in starts) or len(sizes) != len(xs)):
        return None
    kept = [i for i in range(len(xs)) if i not in collapsed]
    if f.get("offset_dims", []) != list(range(len(kept))) or any(sizes[i] != 1 for i in collapsed):
        return None
    begin = [0] * len(xs)
    for dim, pos in zip(start_map, starts):
        begin[dim] = pos
    emit, limits, dyn = Emitter(b), [], []
    for i, (s0, n) in enumerate(zip(begin, sizes)):
        if isinstance(n, int) and xs[i] is not None:  # JAX clamps the start into the dimension
            begin[i] = max(0, min(s0, xs[i] - n))
            limits.append(begin[i] + n)
        elif s0 == 0:
            limits.append(-1)
            dyn.append(emit.value(n))
        else:
            return None
    y = b._op("prim.slice", x, *dyn, start=begin, limit=limits)
    return b.reshape(y, [b.dim(y, i) for i in kept])


# dynamic_update_slice(x, update, starts...) -> prim.update_slice at the starts' index values.
def dynamic_update_slice(op, b):
    x, update, *starts = op.operands
    entries = [shape_entries(v) for v in starts]
    if any(e is None or len(e) != 1 for e in entries) or len(entries) != len(shape(x)):
        return None
    emit = Emitter(b)
    return b._op("prim.update_slice", x, update, *[emit.value(e[0]) for e in entries])


# get_dimension_size(x) {dimension} -> the i32 tensor of tensor.dim.
def get_dimension_size(op, b):
    return b.scalar_of(b.dim(op.operands[0], attr(op, "dimension")), ttype(op.results[0]).dtype)


RULES = {
    "stablehlo.dynamic_broadcast_in_dim": dynamic_broadcast_in_dim,
    "stablehlo.dynamic_reshape": dynamic_reshape,
    "stablehlo.dynamic_iota": dynamic_iota,
    "stablehlo.real_dynamic_slice": real_dynamic_slice,
    "stablehlo.dynamic_gather": dynamic_gather,
    "stablehlo.get_dimension_size": get_dimension_size,
    "stablehlo.dynamic_update_slice": dynamic_update_slice,
}
