"""The examples/ models: exported, loaded with sw.load in a FRESH process (no JAX
imported there), and compared with the same model under JAX.

The small configurations run by default (one export each, one fresh process for all
of them); GPT-2 small (124M parameters) runs with ``-m slow``.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import flax  # noqa: F401  (a test dependency: pip install -e ".[test]")
import jax

import stepwell as sw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")


def example(name):
    """An examples/ file as a module (its folder goes on sys.path, as when run)."""
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    spec = importlib.util.spec_from_file_location(f"_example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses and Flax modules look themselves up there
    spec.loader.exec_module(module)
    return module


def close(got, want, tol=1e-4):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = max(1.0, float(np.max(np.abs(want))))
    assert float(np.max(np.abs(got - want))) <= tol * scale


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Each example exported (tiny configs); returns {name: (folder, inputs, JAX outputs)}."""
    tmp = tmp_path_factory.mktemp("examples")
    out = {}

    # The "done when" path: weights saved as a Flax msgpack checkpoint, read back by
    # the factory, exported from the command line. (`python examples/mlp_classifier.py`
    # trains them first; here they are seeded random values, which is faster.)
    mlp = example("mlp_classifier")
    model = mlp.make_model()
    _, template, _ = mlp.factory()
    rng = np.random.default_rng(11)
    trained = jax.tree.map(lambda a: rng.normal(scale=0.3, size=a.shape).astype(np.float32), template)
    ckpt = str(tmp / "mlp.msgpack")
    from stepwell.export import checkpoints
    checkpoints.save_msgpack(ckpt, trained)
    folder = str(tmp / "mlp")
    proc = subprocess.run([sys.executable, "-m", "stepwell.tools.main", "export",
                           os.path.join(EXAMPLES, "mlp_classifier.py:factory"), "-o", folder,
                           "--arg", f"checkpoint={ckpt}", "--dynamic-batch"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"exported apply for cpu to {folder}: model.vmfb")
    x, _ = mlp.dataset(5, seed=3)
    out["mlp"] = (folder, [x], [np.asarray(model.apply(trained, x))])

    # every example with dynamic dimensions: the batch, and the sequence of the transformers
    # (the Mixtral-style model: static; MoE routing needs static sizes, docs/moe.md)
    for name, config, dims in [("resnet_cnn", "tiny", ("b, ...",)), ("gpt2", "tiny", ("b, s", "b")),
                               ("bert", "tiny", ("b, s", "b, s")), ("mixtral", "tiny", None)]:
        fn, params, args = example(name).factory(config=config)
        folder = str(tmp / name)
        sw.jax.export(fn, params, *args, path=folder, dynamic_dims=dims)
        if dims is not None:
            args = tuple(np.concatenate([a, a[:1]]) for a in args)   # another batch size
        if dims is not None and name != "resnet_cnn":  # and another sequence length
            args = (args[0][:, :-3], np.minimum(args[1], args[1].max() - 3) if name == "gpt2"
                    else args[1][:, :-3])
        want = [np.asarray(a) for a in jax.tree.leaves(jax.jit(fn)(params, *args))]
        out[name] = (folder, [np.asarray(a) for a in args], want, fn, params)
    return out


@pytest.fixture(scope="module")
def fresh(exports):
    """Every export run in one new Python process."""
    common = example("_common")
    names = sorted(exports)
    results = common.run_fresh([(exports[n][0], exports[n][1]) for n in names])
    return dict(zip(names, results))


@pytest.mark.parametrize("name", ["mlp", "resnet_cnn", "gpt2", "bert", "mixtral"])
def test_example_matches_jax_in_a_fresh_process(exports, fresh, name):
    got, want = fresh[name], exports[name][2]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        close(g, w)


@pytest.mark.parametrize("name,dims", [("resnet_cnn", ("b, ...",)), ("gpt2", ("b, s", "b")),
                                       ("bert", ("b, s", "b, s"))])
def test_example_with_dynamic_dims_in_jit_compiles_once(name, dims):
    """The ResNet with BatchNorm, GPT-2 and BERT under sw.jax.jit with a dynamic batch
    (and sequence): one compile serves two batch sizes (and two sequence lengths)."""
    fn, params, args = example(name).factory(config="tiny")
    f = sw.jax.jit(fn, dynamic_dims=(None, *dims))
    bigger = tuple(np.concatenate([a, a[:1]]) for a in args)
    if name == "gpt2":
        bigger = (bigger[0][:, :-3], np.minimum(bigger[1], bigger[0].shape[1] - 3))
    elif name == "bert":
        bigger = tuple(a[:, :-3] for a in bigger)
    for inputs in (args, bigger):
        got, want = jax.tree.leaves(f(params, *inputs)), jax.tree.leaves(jax.jit(fn)(params, *inputs))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            close(g, w)
    assert f.compiles == 1


def test_manifests(exports):
    gpt2 = sw.load(exports["gpt2"][0])
    assert [i["name"] for i in gpt2.inputs] == ["ids", "lengths"]
    assert "params/wte/embedding" in {p["name"] for p in gpt2.parameters}
    from stepwell.export import read_manifest
    resnet = read_manifest(exports["resnet_cnn"][0])
    names = {p["name"] for p in resnet["parameters"]}
    assert any(n.startswith("batch_stats/") for n in names) and any(n.startswith("params/") for n in names)
    assert read_manifest(exports["resnet_cnn"][0])["entry_points"]["main"]["inputs"][0]["shape"] == [
        None, 16, 16, 3]
    bert = read_manifest(exports["bert"][0])["entry_points"]["main"]
    assert [i["name"] for i in bert["inputs"]] == ["input_ids", "attention_mask"]
    assert [i["dims"] for i in bert["inputs"]] == [["b", "s"], ["b", "s"]]
    assert read_manifest(exports["bert"][0])["raised"]


def test_generate_same_tokens_as_jax(tmp_path):
    """examples/generate.py: the KV-cache decoder exported, generating in a fresh process
    (stepwell and numpy only), token for token JAX's."""
    gen = example("generate")
    folder = str(tmp_path / "gpt2")
    _, fns, params = gen.export_decoder("tiny", folder)
    prompts = [[5, 17, 300, 2], [9, 8]]
    ours = gen.generate_fresh(folder, prompts, steps=12)
    theirs = sw.generate(gen.jax_decoder(fns, params, "tiny"), prompts, 12).tokens
    assert ours == theirs
    assert len(set(ours[0])) > 2   # the tiny model's text is not one repeated token


def test_mixtral_generates_the_same_tokens_as_jax_f32_and_int8(exports, tmp_path):
    """The Mixtral-style model: its dense MoE layers raised to nn.moe_ffn; greedy tokens
    in a fresh process equal JAX's, with f32 weights and with int8 ones (the linear and
    the stacked expert weights; JAX runs the same int8-rounded weights)."""
    gen, mixtral = example("recompute_generate"), example("mixtral")
    cfg = mixtral.CONFIGS["tiny"]
    folder, args, _, fn, params = exports["mixtral"]
    raised = sw.jax.import_function(fn, params, *args)
    assert str(raised).count('"nn.moe_ffn"') == cfg.layers and "stablehlo.scatter" not in str(raised)
    int8 = str(tmp_path / "mixtral-int8")
    manifest = sw.jax.export(fn, params, *args, path=int8, quantize="int8")
    names = {w["name"] for w in manifest["quantization"]["weights"]}
    assert {f"params/block_{i}/moe/{w}" for i in range(cfg.layers) for w in ("w_gate", "w_up", "w_down")} <= names
    prompt = [5, 17, 30, 2]
    for path, ref in ((folder, params), (int8, mixtral.int8_params(params, manifest))):
        ours = gen.generate_fresh(path, prompt, steps=10)
        assert ours == gen.generate_jax(fn, ref, prompt, 10, cfg.seq_len), path
        assert len(set(ours)) > 2


@pytest.mark.slow
def test_gpt2_small(tmp_path):
    """GPT-2 small: 124M parameters, exported (weights in params.irpa, ~500 MB),
    reloaded in a fresh process, same logits and greedy tokens as JAX."""
    gpt2, gen, common = example("gpt2"), example("generate"), example("_common")
    fn, params, (ids, lengths) = gpt2.factory(config="small")
    assert gpt2.parameter_count(params) == 124_439_808
    folder = str(tmp_path / "gpt2")
    manifest = sw.jax.export(fn, params, ids, lengths, path=folder)
    assert manifest["files"]["model.vmfb"]["bytes"] < 10 << 20   # weights are not in the module
    assert manifest["parameter_bytes"] == 124_439_808 * 4
    (got,) = common.run_fresh([(folder, [ids, lengths])])
    close(got[0], jax.jit(fn)(params, ids, lengths), tol=1e-4)
    decoder = str(tmp_path / "gpt2-kv")
    _, fns, params = gen.export_decoder("small", decoder, cache_len=64)
    prompt = [[464, 2068, 7586, 21831]]
    ours = gen.generate_fresh(decoder, prompt, steps=4)
    assert ours == sw.generate(gen.jax_decoder(fns, params, "small", 64), prompt, 4).tokens


def test_resnet_small(tmp_path):
    """A real configuration in every CI run (not only under -m slow): ResNet small
    (ResNet-20-like, BatchNorm statistics as parameters), exported with a dynamic
    batch, reloaded in a fresh process, same logits as JAX at another batch size.
    GPT-2 small and BERT base run under -m slow (.ci/scheduled)."""
    resnet, common = example("resnet_cnn"), example("_common")
    fn, params, (x,) = resnet.factory(config="small")
    folder = str(tmp_path / "resnet_small")
    sw.jax.export(fn, params, x, path=folder, dynamic_batch=True)
    x3 = np.concatenate([x, x[:1], x[-1:]])
    (got,) = common.run_fresh([(folder, [x3])])
    want = [np.asarray(a) for a in jax.tree.leaves(jax.jit(fn)(params, x3))]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        close(g, w)


@pytest.mark.slow
def test_bert_base(tmp_path):
    """BERT base (110M parameters): exported, reloaded in a fresh process, same outputs."""
    bert, common = example("bert"), example("_common")
    fn, params, args = bert.factory(config="base")
    folder = str(tmp_path / "bert")
    sw.jax.export(fn, params, *args, path=folder)
    (got,) = common.run_fresh([(folder, [np.asarray(a) for a in args])])
    want = [np.asarray(a) for a in jax.tree.leaves(jax.jit(fn)(params, *args))]
    for g, w in zip(got, want):
        close(g, w)
