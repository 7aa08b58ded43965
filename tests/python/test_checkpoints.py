"""stepwell.checkpoints: .npz, safetensors, Flax msgpack and Orbax into a template pytree."""

import os

import numpy as np
import pytest

import flax.linen as nn
import jax

from stepwell.export import checkpoints as ck  # noqa: E402
from stepwell.core.diagnostics import StepwellError  # noqa: E402


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(8)(x))    # Dense_0: [4, 8]
        return nn.Dense(3)(h)          # Dense_1: [8, 3]


@pytest.fixture(scope="module")
def model():
    m = MLP()
    x = np.ones((2, 4), np.float32)
    variables = m.init(jax.random.PRNGKey(0), x)
    template = jax.eval_shape(m.init, jax.random.PRNGKey(1), x)   # shapes only
    return m, x, variables, template


def same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("fmt", ["npz", "safetensors", "msgpack"])
def test_round_trip(model, tmp_path, fmt):
    _, _, variables, template = model
    path = str(tmp_path / f"w.{fmt}")
    {"npz": ck.save_npz, "safetensors": ck.save_safetensors, "msgpack": ck.save_msgpack}[fmt](path, variables)
    assert ck.detect_format(path) == fmt
    same(ck.load(path, template), variables)
    # the format is also told from the first bytes
    plain = str(tmp_path / "weights.bin")
    os.rename(path, plain)
    assert ck.detect_format(plain) == fmt
    same(ck.load(plain, template), variables)


def test_orbax(model, tmp_path):
    import orbax.checkpoint as ocp  # comes with flax
    _, _, variables, template = model
    with ocp.PyTreeCheckpointer() as c:
        c.save(str(tmp_path / "orbax"), variables)
    assert ck.detect_format(str(tmp_path / "orbax")) == "orbax"
    same(ck.load(str(tmp_path / "orbax"), template), variables)


def test_loaded_params_run(model, tmp_path):
    m, x, variables, template = model
    ck.save_npz(tmp_path / "w.npz", variables)
    params = ck.load(tmp_path / "w.npz", template)
    np.testing.assert_allclose(m.apply(params, x), m.apply(variables, x))


def test_dotted_keys_and_collection_prefix(model, tmp_path):
    """HF-style 'Dense_0.kernel' keys without the 'params' collection load into
    Flax variables; a checkpoint with the prefix loads into bare params."""
    _, _, variables, template = model
    flat = {k.replace("params/", "").replace("/", "."): np.asarray(v)
            for k, v in ck.flatten(variables).items()}
    assert "Dense_0.kernel" in flat
    np.savez(tmp_path / "dotted.npz", **flat)
    same(ck.load(tmp_path / "dotted.npz", template), variables)
    ck.save_npz(tmp_path / "full.npz", variables)
    same(ck.load(tmp_path / "full.npz", template["params"]), variables["params"])


def test_dtype_conversion_within_kind(model, tmp_path):
    _, _, variables, template = model
    half = jax.tree.map(lambda a: np.asarray(a).astype(np.float16), variables)
    ck.save_safetensors(tmp_path / "half.safetensors", half)
    got = ck.load(tmp_path / "half.safetensors", template)
    assert all(np.asarray(a).dtype == np.float32 for a in jax.tree.leaves(got))
    same(got, jax.tree.map(lambda a: np.asarray(a).astype(np.float32), half))


def test_mismatches_are_named(model, tmp_path):
    _, _, variables, template = model
    flat = {k: np.asarray(v) for k, v in ck.flatten(variables).items()}
    del flat["params/Dense_0/bias"]
    flat["params/Dense_1/kernel"] = np.zeros((3, 3), np.float32)
    flat["params/Dense_1/bias"] = np.zeros((3,), np.int32)   # right shape, wrong kind
    flat["params/Dense_2/kernel"] = np.zeros((2,), np.float32)
    np.savez(tmp_path / "bad.npz", **flat)
    with pytest.raises(StepwellError) as info:
        ck.load(tmp_path / "bad.npz", template)
    lines = [str(d) for d in info.value.diagnostics]
    assert lines[0].endswith("bad.npz: the checkpoint does not match the model (4 problems)")
    assert "note: missing parameter 'params/Dense_0/bias' (float32[8])" in lines
    assert any("unexpected parameter 'params/Dense_2/kernel'" in line for line in lines)
    assert ("note: parameter 'params/Dense_1/kernel' has shape [3, 3] in the checkpoint, "
            "the model expects [8, 3]") in lines
    assert ("note: parameter 'params/Dense_1/bias' is int32 in the checkpoint, "
            "the model expects float32") in lines


def test_strict_false_ignores_extra_entries(model, tmp_path):
    _, _, variables, template = model
    flat = {k: np.asarray(v) for k, v in ck.flatten(variables).items()}
    flat["params/step"] = np.int32(3)
    np.savez(tmp_path / "extra.npz", **flat)
    with pytest.raises(StepwellError, match="unexpected parameter 'params/step'"):
        ck.load(tmp_path / "extra.npz", template)
    same(ck.load(tmp_path / "extra.npz", template, strict=False), variables)


def test_unreadable_files(model, tmp_path):
    template = model[3]
    with pytest.raises(StepwellError, match="no such checkpoint"):
        ck.load(tmp_path / "missing.npz", template)
    (tmp_path / "junk.npz").write_bytes(b"PK but not a zip")
    with pytest.raises(StepwellError, match="not an .npz checkpoint"):
        ck.load(tmp_path / "junk.npz", template)
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    with pytest.raises(StepwellError, match="not a readable safetensors checkpoint"):
        ck.load(tmp_path / "junk.safetensors", template)
    (tmp_path / "junk.msgpack").write_bytes(b"\x81\xa1")
    with pytest.raises(StepwellError, match="not a readable msgpack checkpoint"):
        ck.load(tmp_path / "junk.msgpack", template)
    (tmp_path / "what.bin").write_bytes(b"hello world, not weights")
    with pytest.raises(StepwellError, match="cannot tell the checkpoint format"):
        ck.load(tmp_path / "what.bin", template)
    (tmp_path / "empty_orbax").mkdir()
    with pytest.raises(StepwellError, match="not a readable orbax checkpoint"):
        ck.load(tmp_path / "empty_orbax", template)
