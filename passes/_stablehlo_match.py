"""Matching helpers for ``stablehlo-to-nn``: producers, unit-dim equivalence, broadcast
chains, a small pattern language for op DAGs, and the prim clean-ups the matchers need.

JAX writes the same computation with many unit-dim reshapes, unit-dim transposes and
two-step broadcasts; the helpers look through them:

* ``strip(v)``: ``v`` before any reshape/transpose/broadcast that only moves or adds
  size-1 dims (the non-unit dims keep their order, so they correspond one to one);
* ``expansion(v)``: ``(src, pos)`` where ``v`` is a broadcast chain of ``src`` and
  ``pos[i]`` is the dim of ``v`` that ``src``'s i-th non-unit dim became.

Patterns are data: ``Map("mul", Var("x"), K(0.5))`` matches ``prim.map {fn = "mul"}`` of
the bound value ``x`` and a splat constant 0.5 (in either order: ``mul`` commutes).
"""

from __future__ import annotations

import math

import numpy as np

from stepwell.core import opspec
from stepwell.core.ir import ir
from stepwell.core.passes_base import index_constant
from stepwell.dialects.prim_builder import PrimBuilder
from stepwell.core.types import TensorType, is_float

NO_MATCH = True  # what a rewrite function returns when it does not apply
COMMUTATIVE = ("add", "mul", "max", "min", "and", "or", "xor", "eq", "ne")
SHAPE_OPS = ("prim.reshape", "prim.transpose", "prim.broadcast")
ROUNDING = {"bf16": 2.0 ** -8, "f16": 2.0 ** -11}  # relative rounding error of a constant


# -- values and attributes ------------------------------------------------------------


def producer(value, *names):
    """The op defining ``value`` (one of ``names`` if given), else None."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    op = owner.operation
    return op if not names or op.name in names else None


def ttype(value) -> TensorType | None:
    return TensorType.from_mlir(value.type)


def shape(value) -> tuple:
    return ttype(value).shape


def attr(op, name: str):
    return opspec.attr_to_python(op.attributes[name])[1] if name in op.attributes else None


def nonunit(dims) -> list[int]:
    """Positions of the dims that are not 1."""
    return [i for i, d in enumerate(dims) if d != 1]


def single_use(value) -> bool:
    return len(list(value.uses)) == 1


def users(value) -> list:
    return [u.owner for u in value.uses]


def splat(value):
    """The scalar of a constant whose elements are all equal (or of a broadcast of one:
    a splat of a dynamic shape), else None."""
    op = producer(value, "arith.constant", "stablehlo.constant")
    if op is None:
        bcast = producer(value, "prim.broadcast")
        return splat(bcast.operands[0]) if bcast is not None else None
    a = op.attributes["value"]
    if not isinstance(a, (ir.DenseFPElementsAttr, ir.DenseIntElementsAttr)):
        return None
    if a.is_splat:
        v = a.get_splat_value()
        if isinstance(v, ir.BoolAttr):
            return bool(v.value)
        return v.value if ttype(value).dtype != "i1" else bool(v.value)
    t = ttype(value)
    if t.dtype in ("bf16", "i1") or None in t.shape or math.prod(t.shape) > 4096:
        return None
    arr = np.asarray(a)
    return arr.reshape(-1)[0].item() if arr.size and np.all(arr == arr.reshape(-1)[0]) else None


def close(a, b, rel: float = 1e-5) -> bool:
    if a is None or b is None:
        return False
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-12


# -- unit-dim equivalence and broadcast chains ------------------------------------------


def is_unit_shuffle(op) -> bool:
    """A reshape/transpose/broadcast that only moves, adds or drops size-1 dims (a
    dynamic dim counts as non-unit; a reshape's sizes must be its operand's own)."""
    if op is None or op.name not in SHAPE_OPS:
        return False
    src, dst = shape(op.operands[0]), shape(op.results[0])
    if op.name == "prim.reshape":
        if [d for d in src if d != 1] != [d for d in dst if d != 1]:
            return False
        return dst.count(None) <= 1 or _own_sizes(op, src, dst)
    if op.name == "prim.transpose":
        kept = [p for p in attr(op, "permutation") if src[p] != 1]
        return kept == sorted(kept)
    dims = attr(op, "dims")
    return all(d == 1 for i, d in enumerate(dst) if i not in dims)


def _own_sizes(op, src, dst) -> bool:
    """No sizes (the lowering pairs the dynamic dims in order), or each is ``tensor.dim``
    of the operand at the matching dynamic dim."""
    sizes, dyn_src = list(op.operands)[1:], [i for i, d in enumerate(src) if d is None]
    return not sizes or (len(sizes) == len(dyn_src) and all(
        (d := producer(v, "tensor.dim")) is not None and d.operands[0] == op.operands[0]
        and index_constant(d.operands[1]) == i for v, i in zip(sizes, dyn_src)))


def strip(value):
    """``value`` before unit-dim shuffles."""
    while is_unit_shuffle(producer(value)):
        value = producer(value).operands[0]
    return value


def equivalent(a, b, depth: int = 4) -> bool:
    """``a`` and ``b`` are computed by identical pure prim ops from equivalent operands
    (JAX converts one value twice, and MLIR's CSE does not touch unregistered ops)."""
    if a == b:
        return True
    pa, pb = producer(a), producer(b)
    if depth == 0 or pa is None or pb is None or pa.name != pb.name or a.type != b.type:
        return False
    if not pa.name.startswith("prim.") or len(pa.operands) != len(pb.operands):
        return False
    attrs = [{n: str(op.attributes[n]) for n in op.attributes} for op in (pa, pb)]
    return attrs[0] == attrs[1] and all(
        equivalent(x, y, depth - 1) for x, y in zip(pa.operands, pb.operands))


def same(a, b) -> bool:
    """Equal values up to unit-dim shuffles (and recomputation)."""
    return a == b or equivalent(strip(a), strip(b))


def _chain(value) -> tuple[list, object]:
    """The broadcast chain ending at ``value`` (last op first) and its source."""
    ops = []
    while True:
        op = producer(value, *SHAPE_OPS)
        if op is None or (op.name == "prim.reshape" and not is_unit_shuffle(op)):
            return ops, value
        ops.append(op)
        value = op.operands[0]


def expansion(value):
    """``(src, pos)``: ``value`` is a broadcast chain of ``src`` whose i-th non-unit dim
    is ``value``'s dim ``pos[i]`` (an empty chain gives ``(value, nonunit dims)``)."""
    ops, src = _chain(value)
    pos = nonunit(shape(src))
    for op in reversed(ops):
        if op.name == "prim.reshape":
            nin, nout = nonunit(shape(op.operands[0])), nonunit(shape(op.results[0]))
            pos = [nout[nin.index(p)] for p in pos]
        elif op.name == "prim.transpose":
            perm = list(attr(op, "permutation"))
            pos = [perm.index(p) for p in pos]
        else:
            dims = attr(op, "dims")
            pos = [dims[p] for p in pos]
    return src, pos


def kept_dims(full_shape, axes) -> list[int]:
    """The non-unit dims of ``full_shape`` outside ``axes``."""
    return [d for d in nonunit(full_shape) if d not in axes]


def reduced_axes(x, reduce_op) -> list[int] | None:
    """The axes of ``x`` that ``reduce_op`` (whose input is ``x`` up to unit shuffles)
    reduces, in ``x``'s coordinates; None when it reduces a unit dim only or is unrelated."""
    y = reduce_op.operands[0]
    if not same(x, y):
        return None
    ny, nx = nonunit(shape(y)), nonunit(shape(x))
    axes = [a % len(shape(y)) for a in attr(reduce_op, "axes")]
    picked = [nx[i] for i, d in enumerate(ny) if d in axes]
    return picked or None


def restores(expanded, full_shape, axes) -> bool:
    """``expanded`` (an ``expansion`` pair) broadcasts a reduction over ``axes`` back to
    ``full_shape``: its source's non-unit dims land exactly on the other non-unit dims."""
    return expanded[1] == kept_dims(full_shape, axes)


# -- the pattern language -------------------------------------------------------------------


class Pat:
    """A pattern: called on a value and the bindings so far, yields extended bindings."""

    def __call__(self, value, env):
        raise NotImplementedError


def match(pattern: Pat, value) -> dict | None:
    """The first bindings under which ``pattern`` matches ``value``, else None."""
    return next(iter(pattern(value, {})), None)


class Var(Pat):
    """Binds a value to ``name``; a second occurrence must be the same value (``loose``:
    the same up to unit-dim shuffles)."""

    def __init__(self, name: str, loose: bool = False):
        self.name, self.loose = name, loose

    def __call__(self, value, env):
        bound = env.get(self.name)
        if bound is None:
            yield {**env, self.name: value}
        elif bound == value or (self.loose and same(bound, value)):
            yield env


class K(Pat):
    """A splat constant: equal to ``value`` (relative ``rel``) or any, bound to ``name``."""

    def __init__(self, value=None, name: str | None = None, rel: float = 1e-5, pred=None):
        self.value, self.name, self.rel, self.pred = value, name, rel, pred

    def __call__(self, v, env):
        c = splat(v)
        rel = max(self.rel, ROUNDING.get(ttype(v).dtype, 0.0))  # a bf16 0.044715 is 0.0446777
        if c is None or (self.value is not None and not close(float(c), self.value, rel)):
            return
        if self.pred is not None and not self.pred(c):
            return
        yield {**env, self.name: c} if self.name else env


def _seq(pats, values, env):
    if not pats:
        yield env
        return
    for e in pats[0](values[0], env):
        yield from _seq(pats[1:], values[1:], e)


class Map(Pat):
    """``prim.map {fn}`` of operands matching ``args`` (commutative fns: either order)."""

    def __init__(self, fn: str, *args: Pat):
        self.fn, self.args = fn, args

    def __call__(self, value, env):
        op = producer(value, "prim.map")
        if op is None or attr(op, "fn") != self.fn or len(op.operands) != len(self.args):
            return
        operands = list(op.operands)
        yield from _seq(self.args, operands, env)
        if self.fn in COMMUTATIVE and len(operands) == 2:
            yield from _seq(self.args, operands[::-1], env)


class Op(Pat):
    """An op named ``name`` with operands matching ``args``; binds the op to ``bind``."""

    def __init__(self, name: str, *args: Pat, bind: str | None = None, **attrs):
        self.name, self.args, self.bind, self.attrs = name, args, bind, attrs

    def __call__(self, value, env):
        op = producer(value, self.name)
        if op is None or len(op.operands) < len(self.args):
            return
        if any(attr(op, k) != v for k, v in self.attrs.items()):
            return
        for e in _seq(self.args, list(op.operands)[:len(self.args)], env):
            yield {**e, self.bind: op} if self.bind else e


def Reduce(kind: str, arg: Pat, bind: str) -> Pat:
    """``prim.reduce {kind}`` of ``arg``; binds the reduce op."""
    return Op("prim.reduce", arg, bind=bind, kind=kind)


class Expand(Pat):
    """A broadcast chain of a value matching ``arg``; binds ``(src, pos)`` to ``name``."""

    def __init__(self, arg: Pat, name: str):
        self.arg, self.name = arg, name

    def __call__(self, value, env):
        src, pos = expansion(value)
        for e in self.arg(src, env):
            yield {**e, self.name: (src, pos)}


class Unit(Pat):
    """A value matching ``arg`` up to unit-dim shuffles."""

    def __init__(self, arg: Pat):
        self.arg = arg

    def __call__(self, value, env):
        yield from self.arg(strip(value), env)


class Bind(Pat):
    """Binds the value matched by ``arg`` to ``name``."""

    def __init__(self, name: str, arg: Pat):
        self.name, self.arg = name, arg

    def __call__(self, value, env):
        for e in self.arg(value, env):
            yield {**e, self.name: value}


class Either(Pat):
    """The first alternatives that match, in order."""

    def __init__(self, *alts: Pat):
        self.alts = alts

    def __call__(self, value, env):
        for alt in self.alts:
            yield from alt(value, env)


class Mean(Pat):
    """``reduce_sum(arg) / n`` or ``reduce_sum(arg) * (1/n)`` with n the reduced element
    count; binds the reduce op to ``bind``."""

    def __init__(self, arg: Pat, bind: str):
        self.inner = Either(Map("div", Reduce("sum", arg, bind), K(name="_n")),
                            Map("mul", Reduce("sum", arg, bind), K(name="_inv")))
        self.bind = bind

    def __call__(self, value, env):
        for e in self.inner(value, env):
            op = e[self.bind]
            dims = shape(op.operands[0])
            if any(dims[a % len(dims)] is None for a in attr(op, "axes")):
                continue  # (a mean over a dynamic axis divides by a run-time count)
            n = math.prod(dims[a % len(dims)] for a in attr(op, "axes"))
            got = e["_n"] if "_n" in e else (1 / e["_inv"] if e["_inv"] else None)
            if got is not None and close(float(got), float(n)):
                yield {k: v for k, v in e.items() if k not in ("_n", "_inv")}


# -- building -------------------------------------------------------------------------------


class Builder(PrimBuilder):
    """PrimBuilder plus nn ops and shape helpers for the raising rules; it remembers the
    ops it created (``created``) so that a rule failing half-way can take them back."""

    def __init__(self):
        self.created = []

    def _op(self, name, *operands, result_type=None, **attrs):
        value = super()._op(name, *operands, result_type=result_type, **attrs)
        self.created.append((value[0] if isinstance(value, tuple) else value).owner)  # (multi-result ops)
        return value

    def splat(self, value, t):
        result = super().splat(value, t)
        self.created.append(result.owner)
        return result

    def nn(self, name: str, *operands, result_type=None, **attrs):
        return self._op(f"nn.{name}", *operands, result_type=result_type, **attrs)

    def squeeze(self, x):
        """``x`` without its size-1 dims."""
        s = shape(x)
        return self.reshape(x, [d for d in s if d != 1])

    def expand(self, x, pos, out_shape):
        """Broadcast ``x`` (non-unit dims -> ``pos``) to ``out_shape``, the inverse of
        :func:`expansion`: squeeze, transpose into position order, broadcast or reshape."""
        if tuple(out_shape) == shape(x) and pos == nonunit(out_shape):
            return x  # the chain moved unit dims away and back
        x = self.squeeze(x)
        order = sorted(range(len(pos)), key=lambda i: pos[i])
        x = self.transpose(x, order)
        dims = sorted(pos)
        if all(d == 1 for i, d in enumerate(out_shape) if i not in dims):
            return self.reshape(x, out_shape)
        return self.broadcast(x, dims, out_shape)


def expand_op_count(x, pos, out_shape) -> int:
    """How many ops :meth:`Builder.expand` creates."""
    s = shape(x)
    if tuple(out_shape) == s and pos == nonunit(out_shape):
        return 0
    sq = [d for d in s if d != 1]
    order = sorted(range(len(pos)), key=lambda i: pos[i])
    dims = sorted(pos)
    n = int(list(sq) != list(s)) + int(order != sorted(order))
    if all(d == 1 for i, d in enumerate(out_shape) if i not in dims):
        return n + int(tuple(sq[i] for i in order) != tuple(out_shape))
    return n + 1


# -- prim clean-ups the matchers rely on -------------------------------------------------------


def _replace(op, rewriter, build):
    with rewriter.ip, op.location:
        new = build(Builder())
    rewriter.replace_op(op, [new])


# a chain of broadcasts, unit reshapes and transposes is one squeeze/transpose/broadcast.
def collapse_expansion(op, rewriter):
    ops, src = _chain(op.results[0])
    out = shape(op.results[0])
    if len(ops) < 2 or None in shape(src) or None in out:
        return NO_MATCH
    _, pos = expansion(op.results[0])
    if expand_op_count(src, pos, out) >= len(ops):
        return NO_MATCH
    _replace(op, rewriter, lambda b: b.expand(src, pos, out))


# a transpose or broadcast that only moves or adds size-1 dims is a reshape.
def shuffle_as_reshape(op, rewriter):
    if op.name == "prim.reshape" or not is_unit_shuffle(op):
        return NO_MATCH
    x = op.operands[0]
    _replace(op, rewriter, lambda b: b._op("prim.reshape", x, result_type=op.results[0].type))


def _absorbing(fn, c) -> bool:
    """``c`` is the identity of map ``fn`` (max: -inf, min: +inf, and: true, or: false)."""
    return {"max": c == -math.inf, "min": c == math.inf, "and": c is True,
            "or": c is False}.get(fn, False)


# max(x, -inf), min(x, +inf), and(x, true) and or(x, false) are x.
def fold_identity_element(op, rewriter):
    fn = attr(op, "fn")
    if fn not in ("max", "min", "and", "or"):
        return NO_MATCH
    for i in (0, 1):
        c = splat(op.operands[i])
        if c is not None and _absorbing(fn, c) and op.operands[1 - i].type == op.results[0].type:
            rewriter.replace_op(op, [op.operands[1 - i]])
            return None
    return NO_MATCH


# select(c, true, false) is c (on i1).
def fold_bool_select(op, rewriter):
    if attr(op, "fn") != "select" or ttype(op.results[0]).dtype != "i1":
        return NO_MATCH
    if splat(op.operands[1]) is True and splat(op.operands[2]) is False:
        rewriter.replace_op(op, [op.operands[0]])
        return None
    return NO_MATCH


# ne(cast(b), 0) with b of i1 is b (Flax turns boolean masks into floats and back).
def fold_bool_roundtrip(op, rewriter):
    if attr(op, "fn") != "ne":
        return NO_MATCH
    for i in (0, 1):
        cast = producer(op.operands[i], "prim.cast")
        if cast is not None and ttype(cast.operands[0]).dtype == "i1" and splat(op.operands[1 - i]) == 0:
            rewriter.replace_op(op, [cast.operands[0]])
            return None
    return NO_MATCH


def is_float_value(x) -> bool:
    """Whether the value's element type is a float."""
    return is_float(ttype(x).dtype)
