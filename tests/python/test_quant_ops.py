"""The quantized nn ops (dialects/nn_quant.py) and their numpy math (stepwell.quantize):
round trips within half a scale, int4 packing, the references through the nn-to-prim
lowering (interpreted) and compiled on the CPU, ``quantized_linear`` against
dequantize-then-matmul, the dequantization fused into the matmul's dispatch, and the
verifier's errors."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest
from hypothesis import given, strategies as st

import stepwell as sw
from stepwell.compiler import driver as compiler
from stepwell.numerics import interpreter
from stepwell.core import quantize as qz

import quant_reference as ref

# -- numpy math ---------------------------------------------------------------------------


@st.composite
def quant_cases(draw):
    bits = draw(st.sampled_from([8, 4]))
    groups = draw(st.integers(1, 4))
    gsize = draw(st.sampled_from([1, 2, 3, 8]))
    other = 2 * draw(st.integers(1, 3))  # even: int4 packs along the last dimension
    axis = draw(st.sampled_from([0, 1]))
    shape = (groups * gsize, other) if axis == 0 else (other, 2 * groups * gsize)
    per_channel = draw(st.booleans())
    group_size = 0 if per_channel else (gsize if axis == 0 else 2 * gsize)
    symmetric = draw(st.booleans())
    scale = draw(st.sampled_from([1e-3, 1.0, 50.0]))
    seed = draw(st.integers(0, 2**16))
    return bits, shape, axis, group_size, symmetric, scale, seed


@given(quant_cases())
def test_round_trip_is_within_half_a_scale(case):
    bits, shape, axis, group_size, symmetric, scale, seed = case
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
    s, z = qz.compute_scales(x, bits, group_size, axis, symmetric)
    groups = 1 if group_size == 0 else shape[axis] // group_size
    assert s.shape == tuple(groups if i == axis else d for i, d in enumerate(shape))
    assert (z is None) == symmetric
    q = qz.quantize(x, s, z, bits, group_size, axis)
    assert q.dtype == np.int8 and q.shape == (shape if bits == 8 else shape[:-1] + (shape[-1] // 2,))
    values = qz.unpack_int4(q) if bits == 4 else q
    qmin, qmax = qz.qrange(bits)
    assert values.min() >= qmin and values.max() <= qmax
    back = qz.dequantize(q, s, z, bits, group_size, axis)
    bound = np.repeat(s, shape[axis] // s.shape[axis], axis=axis) / 2
    assert np.all(np.abs(back - x) <= bound * (1 + 1e-5) + 1e-30)


def test_int4_packing_layout():
    q = np.array([[1, -2, 7, -8], [0, -1, 3, 4]], np.int8)
    p = qz.pack_int4(q)
    # element i in the low nibble of byte i, element i + L/2 in its high nibble
    assert p.view(np.uint8).tolist() == [[0x71, 0x8E], [0x30, 0x4F]]
    np.testing.assert_array_equal(qz.unpack_int4(p), q)
    with pytest.raises(ValueError, match="even last dimension"):
        qz.pack_int4(np.zeros((2, 3), np.int8))


def test_scales_shape_is_checked():
    with pytest.raises(ValueError, match=r"scales/zero points must have shape \(2, 4\)"):
        qz.dequantize(np.zeros((8, 4), np.int8), np.ones((4, 4), np.float32), None, 8, 4, 0)
    with pytest.raises(ValueError, match="group_size 3 does not divide the axis size 8"):
        qz.compute_scales(np.zeros((8, 4), np.float32), 8, 3)
    with pytest.raises(ValueError, match="bits must be 8 or 4, found 3"):
        qz.qrange(3)


def test_all_zero_group_gets_a_unit_scale():
    s, z = qz.compute_scales(np.zeros((4, 2), np.float32), 8, 0, 0, symmetric=False)
    np.testing.assert_array_equal(s, np.ones((1, 2), np.float32))
    np.testing.assert_array_equal(qz.dequantize(qz.quantize(np.zeros((4, 2)), s, z), s, z), 0)


# -- the ops: interpreter (nn and prim levels) and compiled -----------------------------------
RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 32)).astype(np.float32)


def _t(shape, dtype):
    return "tensor<" + "".join(f"{d}x" for d in shape) + dtype + ">"


def _qd_function(name, bits, axis, group_size, symmetric):
    """quantize then dequantize X with scales computed in numpy."""
    s, z = qz.compute_scales(X, bits, group_size, axis, symmetric)
    qshape = X.shape if bits == 8 else (X.shape[0], X.shape[1] // 2)
    ops = ["%s"] + ([] if symmetric else ["%z"])
    types = [_t(s.shape, "f32")] + ([] if symmetric else [_t(s.shape, "i8")])
    attrs = f"{{axis = {axis} : i64, bits = {bits} : i64, group_size = {group_size} : i64}}"
    args = ", ".join(f"{o}: {t}" for o, t in zip(ops, types))
    xt, qt, rest = _t(X.shape, "f32"), _t(qshape, "i8"), ", ".join(types)
    text = (f"func.func @{name}(%x: {xt}, {args}) -> ({qt}, {xt}) {{\n"
            f'  %q = "nn.quantize"(%x, {", ".join(ops)}) {attrs} : ({xt}, {rest}) -> {qt}\n'
            f'  %d = "nn.dequantize"(%q, {", ".join(ops)}) {attrs} : ({qt}, {rest}) -> {xt}\n'
            f"  return %q, %d : {qt}, {xt}\n}}\n")
    return text, [X, s] + ([] if symmetric else [z]), (s, z)


def _ql_function(name, bits, group_size, symmetric, bias, batch=(2, 3), k=64, n=16):
    """quantized_linear of a random weight; returns (text, args, numpy expectation)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # hash(str) changes per process
    w = (rng.standard_normal((k, n)) / 8).astype(np.float32)
    x = rng.standard_normal(batch + (k,)).astype(np.float32)
    q, s, z = qz.quantize_weight(w, bits, group_size, symmetric)
    b = rng.standard_normal(n).astype(np.float32)
    names, arrays = ["%x", "%q", "%s"], [x, q, s]
    if not symmetric:
        names.append("%z")
        arrays.append(z)
    if bias:
        names.append("%b")
        arrays.append(b)
    types = [_t(a.shape, {np.dtype(np.int8): "i8"}.get(a.dtype, "f32")) for a in arrays]
    out = _t(batch + (n,), "f32")
    text = (f"func.func @{name}({', '.join(f'{v}: {t}' for v, t in zip(names, types))}) -> {out} {{\n"
            f'  %y = "nn.quantized_linear"({", ".join(names)}) {{bits = {bits} : i64, group_size = {group_size} : i64}}'
            f" : ({', '.join(types)}) -> {out}\n  return %y : {out}\n}}\n")
    want = x @ ref.dequantize(q, s, None if symmetric else z, bits, group_size, 0) + (b if bias else 0)
    return text, arrays, want


QD_CASES = [(f"qd_{bits}_{axis}_{gs}_{'s' if sym else 'a'}", bits, axis, gs, sym)
            for bits in (8, 4) for axis, gs in ((0, 4), (1, 8), (1, 0)) for sym in (True, False)]
QL_CASES = [(f"ql_{bits}_{gs}_{'s' if sym else 'a'}_{'b' if bias else 'n'}", bits, gs, sym, bias)
            for bits in (8, 4) for gs in (0, 16) for sym in (True, False) for bias in (False, True)]


@pytest.fixture(scope="module")
def quant_module():
    """Every case in one module: its nn form, prim form and one CPU executable."""
    texts, cases = [], {}
    for name, *params in QD_CASES:
        text, args, extra = _qd_function(name, *params)
        texts.append(text)
        cases[name] = (args, extra)
    for name, *params in QL_CASES:
        text, args, want = _ql_function(name, *params)
        texts.append(text)
        cases[name] = (args, want)
    m = sw.parse("".join(texts), name="quant_cases.mlir")
    return m, sw.lower(m, "prim"), sw.compile(m, target="cpu"), cases


@pytest.mark.parametrize("case", QD_CASES, ids=[c[0] for c in QD_CASES])
def test_quantize_dequantize_match_numpy(quant_module, case):
    name, bits, axis, group_size, symmetric = case
    m, prim, exe, cases = quant_module
    args, (s, z) = cases[name]
    want_q = ref.quantize(X, s, z, bits, group_size, axis)  # an independent reference
    want_q = ref.pack(want_q) if bits == 4 else want_q
    want_d = ref.dequantize(want_q, s, z, bits, group_size, axis)
    for how, got in (("nn", interpreter.run(m, *args, function=name)),
                     ("prim", interpreter.run(prim, *args, function=name)),
                     ("cpu", exe.function(name)(*args))):
        np.testing.assert_array_equal(got[0], want_q, err_msg=f"{name} quantize ({how})")
        np.testing.assert_array_equal(got[1], want_d, err_msg=f"{name} dequantize ({how})")
    bound = np.repeat(s, X.shape[axis] // s.shape[axis], axis=axis) / 2
    assert np.all(np.abs(want_d - X) <= bound * (1 + 1e-5))


@pytest.mark.parametrize("case", QL_CASES, ids=[c[0] for c in QL_CASES])
def test_quantized_linear_is_dequantize_then_matmul(quant_module, case):
    name = case[0]
    m, prim, exe, cases = quant_module
    args, want = cases[name]
    for how, got in (("nn", interpreter.run(m, *args, function=name)[0]),
                     ("prim", interpreter.run(prim, *args, function=name)[0]),
                     ("cpu", exe.function(name)(*args))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{name} ({how})")


def test_fourth_operand_is_zero_points_or_bias_by_type():
    t_zp, args_zp, want_zp = _ql_function("zp", 8, 0, False, False)
    t_b, args_b, want_b = _ql_function("bias", 8, 0, True, True)
    m = sw.parse(t_zp + t_b)
    np.testing.assert_allclose(interpreter.run(m, *args_zp, function="zp")[0], want_zp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(interpreter.run(m, *args_b, function="bias")[0], want_b, rtol=1e-5, atol=1e-5)


# -- the dequantization stays in the matmul's dispatch -----------------------------------------


def _dispatches(text: str) -> list[str]:
    return re.findall(r"flow\.dispatch @[\w$]+::@([\w$]+)\((.*?)\) : \((.*?)\) -> (.*?)(?: loc|$)", text, re.M)


@pytest.mark.parametrize("bits,group_size", [(8, 0), (8, 64), (4, 0), (4, 64)])
def test_dequantization_is_fused_into_the_matmul_dispatch(bits, group_size):
    k, n = 256, 128
    w = np.random.default_rng(1).standard_normal((k, n)).astype(np.float32)
    q, s, _ = qz.quantize_weight(w, bits, group_size)
    qt, st_ = _t(q.shape, "i8"), _t(s.shape, "f32")
    hexq = "0x" + q.tobytes().hex().upper()
    hexs = "0x" + s.tobytes().hex().upper()
    text = (f"func.func @main(%x: tensor<4x{k}xf32>) -> tensor<4x{n}xf32> {{\n"
            f'  %q = arith.constant dense<"{hexq}"> : {qt}\n'
            f'  %s = arith.constant dense<"{hexs}"> : {st_}\n'
            f'  %y = "nn.quantized_linear"(%x, %q, %s) {{bits = {bits} : i64, group_size = {group_size} : i64}}'
            f" : (tensor<4x{k}xf32>, {qt}, {st_}) -> tensor<4x{n}xf32>\n"
            f"  return %y : tensor<4x{n}xf32>\n}}\n")
    m = sw.parse(text)
    flow = sw.lower(m, to="dispatch")
    calls = _dispatches(flow)
    assert calls, flow[-2000:]
    # the i8 weight (IREE may regroup its dims) goes straight into contraction dispatches
    # (int4: one per nibble) ...
    weight_users = [c for c in calls if "xi8>" in c[2]]
    assert len(weight_users) == (1 if bits == 8 else 2), calls
    for user in weight_users:
        assert re.search(r"mat(mul|vec)", user[0]), user[0]
    # ... and no dispatch produces or reads a float tensor as large as the weight
    def float_weights(text):
        return [t for t in re.findall(r"tensor<([\dx]+)x(f32|f16|bf16)>", text)
                if np.prod([int(d) for d in t[0].split("x")]) >= k * n]
    for name, _, ins, outs in calls:
        assert not float_weights(ins + outs), (name, ins, outs)
    # nothing holds the weight in f32: the globals are the i8 weight and the scales
    assert not float_weights("".join(re.findall(r"util\.global .*?:.*", flow)))
    # and the dispatch computes the right thing
    x = np.random.default_rng(2).standard_normal((4, k)).astype(np.float32)
    np.testing.assert_allclose(sw.compile(m)(x), x @ qz.dequantize_weight(q, s, None, bits, group_size),
                               rtol=1e-4, atol=1e-4)


def test_iree_flags_only_for_dequantizing_modules():
    from stepwell import targets
    from stepwell.compiler import quant_flags as qf
    cpu = targets.get("cpu")
    plain = sw.lower(sw.parse(_ql_function("f", 8, 0, True, False)[0].replace(
        '"nn.quantized_linear"', '"nn.quantized_linear"')), "linalg")
    assert qf.iree_flags(plain, cpu) == qf.DEQUANT_FLAGS + qf.DEQUANT_FLAGS_CPU
    f32 = sw.lower(sw.parse("func.func @f(%a: tensor<4x8xf32>, %b: tensor<8x2xf32>) -> tensor<4x2xf32> {\n"
                            '  %0 = "nn.matmul"(%a, %b) : (tensor<4x8xf32>, tensor<8x2xf32>) -> tensor<4x2xf32>\n'
                            "  return %0 : tensor<4x2xf32>\n}\n"), "linalg")
    assert qf.iree_flags(f32, cpu) == ()
    assert "--iree-global-opt-data-tiling=false" not in qf.iree_flags(plain, targets.get("vulkan"))


# -- verifier errors -------------------------------------------------------------------------
LINEAR = "(tensor<4x64xf32>, tensor<64x16xi8>, tensor<1x16xf32>)"
NEGATIVE = [
    ('"nn.quantized_linear"(%x, %q, %s) {bits = 3 : i64}', LINEAR,
     "'nn.quantized_linear' attribute 'bits' must be one of 8, 4, found 3"),
    ('"nn.quantized_linear"(%x, %q, %s) {group_size = 24 : i64}', LINEAR,
     "'nn.quantized_linear' group_size 24 does not divide the in size of qweight tensor<64x16xi8> (64)"),
    ('"nn.quantized_linear"(%x, %q, %s) {group_size = 16 : i64}', LINEAR,
     "'nn.quantized_linear' scales must have shape [4, 16] (axis 0 holds the 4 groups of 16), found tensor<1x16xf32>"),
    ('"nn.quantized_linear"(%x, %q, %s) {bits = 4 : i64}', LINEAR,
     "'nn.quantized_linear' scales must have shape [1, 32] (axis 0 holds the 1 groups of all), found tensor<1x16xf32>"),
    ('"nn.quantize"(%x, %s) {bits = 4 : i64, group_size = -2 : i64}', "(tensor<4x64xf32>, tensor<1x64xf32>)",
     "'nn.quantize' group_size must be positive, or 0/-1 for one group per channel, found -2"),
    ('"nn.dequantize"(%x, %s)', "(tensor<4x64xf32>, tensor<1x64xf32>)",
     "'nn.dequantize' q must have element type i8 (int4 values packed two per byte), found tensor<4x64xf32>"),
]


@pytest.mark.parametrize("op,types,message", NEGATIVE, ids=[f"neg{i}" for i in range(len(NEGATIVE))])
def test_verifier_errors(op, types, message):
    names = re.findall(r"%\w+", op.split("{")[0])
    arg_types = types.strip("()").split(", ")
    result = "tensor<4x16xf32>" if "linear" in op else "tensor<4x64xi8>"
    args = ", ".join(f"{v}: {t}" for v, t in zip(names, arg_types))
    text = f"func.func @f({args}) {{\n  %r = {op} : {types} -> {result}\n  return\n}}\n"
    with pytest.raises(sw.VerifyError) as e:
        sw.parse(text, name="q.mlir")
    assert str(e.value).splitlines()[0] == f"q.mlir:2:8: error: {message}"


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("axis, group_size", [(0, 4), (1, 8), (1, 0)])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_scales_and_packing_match_an_independent_reference(bits, axis, group_size, symmetric):
    """The quantization math the ops' specs share (stepwell.core.quantize) against
    quant_reference.py, element by element: scales, zero points, values, int4 packing."""
    s, z = qz.compute_scales(X, bits, group_size, axis, symmetric)
    rs, rz = ref.scales(X, bits, group_size, axis, symmetric)
    np.testing.assert_array_equal(s, rs)
    if symmetric:
        assert z is None and rz is None
    else:
        np.testing.assert_array_equal(z, rz)
    q = qz.quantize(X, s, z, bits, group_size, axis, pack=False)
    np.testing.assert_array_equal(q, ref.quantize(X, rs, rz, bits, group_size, axis))
    if bits == 4:
        np.testing.assert_array_equal(qz.pack_int4(q), ref.pack(q))
        np.testing.assert_array_equal(qz.unpack_int4(ref.pack(q)), q)
    np.testing.assert_array_equal(qz.dequantize(q, s, z, bits, group_size, axis, packed=False),
                                  ref.dequantize(q, rs, rz, bits, group_size, axis, packed=False))
