"""The ``prim`` dialect: the small tensor algebra that ``nn`` decomposes into.

Broadcasting is explicit here: ``prim.map`` takes operands of one shape and
``prim.broadcast`` only adds dimensions. Fusion and algebraic simplification decide
at this level; ``prim-to-linalg`` maps each op onto linalg/tensor/arith/math.

    %0 = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    %1 = "prim.map"(%0, %c) {fn = "add"} : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
"""

from __future__ import annotations

import numpy as np

from stepwell.dialects._common import (conv2d_nhwc, dims_agree, merge_dim, norm_axis, num_elements,
                                       same_dtype)
from stepwell.core.opspec import Attr, Operand, check, fail, op
from stepwell.core.types import TensorType, is_float

# -- prim.contract --------------------------------------------------------------


def parse_contract_spec(spec: str) -> tuple[str, str, str]:
    """``"bmk,bkn->bmn"`` -> ("bmk", "bkn", "bmn"), checked for well-formedness."""
    try:
        ins, out = spec.replace(" ", "").split("->")
        lhs, rhs = ins.split(",")
    except ValueError:
        fail(f"spec '{spec}' must look like 'mk,kn->mn'")
    for part in (lhs, rhs, out):
        check(part.isalpha() and part.islower() and len(set(part)) == len(part),
              f"spec '{spec}': each operand needs distinct lowercase letters")
    for letter in out:
        check(letter in lhs or letter in rhs, f"spec '{spec}': result letter '{letter}' is in no operand")
    for letter in set(lhs + rhs) - set(out):
        check(letter in lhs and letter in rhs,
              f"spec '{spec}': summed letter '{letter}' must appear in both operands")
    return lhs, rhs, out


def _contract_infer(s):
    lhs, rhs, out = parse_contract_spec(s.spec)
    check(len(lhs) == s.a.rank, f"spec operand 'lhs' has {len(lhs)} letters but lhs is {s.a}")
    check(len(rhs) == s.b.rank, f"spec operand 'rhs' has {len(rhs)} letters but rhs is {s.b}")
    dtype = same_dtype(s.a, s.b)
    sizes = {}
    for letters, t, side in ((lhs, s.a, "lhs"), (rhs, s.b, "rhs")):
        for letter, dim in zip(letters, t.shape):
            if letter in sizes and None not in (sizes[letter], dim) and sizes[letter] != dim:
                fail(f"dimension '{letter}' differs: lhs {s.a} and rhs {s.b} ({sizes[letter]} vs {dim})")
            sizes.setdefault(letter, dim)
    if s.results:  # an explicit accumulator type (bf16 x bf16 -> f32, i8 x i8 -> i32) is allowed
        want = s.results[0].dtype
        if want != dtype:
            check((is_float(dtype) and is_float(want)) or (dtype == "i8" and want in ("i32", "i64")),
                  f"result element type {want} cannot accumulate {dtype}")
            dtype = want
    return TensorType(tuple(sizes[c] for c in out), dtype)


def _contract_ref(s, a, b):
    acc = np.float32 if a.dtype.kind == "f" or a.dtype.name == "bfloat16" else np.int64
    return np.einsum(s.spec, a.astype(acc), b.astype(acc))


op("prim.contract", "Tensor contraction given as an einsum spec ('bmk,bkn->bmn').",
   operands=["a", "b"], attrs=[Attr("spec", "str", doc="einsum spec, lowercase letters")],
   infer=_contract_infer, reference=_contract_ref)

# -- prim.map ---------------------------------------------------------------------


def _erf(x):
    from scipy.special import erf
    return erf(x)


def _idiv(a, b):
    if a.dtype.kind in "iu":  # integer division truncates toward zero (arith.divsi)
        return (np.abs(a) // np.maximum(np.abs(b), 1)) * np.sign(a) * np.sign(b)
    return a / b


def _shr_u(a, b):
    """Logical shift right (arith.shrui): the bits as unsigned."""
    a = np.asarray(a)
    u = np.dtype(f"u{a.dtype.itemsize}")
    return np.right_shift(a.view(u), np.asarray(b).astype(u)).view(a.dtype)


# fn name -> (arity, float only, numpy semantics); comparisons return i1.
MAP_FNS = {
    "neg": (1, False, np.negative), "abs": (1, False, np.abs),
    "exp": (1, True, np.exp), "log": (1, True, np.log), "tanh": (1, True, np.tanh),
    "erf": (1, True, _erf), "sqrt": (1, True, np.sqrt), "rsqrt": (1, True, lambda x: 1 / np.sqrt(x)),
    "logistic": (1, True, lambda x: 1 / (1 + np.exp(-x))), "sin": (1, True, np.sin),
    "cos": (1, True, np.cos), "floor": (1, True, np.floor), "ceil": (1, True, np.ceil),
    "recip": (1, True, lambda x: 1 / x), "not": (1, False, np.invert),
    "add": (2, False, np.add), "sub": (2, False, np.subtract), "mul": (2, False, np.multiply),
    "div": (2, False, _idiv), "max": (2, False, np.maximum), "min": (2, False, np.minimum),
    "pow": (2, True, np.power), "rem": (2, False, np.fmod),
    # logical on i1, bitwise on integers (arith.andi/ori/xori, jax.lax.bitwise_*)
    "and": (2, False, np.bitwise_and), "or": (2, False, np.bitwise_or),
    "xor": (2, False, np.bitwise_xor),
    # shifts on integers (arith.shli/shrsi/shrui); round is half to even (math.roundeven)
    "shl": (2, False, np.left_shift), "shr_s": (2, False, np.right_shift), "shr_u": (2, False, _shr_u),
    "round": (1, True, np.round),
    "eq": (2, False, np.equal), "ne": (2, False, np.not_equal), "lt": (2, False, np.less),
    "le": (2, False, np.less_equal), "gt": (2, False, np.greater), "ge": (2, False, np.greater_equal),
    "select": (3, False, np.where),
}
COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")
LOGICAL = ("and", "or", "xor", "not")
SHIFTS = ("shl", "shr_s", "shr_u")


def _map_infer(s):
    arity, float_only, _ = MAP_FNS[s.fn]
    xs = s.inputs
    check(len(xs) == arity, f"fn '{s.fn}' takes {arity} operands, found {len(xs)}")
    shape = _agreed_shape(xs)
    if s.fn == "select":
        check(xs[0].dtype == "i1", f"select condition must be i1, found {xs[0]}")
        return TensorType(shape, same_dtype(xs[1], xs[2]))
    dtype = same_dtype(*xs)
    check(not float_only or is_float(dtype), f"fn '{s.fn}' needs a float element type, found {dtype}")
    check(s.fn not in LOGICAL or dtype == "i1" or not is_float(dtype),
          f"fn '{s.fn}' needs an integer or i1 element type, found {dtype}")
    check(s.fn not in SHIFTS or (dtype != "i1" and not is_float(dtype)),
          f"fn '{s.fn}' needs an integer element type, found {dtype}")
    return TensorType(shape, "i1" if s.fn in COMPARISONS else dtype)


def _agreed_shape(xs) -> tuple:
    """The common shape of operands that must be equal: a dynamic dimension agrees with
    any size (prim-to-linalg checks it at run time), the static one wins."""
    check(len({x.rank for x in xs}) == 1 and all(
        dims_agree(a, b) for x in xs[1:] for a, b in zip(xs[0].shape, x.shape)),
        "operands must have equal shapes (broadcast explicitly): " + ", ".join(map(str, xs)))
    shape = list(xs[0].shape)
    for x in xs[1:]:
        shape = [merge_dim(a, b) for a, b in zip(shape, x.shape)]
    return tuple(shape)


def _sizes(s, out: TensorType, what: str = "dynamic result dimension") -> list:
    """The ``sizes`` operands: none, or one ``index`` per dynamic result dimension."""
    sizes = list(s.sizes or [])
    dynamic = sum(d is None for d in out.shape)
    check(not sizes or len(sizes) == dynamic,
          f"takes one size per {what} of {out} ({dynamic}), found {len(sizes)}")
    return sizes


def _run_shape(out: TensorType, sizes) -> list:
    """``out``'s shape with each dynamic dimension taken from ``sizes`` (ints, in order)."""
    it = iter(sizes)
    return [int(next(it)) if d is None else d for d in out.shape]


def _map_ref(s, inputs):
    return MAP_FNS[s.fn][2](*inputs)


op("prim.map", "Elementwise function of equal-shaped operands (also compare and select).",
   operands=[Operand("inputs", variadic=True)],
   attrs=[Attr("fn", "str", choices=tuple(MAP_FNS), doc="the scalar function")],
   infer=_map_infer, reference=_map_ref)

# -- shape ops ----------------------------------------------------------------------


def _broadcast_infer(s):
    out = s.result
    dims = list(s.dims)
    check(len(dims) == s.x.rank, f"dims {dims} must name one result dimension per operand dimension ({s.x})")
    check(all(0 <= d < out.rank for d in dims) and dims == sorted(set(dims)),
          f"dims {dims} must be increasing result dimensions of {out}")
    for i, d in enumerate(dims):
        check(s.x.shape[i] == out.shape[d] or None in (s.x.shape[i], out.shape[d]),
              f"operand dimension {i} ({s.x.shape[i]}) must equal result dimension {d} ({out.shape[d]})")
    check(out.dtype == s.x.dtype, f"result element type {out.dtype} differs from operand {s.x.dtype}")
    added = [d for d in range(out.rank) if d not in dims and out.shape[d] is None]
    check(_sizes(s, out) or not added,
          f"dynamic added dimension {added[0] if added else 0} of {out} needs its size "
          "(one index operand per dynamic result dimension)")
    return out


def _broadcast_ref(s, x, sizes=()):
    out = s.result
    shape = [1] * out.rank
    for i, d in enumerate(s.dims):
        shape[d] = x.shape[i]
    # a dynamic result dimension takes its size operand, or else the operand's size
    full = _run_shape(out, sizes) if sizes else [shape[i] if d is None else d for i, d in enumerate(out.shape)]
    return np.broadcast_to(x.reshape(shape), full)


SIZES = Operand("sizes", "one index per dynamic result dimension", variadic=True, index=True)

op("prim.broadcast", "Adds dimensions: operand dim i becomes result dim dims[i]; `sizes` give the "
   "dynamic result dimensions (needed for dynamic added ones).",
   operands=["x", SIZES], attrs=[Attr("dims", "i64s", doc="result position of each operand dimension")],
   infer=_broadcast_infer, reference=_broadcast_ref, result_from_type=True)


def _reduce_infer(s):
    axes = [norm_axis(a, s.x.rank) for a in s.axes]
    check(len(set(axes)) == len(axes), f"axes {list(s.axes)} repeat an axis")
    return s.x.with_shape(d for i, d in enumerate(s.x.shape) if i not in axes)


_REDUCERS = {"sum": np.sum, "max": np.max, "min": np.min, "prod": np.prod}
op("prim.reduce", "Reduces `axes` away with `kind` (sum, max, min, prod).",
   operands=["x"], attrs=[Attr("kind", "str", choices=tuple(_REDUCERS)), Attr("axes", "i64s")],
   infer=_reduce_infer,
   reference=lambda s, x: _REDUCERS[s.kind](x, axis=tuple(a % x.ndim for a in s.axes)))


def _transpose_infer(s):
    perm = list(s.permutation)
    check(sorted(perm) == list(range(s.x.rank)), f"permutation {perm} is not a permutation of rank {s.x.rank}")
    return s.x.with_shape(s.x.shape[p] for p in perm)


op("prim.transpose", "Permutes dimensions: result dim i is operand dim permutation[i].",
   operands=["x"], attrs=[Attr("permutation", "i64s")], infer=_transpose_infer,
   reference=lambda s, x: np.transpose(x, s.permutation))


def _reshape_infer(s):
    out = s.result
    check(out.dtype == s.x.dtype, f"result element type {out.dtype} differs from operand {s.x.dtype}")
    n_in, n_out = num_elements(s.x.shape), num_elements(out.shape)
    check(None in (n_in, n_out) or n_in == n_out,
          f"element counts differ: operand {s.x} has {n_in}, result {out} has {n_out}")
    _sizes(s, out)
    return out


def _reshape_ref(s, x, sizes=()):
    shape = _run_shape(s.result, sizes) if sizes else [-1 if d is None else d for d in s.result.shape]
    return np.reshape(x, shape)


op("prim.reshape", "Reshapes to the result type (same element count, row-major); `sizes` give "
   "its dynamic dimensions (optional where they follow from the operand's).",
   operands=["x", SIZES], infer=_reshape_infer, result_from_type=True, reference=_reshape_ref)


def _cast_infer(s):
    check(s.result.shape == s.x.shape, f"result shape {s.result} differs from operand {s.x}")
    return s.result


op("prim.cast", "Converts the element type to the result's (float<->int truncates toward zero).",
   operands=["x"], infer=_cast_infer, result_from_type=True,
   reference=lambda s, x: x.astype(s.result.numpy_dtype()))


def _slice_infer(s):
    rank = s.x.rank
    stride = list(s.stride) if s.stride is not None else [1] * rank
    check(len(s.start) == len(s.limit) == len(stride) == rank,
          f"start/limit/stride need {rank} entries each for {s.x}")
    shape = []
    for i, (a, b, st, d) in enumerate(zip(s.start, s.limit, stride, s.x.shape)):
        check(st >= 1, f"stride {st} must be positive")
        if b == -1:  # a run-time count of elements, from `sizes`
            check(a >= 0 and (d is None or a <= d), f"slice start {a} out of bounds for dimension {i} of {s.x}")
            shape.append(None)
            continue
        check(0 <= a <= b and (d is None or b <= d), f"slice [{a}:{b}] out of bounds for dimension {i} of {s.x}")
        shape.append(-(-(b - a) // st))
    sizes = list(s.sizes or [])
    check(len(sizes) == shape.count(None),
          f"takes one size per limit of -1 ({shape.count(None)}), found {len(sizes)}")
    return s.x.with_shape(shape)


def _slice_ref(s, x, sizes=()):
    it = iter(sizes)
    stride = s.stride or [1] * x.ndim
    return x[tuple(slice(a, a + int(next(it)) * st if b == -1 else b, st)
                   for a, b, st in zip(s.start, s.limit, stride))]


op("prim.slice", "Strided slice x[start:limit:stride] per dimension; a limit of -1 takes the "
   "next `sizes` operand as the dimension's element count (a dynamic result dimension).",
   operands=["x", Operand("sizes", "one index per limit of -1", variadic=True, index=True)],
   attrs=[Attr("start", "i64s"), Attr("limit", "i64s"), Attr("stride", "i64s", None)],
   infer=_slice_infer, reference=_slice_ref)


def _pad_infer(s):
    check(len(s.low) == len(s.high) == s.x.rank, f"low/high need {s.x.rank} entries each for {s.x}")
    check(min(list(s.low) + list(s.high), default=0) >= 0, "padding must be non-negative")
    return s.x.with_shape(None if d is None else d + lo + hi for d, lo, hi in zip(s.x.shape, s.low, s.high))


op("prim.pad", "Pads with a constant `value`: `low`/`high` elements before/after each dimension.",
   operands=["x"], attrs=[Attr("low", "i64s"), Attr("high", "i64s"), Attr("value", "f32", 0.0)],
   infer=_pad_infer,
   reference=lambda s, x: np.pad(x, list(zip(s.low, s.high)), constant_values=s.value))


def _concat_infer(s):
    xs = s.inputs
    check(len(xs) >= 1, "needs at least one operand")
    dtype = same_dtype(*xs)
    check(len({x.rank for x in xs}) == 1, "operands must have equal ranks")
    axis = norm_axis(s.axis, xs[0].rank)
    shape = list(xs[0].shape)
    for x in xs:
        check(all(dims_agree(a, b) for i, (a, b) in enumerate(zip(x.shape, xs[0].shape)) if i != axis),
              f"operand shapes differ off axis {axis}: {xs[0]} and {x}")
        shape = [merge_dim(a, b) for a, b in zip(shape, x.shape)]
    sizes = [x.shape[axis] for x in xs]
    shape[axis] = None if None in sizes else sum(sizes)
    return TensorType(tuple(shape), dtype)


op("prim.concat", "Concatenates operands along `axis`.",
   operands=[Operand("inputs", variadic=True)], attrs=[Attr("axis", "i64")],
   infer=_concat_infer, reference=lambda s, inputs: np.concatenate(inputs, axis=s.axis))


def _update_slice_infer(s):
    x, u = s.x, s.update
    check(u.rank == x.rank, f"update {u} must have the rank of x {x}")
    check(u.dtype == x.dtype, f"update element type {u.dtype} differs from x {x.dtype}")
    check(len(s.offsets) == x.rank, f"takes one offset per dimension of {x} ({x.rank}), found {len(s.offsets)}")
    for i, (a, b) in enumerate(zip(u.shape, x.shape)):
        check(a is None or b is None or a <= b, f"update dimension {i} ({a}) exceeds x's ({b})")
    return x


def _update_slice_ref(s, x, update, offsets):
    out = np.array(x, copy=True)
    # each offset is clamped into [0, size - update size], as stablehlo.dynamic_update_slice does
    # (a negative offset is 0: jax.lax wraps negative offsets itself before that op)
    start = [min(max(int(o), 0), d - u) for o, d, u in zip(offsets, x.shape, update.shape)]
    out[tuple(slice(a, a + u) for a, u in zip(start, update.shape))] = update
    return out


op("prim.update_slice", "x with `update` written at run-time `offsets` (one index per dimension, "
   "clamped so that the update fits, like stablehlo.dynamic_update_slice).",
   operands=["x", "update", Operand("offsets", "one index per dimension", variadic=True, index=True)],
   infer=_update_slice_infer, reference=_update_slice_ref)


def _gather_infer(s):
    check(not is_float(s.ids.dtype) and s.ids.dtype != "i1", f"ids must be integers, found {s.ids}")
    axis = norm_axis(s.axis, s.table.rank)
    t = s.table
    return t.with_shape(t.shape[:axis] + s.ids.shape + t.shape[axis + 1:])


op("prim.gather", "Takes slices of `table` along `axis` at integer `ids` (clamped, like JAX).",
   operands=["table", "ids"], attrs=[Attr("axis", "i64", 0)], infer=_gather_infer,
   reference=lambda s, table, ids: np.take(table, ids, axis=s.axis, mode="clip"))


def _iota_infer(s):
    check(0 <= s.dim < s.result.rank, f"dim {s.dim} out of range for {s.result}")
    check(None not in s.result.shape or _sizes(s, s.result),
          f"iota of {s.result} needs the sizes of its dynamic dimensions (index operands)")
    return s.result


op("prim.iota", "Index along dimension `dim` of the result, 0, 1, 2, ...; `sizes` give its "
   "dynamic dimensions.",
   operands=[SIZES], attrs=[Attr("dim", "i64")], infer=_iota_infer, result_from_type=True,
   reference=lambda s, sizes: np.indices(_run_shape(s.result, sizes))[s.dim])

# -- prim.conv ------------------------------------------------------------------------


def conv_output_shape(x: TensorType, w: TensorType, strides, padding, dilation, groups) -> tuple:
    """NHWC x HWIO -> NHWC output shape; checks channels and groups."""
    check(x.rank == 4 and w.rank == 4, f"expects NHWC input and HWIO weight, found {x} and {w}")
    check(len(strides) == 2 and len(dilation) == 2 and len(padding) == 4,
          "strides and dilation need 2 entries, padding 4 (top, bottom, left, right)")
    check(min(strides) >= 1 and min(dilation) >= 1 and groups >= 1, "strides, dilation and groups must be positive")
    n, h, wd, c = x.shape
    kh, kw, ci, co = w.shape
    check(None not in (kh, kw, ci, co), f"weight needs a static shape, found {w}")
    check((c is None or c % groups == 0) and co % groups == 0,
          f"groups {groups} must divide input channels {c} and output channels {co}")
    check(c is None or ci * groups == c,
          f"weight input channels {ci} x groups {groups} must equal input channels {c}")
    out = []
    for size, k, lo, hi, st, dil in ((h, kh, padding[0], padding[1], strides[0], dilation[0]),
                                     (wd, kw, padding[2], padding[3], strides[1], dilation[1])):
        if size is None:  # a dynamic spatial size stays dynamic
            out.append(None)
            continue
        span = (k - 1) * dil + 1
        check(size + lo + hi >= span, f"kernel span {span} exceeds the padded input {size + lo + hi}")
        out.append((size + lo + hi - span) // st + 1)
    return (n, out[0], out[1], co)


def _conv_infer(s):
    dtype = same_dtype(s.x, s.w)
    return TensorType(conv_output_shape(s.x, s.w, s.strides, s.padding, s.dilation, s.groups), dtype)


op("prim.conv", "2-D convolution, NHWC input, HWIO weight, explicit padding (top, bottom, left, right).",
   operands=["x", "w"],
   attrs=[Attr("strides", "i64s", (1, 1)), Attr("padding", "i64s", (0, 0, 0, 0)),
          Attr("dilation", "i64s", (1, 1)), Attr("groups", "i64", 1)],
   infer=_conv_infer,
   reference=lambda s, x, w: conv2d_nhwc(x, w, s.strides, [s.padding[:2], s.padding[2:]],
                                         s.dilation, s.groups))
