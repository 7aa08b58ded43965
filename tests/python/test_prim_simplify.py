"""prim-simplify: every rule keeps the numbers (numpy reference semantics, before vs after).

The FileCheck test tests/lit/prim-simplify.mlir shows what each rule does; here every
one of its cases, and randomly drawn instances of each rule, are run through the numpy
interpreter before and after the pass on random inputs.
"""

import pathlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stepwell as sw
from stepwell.numerics import interpreter
from stepwell.core import opspec
from stepwell.dialects.prim import MAP_FNS
from stepwell.core.ir import arith, context, func, ir
from stepwell.core.types import TensorType, dtype_of

LIT = pathlib.Path(__file__).parents[1] / "lit" / "prim-simplify.mlir"
CHUNKS = [c for c in LIT.read_text().split("// -----") if "func.func" in c]


def random_input(t: TensorType, rng) -> np.ndarray:
    if t.dtype == "i1":
        return rng.integers(0, 2, t.shape).astype(np.bool_)
    if t.dtype.startswith("i"):
        return rng.integers(-20, 21, t.shape).astype(t.numpy_dtype())
    return rng.standard_normal(t.shape).astype(t.numpy_dtype())


def simplify(module):
    after = module.clone()
    sw.Pipeline("prim-simplify").run(after)  # verifies after the pass
    return after


def assert_same_numbers(before, after, seed=0):
    """Every function of ``before`` and ``after`` gives the same results on random inputs."""
    rng = np.random.default_rng(seed)
    for name in before.function_names():
        f = next(op for op in before.body.operations if op.operation.name == "func.func"
                 and ir.StringAttr(op.attributes["sym_name"]).value == name)
        args = [random_input(TensorType.from_mlir(a.type), rng) for a in f.regions[0].blocks[0].arguments]
        want = interpreter.run(before, *args, function=name)
        got = interpreter.run(after, *args, function=name)
        assert len(want) == len(got)
        for w, g in zip(want, got):
            assert w.dtype == g.dtype and w.shape == g.shape
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=1e-5, atol=1e-5)


def prim_ops(module) -> dict:
    return {k: v for k, v in module.op_counts().items() if k.startswith("prim.")}


@pytest.mark.parametrize("chunk", CHUNKS, ids=[c.split("func.func @")[1].split("(")[0] for c in CHUNKS])
def test_lit_case_keeps_numbers(chunk):
    before = sw.parse(chunk)
    assert_same_numbers(before, simplify(before))


# -- building random instances of each rule -----------------------------------------


def build(arg_types, body):
    """A verified module with one function @main(arg_types) built by ``body``."""
    with context(), ir.Location.unknown():
        mod = ir.Module.create()
        with ir.InsertionPoint(mod.body):
            func.FuncOp.from_py_func(*[t.to_mlir() for t in arg_types], name="main")(body)
        return sw.parse(str(mod))


def constant(array: np.ndarray, splat: bool = False):
    t = TensorType(array.shape, dtype_of(array.dtype)).to_mlir()
    if splat:
        element = ir.RankedTensorType(t).element_type
        scalar = array.reshape(-1)[0]
        attr = (ir.FloatAttr.get(element, float(scalar)) if array.dtype.kind == "f"
                else ir.IntegerAttr.get(element, int(scalar)))
        return arith.ConstantOp(t, ir.DenseElementsAttr.get_splat(t, attr)).result
    return arith.ConstantOp(t, ir.DenseElementsAttr.get(np.ascontiguousarray(array), type=t)).result


def shapes(min_rank=1, max_rank=4, max_side=4):
    return st.lists(st.integers(1, max_side), min_size=min_rank, max_size=max_rank).map(tuple)


def inverse(perm):
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return out


CONTRACT_SPECS = ["mk,kn->mn", "bmk,bkn->bmn", "bhqd,bhkd->bhqk", "abc,c->ab", "i,j->ij", "ab,ab->ab"]


@given(data=st.data())
def test_transpose_into_contract(data):
    spec = data.draw(st.sampled_from(CONTRACT_SPECS))
    lhs, rhs, out = spec.replace("->", ",").split(",")
    sizes = {c: data.draw(st.integers(1, 4), label=c) for c in sorted(set(lhs + rhs))}
    perms = [data.draw(st.permutations(range(len(lhs)))), data.draw(st.permutations(range(len(rhs))))]
    # operand i is transpose(arg_i, perms[i]); arg_i's shape is the permuted-back one
    shapes_ = [[sizes[c] for c in letters] for letters in (lhs, rhs)]
    arg_types = [TensorType(tuple(s[q] for q in inverse(p)), "f32") for s, p in zip(shapes_, perms)]

    def body(a, b):
        ta = sw.prim.transpose(a, permutation=perms[0])
        tb = sw.prim.transpose(b, permutation=perms[1])
        return sw.prim.contract(ta, tb, spec=spec)

    before = build(arg_types, body)
    after = simplify(before)
    assert prim_ops(after) == {"prim.contract": 1}
    assert_same_numbers(before, after)


@given(data=st.data())
def test_transpose_of_contract(data):
    spec = data.draw(st.sampled_from(CONTRACT_SPECS))
    lhs, rhs, out = spec.replace("->", ",").split(",")
    sizes = {c: data.draw(st.integers(1, 4), label=c) for c in sorted(set(lhs + rhs))}
    perm = data.draw(st.permutations(range(len(out))))
    arg_types = [TensorType(tuple(sizes[c] for c in letters), "f32") for letters in (lhs, rhs)]
    before = build(arg_types, lambda a, b: sw.prim.transpose(sw.prim.contract(a, b, spec=spec), permutation=perm))
    after = simplify(before)
    assert prim_ops(after) == {"prim.contract": 1}
    assert_same_numbers(before, after)


@given(data=st.data())
def test_transpose_chain(data):
    shape = data.draw(shapes(1, 4))
    perms = data.draw(st.lists(st.permutations(range(len(shape))), min_size=1, max_size=4))

    def body(x):
        for p in perms:
            x = sw.prim.transpose(x, permutation=p)
        return x

    before = build([TensorType(shape, "f32")], body)
    after = simplify(before)
    assert prim_ops(after).get("prim.transpose", 0) <= 1
    assert_same_numbers(before, after)


@given(data=st.data())
def test_broadcast_chain(data):
    shape = data.draw(shapes(1, 2))
    steps, current = [], list(shape)
    for _ in range(data.draw(st.integers(1, 3))):
        extra = data.draw(st.lists(st.integers(1, 3), max_size=2))
        out_rank = len(current) + len(extra)
        dims = sorted(data.draw(st.permutations(range(out_rank)))[:len(current)])
        out = [0] * out_rank
        for i, d in enumerate(dims):
            out[d] = current[i]
        rest = iter(extra)
        out = [o if i in dims else next(rest) for i, o in enumerate(out)]
        steps.append((dims, TensorType(tuple(out), "f32")))
        current = out

    def body(x):
        for dims, t in steps:
            x = sw.prim.broadcast(x, dims=dims, result_type=t)
        return x

    before = build([TensorType(shape, "f32")], body)
    after = simplify(before)
    assert prim_ops(after).get("prim.broadcast", 0) <= 1
    assert_same_numbers(before, after)


@given(data=st.data())
def test_reshape_chain(data):
    dims = data.draw(shapes(1, 4))
    n = int(np.prod(dims))
    targets = []
    for _ in range(data.draw(st.integers(1, 3))):
        order = data.draw(st.permutations(dims))
        cut = data.draw(st.integers(0, len(order)))
        head, tail = int(np.prod(order[:cut])), int(np.prod(order[cut:]))
        targets.append(TensorType(tuple(d for d in (head, tail) if d != 1) or (n,), "f32"))

    def body(x):
        for t in targets:
            x = sw.prim.reshape(x, result_type=t)
        return x

    before = build([TensorType(dims, "f32")], body)
    after = simplify(before)
    assert prim_ops(after).get("prim.reshape", 0) <= 1
    assert_same_numbers(before, after)


IDENTITY_MAPS = [("add", 0, 0), ("add", 0, 1), ("sub", 0, 1), ("mul", 1, 0), ("mul", 1, 1), ("div", 1, 1)]


@pytest.mark.parametrize("dtype", ["f32", "i32"])
@pytest.mark.parametrize("fn,identity,pos", IDENTITY_MAPS)
def test_map_identity(fn, identity, pos, dtype):
    t = TensorType((3, 4), dtype)

    def body(x):
        c = constant(np.full(t.shape, identity, t.numpy_dtype()), splat=True)
        return sw.prim.map(*([c, x] if pos == 0 else [x, c]), fn=fn)

    before = build([t], body)
    after = simplify(before)
    assert prim_ops(after) == {}
    assert_same_numbers(before, after)


def test_select_and_min_max_of_equal_operands():
    t, c = TensorType((5,), "f32"), TensorType((5,), "i1")

    def body(cond, x, y):
        return (sw.prim.map(cond, x, x, fn="select"), sw.prim.map(x, x, fn="max"),
                sw.prim.map(y, y, fn="min"),
                sw.prim.map(constant(np.ones(5, np.bool_), splat=True), x, y, fn="select"),
                sw.prim.map(constant(np.zeros(5, np.bool_), splat=True), x, y, fn="select"))

    before = build([c, t, t], body)
    after = simplify(before)
    assert prim_ops(after) == {}
    assert_same_numbers(before, after)


def test_identity_shape_ops():
    t = TensorType((3, 4), "f32")

    def body(x):
        return (sw.prim.reshape(x, result_type=t), sw.prim.cast(x, result_type=t),
                sw.prim.broadcast(x, dims=[0, 1], result_type=t), sw.prim.transpose(x, permutation=[0, 1]),
                sw.prim.slice(x, start=[0, 0], limit=[3, 4]), sw.prim.reduce(x, kind="max", axes=[]),
                sw.prim.concat([x], axis=0), sw.prim.pad(x, low=[0, 0], high=[0, 0], value=2.0))

    before = build([t], body)
    after = simplify(before)
    assert prim_ops(after) == {}
    assert_same_numbers(before, after)


# -- constant folding: the folded constant equals the reference evaluation -----------


def small_operand(rng, fn, dtype, shape, index):
    np_dtype = TensorType((), dtype).numpy_dtype()
    if dtype == "i1" or (fn == "select" and index == 0):
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dtype == "i32":
        if fn in ("div", "rem") and index == 1:
            return rng.integers(1, 6, shape).astype(np_dtype)
        return rng.integers(-20, 21, shape).astype(np_dtype)
    if fn in ("log", "sqrt", "rsqrt", "pow"):
        return rng.uniform(0.5, 2.0, shape).astype(np_dtype)
    return rng.standard_normal(shape).astype(np_dtype)


def fold_dtype(fn):
    arity, float_only, _ = MAP_FNS[fn]
    if fn in ("and", "or", "xor", "not"):
        return "i1"
    return "f32" if float_only or fn == "select" else "i32"


def _lax_map(fn: str, *xs):
    """prim.map's scalar functions in jax.lax (the oracle: not the specs' numpy code)."""
    import jax.numpy as jnp
    from jax import lax
    unary = {"neg": lax.neg, "abs": lax.abs, "exp": lax.exp, "log": lax.log, "tanh": lax.tanh,
             "erf": lax.erf, "sqrt": lax.sqrt, "rsqrt": lax.rsqrt, "logistic": lax.logistic,
             "sin": lax.sin, "cos": lax.cos, "floor": lax.floor, "ceil": lax.ceil,
             "recip": lambda x: 1 / x, "not": lax.bitwise_not,
             "round": lambda x: lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN)}
    binary = {"add": lax.add, "sub": lax.sub, "mul": lax.mul, "div": lax.div, "max": lax.max,
              "min": lax.min, "pow": lax.pow, "rem": lax.rem, "and": lax.bitwise_and,
              "or": lax.bitwise_or, "xor": lax.bitwise_xor, "shl": lax.shift_left,
              "shr_s": lax.shift_right_arithmetic, "shr_u": lax.shift_right_logical,
              "eq": lax.eq, "ne": lax.ne, "lt": lax.lt, "le": lax.le, "gt": lax.gt, "ge": lax.ge}
    xs = [jnp.asarray(x) for x in xs]
    if fn == "select":
        return np.asarray(lax.select(*xs))
    return np.asarray((unary.get(fn) or binary[fn])(*xs))


@pytest.mark.parametrize("splat", [False, True], ids=["small", "splat"])
@pytest.mark.parametrize("fn", sorted(MAP_FNS))
def test_constant_fold_map(fn, splat):
    rng = np.random.default_rng(7)
    dtype = fold_dtype(fn)
    shape = (100, 3) if splat else (4, 5)
    xs = [small_operand(rng, fn, dtype, shape, i) for i in range(MAP_FNS[fn][0])]
    if splat:
        xs = [np.full(shape, x.reshape(-1)[0], x.dtype) for x in xs]
    before = build([], lambda: sw.prim.map(*[constant(x, splat) for x in xs], fn=fn))
    after = simplify(before)
    assert prim_ops(after) == {}
    got = interpreter.run(after)[0]
    want = _lax_map(fn, *xs)  # an independent oracle, not the folder's own spec.evaluate
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-6, atol=1e-6)


SMALL_FOLDS = {
    "contract": lambda c, a: sw.prim.contract(c(a((3, 4))), c(a((4, 2))), spec="mk,kn->nm"),
    "reduce": lambda c, a: sw.prim.reduce(c(a((3, 4, 2))), kind="sum", axes=[0, 2]),
    "transpose": lambda c, a: sw.prim.transpose(c(a((2, 3, 4))), permutation=[2, 0, 1]),
    "reshape": lambda c, a: sw.prim.reshape(c(a((2, 3, 4))), result_type=TensorType((6, 4), "f32")),
    "broadcast": lambda c, a: sw.prim.broadcast(c(a((4,))), dims=[1], result_type=TensorType((3, 4), "f32")),
    "cast": lambda c, a: sw.prim.cast(c(a((4, 4)) * 10), result_type=TensorType((4, 4), "i32")),
    "slice": lambda c, a: sw.prim.slice(c(a((6, 5))), start=[1, 0], limit=[6, 5], stride=[2, 3]),
    "pad": lambda c, a: sw.prim.pad(c(a((3, 3))), low=[1, 0], high=[0, 2], value=-1.0),
    "concat": lambda c, a: sw.prim.concat([c(a((2, 3))), c(a((4, 3)))], axis=0),
    "gather": lambda c, a: sw.prim.gather(c(a((5, 3))), c(np.array([4, 0, 9, -1], np.int32))),
    "conv": lambda c, a: sw.prim.conv(c(a((1, 4, 4, 2))), c(a((2, 2, 2, 3))), padding=[1, 0, 0, 1]),
    # routing ops (dialects/prim_moe.py)
    "scan": lambda c, a: sw.prim.scan(c(np.array([[1, 0], [2, 3], [0, 1]], np.int32)), axis=0, exclusive=True),
    "scatter": lambda c, a: sw.prim.scatter(c(a((5, 2))), c(np.array([4, 0, 7, -1], np.int32)), c(a((4, 2)))),
    "block_matmul": lambda c, a: sw.prim.block_matmul(c(a((8, 4))), c(np.array([2, 0], np.int32)),
                                                       c(a((3, 4, 5))), block=4),
    "block_ffn": lambda c, a: sw.prim.block_ffn(c(a((4, 3))), c(np.array([1, 0], np.int32)), c(a((2, 3, 4))),
                                                 c(a((2, 3, 4))), c(a((2, 4, 3))), block=2, activation="silu"),
}


def test_small_folds_cover_every_op():
    # (map/iota: folded by the tests above; top_k has two results and update_slice index
    # operands (its offsets), which the folder leaves alone: single-result ops of tensors only)
    unfolded = ("prim.map", "prim.iota", "prim.top_k", "prim.update_slice")
    folded = sorted(s.name for s in opspec.specs("prim") if s.name not in unfolded)
    assert sorted(f"prim.{k}" for k in SMALL_FOLDS) == folded


@pytest.mark.parametrize("op", SMALL_FOLDS)
def test_constant_fold_small(op):
    rng = np.random.default_rng(3)

    def arr(shape):
        return rng.standard_normal(shape).astype(np.float32)

    before = build([], lambda: SMALL_FOLDS[op](constant, arr))
    assert prim_ops(before)
    after = simplify(before)
    assert prim_ops(after) == {}
    assert_same_numbers(before, after)


def test_large_constants_are_not_folded():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((9, 8)).astype(np.float32)
    before = build([], lambda: sw.prim.transpose(constant(a), permutation=[1, 0]))
    assert prim_ops(simplify(before)) == {"prim.transpose": 1}


def test_types_numpy_cannot_hold_are_left_alone():
    before = sw.parse("""
    func.func @main() -> tensor<4xf8E4M3FN> {
      %b = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
      %0 = "prim.cast"(%b) : (tensor<4xf32>) -> tensor<4xf8E4M3FN>
      return %0 : tensor<4xf8E4M3FN>
    }""")
    assert prim_ops(simplify(before)) == {"prim.cast": 1}


def test_dynamic_shapes():
    before = sw.parse("""
    func.func @main(%x: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<4x?xf32>) {
      %0 = "prim.reshape"(%x) : (tensor<?x4xf32>) -> tensor<?x4xf32>
      %1 = "prim.transpose"(%x) {permutation = array<i64: 1, 0>} : (tensor<?x4xf32>) -> tensor<4x?xf32>
      %2 = "prim.transpose"(%1) {permutation = array<i64: 1, 0>} : (tensor<4x?xf32>) -> tensor<?x4xf32>
      %3 = "prim.transpose"(%2) {permutation = array<i64: 1, 0>} : (tensor<?x4xf32>) -> tensor<4x?xf32>
      return %0, %3 : tensor<?x4xf32>, tensor<4x?xf32>
    }""")
    after = simplify(before)
    assert prim_ops(after) == {"prim.transpose": 1}
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    for w, g in zip(interpreter.run(before, x), interpreter.run(after, x)):
        np.testing.assert_array_equal(w, g)
