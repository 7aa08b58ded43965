"""prim-to-linalg numerics: every prim op (and its variants) lowered, compiled by IREE
for each target of the ``run_target`` fixture (cpu, and vulkan on lavapipe where it is
installed: conftest.py) and compared with the op's numpy reference semantics.

All cases live in one module that is lowered and compiled once per target (IREE costs
~0.5 s per compile here); each case is one function ``@c<N>`` holding one prim op. A
case whose element types the target lacks (bf16 on Vulkan) is left out of that
target's module and skipped with the missing capability named.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import stepwell as sw
from stepwell.core import opspec
from stepwell.core.types import TensorType, dtype_of

from target_checks import missing_features, skip_unsupported

rng = np.random.default_rng(0)
BF16 = ml_dtypes.bfloat16
# (rtol, atol) per result element type; integers and i1 compare exactly.
TOLERANCE = {"f32": (2e-5, 2e-5), "f16": (1e-2, 1e-2), "bf16": (2e-2, 2e-2)}


def rand(shape, dtype=np.float32, lo=-2.0, hi=2.0):
    if np.dtype(dtype) == np.bool_:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "i":
        return rng.integers(int(lo), int(hi) + 1, shape).astype(dtype)
    return rng.uniform(lo, hi, shape).astype(dtype)


def away(shape, dtype=np.float32):
    """Values with |x| in [0.5, 2]: safe divisors."""
    return (rand(shape, np.float32, 0.5, 2.0) * np.where(rng.random(shape) < 0.5, -1, 1)).astype(dtype)


CASES: list[dict] = []


def case(id, op, inputs, result=None, ref_shape=None, input_types=(), **attrs):
    """One function applying ``prim.<op>`` to ``inputs``; ``result`` is the result type
    (inferred when left out), ``input_types`` override operand types (dynamic shapes),
    ``ref_shape`` is the concrete shape of a dynamic result-from-type."""
    CASES.append(dict(id=id, op=f"prim.{op}", inputs=inputs, result=result, ref_shape=ref_shape,
                      input_types=input_types, attrs=attrs))


# -- map ------------------------------------------------------------------------------------
X = rand((3, 5))
POS = rand((3, 5), lo=0.1, hi=3.0)
INTS = rand((3, 5), lo=-3, hi=3).astype(np.float32)  # equal values for the comparisons
for fn in ("neg", "abs", "exp", "tanh", "erf", "logistic", "sin", "cos", "floor", "ceil"):
    case(f"map-{fn}-f32", "map", [X], fn=fn)
for fn in ("log", "sqrt", "rsqrt"):
    case(f"map-{fn}-f32", "map", [POS], fn=fn)
case("map-recip-f32", "map", [away((3, 5))], fn="recip")
for fn in ("add", "sub", "mul", "max", "min"):
    case(f"map-{fn}-f32", "map", [X, rand((3, 5))], fn=fn)
case("map-div-f32", "map", [X, away((3, 5))], fn="div")
case("map-rem-f32", "map", [X * 3, away((3, 5))], fn="rem")
case("map-pow-f32", "map", [POS, X], fn="pow")
for fn in ("eq", "ne", "lt", "le", "gt", "ge"):
    case(f"map-{fn}-f32", "map", [INTS, rand((3, 5), lo=-3, hi=3).astype(np.float32)], fn=fn)
case("map-select-f32", "map", [rand((3, 5), bool), X, rand((3, 5))], fn="select")

I32 = rand((4, 6), np.int32, -50, 50)
I32B = rand((4, 6), np.int32, -50, 50)
NONZERO = np.where(I32B == 0, 7, I32B).astype(np.int32)
for fn in ("neg", "abs", "not"):
    case(f"map-{fn}-i32", "map", [I32], fn=fn)
for fn in ("add", "sub", "mul", "max", "min", "and", "or", "xor", "eq", "ne", "lt", "le", "gt", "ge"):
    case(f"map-{fn}-i32", "map", [I32, I32B], fn=fn)
for fn in ("div", "rem"):
    case(f"map-{fn}-i32", "map", [I32, NONZERO], fn=fn)
case("map-select-i32", "map", [rand((4, 6), bool), I32, I32B], fn="select")
I8 = rand((4, 6), np.int8, -100, 100)
for fn in ("add", "mul", "max", "neg"):
    case(f"map-{fn}-i8", "map", [I8, rand((4, 6), np.int8, -100, 100)][:1 if fn == "neg" else 2], fn=fn)
case("map-add-i64", "map", [rand((5,), np.int64, -9, 9), rand((5,), np.int64, -9, 9)], fn="add")
for fn in ("shl", "shr_s", "shr_u"):  # int4 (un)packing: shift amounts in [0, 8)
    case(f"map-{fn}-i8", "map", [I8, rand((4, 6), np.int8, 0, 7)], fn=fn)
case("map-round-f32", "map", [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.2, -3.7], np.float32)], fn="round")
B1, B2 = rand((8,), bool), rand((8,), bool)
case("map-not-i1", "map", [B1], fn="not")
for fn in ("and", "or", "xor", "eq", "ne", "lt", "ge", "max", "min"):
    case(f"map-{fn}-i1", "map", [B1, B2], fn=fn)
for dtype, name in ((np.float16, "f16"), (BF16, "bf16")):
    for fn in ("add", "mul", "max"):
        case(f"map-{fn}-{name}", "map", [rand((4, 4), dtype), rand((4, 4), dtype)], fn=fn)
    for fn in ("exp", "tanh", "logistic"):
        case(f"map-{fn}-{name}", "map", [rand((4, 4), dtype)], fn=fn)
case("map-add-dynamic", "map", [X, rand((3, 5))], input_types=["tensor<?x5xf32>", "tensor<?x5xf32>"],
     result="tensor<?x5xf32>", fn="add")
case("map-exp-rank0", "map", [np.array(0.5, np.float32)], fn="exp")

# -- contract ---------------------------------------------------------------------------------
case("contract-matmul", "contract", [rand((4, 8)), rand((8, 16))], spec="mk,kn->mn")
case("contract-batch-matmul", "contract", [rand((2, 4, 8)), rand((2, 8, 5))], spec="bmk,bkn->bmn")
case("contract-transposed-b", "contract", [rand((4, 8)), rand((6, 8))], spec="mk,nk->mn")
case("contract-transposed-a", "contract", [rand((8, 4)), rand((8, 6))], spec="km,kn->mn")
case("contract-multi-batch", "contract", [rand((2, 3, 4, 8)), rand((2, 3, 5, 8))], spec="bhqd,bhkd->bhqk")
case("contract-shared-rhs", "contract", [rand((2, 4, 8)), rand((8, 3))], spec="bmk,kn->bmn")
case("contract-matvec", "contract", [rand((3, 7)), rand((7,))], spec="mk,k->m")
case("contract-outer", "contract", [rand((3,)), rand((4,))], spec="m,n->mn")
case("contract-bf16-f32", "contract", [rand((4, 32), BF16), rand((32, 8), BF16)], result="tensor<4x8xf32>",
     spec="mk,kn->mn")
case("contract-bf16", "contract", [rand((4, 32), BF16), rand((32, 8), BF16)], spec="mk,kn->mn")
case("contract-f16-batch", "contract", [rand((2, 3, 16), np.float16), rand((2, 16, 4), np.float16)],
     spec="bmk,bkn->bmn")
case("contract-i8-i32", "contract", [rand((4, 16), np.int8, -100, 100), rand((16, 8), np.int8, -100, 100)],
     result="tensor<4x8xi32>", spec="mk,kn->mn")
case("contract-i32-generic", "contract", [rand((3, 4), np.int32, -9, 9), rand((5, 4), np.int32, -9, 9)],
     spec="mk,nk->mn")
case("contract-dynamic", "contract", [rand((3, 8)), rand((8, 4))], input_types=["tensor<?x8xf32>"],
     result="tensor<?x4xf32>", spec="mk,kn->mn")

# -- reduce -----------------------------------------------------------------------------------
R = rand((3, 4, 5))
for kind in ("sum", "max", "min", "prod"):
    case(f"reduce-{kind}-f32", "reduce", [R], kind=kind, axes=[1])
    case(f"reduce-{kind}-i32", "reduce", [rand((3, 4, 5), np.int32, -5, 5)], kind=kind, axes=[0, 2])
for kind in ("sum", "max", "min", "prod"):
    case(f"reduce-{kind}-i1", "reduce", [rand((4, 3), bool)], kind=kind, axes=[1])
case("reduce-sum-all", "reduce", [R], kind="sum", axes=[0, 1, 2])
case("reduce-max-negative-axis", "reduce", [R], kind="max", axes=[-1])
case("reduce-sum-bf16", "reduce", [rand((4, 8), BF16)], kind="sum", axes=[1])
case("reduce-sum-dynamic", "reduce", [R], input_types=["tensor<?x4x5xf32>"], result="tensor<?x5xf32>",
     kind="sum", axes=[1])

# -- shape ops ----------------------------------------------------------------------------------
case("broadcast-middle", "broadcast", [rand((3,))], result="tensor<2x3x4xf32>", dims=[1])
case("broadcast-outer", "broadcast", [rand((2, 4), np.int32, -9, 9)], result="tensor<2x3x4xi32>", dims=[0, 2])
case("broadcast-scalar", "broadcast", [np.array(1.5, np.float32)], result="tensor<2x3xf32>", dims=[])
case("broadcast-identity", "broadcast", [rand((2, 3))], result="tensor<2x3xf32>", dims=[0, 1])
case("broadcast-dynamic", "broadcast", [rand((3,))], input_types=["tensor<?xf32>"], result="tensor<?x2xf32>",
     ref_shape=(3, 2), dims=[0])
case("broadcast-i1", "broadcast", [rand((3,), bool)], result="tensor<3x2xi1>", dims=[0])
case("transpose", "transpose", [rand((2, 3, 4))], permutation=[2, 0, 1])
case("transpose-i8", "transpose", [rand((3, 5), np.int8, -9, 9)], permutation=[1, 0])
case("transpose-dynamic", "transpose", [rand((2, 3, 4))], input_types=["tensor<?x3x?xf32>"],
     result="tensor<?x?x3xf32>", permutation=[2, 0, 1])
for src, dst in (((2, 3, 4), (6, 4)), ((6, 4), (2, 3, 4)), ((2, 3, 4), (4, 6)), ((1, 6), (6,)),
                 ((6,), (1, 6, 1)), ((2, 1, 3), (6, 1)), ((1, 1), ()), ((), (1, 1)), ((4, 6), (8, 3)),
                 ((2, 3, 4), (2, 3, 4))):
    name = "x".join(map(str, src)) + "-to-" + "x".join(map(str, dst))
    case(f"reshape-{name}", "reshape", [rand(src)], result=str(TensorType(dst, "f32")))
case("reshape-dynamic-collapse", "reshape", [rand((3, 2, 4))], input_types=["tensor<?x2x4xf32>"],
     result="tensor<?x8xf32>", ref_shape=(3, 8))
CASTS = [("f32", "f16"), ("f32", "bf16"), ("f16", "f32"), ("bf16", "f32"), ("f16", "bf16"), ("bf16", "f16"),
         ("f32", "i32"), ("i32", "f32"), ("i32", "i8"), ("i8", "i32"), ("i1", "f32"), ("f32", "i1"),
         ("i32", "i1"), ("i1", "i32"), ("i8", "f16"), ("bf16", "i32"), ("i1", "bf16")]
for src, dst in CASTS:
    x = rand((3, 4), np.dtype(np.bool_) if src == "i1" else TensorType((), src).numpy_dtype(), -200, 200)
    if src == "f32":
        x[0, :2] = 0  # exact zeros for -> i1
    case(f"cast-{src}-{dst}", "cast", [x], result=f"tensor<3x4x{dst}>")
case("slice-strided", "slice", [rand((6, 8))], start=[1, 2], limit=[5, 8], stride=[2, 3])
case("slice-unit", "slice", [rand((4, 5, 6), np.int32, -9, 9)], start=[0, 1, 2], limit=[4, 3, 6])
case("pad-f32", "pad", [rand((2, 3))], low=[1, 0], high=[2, 3], value=1.5)
case("pad-neg-inf", "pad", [rand((2, 3))], low=[0, 1], high=[0, 1], value=float("-inf"))
case("pad-i32", "pad", [rand((2, 3), np.int32, -9, 9)], low=[1, 1], high=[0, 2], value=2.0)
case("pad-bf16", "pad", [rand((2, 2), BF16)], low=[1, 0], high=[0, 1], value=0.1)
case("concat-axis1", "concat", [rand((2, 3)), rand((2, 1)), rand((2, 4))], axis=1)
case("concat-axis0-i32", "concat", [rand((1, 3), np.int32, -9, 9), rand((2, 3), np.int32, -9, 9)], axis=0)
case("concat-negative-axis", "concat", [rand((2, 2, 1)), rand((2, 2, 2))], axis=-1)
case("concat-single", "concat", [rand((2, 2))], axis=0)
case("gather-embedding", "gather", [rand((10, 4)), np.array([[0, 3, 9], [-2, 12, 5]], np.int32)])
case("gather-axis1-i64", "gather", [rand((3, 5, 2)), np.array([4, 0, 7, 1], np.int64)], axis=1)
case("gather-scalar-id", "gather", [rand((6, 3), BF16), np.array(2, np.int32)])
case("iota-f32", "iota", [], result="tensor<3x4xf32>", dim=1)
case("iota-i32", "iota", [], result="tensor<2x5xi32>", dim=0)
case("iota-i64", "iota", [], result="tensor<2x3x4xi64>", dim=2)
case("iota-bf16", "iota", [], result="tensor<6xbf16>", dim=0)

# -- conv -------------------------------------------------------------------------------------
case("conv-basic", "conv", [rand((1, 6, 6, 3)), rand((3, 3, 3, 4))])
case("conv-strided", "conv", [rand((2, 7, 8, 3)), rand((3, 2, 3, 5))], strides=[2, 3])
case("conv-dilated", "conv", [rand((1, 9, 8, 2)), rand((3, 3, 2, 4))], dilation=[2, 1])
case("conv-padded", "conv", [rand((1, 5, 5, 2)), rand((3, 3, 2, 3))], padding=[1, 1, 2, 0])
case("conv-all", "conv", [rand((2, 9, 7, 4)), rand((3, 2, 2, 6))], padding=[1, 0, 2, 1], dilation=[2, 1],
     strides=[1, 2], groups=2)
case("conv-grouped", "conv", [rand((1, 6, 6, 6)), rand((3, 3, 2, 9))], groups=3)
case("conv-depthwise", "conv", [rand((1, 6, 6, 4)), rand((3, 3, 1, 4))], groups=4, padding=[1, 1, 1, 1])
case("conv-depthwise-multiplier", "conv", [rand((1, 6, 5, 3)), rand((3, 2, 1, 6))], groups=3,
     strides=[2, 1], dilation=[1, 2])
case("conv-bf16", "conv", [rand((1, 5, 5, 4), BF16), rand((3, 3, 4, 2), BF16)], padding=[1, 1, 1, 1])
case("conv-f16-depthwise", "conv", [rand((1, 5, 5, 2), np.float16), rand((3, 3, 1, 2), np.float16)], groups=2)
case("conv-i32", "conv", [rand((1, 4, 4, 2), np.int32, -5, 5), rand((2, 2, 2, 3), np.int32, -5, 5)])
case("conv-dynamic-batch", "conv", [rand((2, 6, 6, 3)), rand((3, 3, 3, 4))], padding=[1, 1, 1, 1],
     input_types=["tensor<?x6x6x3xf32>"], result="tensor<?x6x6x4xf32>")
case("conv-dynamic-spatial", "conv", [rand((1, 7, 6, 2)), rand((3, 3, 2, 4))], strides=[2, 2],
     padding=[1, 0, 0, 1], input_types=["tensor<1x?x?x2xf32>"], result="tensor<1x?x?x4xf32>")


def attr_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "array<i64" + "".join(f", {int(v)}" for v in value).replace(", ", ": ", 1) + ">"
    if isinstance(value, int):
        return f"{value} : i64"
    return f"{value!r} : f32".replace("-inf", "0xFF800000").replace("inf", "0x7F800000")


def build_case(i: int, c: dict) -> str:
    spec = opspec.lookup(c["op"])
    types = [str(TensorType(a.shape, dtype_of(a.dtype))) for a in c["inputs"]]
    types = [o or t for o, t in zip(c["input_types"], types)] + types[len(c["input_types"]):]
    result = c["result"]
    if result is None:
        sig = spec.bind([TensorType.parse(t) for t in types], c["attrs"])
        result = str(spec.infer_results(sig)[0])
    c["types"], c["result"] = types, result
    attrs = ", ".join(f"{k} = {attr_text(v)}" for k, v in c["attrs"].items())
    args = ", ".join(f"%a{j}: {t}" for j, t in enumerate(types))
    operands = ", ".join(f"%a{j}" for j in range(len(types)))
    return (f"func.func @c{i}({args}) -> {result} {{\n"
            f"  %0 = \"{c['op']}\"({operands}) {{{attrs}}} : ({', '.join(types)}) -> {result}\n"
            f"  return %0 : {result}\n}}\n")


TEXTS = [build_case(i, c) for i, c in enumerate(CASES)]  # also fills in c["types"], c["result"]


def case_types(c: dict) -> list[str]:
    return [*c["types"], c["result"]]


@pytest.fixture(scope="module")
def compiled(run_target):
    text = "".join(t for t, c in zip(TEXTS, CASES) if not missing_features(run_target, case_types(c)))
    module = sw.parse(text, name="prim-cases.mlir")
    sw.Pipeline("prim-to-linalg").run(module)
    leftover = [n for n in module.op_counts() if n.startswith(("prim.", "nn."))]
    assert not leftover, leftover
    return _compile(module, run_target)


def _compile(module, target):
    """A callable per function of the module compiled for ``target``."""
    exe = sw.compile(module, target=target)
    return lambda name: exe.function(name)


def reference(c: dict) -> np.ndarray:
    spec = opspec.lookup(c["op"])
    result = TensorType.parse(c["result"])
    if None in result.shape:
        shape = c["ref_shape"]
        if shape is None:
            return spec.evaluate(c["inputs"], c["attrs"])[0]
        result = result.with_shape(shape)
    return spec.evaluate(c["inputs"], c["attrs"], [result])[0]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["id"] for c in CASES])
def test_lowered_op_matches_reference(run_target, compiled, index):
    c = CASES[index]
    skip_unsupported(run_target, case_types(c), c["id"])
    got = np.asarray(compiled(f"c{index}")(*c["inputs"]))
    want = reference(c)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    dtype = dtype_of(want.dtype)
    if dtype in TOLERANCE:
        rtol, atol = TOLERANCE[dtype]
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got, want)


# -- attention=true: nn.attention through nn-to-prim, kept whole as iree_linalg_ext.attention --
ATTENTION_CASES = [  # (id, q, k, v, mask, attrs)
    ("plain", rand((2, 3, 8, 16)), rand((2, 3, 6, 16)), rand((2, 3, 6, 8)), None, {}),
    ("causal-scaled", rand((1, 2, 8, 4)), rand((1, 2, 8, 4)), rand((1, 2, 8, 4)), None,
     {"causal": True, "scale": 0.3}),
    ("mask-fully-masked-row", rand((1, 2, 4, 8)), rand((1, 2, 5, 8)), rand((1, 2, 5, 3)),
     np.array([[[[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]]]], bool), {}),
    ("f16", rand((1, 2, 4, 8), np.float16), rand((1, 2, 6, 8), np.float16), rand((1, 2, 6, 8), np.float16),
     None, {}),
]


def _attention_types(case) -> list[str]:
    return [str(TensorType(a.shape, dtype_of(a.dtype))) for a in case[1:5] if a is not None]


def _attention_module(target) -> tuple[str, int]:
    """The attention cases ``target`` supports, and how many there are."""
    funcs = []
    for i, (_, *arrays, attrs) in enumerate(ATTENTION_CASES):
        if missing_features(target, _attention_types(ATTENTION_CASES[i]), FUSED):
            continue
        arrays = [a for a in arrays if a is not None]
        types = [str(TensorType(a.shape, dtype_of(a.dtype))) for a in arrays]
        out = str(TensorType(arrays[0].shape[:-1] + arrays[2].shape[-1:], dtype_of(arrays[0].dtype)))
        text = ", ".join(f"{k} = {attr_text(v)}" for k, v in attrs.items())
        funcs.append(
            f"func.func @a{i}({', '.join(f'%a{j}: {t}' for j, t in enumerate(types))}) -> {out} {{\n"
            f"  %0 = \"nn.attention\"({', '.join(f'%a{j}' for j in range(len(types)))}) {{{text}}} "
            f": ({', '.join(types)}) -> {out}\n  return %0 : {out}\n}}\n")
    return "".join(funcs), len(funcs)


FUSED = ("fused_attention",)  # iree_linalg_ext.attention must compile for the target


@pytest.fixture(scope="module")
def attention_compiled(run_target):
    skip_unsupported(run_target, what="iree_linalg_ext.attention (prim-to-linalg{attention=true})",
                     needs=FUSED)
    text, n = _attention_module(run_target)
    module = sw.parse(text, name="attention-cases.mlir")
    sw.Pipeline("nn-to-prim,prim-to-linalg{attention=true}").run(module)
    counts = module.op_counts()
    assert counts.get("iree_linalg_ext.attention") == n, counts
    assert not any(n.startswith(("prim.", "nn.", "linalg.matmul", "linalg.batch_matmul")) for n in counts), counts
    return _compile(module, run_target)


@pytest.mark.parametrize("index", range(len(ATTENTION_CASES)), ids=[c[0] for c in ATTENTION_CASES])
def test_attention_kept_whole_matches_reference(run_target, attention_compiled, index):
    skip_unsupported(run_target, _attention_types(ATTENTION_CASES[index]), ATTENTION_CASES[index][0])
    _, q, k, v, mask, attrs = ATTENTION_CASES[index]
    inputs = [a for a in (q, k, v, mask) if a is not None]
    got = np.asarray(attention_compiled(f"a{index}")(*inputs))
    want = opspec.lookup("nn.attention").evaluate([q, k, v, mask], attrs)[0]
    rtol, atol = TOLERANCE[dtype_of(want.dtype)]
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=rtol, atol=atol)
