"""KV-cache generation: a decoder exported with prefill/decode entry points over one set
of weights, its cache a device state updated in place, sw.generate and stepwell
generate, sampling, and every bad input named (docs/llm.md). The tiny GPT-2 of
examples/gpt2.py: one export for the module."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import stepwell as sw
from stepwell.core.diagnostics import StepwellError
from stepwell.export.state import State
from stepwell.generation import Decoder, Sampler

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def example(name):
    sys.path.insert(0, EXAMPLES)
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    gen = example("generate")
    folder = str(tmp_path_factory.mktemp("llm") / "gpt2")
    manifest, fns, params = gen.export_decoder("tiny", folder, specialize={"b": [1]})
    return folder, manifest, gen.jax_decoder(fns, params, "tiny"), fns, params


def test_entry_points_share_the_parameters(decoder):
    folder, manifest, *_ = decoder
    assert list(manifest["entry_points"]) == ["prefill", "decode", "decode__b1"]
    assert manifest["entry_points"]["decode__b1"]["specializes"] == {"entry": "decode", "dims": {"b": 1}}
    assert manifest["state"] == ["cache"] and manifest["raised"]
    names = [p["name"] for p in manifest["parameters"]]
    assert len(names) == len(set(names))           # one copy of each weight for both
    decode = manifest["entry_points"]["decode"]
    assert [i["name"] for i in decode["inputs"]] == ["token", "position", "cache"]
    assert decode["inputs"][2]["dims"] == [2, 2, "b", 64, 4, 16]
    assert decode["state"] == {"cache": {"input": 2, "output": 0}}
    model = sw.load(folder)
    assert model.entry_points == ["prefill", "decode"]   # (the batch-1 copies are called for batch 1)
    assert model.entry("decode").specializations == [({"b": 1}, "decode__b1")]
    with pytest.raises(StepwellError, match="several entry points .*model.prefill"):
        model(np.zeros((1, 3), np.int32), np.array([3], np.int32))


def test_greedy_equals_jax_token_for_token(decoder):
    folder, _, jax_dec, *_ = decoder
    prompts = [[5, 17, 300, 2, 9], [44, 8]]                 # a batch with two prompt lengths
    ours = sw.generate(folder, prompts, 12)
    theirs = sw.generate(jax_dec, prompts, 12)
    assert ours.tokens == theirs.tokens
    assert len(set(ours.tokens[0])) > 2                    # not one repeated token
    assert ours.steps == 11 and ours.tokens_per_s > 0


def test_sampling_with_a_seed_equals_jax(decoder):
    folder, _, jax_dec, *_ = decoder
    make = lambda: Sampler(temperature=0.9, top_k=50, top_p=0.9, seed=7)  # noqa: E731
    ours = sw.generate(folder, [[1, 2, 3]], 10, make())
    assert ours.tokens == sw.generate(jax_dec, [[1, 2, 3]], 10, make()).tokens
    assert ours.tokens != sw.generate(folder, [[1, 2, 3]], 10, Sampler(temperature=0.9, seed=8)).tokens


def test_the_cache_is_a_device_state_updated_in_place(decoder):
    folder, _, jax_dec, fns, params = decoder
    model = sw.load(folder)
    ids, lengths = np.array([[5, 17, 300]], np.int32), np.array([3], np.int32)
    first = model.prefill(ids, lengths)
    cache = first["cache"]
    assert isinstance(cache, State) and cache.shape == (2, 2, 1, 64, 4, 16)
    want = fns["prefill"](params, ids, lengths)
    np.testing.assert_allclose(cache.numpy(), np.asarray(want["cache"]), rtol=1e-4, atol=1e-4)
    token = first["logits"].argmax(-1).astype(np.int32)
    step = model.decode(token, lengths, cache)
    assert cache.consumed and not step["cache"].consumed
    with pytest.raises(StepwellError, match="consumed by a call that updated it in place"):
        model.decode(token, lengths, cache)
    want = fns["decode"](params, token, lengths, want["cache"])
    np.testing.assert_allclose(step["logits"], np.asarray(want["logits"]), rtol=1e-4, atol=1e-4)


def test_bad_inputs_are_named(decoder, tmp_path):
    folder, *_ = decoder
    model = sw.load(folder)
    ids, lengths = np.array([[5, 17, 300]], np.int32), np.array([3], np.int32)
    cache = model.prefill(ids, lengths)["cache"]
    # a batch that does not match the cache
    with pytest.raises(StepwellError, match=r"input 'cache' has b = 1 \(dimension 2\), input 'token' has "
                                            r"b = 2 \(dimension 0\): inputs share the dimension 'b'"):
        model.decode(np.array([1, 2], np.int32), np.array([3, 3], np.int32), cache)
    # a cache from another model
    other = State("cache", cache._array, "another-export", "gpt2-other")
    with pytest.raises(StepwellError, match=r"this 'cache' comes from another model \('gpt2-other'"):
        model.decode(np.array([1], np.int32), lengths, other)
    # a prompt longer than the cache, the limit named (the entry point and sw.generate)
    with pytest.raises(StepwellError, match=r"input 'ids' dimension 1 \(s\) is 65, more than the model's "
                                            r"limit of 64 for 's'"):
        model.prefill(np.zeros((1, 65), np.int32), np.array([65], np.int32))
    with pytest.raises(StepwellError, match=r"prompt 0 has 70 tokens, more than the 64 positions"):
        sw.generate(model, [list(range(70))], 4)
    with pytest.raises(StepwellError, match=r"prompt 0 \(60 tokens\) and 10 new tokens need 69 cache "
                                            r"positions, more than the 64 .* at most 5 new tokens"):
        sw.generate(model, [list(range(60))], 10)
    # a token id outside the vocabulary (checked by default; the model alone clamps)
    with pytest.raises(StepwellError, match=r"prompt 1 has token id 512 at position 1, outside the "
                                            r"vocabulary of .* \[0, 512\)"):
        sw.generate(model, [[1], [3, 512]], 2)
    assert len(sw.generate(model, [[3, 512]], 2, check_ids=False).tokens[0]) == 2
    # wrong dtype and rank
    with pytest.raises(StepwellError, match=r"input 'ids' expects int32, got float32"):
        model.prefill(ids.astype(np.float32), lengths)
    with pytest.raises(StepwellError, match=r"input 'ids' expects shape \[\?, \?\] \(int32\), got \[3\]"):
        model.prefill(ids[0], lengths)
    with pytest.raises(StepwellError, match=r"prompt 0 is empty"):
        sw.generate(model, [[]], 2)
    with pytest.raises(StepwellError, match="is not an exported decoder"):
        def fn(params, x):
            return x * params
        sw.jax.export(fn, np.float32(2), np.ones(3, np.float32), path=str(tmp_path / "plain"))
        sw.generate(str(tmp_path / "plain"), [[1]], 2)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stepwell.tools.main", *args], capture_output=True,
                          text=True, timeout=300)


def test_stepwell_generate_and_run_every_entry_point(decoder, tmp_path):
    folder, _, jax_dec, *_ = decoder
    r = _cli("generate", folder, "--prompt", "5,17,300,2,9", "--prompt", "44,8", "--max-new-tokens", "6")
    assert r.returncode == 0, r.stderr
    want = sw.generate(jax_dec, [[5, 17, 300, 2, 9], [44, 8]], 6).tokens
    assert r.stdout.splitlines()[:2] == [f"[{i}] {','.join(map(str, t))}" for i, t in enumerate(want)]
    assert "12 tokens in" in r.stdout and "tokens/s" in r.stdout
    r = _cli("generate", folder, "--prompt", "5,17,999")
    assert r.returncode == 1 and r.stderr.startswith("error: prompt 0 has token id 999")
    assert "Traceback" not in r.stderr
    r = _cli("generate", folder, "--prompt", "5,x")
    assert r.returncode == 1 and "'5,x' is not a comma-separated list of token ids" in r.stderr
    out = str(tmp_path / "out.npz")
    r = _cli("run", folder, "--function", "prefill", "--input", "1x3xi32=5,17,300", "--input", "1xi32=3",
             "--output", out)
    assert r.returncode == 0, r.stderr
    saved = np.load(out)
    assert [saved[k].shape for k in sorted(saved.files)] == [(2, 2, 1, 64, 4, 16), (1, 512)]
    r = _cli("run", folder)
    assert r.returncode == 1 and "no entry point 'main' (entry points: prefill, decode" in r.stderr


# -- sampling ------------------------------------------------------------------------------


def test_sampler_greedy_top_k_and_top_p():
    logits = np.random.default_rng(0).normal(size=(6, 50))
    greedy = logits.argmax(-1)
    assert (Sampler()(logits) == greedy).all()
    assert (Sampler(temperature=2.0, top_k=1, seed=3)(logits) == greedy).all()
    assert (Sampler(temperature=2.0, top_p=1e-6, seed=3)(logits) == greedy).all()
    a, b = Sampler(temperature=1.0, seed=5), Sampler(temperature=1.0, seed=5)
    assert (a(logits) == b(logits)).all()


def test_sampler_draws_from_the_softmax():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    draws = Sampler(temperature=1.0, seed=0)(np.repeat(logits, 20000, axis=0))
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.015)
    draws = Sampler(temperature=1.0, top_k=2, seed=1)(np.repeat(logits, 20000, axis=0))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / draws.size, [0.625, 0.375, 0, 0], atol=0.015)
    draws = Sampler(temperature=1.0, top_p=0.7, seed=2)(np.repeat(logits, 20000, axis=0))  # 0.5 + 0.3 reach it
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / draws.size, [0.625, 0.375, 0, 0], atol=0.015)


@pytest.mark.parametrize("kwargs,message", [({"temperature": -1}, "temperature must be >= 0"),
                                            ({"top_k": -2}, "top_k must be a non-negative integer"),
                                            ({"top_p": 0.0}, r"top_p must be in \(0, 1\]")])
def test_sampler_rejects_bad_settings(kwargs, message):
    with pytest.raises(StepwellError, match=message):
        Sampler(**kwargs)


def test_decoder_protocol_runs_any_model():
    """sw.generate drives any prefill/decode pair: here a counting model in numpy."""
    vocab = 10

    def prefill(ids, lengths):
        last = ids[np.arange(len(ids)), lengths - 1]
        return {"logits": np.eye(vocab)[(last + 1) % vocab], "cache": None}

    def decode(token, position, cache):
        return {"logits": np.eye(vocab)[(token + 1) % vocab], "cache": cache}
    result = sw.generate(Decoder(prefill, decode, vocab, 32), [[3], [7, 8]], 4)
    assert result.tokens == [[4, 5, 6, 7], [9, 0, 1, 2]]
