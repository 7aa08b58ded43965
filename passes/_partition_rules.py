"""How shardings flow through ops, for ``nn-partition`` (one rule per op kind).

A rule sees an op, its operands' specs and types, and the mesh; it returns a
:class:`Plan`: the spec each operand must have (the pass inserts ``nn.reshard``
where it has another), the spec of each result, and the mesh axes over which the
result is a partial sum (a contraction over a sharded dimension). Most rules are
one einsum-like labelling: each dimension gets a letter, dimensions with the same
letter share one sharding, ``.`` marks a broadcast (size-1) dimension, and letters
listed as ``fixed`` must stay whole (a norm's axis, attention's sequence). The first
operand dimension (in ``priority`` order) that is sharded gives its letter its axes,
unless an axis is taken already. Ops without a rule run replicated.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from stepwell.core import sharding as sh
from stepwell.core.ir import ir
from stepwell.core.types import TensorType


@dataclass
class Plan:
    operands: list      # the spec each operand must have (None: leave it as it is)
    results: list       # the spec of each result (None: not a tensor)
    unreduced: tuple = ()  # mesh axes over which the (single) result is a partial sum


def labelled(specs, subs, out, *, fixed="", priority=None) -> Plan:
    """The plan of an einsum-like op: ``subs`` one letter string per operand, ``out``
    the result's; ``priority`` lists (operand, dim) in the order they may choose."""
    chosen, used = {}, set()
    order = priority or [(i, k) for i, s in enumerate(subs) for k in range(len(s))]
    for i, k in order:
        letter = subs[i][k]
        axes = specs[i][k] if specs[i] is not None else ()
        if letter in ".*" or letter in chosen or letter in fixed or not axes or used & set(axes):
            continue
        chosen[letter] = axes
        used |= set(axes)
    operands = [tuple(chosen.get(c, ()) for c in s) for s in subs]
    unreduced = tuple(a for c, axes in chosen.items() if c not in out for a in axes)
    return Plan(operands, [tuple(chosen.get(c, ()) for c in out)], unreduced)


def _letters(n: int, skip: str = "") -> str:
    return "".join(c for c in string.ascii_lowercase if c not in skip)[:n]


def _aligned(t: TensorType, out: str, out_shape) -> str:
    """An operand broadcast numpy-style to ``out``: its letters ('.' where stretched)."""
    off = len(out) - t.rank
    return "".join("." if d == 1 and out_shape[off + i] != 1 else out[off + i]
                   for i, d in enumerate(t.shape))


def elementwise(op, specs, types, mesh, fixed_dims=()) -> Plan:
    """Elementwise ops: each result dimension takes the first split among the operands'
    (broadcast ones stay whole)."""
    out_t = TensorType.from_mlir(op.results[0].type)
    out = _letters(out_t.rank)
    subs = [_aligned(t, out, out_t.shape) for t in types]
    return labelled(specs, subs, out, fixed="".join(out[d] for d in fixed_dims))


def _axis(op, name, rank, default=-1) -> int:
    attrs = op.attributes
    value = ir.IntegerAttr(attrs[name]).value if name in attrs else default
    return value % rank


def _axes(op, name, rank):
    attrs = op.attributes
    if name not in attrs:
        return list(range(rank))
    return sorted(int(a) % rank for a in ir.DenseI64ArrayAttr(attrs[name]))


def softmax(op, specs, types, mesh):
    """Softmax: the normalized axis stays whole."""
    return elementwise(op, specs, types, mesh, [_axis(op, "axis", types[0].rank)])


def layer_norm(op, specs, types, mesh):
    """Layer norm: the normalized axis stays whole; scale and bias follow it (replicated)."""
    x = types[0]
    axis = _axis(op, "axis", x.rank)
    out = _letters(x.rank)
    return labelled(specs, [out, out[axis], out[axis]][:len(types)], out, fixed=out[axis])


def rms_norm(op, specs, types, mesh):
    """RMS norm: the last axis stays whole."""
    out = _letters(types[0].rank)
    return labelled(specs, [out, out[-1]], out, fixed=out[-1])


def linear(op, specs, types, mesh):
    """x @ w + b: w's rows split -> a partial sum (row-parallel); w's columns split -> a
    split result (column-parallel)."""
    x = types[0]
    batch = _letters(x.rank - 1, "kn")
    subs = [batch + "k", "kn", "n"][:len(types)]
    # the weight's contraction layout first (row-parallel), then x's batch, then the
    # weight's output dim (column-parallel), then x's contraction dim
    order = [(1, 0), *((0, i) for i in range(x.rank - 1)), (1, 1), (0, x.rank - 1)]
    return labelled(specs, subs, batch + "n", priority=order + [(2, 0)] * (len(types) > 2))


def matmul(op, specs, types, mesh):
    """Batched matmul: batch dims shared, M from a, N from b, a split K gives a partial sum."""
    a, b = types
    if a.rank < 2 or b.rank < 2:
        return replicated(op, specs, types, mesh)
    out_t = TensorType.from_mlir(op.results[0].type)
    nb = out_t.rank - 2
    batch = _letters(nb, "mkn")
    out = batch + "mn"
    sa = _aligned(TensorType(a.shape[:-2], a.dtype), batch, out_t.shape[:nb]) + "mk"
    sb = _aligned(TensorType(b.shape[:-2], b.dtype), batch, out_t.shape[:nb]) + "kn"
    return labelled(specs, [sa, sb], out)


def attention(op, specs, types, mesh):
    """Attention: batch and heads may be split, sequence and head dims stay whole."""
    out_t = TensorType.from_mlir(op.results[0].type)
    subs = ["bhsd", "bhte", "bhtf"]
    if len(types) > 3:
        subs.append(_aligned(types[3], "bhst", out_t.shape[:3] + (types[1].shape[2],)))
    return labelled(specs, subs, "bhsf", fixed="stdef")


def embedding(op, specs, types, mesh):
    """table[ids]: rows split -> partial sums (vocabulary-parallel), columns split -> split width."""
    ids = _letters(types[1].rank, "vd")
    # the table's layout first: by vocabulary (partial sums) or by width
    order = [(0, 0), (0, 1), *((1, i) for i in range(len(ids)))]
    return labelled(specs, ["vd", ids], ids + "d", priority=order)


def reduce(op, specs, types, mesh):
    """nn reductions: the reduced axes stay whole."""
    x = types[0]
    axes = _axes(op, "axes", x.rank)
    keep = "keepdims" in op.attributes and ir.BoolAttr(op.attributes["keepdims"]).value
    letters = _letters(x.rank)
    out = "".join(("." if keep else "") if i in axes else c for i, c in enumerate(letters))
    return labelled(specs, [letters], out, fixed="".join(letters[i] for i in axes))


def prim_reduce(op, specs, types, mesh):
    """prim.reduce: the reduced axes stay whole."""
    x = types[0]
    axes = _axes(op, "axes", x.rank)
    letters = _letters(x.rank)
    out = "".join(c for i, c in enumerate(letters) if i not in axes)
    return labelled(specs, [letters], out, fixed="".join(letters[i] for i in axes))


def transpose(op, specs, types, mesh):
    """Transpose: the layout moves with the dimensions."""
    x = types[0]
    attrs = op.attributes
    perm = ([int(p) for p in ir.DenseI64ArrayAttr(attrs["permutation"])] if "permutation" in attrs
            else list(range(x.rank))[::-1])
    letters = _letters(x.rank)
    return labelled(specs, [letters], "".join(letters[p] for p in perm))


def concat(op, specs, types, mesh):
    """Concat: the joined axis stays whole, the operands share the other dims' layout."""
    letters = _letters(types[0].rank)
    axis = _axis(op, "axis", types[0].rank, 0)
    return labelled(specs, [letters] * len(types), letters, fixed=letters[axis])


def broadcast(op, specs, types, mesh):
    """prim.broadcast: each operand dimension keeps its layout where it lands (stretched ones whole)."""
    out_t = TensorType.from_mlir(op.results[0].type)
    out = _letters(out_t.rank)
    dims = [int(d) for d in ir.DenseI64ArrayAttr(op.attributes["dims"])]
    sub = "".join(out[d] if types[0].shape[i] == out_t.shape[d] else "."
                  for i, d in enumerate(dims))
    return labelled(specs, [sub], out)


def contract(op, specs, types, mesh):
    """prim.contract: its einsum spec is the labelling; split contracted letters give partial sums."""
    lhs, rest = ir.StringAttr(op.attributes["spec"]).value.replace(" ", "").split(",")
    rhs, out = rest.split("->")
    return labelled(specs, [lhs, rhs], out)


def conv2d(op, specs, types, mesh):
    """conv2d: only the batch may be split."""
    return labelled(specs, ["nhwc", "....", "."][:len(types)], "nhwo", fixed="hwc")


def reshape(op, specs, types, mesh):
    """Dimensions regroup; a group keeps a sharding on its leading (non-1) dimension
    when the result's leading dimension of the group divides into as many parts."""
    src = types[0].shape
    dst = TensorType.from_mlir(op.results[0].type).shape
    need, out = [()] * len(src), [()] * len(dst)
    for gi, go in reshape_groups(src, dst):
        lead_i = next((i for i in gi if src[i] != 1), None)
        lead_o = next((o for o in go if dst[o] != 1), None)
        axes = specs[0][lead_i] if lead_i is not None else ()
        if axes and lead_o is not None and dst[lead_o] % mesh.parts(axes) == 0:
            need[lead_i] = axes
            out[lead_o] = axes
    return Plan([tuple(need)], [tuple(out)])


def reshape_groups(src, dst) -> list[tuple[list, list]]:
    """The smallest groups of consecutive dimensions with equal element counts."""
    i = j = 0
    groups = []
    while i < len(src) or j < len(dst):
        gi, gj = ([i] if i < len(src) else []), ([j] if j < len(dst) else [])
        pa = src[i] if gi else 1
        pb = dst[j] if gj else 1
        i, j = i + bool(gi), j + bool(gj)
        while pa != pb:
            if pa < pb and i < len(src):
                gi.append(i)
                pa *= src[i]
                i += 1
            elif j < len(dst):
                gj.append(j)
                pb *= dst[j]
                j += 1
            else:
                break
        groups.append((gi, gj))
    return groups


def slice_(op, specs, types, mesh):
    """``prim.slice``: dimensions taken whole keep their layout, sliced ones are whole."""
    attrs = op.attributes
    start = [int(v) for v in ir.DenseI64ArrayAttr(attrs["start"])]
    limit = [int(v) for v in ir.DenseI64ArrayAttr(attrs["limit"])]
    stride = ([int(v) for v in ir.DenseI64ArrayAttr(attrs["stride"])] if "stride" in attrs
              else [1] * len(start))
    letters = _letters(types[0].rank)
    cut = "".join(c for c, a, b, s, n in zip(letters, start, limit, stride, types[0].shape)
                  if (a, b, s) != (0, n, 1))
    return labelled(specs, [letters], letters, fixed=cut)


def reshard(op, specs, types, mesh):
    """``nn.reshard``: the operand stays as it is; the result has the annotation."""
    return Plan([None], [sh.spec_from_attr(op.attributes[sh.SHARDING])])


def replicated(op, specs, types, mesh):
    """Any op without a rule: every tensor operand and result whole on every device."""
    operands = [None if t is None else sh.replicated(t.rank) for t in types]
    results = []
    for r in op.results:
        t = TensorType.from_mlir(r.type)
        results.append(None if t is None else sh.replicated(t.rank))
    return Plan(operands, results)


_ELEMENTWISE = ("add", "sub", "mul", "div", "maximum", "minimum")
_UNARY = ("relu", "gelu", "silu", "sigmoid", "tanh", "exp", "cast")

RULES = {
    **{f"nn.{n}": elementwise for n in _ELEMENTWISE + _UNARY},
    "nn.softmax": softmax,
    "nn.layer_norm": layer_norm,
    "nn.rms_norm": rms_norm,
    "nn.linear": linear,
    "nn.matmul": matmul,
    "nn.attention": attention,
    "nn.embedding": embedding,
    "nn.reduce_sum": reduce, "nn.reduce_mean": reduce, "nn.reduce_max": reduce,
    "nn.reshape": reshape,
    "nn.transpose": transpose,
    "nn.concat": concat,
    "nn.conv2d": conv2d,
    "nn.reshard": reshard,
    "prim.map": elementwise,
    "prim.cast": elementwise,
    "prim.broadcast": broadcast,
    "prim.transpose": transpose,
    "prim.reshape": reshape,
    "prim.reduce": prim_reduce,
    "prim.contract": contract,
    "prim.concat": concat,
    "prim.slice": slice_,
}


def plan(op, specs, types, mesh) -> Plan:
    rule = RULES.get(op.name, replicated)
    if any(t is None for t in types) or len(op.results) != 1 or \
            TensorType.from_mlir(op.results[0].type) is None:
        rule = replicated
    return rule(op, specs, types, mesh)
