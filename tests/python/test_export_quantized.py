"""sw.jax.export(..., quantize="int8"|"int4"): linear weights stored as quantized
parameters (i8 / int4-packed weights, f32 scales, i8 zero points) read by
nn.quantized_linear; the loaded model equals the dequantized model and stays close to
f32 JAX (the bounds of test_quantize_weights.py), the archive shrinks by the expected
factor, the manifest records each parameter's quantization, and the tied output
embedding is quantized for its projection use only."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest

import jax
import jax.numpy as jnp  # noqa: E402

import stepwell as sw  # noqa: E402
from stepwell import export as ex  # noqa: E402
from stepwell.core import quantize as qz  # noqa: E402
from stepwell.core.diagnostics import StepwellError  # noqa: E402

RNG = np.random.default_rng(0)
K, H, N = 128, 256, 64
PARAMS = {"fc1": {"kernel": (RNG.standard_normal((K, H)) * K ** -0.5).astype(np.float32),
                  "bias": (RNG.standard_normal(H) * 0.1).astype(np.float32)},
          "fc2": {"kernel": (RNG.standard_normal((H, N)) * H ** -0.5).astype(np.float32),
                  "bias": (RNG.standard_normal(N) * 0.1).astype(np.float32)}}
X = RNG.standard_normal((4, K)).astype(np.float32)
WEIGHTS = ("fc1/kernel", "fc2/kernel")
MAX_REL = {8: 2e-2, 4: 0.25}       # test_quantize_weights.py's bounds against f32 JAX


def mlp(params, x):
    h = jax.nn.gelu(x @ params["fc1"]["kernel"] + params["fc1"]["bias"])
    return h @ params["fc2"]["kernel"] + params["fc2"]["bias"]


def gelu(h):
    return 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))


def dq(w, bits, group_size, symmetric=True):
    """The weight the quantized layer computes with."""
    q, s, z = qz.quantize_weight(w, bits, group_size, symmetric)
    return qz.dequantize_weight(q, s, z, bits, group_size)


def rel_err(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


# name -> (export options, bits, effective group size of fc1 (in 128), of fc2 (in 256))
EXPORTS = {
    "f32": ({}, None, None, None),
    "int8": ({"quantize": "int8"}, 8, 0, 128),
    "int4": ({"quantize": "int4"}, 4, 0, 128),
    "int8-g64-asym-dyn": ({"quantize": "int8", "group_size": 64, "symmetric": False,
                           "dynamic_batch": True}, 8, 64, 64),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("qexport")
    out = {}
    for name, (opts, *_) in EXPORTS.items():
        path = str(root / name)
        out[name] = (path, sw.jax.export(mlp, PARAMS, X, path=path, **opts), sw.load(path))
    return out


@pytest.mark.parametrize("name", ["int8", "int4", "int8-g64-asym-dyn"])
def test_mlp_matches_dequantized_model_and_jax(exported, name):
    _, bits, _, group_size = EXPORTS[name]
    symmetric = EXPORTS[name][0].get("symmetric", True)
    model = exported[name][2]
    got = model(X)
    # exactly the dequantized model (fc1 has in = 128: one group per channel at 128)
    gs1 = EXPORTS[name][2]
    want_dq = gelu(X @ dq(PARAMS["fc1"]["kernel"], bits, gs1, symmetric) + PARAMS["fc1"]["bias"]) \
        @ dq(PARAMS["fc2"]["kernel"], bits, group_size, symmetric) + PARAMS["fc2"]["bias"]
    np.testing.assert_allclose(got, want_dq, rtol=1e-4, atol=1e-4)
    # and within the quantization error of f32 JAX
    want = np.asarray(jax.jit(mlp)(PARAMS, X))
    assert rel_err(got, want) < MAX_REL[bits], rel_err(got, want)
    np.testing.assert_allclose(exported["f32"][2](X), want, rtol=1e-5, atol=1e-5)


def test_dynamic_batch_with_quantized_weights(exported):
    model = exported["int8-g64-asym-dyn"][2]
    x7 = RNG.standard_normal((7, K)).astype(np.float32)
    want = np.asarray(jax.jit(mlp)(PARAMS, x7))
    assert model(x7).shape == (7, N)
    assert rel_err(model(x7), want) < MAX_REL[8]


def test_params_file_shrinks_by_the_expected_factor(exported):
    size = {n: os.path.getsize(os.path.join(p, ex.PARAMS)) for n, (p, _, _) in exported.items()}
    weights = sum(PARAMS[k]["kernel"].nbytes for k in ("fc1", "fc2"))     # 192 KiB of f32
    biases = sum(PARAMS[k]["bias"].nbytes for k in ("fc1", "fc2"))
    scales = 4 * (1 * H + (H // 128) * N)                                 # fc1 per channel, fc2 g128
    f32 = exported["f32"][1]["parameter_bytes"]
    assert f32 == weights + biases
    for name, bits in (("int8", 8), ("int4", 4)):
        manifest = exported[name][1]
        want = weights * bits // 32 + scales + biases
        assert manifest["parameter_bytes"] == want
        assert f32 / want > {8: 3.8, 4: 7.2}[bits]                # 3.81x and 7.22x
        # the archive adds its index (~1 KiB a parameter, for its name and metadata)
        assert want <= size[name] <= want + 1024 * len(manifest["parameters"])
        assert size["f32"] / size[name] > {8: 3.4, 4: 5.5}[bits], (size["f32"], size[name])
    print("params.irpa bytes:", size)


def test_manifest_records_the_quantization(exported):
    _, manifest, _ = exported["int4"]
    params = {p["name"]: p for p in manifest["parameters"]}
    assert sorted(params) == ["fc1/bias", "fc1/kernel.qweight", "fc1/kernel.scales",
                              "fc2/bias", "fc2/kernel.qweight", "fc2/kernel.scales"]
    assert params["fc1/bias"]["dtype"] == "float32" and "quantization" not in params["fc1/bias"]
    def shape_dtype(p):
        return p["shape"], p["dtype"]
    assert shape_dtype(params["fc1/kernel.qweight"]) == ([K, H // 2], "int8")
    assert shape_dtype(params["fc2/kernel.scales"]) == ([2, N], "float32")
    assert params["fc2/kernel.qweight"]["quantization"] == {
        "of": "fc2/kernel", "role": "qweight", "bits": 4, "group_size": 128, "symmetric": True,
        "transposed": False, "weight_shape": [H, N]}
    q = manifest["quantization"]
    assert (q["mode"], q["bits"], q["group_size"], q["symmetric"]) == ("int4", 4, 128, True)
    assert [(w["name"], w["group_size"], w["layers"], w["parameters"]) for w in q["weights"]] == [
        ("fc1/kernel", 0, 1, ["fc1/kernel.qweight", "fc1/kernel.scales"]),
        ("fc2/kernel", 128, 1, ["fc2/kernel.qweight", "fc2/kernel.scales"])]
    assert q["kept_float"] == {}
    asym = {p["name"]: p for p in exported["int8-g64-asym-dyn"][1]["parameters"]}
    assert shape_dtype(asym["fc2/kernel.zero_points"]) == ([4, N], "int8")
    assert asym["fc2/kernel.zero_points"]["quantization"]["role"] == "zero_points"
    assert "quantization" not in exported["f32"][1]
    with open(os.path.join(exported["int4"][0], ex.MANIFEST)) as f:
        assert json.load(f)["quantization"] == q


def test_load_checks_hashes_of_quantized_archive(exported, tmp_path):
    path = str(tmp_path / "copy")
    shutil.copytree(exported["int8"][0], path)
    file = os.path.join(path, ex.PARAMS)
    data = bytearray(open(file, "rb").read())
    data[-1] ^= 0xFF                                         # a byte of the last weight
    open(file, "wb").write(bytes(data))
    with pytest.raises(StepwellError, match="does not match the SHA-256"):
        sw.load(path)


def tied(params, ids):
    """An embedding table used twice: gathered, and transposed as the output projection;
    plus a layer whose odd ``out`` int4 cannot pack."""
    h = jnp.tanh(params["wte"][ids] @ params["mix"]["kernel"])
    return h @ params["wte"].T, h @ params["head"]["kernel"]


def test_tied_embedding_quantizes_the_projection_only(tmp_path):
    rng = np.random.default_rng(3)
    params = {"wte": (rng.standard_normal((64, 32)) * 0.5).astype(np.float32),
              "mix": {"kernel": (rng.standard_normal((32, 32)) * 32 ** -0.5).astype(np.float32)},
              "head": {"kernel": rng.standard_normal((32, 3)).astype(np.float32)}}
    ids = np.array([[1, 5, 63, 0], [7, 7, 2, 40]], np.int32)
    path = str(tmp_path / "tied")
    manifest = sw.jax.export(tied, params, ids, path=path, quantize="int4", group_size=16)
    names = {p["name"]: p for p in manifest["parameters"]}
    assert sorted(names) == ["head/kernel", "mix/kernel.qweight", "mix/kernel.scales",
                             "wte", "wte.T.qweight", "wte.T.scales"]
    assert names["wte"]["dtype"] == "float32"                 # the gather reads the float table
    assert names["wte.T.qweight"]["shape"] == [32, 32]        # [in, out/2] of wte.T: [32, 64]
    assert names["wte.T.qweight"]["quantization"]["transposed"] is True
    assert manifest["quantization"]["kept_float"] == {"head/kernel": "int4 needs an even out size, found 3"}
    got = sw.load(path)(ids)
    h = np.tanh(params["wte"][ids] @ dq(params["mix"]["kernel"], 4, 16))
    np.testing.assert_allclose(got[0], h @ dq(params["wte"].T, 4, 16), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1], h @ params["head"]["kernel"], rtol=1e-4, atol=1e-4)


def test_gpt2_tiny_int8_and_int4(tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
    import gpt2
    cfg = gpt2.Config(layers=2, width=64, heads=4, vocab=512, context=64, seq_len=16)  # GPT-2's init
    model, params = gpt2.init_params(cfg, 0)

    def fn(params, ids, lengths):
        return model.apply(params, ids, lengths, method="next_token")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg.vocab, size=(4, cfg.seq_len)).astype(np.int32)
    lengths = np.array([16, 9, 5, 1], np.int32)
    want = np.asarray(jax.jit(fn)(params, ids, lengths))
    float_bytes = sum(a.nbytes for a in jax.tree.leaves(params))
    linear = sum(a.nbytes for p, a in jax.tree_util.tree_flatten_with_path(params)[0]
                 if ex.path_name(p).endswith("/kernel"))
    embeddings = float_bytes - linear - sum(                        # wte and wpe tables
        a.nbytes for p, a in jax.tree_util.tree_flatten_with_path(params)[0] if a.ndim == 1)
    for bits in (8, 4):
        path = str(tmp_path / f"gpt2-int{bits}")
        manifest = sw.jax.export(fn, params, ids, lengths, path=path, quantize=f"int{bits}")
        got = sw.load(path)(ids, lengths)
        assert rel_err(got, want) < MAX_REL[bits], rel_err(got, want)
        assert (got.argmax(-1) == want.argmax(-1)).all()
        q = manifest["quantization"]
        assert len(q["weights"]) == 4 * cfg.layers + 1 and q["kept_float"] == {}
        assert [w["name"] for w in q["weights"] if w["transposed"]] == ["params/wte/embedding"]
        floats = [p["name"] for p in manifest["parameters"] if p["dtype"] == "float32"
                  and "quantization" not in p]
        assert all(n.endswith(("bias", "scale", "embedding")) for n in floats), floats
        # the linear weights shrink to bits/32, plus scales; the float tables stay (and
        # the tied projection adds its quantized copy of wte)
        size = os.path.getsize(os.path.join(path, ex.PARAMS))
        wte = params["params"]["wte"]["embedding"].nbytes
        scales = sum(4 * int(np.prod(p["shape"])) for p in manifest["parameters"]
                     if p.get("quantization", {}).get("role") == "scales")
        nbytes = float_bytes - linear + (linear + wte) * bits // 32 + scales
        assert manifest["parameter_bytes"] == nbytes
        assert nbytes <= size <= nbytes + 1024 * len(manifest["parameters"])
        assert size < float_bytes * {8: 0.6, 4: 0.45}[bits], (size, float_bytes)
        assert nbytes > embeddings
        print(f"gpt2 tiny int{bits}: rel err {rel_err(got, want):.3g}, params.irpa {size} B "
              f"(f32 parameters {float_bytes} B)")


def test_cli_quantize(tmp_path, capsys):
    from stepwell.tools.main import main
    (tmp_path / "m.py").write_text(
        "import numpy as np\n"
        "def factory():\n"
        "    w = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)\n"
        "    return (lambda p, x: x @ p['w']), {'w': w}, (np.ones((2, 64), np.float32),)\n")
    out = str(tmp_path / "out")
    assert main(["export", str(tmp_path / "m.py"), "-o", out, "--quantize", "int8",
                 "--group-size", "32"]) == 0
    assert "1 weights as int8" in capsys.readouterr().out
    manifest = ex.read_manifest(out)
    assert [p["name"] for p in manifest["parameters"]] == ["w.qweight", "w.scales"]
    assert manifest["parameters"][1]["shape"] == [2, 16]


@pytest.mark.parametrize("kwargs,message", [
    ({"quantize": "int3"}, r"quantize must be one of None, 'int8', 'int4', found 'int3'"),
    ({"quantize": 8}, r"quantize must be one of None, 'int8', 'int4', found 8"),
    ({"quantize": "int8", "group_size": -4}, r"group_size must be a positive integer"),
    ({"quantize": "int4", "raise_ops": False}, r"cannot be combined with raise_ops=False"),
])
def test_bad_options(tmp_path, kwargs, message):
    path = tmp_path / "bad"
    with pytest.raises(StepwellError, match=message) as e:
        sw.jax.export(mlp, PARAMS, X, path=str(path), **kwargs)
    assert "internal error" not in str(e.value)
    assert not path.exists()
