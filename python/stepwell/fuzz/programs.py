"""Random valid ``nn`` programs, each with its reference values and its JAX twin.

:func:`generate` builds a program op by op from a :class:`~stepwell.fuzz.choice.Chooser`:
one or more inputs (f32, or bf16/f16 for low precision), then 1-6 ops drawn from
elementwise math with broadcasting, reductions, softmax and norms, matmul/linear,
attention (masks, causal), convolution (strides, padding, dilation, groups),
reshapes, transposes, concatenation and casts. Every op's result type comes from
its spec's inference and its value from its numpy reference (``spec.evaluate``) on
the concrete inputs, so the program is valid by construction and its references
are known; an op whose values leave a well-conditioned range (overflow, huge
magnitudes) is not taken. :func:`jax_function` is the same program in ``jax.numpy``
(written here, independent of the specs).

:func:`programs` is the hypothesis strategy (``pytest -m fuzz``); the campaign runner
is :mod:`stepwell.fuzz.run_programs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stepwell.core import opspec
from stepwell.core.types import TensorType, dtype_of, numpy_dtype

FLOATS = ("f32", "f32", "f32", "f32", "bf16", "f16")
LIMIT = {"f32": 1e4, "bf16": 1e3, "f16": 1e3}  # largest magnitude a value may take


class Reject(Exception):
    """The drawn op does not fit (invalid per its spec, or badly conditioned)."""


@dataclass
class Value:
    name: str
    type: TensorType
    array: np.ndarray


@dataclass
class Program:
    """One function: inputs (with their arrays), ops (name, operands, attrs, result)."""
    args: list = field(default_factory=list)
    ops: list = field(default_factory=list)
    rng: np.random.Generator | None = None
    result: Value | None = None

    # -- inputs ---------------------------------------------------------------------
    def input(self, shape, dtype: str, kind: str = "normal") -> Value:
        shape = tuple(int(d) for d in shape)
        if kind == "positive":
            a = self.rng.uniform(0.5, 2.0, shape)
        elif kind == "mask":
            a = self.rng.random(shape) > 0.3
            if a.ndim:
                a[..., 0] = True  # no fully masked row (its softmax is a convention)
        else:
            a = np.clip(self.rng.standard_normal(shape), -3, 3)
        a = np.asarray(a).astype(numpy_dtype(dtype))
        v = Value(f"%a{len(self.args)}", TensorType(shape, dtype), a)
        self.args.append(v)
        return v

    # -- ops --------------------------------------------------------------------------
    def op(self, name: str, operands, attrs=None, result_type: TensorType | None = None) -> Value:
        attrs = {k: v for k, v in (attrs or {}).items() if v is not None}
        spec = opspec.lookup(name)
        try:
            with np.errstate(all="ignore"):
                out = spec.evaluate([v.array for v in operands], attrs,
                                    [result_type] if result_type is not None else None)[0]
        except (opspec.SpecFailure, ValueError, TypeError) as e:
            raise Reject(f"{name}: {e}") from None
        rtype = TensorType(tuple(out.shape), dtype_of(out.dtype))
        if out.dtype.kind == "f" or rtype.dtype == "bf16":
            wide = out.astype(np.float64)
            if not np.all(np.isfinite(wide)) or (wide.size and np.max(np.abs(wide)) > LIMIT.get(rtype.dtype, 1e4)):
                raise Reject(f"{name}: values out of range")
        v = Value(f"%v{len(self.ops)}", rtype, out)
        self.ops.append((name, operands, attrs, v))
        return v

    # -- text ---------------------------------------------------------------------------
    def text(self, fn: str = "main") -> str:
        args = ", ".join(f"{a.name}: {a.type}" for a in self.args)
        lines = [f"func.func @{fn}({args}) -> {self.result.type} {{"]
        for name, operands, attrs, v in self.ops:
            attr = ", ".join(f"{k} = {_attr_text(x)}" for k, x in attrs.items())
            lines.append(f'  {v.name} = "{name}"({", ".join(o.name for o in operands)})'
                         + (f" {{{attr}}}" if attr else "")
                         + f" : ({', '.join(str(o.type) for o in operands)}) -> {v.type}")
        lines.append(f"  return {self.result.name} : {self.result.type}\n}}\n")
        return "\n".join(lines)

    @property
    def inputs(self) -> list:
        return [a.array for a in self.args]

    @property
    def low_precision(self) -> bool:
        return any(v.type.dtype in ("bf16", "f16") for *_, v in self.ops) or any(
            a.type.dtype in ("bf16", "f16") for a in self.args)


def _attr_text(x) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return f"{x} : i64"
    if isinstance(x, float):
        return f"{x:.6e} : f32"
    if isinstance(x, str):
        return f'"{x}"'
    return "array<i64" + (": " + ", ".join(map(str, x)) if len(x) else "") + ">"


# -- the rules: each draws one op on value v ------------------------------------------------
UNARY = ("nn.relu", "nn.gelu", "nn.silu", "nn.sigmoid", "nn.tanh", "nn.exp")
BINARY = ("nn.add", "nn.sub", "nn.mul", "nn.maximum", "nn.minimum", "nn.div")


def _bound(v: Value) -> float:
    a = v.array.astype(np.float64)
    return float(np.max(np.abs(a))) if a.size else 0.0


def unary(ch, p, v):
    name = ch.pick(UNARY)
    if name == "nn.exp" and _bound(v) > 4:
        raise Reject("exp of a large value")
    return p.op(name, [v], {"approximate": ch.boolean()} if name == "nn.gelu" else None)


def _broadcast_shape(ch, shape):
    """A shape that broadcasts with ``shape``: some dims 1, maybe fewer leading dims."""
    out = [1 if ch.boolean(0.3) else d for d in shape]
    return out[ch.integer(0, len(out)):] if ch.boolean(0.3) else out


def binary(ch, p, v):
    name = ch.pick(BINARY)
    other = p.input(_broadcast_shape(ch, v.type.shape), v.type.dtype,
                    "positive" if name == "nn.div" else "normal")
    a, b = (v, other) if name == "nn.div" or ch.boolean() else (other, v)
    return p.op(name, [a, b])


def reduce(ch, p, v):
    name = ch.pick(("nn.reduce_sum", "nn.reduce_mean", "nn.reduce_max"))
    axes = None if ch.boolean(0.2) else sorted(set(ch.subset(range(v.type.rank))) or {v.type.rank - 1})
    return p.op(name, [v], {"axes": axes, "keepdims": ch.boolean()})


def softmax(ch, p, v):
    return p.op("nn.softmax", [v], {"axis": ch.integer(-v.type.rank, v.type.rank - 1)})


def norm(ch, p, v):
    if ch.boolean():
        axis = ch.integer(-v.type.rank, v.type.rank - 1)
        n = v.type.shape[axis]
        return p.op("nn.layer_norm", [v, p.input([n], v.type.dtype), p.input([n], v.type.dtype)],
                    {"axis": axis, "epsilon": ch.pick((1e-5, 1e-3))})
    return p.op("nn.rms_norm", [v, p.input([v.type.shape[-1]], v.type.dtype)],
                {"epsilon": ch.pick((1e-5, 1e-6))})


def matmul(ch, p, v):
    k, n = v.type.shape[-1], ch.integer(1, 6)
    if ch.boolean() and v.type.rank >= 1:
        b = [p.input([k, n], v.type.dtype)]
        if ch.boolean():
            b.append(p.input([n], v.type.dtype))
        return p.op("nn.linear", [v, *b])
    batch = _broadcast_shape(ch, v.type.shape[:-2]) if v.type.rank > 2 and ch.boolean() else []
    return p.op("nn.matmul", [v, p.input([*batch, k, n], v.type.dtype)])


def transpose(ch, p, v):
    perm = list(range(v.type.rank))
    for i in range(len(perm) - 1, 0, -1):
        j = ch.integer(0, i)
        perm[i], perm[j] = perm[j], perm[i]
    return p.op("nn.transpose", [v], {"permutation": None if ch.boolean(0.2) else perm})


def reshape(ch, p, v):
    total = int(np.prod(v.type.shape))
    dims = []
    rest = total
    for _ in range(ch.integer(0, 3)):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = ch.pick(divisors)
        dims.append(d)
        rest //= d
    dims.append(rest)
    order = [ch.integer(0, 100) for _ in dims]
    dims = [d for _, d in sorted(zip(order, dims))]
    return p.op("nn.reshape", [v], result_type=TensorType(tuple(dims), v.type.dtype))


def concat(ch, p, v):
    axis = ch.integer(0, v.type.rank - 1)
    others = []
    for _ in range(ch.integer(1, 2)):
        shape = list(v.type.shape)
        shape[axis] = ch.integer(1, 4)
        others.append(p.input(shape, v.type.dtype))
    parts = [v, *others]
    if ch.boolean():
        parts.reverse()
    return p.op("nn.concat", parts, {"axis": axis - v.type.rank if ch.boolean() else axis})


def cast(ch, p, v):
    to = ch.pick([t for t in ("f32", "bf16", "f16") if t != v.type.dtype])
    return p.op("nn.cast", [v], result_type=v.type.with_dtype(to))


def attention(ch, p, v):
    if v.type.rank != 4:
        raise Reject("attention takes [batch, heads, seq, dim]")
    b, h, sq, d = v.type.shape
    sk, dv = ch.integer(1, 6), ch.integer(1, 6)
    k = p.input([b if ch.boolean(0.8) else 1, h, sk, d], v.type.dtype)
    val = p.input([b, h, sk, dv], v.type.dtype)
    operands = [v, k, val]
    if ch.boolean(0.4):
        operands.append(p.input([ch.pick((1, b)), ch.pick((1, h)), sq, sk], "i1", "mask"))
    causal = ch.boolean(0.3)
    return p.op("nn.attention", operands, {"causal": causal or None,
                                           "scale": ch.pick((None, None, 0.5, 0.125))})


def conv(ch, p, v):
    if v.type.rank != 4:
        raise Reject("conv2d takes NHWC")
    cin = v.type.shape[3]
    groups = ch.pick([g for g in range(1, cin + 1) if cin % g == 0])
    cout = groups * ch.integer(1, 3)
    kh, kw = ch.integer(1, 3), ch.integer(1, 3)
    w = p.input([kh, kw, cin // groups, cout], v.type.dtype)
    operands = [v, w] + ([p.input([cout], v.type.dtype)] if ch.boolean() else [])
    padding = ch.pick(("SAME", "VALID", "explicit"))
    if padding == "explicit":
        padding = [ch.integer(0, 2) for _ in range(4)]
    return p.op("nn.conv2d", operands, {
        "strides": [ch.integer(1, 2), ch.integer(1, 2)], "padding": padding,
        "dilation": [ch.integer(1, 2), ch.integer(1, 2)] if ch.boolean(0.3) else None,
        "groups": groups if groups > 1 else None})


RULES = {"unary": unary, "binary": binary, "reduce": reduce, "softmax": softmax, "norm": norm,
         "matmul": matmul, "transpose": transpose, "reshape": reshape, "concat": concat,
         "cast": cast, "attention": attention, "conv": conv}


SCALAR_RULES = ("unary", "binary", "reshape", "cast")  # what a rank-0 value can take


def generate(ch, *, max_ops: int = 6) -> Program:
    """One random valid program (see the module docstring)."""
    p = Program(rng=np.random.default_rng(ch.integer(0, 2 ** 31 - 1)))
    dtype = ch.pick(FLOATS)
    start = ch.pick(("any", "any", "attention", "conv"))
    rank = 4 if start != "any" else ch.integer(1, 4)
    shape = [ch.integer(1, 5) for _ in range(rank)]
    values = [p.input(shape, dtype)]
    if start != "any":
        try:
            values.append(RULES[start](ch, p, values[0]))
        except Reject:
            pass
    for _ in range(ch.integer(1, max_ops)):
        v = ch.pick(values[-2:])
        rule = ch.pick([r for r in RULES if (r not in ("attention", "conv") or v.type.rank == 4)
                        and (v.type.rank > 0 or r in SCALAR_RULES)])
        try:
            values.append(RULES[rule](ch, p, v))
        except Reject:
            continue
    if not p.ops:
        values.append(unary(ch, p, values[0]) if _bound(values[0]) <= 4 else p.op("nn.relu", [values[0]]))
    p.result = values[-1]
    return p


def programs():
    """The hypothesis strategy of :func:`generate`'s programs."""
    from hypothesis import strategies as st

    from stepwell.fuzz.choice import DrawChooser
    return st.composite(lambda draw: generate(DrawChooser(draw)))()


# -- the same program in jax.numpy ---------------------------------------------------------
def jax_function(p: Program):
    """``f(*inputs)`` computing ``p`` with jax.numpy (in f32 where the spec upcasts)."""
    import jax
    import jax.numpy as jnp

    def f32(x):
        return x.astype(jnp.float32) if x.dtype != jnp.float32 else x

    def layer_norm(x, s, b, axis, epsilon):
        x = f32(x)
        m = x.mean(axis, keepdims=True)
        var = ((x - m) ** 2).mean(axis, keepdims=True)
        shape = [1] * x.ndim
        shape[axis] = -1
        return (x - m) / jnp.sqrt(var + epsilon) * f32(s).reshape(shape) + f32(b).reshape(shape)

    def attention(q, k, v, mask=None, causal=False, scale=None):
        q, k, v = f32(q), f32(k), f32(v)
        scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
        logits = jnp.einsum("bhqd,bhkd->bhqk", q, k) * scale
        keep = jnp.ones(logits.shape, bool)
        if mask is not None:
            keep = keep & mask
        if causal:
            keep = keep & jnp.tril(jnp.ones(logits.shape[-2:], bool))
        logits = jnp.where(keep, logits, -0.7 * float(np.finfo(np.float32).max))
        return jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(logits, -1), v)

    def conv(x, w, b=None, strides=(1, 1), padding="SAME", dilation=(1, 1), groups=1):
        pad = padding if isinstance(padding, str) else [tuple(padding[:2]), tuple(padding[2:])]
        y = jax.lax.conv_general_dilated(f32(x), f32(w), tuple(strides), pad, rhs_dilation=tuple(dilation),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         feature_group_count=groups)
        return y if b is None else y + f32(b)

    def reduce(fn):
        return lambda x, axes=None, keepdims=False: fn(f32(x), axis=None if axes is None else tuple(axes),
                                                       keepdims=keepdims)

    ops = {
        "nn.relu": lambda x: jax.nn.relu(f32(x)), "nn.silu": lambda x: jax.nn.silu(f32(x)),
        "nn.gelu": lambda x, approximate=True: jax.nn.gelu(f32(x), approximate=approximate),
        "nn.sigmoid": lambda x: jax.nn.sigmoid(f32(x)), "nn.tanh": lambda x: jnp.tanh(f32(x)),
        "nn.exp": lambda x: jnp.exp(f32(x)),
        "nn.add": lambda a, b: f32(a) + f32(b), "nn.sub": lambda a, b: f32(a) - f32(b),
        "nn.mul": lambda a, b: f32(a) * f32(b), "nn.div": lambda a, b: f32(a) / f32(b),
        "nn.maximum": lambda a, b: jnp.maximum(f32(a), f32(b)),
        "nn.minimum": lambda a, b: jnp.minimum(f32(a), f32(b)),
        "nn.reduce_sum": reduce(jnp.sum), "nn.reduce_mean": reduce(jnp.mean), "nn.reduce_max": reduce(jnp.max),
        "nn.softmax": lambda x, axis=-1: jax.nn.softmax(f32(x), axis=axis),
        "nn.layer_norm": lambda x, s, b, axis=-1, epsilon=1e-5: layer_norm(x, s, b, axis, epsilon),
        "nn.rms_norm": lambda x, s, epsilon=1e-5: f32(x) / jnp.sqrt(
            (f32(x) ** 2).mean(-1, keepdims=True) + epsilon) * f32(s),
        "nn.matmul": lambda a, b: jnp.matmul(f32(a), f32(b)),
        "nn.linear": lambda x, w, b=None: f32(x) @ f32(w) + (0 if b is None else f32(b)),
        "nn.transpose": lambda x, permutation=None: jnp.transpose(x, permutation),
        "nn.concat": lambda *xs, axis=0: jnp.concatenate(xs, axis=axis),
        "nn.attention": attention, "nn.conv2d": conv,
    }

    def run(*inputs):
        env = {a.name: x for a, x in zip(p.args, inputs)}
        for name, operands, attrs, v in p.ops:
            xs = [env[o.name] for o in operands]
            if name == "nn.reshape":
                y = jnp.reshape(xs[0], v.type.shape)
            elif name == "nn.cast":
                y = xs[0]
            else:
                y = ops[name](*xs, **attrs)
            env[v.name] = jnp.asarray(y).astype(numpy_dtype(v.type.dtype))  # the op's result type
        return env[p.result.name]
    return run
