"""Pipeline stages: ``sw.jax.export(..., stages=N)`` writes one export folder per stage;
the stages run in one process (``sw.load``) or on Ray actors (``RayPipeline``), and match
the single module token for token. Replicas spread requests over copies of a model.
The Ray tests share one local Ray of 4 logical CPUs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import stepwell as sw

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import recompute_generate as generate  # noqa: E402  (greedy over the whole buffer: no KV cache)
import gpt2  # noqa: E402

PROMPT = [5, 17, 99, 3, 250]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """GPT-2 tiny as one module and as two stages (balanced by FLOPs)."""
    fn, params, (ids, lengths) = gpt2.factory("tiny")
    root = tmp_path_factory.mktemp("pp")
    sw.jax.export(fn, params, ids, lengths, path=root / "single")
    manifest = sw.jax.export(fn, params, ids, lengths, path=root / "pp", stages=2)
    return root, manifest, (ids, lengths), (fn, params)


def test_two_stages_chain_and_split_the_parameters(exported):
    root, manifest, _, (_, params) = exported
    on_disk = json.loads((root / "pp" / "manifest.json").read_text())
    assert on_disk["format"] == "stepwell-pipeline" and len(on_disk["stages"]) == 2
    s0, s1 = on_disk["stages"]
    assert [(i["shape"], i["dtype"]) for i in s0["outputs"]] == [(i["shape"], i["dtype"]) for i in s1["inputs"]]
    assert s1["outputs"][0]["shape"] == [1, 512]
    import jax
    total = len(jax.tree.leaves(params))
    assert 0 < s0["parameters"] < total and 0 < s1["parameters"] < total
    from stepwell.export import ExportedModel, load
    for s in ("stage0", "stage1"):  # each stage is an ordinary export folder
        assert isinstance(load(root / "pp" / s), ExportedModel)


def test_stages_in_one_process_match_the_single_module_token_for_token(exported):
    root, _, (ids, lengths), _ = exported
    pipe, one = sw.load(root / "pp"), sw.load(root / "single")
    assert np.array_equal(pipe(ids, lengths), one(ids, lengths))
    assert generate.greedy(pipe, PROMPT, 8, 32) == generate.greedy(one, PROMPT, 8, 32)


def test_split_by_layer_name(tmp_path):
    fn, params, (ids, lengths) = gpt2.factory("tiny")
    m = sw.jax.export(fn, params, ids, lengths, path=tmp_path / "pp", stages=["h_1"])
    names = [[p["name"] for p in json.loads((tmp_path / "pp" / s["folder"] / "manifest.json").read_text())
              ["parameters"]] for s in m["stages"]]
    assert any("h_0/" in n for n in names[0]) and not any("h_1/" in n for n in names[0])
    assert any("h_1/" in n for n in names[1]) and not any("h_0/" in n for n in names[1])
    with pytest.raises(sw.StepwellError, match="no op belongs to a layer named 'h_9'"):
        sw.jax.export(fn, params, ids, lengths, path=tmp_path / "bad", stages=["h_9"])
    assert not (tmp_path / "bad").exists()


def test_explicit_stages_and_a_mismatch_at_export(tmp_path):
    import jax.numpy as jnp
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((8, 16), dtype=np.float32), rng.standard_normal((16, 4), dtype=np.float32)
    x = rng.standard_normal((2, 8), dtype=np.float32)
    first = lambda p, x: jnp.tanh(x @ p["w"])  # noqa: E731
    second = lambda p, h: h @ p["w"]  # noqa: E731
    sw.jax.export([first, second], [{"w": w1}, {"w": w2}], x, path=tmp_path / "ok")
    assert np.allclose(sw.load(tmp_path / "ok")(x), np.tanh(x @ w1) @ w2, atol=1e-5)
    wrong = lambda p, h: h.reshape(-1, 8) @ p["w"]  # noqa: E731  (expects 8 features, gets 16)
    with pytest.raises(sw.StepwellError) as e:
        sw.jax.export([first, wrong], [{"w": w1}, {"w": w2}], x, path=tmp_path / "bad")
    assert "stage 1 does not take what stage 0 returns (float32[2, 16])" in str(e.value)
    assert not (tmp_path / "bad").exists()


def test_without_ray_the_error_says_how_to_install_it(monkeypatch, exported):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(sw.StepwellError, match=r"Ray is not installed: pip install 'stepwell\[ray\]'"):
        sw.distributed.RayPipeline(exported[0] / "pp")


@pytest.fixture(scope="module")
def local_ray():
    pytest.importorskip("ray")
    from stepwell.distributed.actors import connect
    ray = connect(None, num_cpus=4)
    yield ray
    ray.shutdown()


def test_ray_pipeline_matches_the_single_module_token_for_token(exported, local_ray):
    root, _, (ids, lengths), _ = exported
    one = sw.load(root / "single")
    with sw.distributed.RayPipeline(root / "pp") as pipe:
        assert len(set(pipe.pids)) == 2 and os.getpid() not in pipe.pids  # two actor processes
        assert generate.greedy(pipe, PROMPT, 8, 32) == generate.greedy(one, PROMPT, 8, 32)
        # four requests as one batch: four micro-batches through the two stages
        ids4 = np.concatenate([ids, ids[:, ::-1], ids, ids]).astype(np.int32)
        len4 = np.array([16, 10, 5, 31], np.int32)
        want = np.concatenate([one(ids4[i:i + 1], len4[i:i + 1]) for i in range(4)])
        assert np.array_equal(pipe(ids4, len4), want)
        with pytest.raises(sw.StepwellError, match=r"the pipeline takes \(int32\[1, 32\], int32\[1\]\)"):
            pipe(ids4[:3], len4[:2])


def test_a_stage_that_dies_mid_pipeline_is_restarted_then_reported(exported, local_ray):
    root, _, (ids, lengths), _ = exported
    want = sw.load(root / "single")(ids, lengths)
    with sw.distributed.RayPipeline(root / "pp") as pipe:
        before = pipe.pids[1]
        refs = [pipe._submit(pipe._flat((ids, lengths))) for _ in range(20)]
        local_ray.kill(pipe.actors[1], no_restart=False)  # stage 1 dies with requests in flight
        for out in pipe._get(refs, "stage"):
            assert np.array_equal(out[0], want)   # restarted, its calls retried
        assert local_ray.get(pipe.actors[1].ready.remote()) != before  # a new process
        local_ray.kill(pipe.actors[1], no_restart=True)
        with pytest.raises(sw.StepwellError, match=r"pipeline stage 1 \(Ray actor \w+\) died"):
            pipe(ids, lengths)


def test_replicas_serve_from_every_copy(exported, local_ray):
    root, _, (ids, _), _ = exported
    one = sw.load(root / "single")
    requests = [(ids, np.array([n], np.int32)) for n in range(1, 9)]
    with sw.distributed.Replicas(root / "single", replicas=2) as many:
        assert len(set(many.pids)) == 2
        outs = many.map(requests)
        assert all(np.array_equal(o, one(*r)) for o, r in zip(outs, requests))
        assert np.array_equal(many(*requests[0]), outs[0])


def test_stages_sent_through_the_object_store(exported, local_ray):
    """``ship=True`` (the default with a cluster address): each actor gets its folder's
    files through Ray's object store and loads its own copy, no shared file system."""
    root, _, (ids, lengths), _ = exported
    want = sw.load(root / "single")(ids, lengths)
    import tempfile
    before = set(Path(tempfile.gettempdir()).glob("stepwell-stage-*"))
    with sw.distributed.RayPipeline(root / "pp", ship=True) as pipe:
        assert np.array_equal(pipe(ids, lengths), want)
        # each actor removed its copy once loaded (a restarted one gets the files again)
        assert set(Path(tempfile.gettempdir()).glob("stepwell-stage-*")) == before


def test_actors_that_do_not_fit_are_an_error_not_a_hang(exported, local_ray):
    root = exported[0]
    with pytest.raises(sw.StepwellError, match=r"Ray could not start 2 actors of 8 CPU each within 3 s "
                                               r"\(\d+ CPUs free\)"):
        sw.distributed.Replicas(root / "single", replicas=2, num_cpus=8, ready_timeout=3)
    assert local_ray.available_resources().get("CPU", 0) > 0  # nothing left holding CPUs
