"""Composite rules of ``stablehlo-to-nn``: the prim DAGs JAX and Flax emit, as ``nn`` ops.

They run on the IR the primitive rules produced (broadcasts explicit, constants splats,
``max(x, -inf)`` folded), in phases so that a composite can build on another: softmax,
norms, gelu and sigmoid first; attention (on ``nn.softmax``), silu (on ``nn.sigmoid``)
and relu next; plain contractions as ``nn.matmul`` and bias adds last. Each rule is
``rule(op, b) -> value | None`` for the op that ends the pattern (its root).
"""

from __future__ import annotations

import math

from stepwell.dialects.prim import parse_contract_spec

from stepwell.passes._stablehlo_attention import attention
from stepwell.passes._stablehlo_match import is_float_value
from stepwell.passes._stablehlo_match import (
    K, Bind, Either, Expand, Map, Mean, Op, Reduce, Unit, Var, attr, expansion, match, nonunit,
    restores, shape, single_use, splat, ttype, users)

X, XL = Var("x"), Var("x", loose=True)


def _axes_in(x, reduce_op) -> list[int] | None:
    """``reduce_op``'s axes in the coordinates of ``x`` (its input up to unit dims)."""
    y = reduce_op.operands[0]
    ny, nx = nonunit(shape(y)), nonunit(shape(x))
    if len(ny) != len(nx):
        return None
    axes = [a % len(shape(y)) for a in attr(reduce_op, "axes")]
    picked = [nx[i] for i, d in enumerate(ny) if d in axes]
    return picked if len(picked) == len([a for a in axes if shape(y)[a] != 1]) and picked else None


def _along(expanded, axis: int, dtype: str) -> bool:
    """The expansion broadcasts a vector of ``dtype`` along ``axis`` (or is a splat)."""
    src, pos = expanded
    return ttype(src).dtype == dtype and (pos == [axis] or splat(src) is not None)


def _vector(b, expanded, size: int, axis: int, dtype: str):
    """The 1-D ``[size]`` operand an expansion broadcasts along ``axis``, else None."""
    if not _along(expanded, axis, dtype):
        return None
    src, pos = expanded
    if pos != [axis]:  # a splat constant (JAX folded a constant parameter)
        return b.splat(splat(src), ttype(src).with_shape([size]))
    return b.reshape(src, [size])


# -- softmax ------------------------------------------------------------------------------

def _maybe_cast(p):
    """``p``, or ``p`` converted (low-precision softmax sums in f32 between two converts)."""
    return Either(p, Op("prim.cast", Unit(p)))


_E = Var("e", loose=True)
SOFTMAX = Map("div", Bind("e", Map("exp", Map("sub", X, Expand(Reduce("max", XL, "rmax"), "bmax")))),
              Expand(_maybe_cast(Reduce("sum", Either(_E, Op("prim.cast", _E)), "rsum")), "bsum"))


# exp(x - max(x)) / sum(exp(x - max(x))) over one axis -> nn.softmax.
def softmax(op, b):
    env = match(SOFTMAX, op.results[0])
    if env is None or not is_float_value(env["x"]):
        return None
    x = env["x"]
    axes = _axes_in(x, env["rmax"])
    if axes is None or len(axes) != 1 or _axes_in(x, env["rsum"]) != axes:
        return None
    if not (restores(env["bmax"], shape(x), axes) and restores(env["bsum"], shape(x), axes)):
        return None
    return b.nn("softmax", x, axis=axes[0])


# -- layer norm and RMS norm ---------------------------------------------------------------

_MEAN = Bind("mean", Mean(XL, "rmean"))
_VAR = Map("sub", Mean(Map("mul", XL, XL), "rsq"), Map("mul", Var("mean", True), Var("mean", True)))
_INV = Map("rsqrt", Map("add", Unit(Either(Map("max", K(0.0), _VAR), _VAR)), K(name="eps")))
_CENTERED = Map("sub", X, Expand(_MEAN, "bmean"))
_SCALED = Expand(Var("scale"), "bscale")
_LN_CORE = Either(
    Map("mul", _CENTERED, Map("mul", Expand(_INV, "binv"), _SCALED)),   # Flax LayerNorm
    Map("mul", Map("mul", _CENTERED, Expand(_INV, "binv")), _SCALED),   # written out
    Map("mul", _CENTERED, Expand(_INV, "binv")))                        # use_scale=False
LAYER_NORM = Either(Map("add", _LN_CORE, Expand(Var("bias"), "bbias")), _LN_CORE)


def _bias_follows(op, axis: int) -> bool:
    """The op's only user adds (or multiplies by) a vector broadcast along ``axis``:
    the larger pattern rooted there takes it."""
    if not single_use(op.results[0]):
        return False
    user = users(op.results[0])[0]
    if user.name != "prim.map" or attr(user, "fn") not in ("add", "mul"):
        return False
    other = [v for v in user.operands if v != op.results[0]]
    return len(other) == 1 and expansion(other[0])[1] == [axis]


# (x - mean) * rsqrt(max(E[x^2] - mean^2, 0) + eps) * scale + bias (Flax) -> nn.layer_norm.
def layer_norm(op, b):
    env = match(LAYER_NORM, op.results[0])
    if env is None or not is_float_value(env["x"]):
        return None
    x = env["x"]
    xs, dtype = shape(x), ttype(x).dtype
    axes = _axes_in(x, env["rmean"])
    if axes is None or len(axes) != 1 or _axes_in(x, env["rsq"]) != axes:
        return None
    axis = axes[0]
    if xs[axis] is None or not (restores(env["bmean"], xs, axes) and restores(env["binv"], xs, axes)):
        return None
    if "bias" not in env and _bias_follows(op, axis):
        return None
    if any(k in env and not _along(env[k], axis, dtype) for k in ("bscale", "bbias")):
        return None
    vec = ttype(x).with_shape([xs[axis]])
    scale = _vector(b, env["bscale"], xs[axis], axis, dtype) if "bscale" in env else b.splat(1.0, vec)
    bias = _vector(b, env["bbias"], xs[axis], axis, dtype) if "bbias" in env else b.splat(0.0, vec)
    return b.nn("layer_norm", x, scale, bias, axis=axis, epsilon=float(env["eps"]))


_RINV = Map("rsqrt", Map("add", Unit(Mean(Map("mul", XL, XL), "rsq")), K(name="eps")))
RMS_NORM = Either(
    Map("mul", X, Map("mul", Expand(_RINV, "binv"), _SCALED)),   # Flax RMSNorm
    Map("mul", Map("mul", X, Expand(_RINV, "binv")), _SCALED),   # written out
    Map("mul", X, Expand(_RINV, "binv")))                        # use_scale=False


# x * rsqrt(mean(x^2, last axis) + eps) * scale -> nn.rms_norm.
def rms_norm(op, b):
    env = match(RMS_NORM, op.results[0])
    if env is None or not is_float_value(env["x"]):
        return None
    x = env["x"]
    xs, last = shape(x), len(shape(x)) - 1
    if _axes_in(x, env["rsq"]) != [last] or xs[last] in (1, None) or not restores(env["binv"], xs, [last]):
        return None
    if "bscale" not in env and _bias_follows(op, last):
        return None
    if "bscale" in env and not _along(env["bscale"], last, ttype(x).dtype):
        return None
    scale = (_vector(b, env["bscale"], xs[last], last, ttype(x).dtype) if "bscale" in env
             else b.splat(1.0, ttype(x).with_shape([xs[last]])))
    return b.nn("rms_norm", x, scale, epsilon=float(env["eps"]))


# -- activations ----------------------------------------------------------------------------

_CUBE = Either(Map("mul", Map("mul", X, X), X), Map("pow", X, K(3.0)))
_TANH = Map("add", K(1.0), Map("tanh", Map("mul", K(math.sqrt(2 / math.pi)),
                                               Map("add", X, Map("mul", K(0.044715), _CUBE)))))
_ERF = Either(
    Map("sub", K(1.0), Map("erf", Map("mul", Map("neg", X), K(1 / math.sqrt(2))))),   # erfc(-x/sqrt2)
    Map("add", K(1.0), Map("erf", Either(Map("mul", X, K(1 / math.sqrt(2))), Map("div", X, K(math.sqrt(2)))))))


def _half_x_times(t):
    """x * (0.5 * t), (0.5 * x) * t and (x * t) * 0.5 (the orders JAX and people write)."""
    return Either(Map("mul", X, Map("mul", K(0.5), t)), Map("mul", Map("mul", K(0.5), X), t),
                  Map("mul", Map("mul", X, t), K(0.5)))


GELU_TANH, GELU_ERF = _half_x_times(_TANH), _half_x_times(_ERF)


# 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) -> nn.gelu {approximate = true}.
def gelu_tanh(op, b):
    env = match(GELU_TANH, op.results[0])
    return b.nn("gelu", env["x"], approximate=True) if env and is_float_value(env["x"]) else None


# 0.5 x erfc(-x / sqrt 2) = 0.5 x (1 + erf(x / sqrt 2)) -> nn.gelu {approximate = false}.
def gelu_erf(op, b):
    env = match(GELU_ERF, op.results[0])
    return b.nn("gelu", env["x"], approximate=False) if env and is_float_value(env["x"]) else None


SIGMOID = Either(Map("logistic", X), Map("div", K(1.0), Map("add", K(1.0), Map("exp", Map("neg", X)))))


# 1 / (1 + exp(-x)) and logistic(x) -> nn.sigmoid.
def sigmoid(op, b):
    env = match(SIGMOID, op.results[0])
    return b.nn("sigmoid", env["x"]) if env and is_float_value(env["x"]) else None


SILU = Map("mul", X, Op("nn.sigmoid", X))


# x * sigmoid(x) -> nn.silu.
def silu(op, b):
    env = match(SILU, op.results[0])
    return b.nn("silu", env["x"]) if env else None


RELU = Map("max", X, K(0.0))


# max(x, 0) on floats -> nn.relu.
def relu(op, b):
    env = match(RELU, op.results[0])
    return b.nn("relu", env["x"]) if env and is_float_value(env["x"]) else None


# -- contractions and bias adds ---------------------------------------------------------------


def plain_matmul(lhs: str, rhs: str, out: str) -> bool:
    """The spec is ``jnp.matmul``'s: [..., m, k] x [k, n] or [B.., m, k] x [B.., k, n]."""
    if len(rhs) == 1:
        return len(lhs) >= 2 and lhs[-1] == rhs and out == lhs[:-1]
    if len(lhs) == 1:
        return len(rhs) == 2 and rhs[0] == lhs and out == rhs[1]
    if len(rhs) == 2:
        return lhs[-1] == rhs[0] and rhs[1] not in lhs and out == lhs[:-1] + rhs[1]
    return (len(lhs) == len(rhs) and lhs[:-2] == rhs[:-2] and lhs[-1] == rhs[-2]
            and rhs[-1] not in lhs and out == lhs[:-1] + rhs[-1])


# a contraction in jnp.matmul form (one element type) -> nn.matmul.
def matmul(op, b):
    lhs, rhs, out = parse_contract_spec(attr(op, "spec"))
    a, w = op.operands
    if not plain_matmul(lhs, rhs, out) or len({ttype(v).dtype for v in (a, w, op.results[0])}) != 1:
        return None
    return b.nn("matmul", a, w)


# x[..., K1, K2] . w[K1, K2, N1, N2] (Flax DenseGeneral) -> reshapes around nn.matmul [.., K] x [K, N].
def flat_matmul(op, b):
    lhs, rhs, out = parse_contract_spec(attr(op, "spec"))
    a, w = op.operands
    k = len(set(lhs) & set(rhs))
    if not 0 < k < min(len(lhs), len(rhs)) or lhs[-k:] != rhs[:k] or out != lhs[:-k] + rhs[k:]:
        return None
    if len({ttype(v).dtype for v in (a, w, op.results[0])}) != 1:
        return None
    sa, sw = shape(a), shape(w)
    if None in sa[-k:] or None in sw:
        return None
    kk, n = math.prod(sa[-k:]), math.prod(sw[k:])
    lead = b.shape_of(a)[:-k]
    y = b.nn("matmul", b.reshape(a, lead + [kk]), b.reshape(w, (kk, n)))
    return b.reshape(y, lead + list(sw[k:]))


_MM = Op("nn.matmul", Var("x"), Var("w"), bind="mm")
LINEAR = Map("add", Either(_MM, Op("prim.reshape", _MM, bind="rs")), Expand(Var("bias"), "bb"))


# matmul(x, w) + bias broadcast along the output features (Flax Dense, DenseGeneral) -> nn.linear.
def linear(op, b):
    env = match(LINEAR, op.results[0])
    if env is None or len(shape(env["w"])) != 2 or len(shape(env["x"])) < 2:
        return None
    mm, rs = env["mm"], env.get("rs")
    if not single_use(mm.results[0]) or (rs is not None and not single_use(rs.results[0])):
        return None
    rows, n = shape(mm.results[0])[:-1], shape(mm.results[0])[-1]
    out = shape(op.results[0])
    if tuple(out[:len(rows)]) != tuple(rows) or n is None or None in out[len(rows):]:
        return None  # (the reshape must only split the features)
    features = [i for i in range(len(rows), len(out)) if out[i] != 1]
    src, pos = env["bb"]
    dtype = ttype(env["x"]).dtype
    if ttype(src).dtype != dtype or (pos != features and splat(src) is None):
        return None
    bias = b.reshape(src, [n]) if pos == features else b.splat(splat(src), ttype(src).with_shape([n]))
    y = b.nn("linear", env["x"], env["w"], bias)
    return b.reshape(y, b.shape_of(y)[:len(rows)] + list(out[len(rows):]))


CONV_BIAS = Map("add", Op("nn.conv2d", Var("x"), Var("w"), bind="conv"), Expand(Var("bias"), "bb"))


# conv2d(x, w) + bias broadcast along the channels (Flax Conv) -> nn.conv2d with its bias.
def conv_bias(op, b):
    env = match(CONV_BIAS, op.results[0])
    if env is None or len(env["conv"].operands) != 2 or not single_use(env["conv"].results[0]):
        return None
    out = shape(op.results[0])
    bias = _vector(b, env["bb"], out[3], 3, ttype(env["x"]).dtype)
    if bias is None:
        return None
    conv = env["conv"]
    attrs = {n: attr(conv, n) for n in ("strides", "padding", "dilation", "groups") if n in conv.attributes}
    return b.nn("conv2d", env["x"], env["w"], bias, **attrs)


# matmul-form contractions as nn.matmul (also without composites)
MATMUL = {"prim.contract": [matmul, flat_matmul]}
# phase -> {root op name: [rules]}, applied in order (the MoE layers last: _stablehlo_moe_layers).
PHASES = [
    {"prim.map": [softmax, layer_norm, rms_norm, gelu_tanh, gelu_erf, sigmoid]},
    {"prim.contract": [attention], "prim.map": [silu, relu]},
    MATMUL,
    {"prim.map": [linear, conv_bias]},
]
