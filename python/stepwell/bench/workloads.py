"""The benchmark workloads: each written once in JAX (the source of truth) and, where
the ``nn`` dialect can express it, once with the ``nn`` builders.

A :class:`Workload` carries its inputs (numpy, fixed seed, made on demand), the JAX
function, the ``nn`` module builder, a numpy version where one applies, and its FLOP
count, computed analytically: ``2*m*n*k`` per matrix product, ``2*out*kh*kw*cin``
per convolution, the two attention contractions; elementwise work is not counted.

Sizes come in three modes: ``full`` (the suite of the report), ``quick`` (smaller
matmuls, a 2-layer GPT-2) and ``tiny`` (for the harness's own tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from stepwell.core.opspec import Builders

nn = Builders("nn")  # the nn builders (sw.nn), without importing the package root

MODES = ("full", "quick", "tiny")


@dataclass
class Workload:
    name: str
    group: str                      # matmul, mlp, cnn, attention, block, gpt2
    shapes: str                     # one line for the report
    dtype: str                      # the main element type (f32, bf16, f16)
    flops: float                    # per call
    make_args: Callable[[], list]   # numpy inputs
    jax_fn: Callable                # fn(*args) in JAX
    nn_module: Callable | None = None   # (arg types) -> stepwell Module with func @main(*args)
    numpy_fn: Callable | None = None    # fn(*args) in numpy
    rtol: float = 1e-4              # max |err| / max |ref| accepted against jax.jit
    inputs: int | None = None       # leading arguments that are inputs (the rest: weights)
    notes: str = ""
    runners: dict | None = None     # its own runners (name -> Runner) instead of the suite's
    tokens: int = 0                 # tokens a call processes (LLM workloads: tokens/s)
    _args: list | None = field(default=None, repr=False)

    def args(self) -> list:
        if self._args is None:
            self._args = self.make_args()
        return self._args

    def arg_types(self) -> list:
        """The inputs' types (:class:`~stepwell.types.TensorType`)."""
        from stepwell.core.types import TensorType, dtype_of
        return [TensorType(a.shape, dtype_of(a.dtype)) for a in self.args()]

    def build_nn(self):
        """The nn-level Module (``func @main`` over the inputs), or None."""
        return None if self.nn_module is None else self.nn_module(self.arg_types())

    def release(self) -> None:
        self._args = None


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _rng(seed: int = 0):
    return np.random.default_rng(seed)


def _normal(rng, shape, dtype="f32", scale=1.0):
    from stepwell.core.types import numpy_dtype
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype(numpy_dtype(dtype))


def nn_function(name: str, arg_types, body) -> "object":
    """A Module holding ``func @main(*arg_types)`` whose body ``body(*values)`` is built
    with the ``nn`` builders; ``arg_types`` are TensorTypes."""
    from stepwell.core.ir import context, func, ir
    from stepwell.core.module import Module
    with context(), ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            func.FuncOp.from_py_func(*[t.to_mlir() for t in arg_types], name="main")(body)
    return Module(module, name)


def _gelu_np(x):
    x = x.astype(np.float32)
    return 0.5 * x * (1 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x ** 3)))


def _layer_norm_jax(x, scale, bias, eps=1e-5):
    import jax.numpy as jnp
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * scale + bias


# ---------------------------------------------------------------------------
# matmul
# ---------------------------------------------------------------------------
def matmul(n: int, dtype: str) -> Workload:
    def make_args():
        rng = _rng(n)
        return [_normal(rng, (n, n), dtype), _normal(rng, (n, n), dtype)]

    def nn_module(types):
        return nn_function(f"matmul_{dtype}_{n}", types, lambda a, b: nn.matmul(a, b))

    return Workload(
        f"matmul_{dtype}_{n}", "matmul", f"{n}x{n} @ {n}x{n}", dtype, 2.0 * n ** 3, make_args,
        lambda a, b: a @ b, nn_module,
        numpy_fn=(lambda a, b: a @ b) if dtype == "f32" else None,
        # the sum of n products of N(0,1) values: bf16/f16 round the result (2^-8 / 2^-11)
        rtol={"f32": 1e-4, "bf16": 2e-2, "f16": 4e-3}[dtype])


# ---------------------------------------------------------------------------
# MLP: gelu(x @ w1 + b1) @ w2 + b2
# ---------------------------------------------------------------------------
def mlp(batch: int, width: int, hidden: int) -> Workload:
    def make_args():
        rng = _rng(1)
        return [_normal(rng, (batch, width)), _normal(rng, (width, hidden), scale=width ** -0.5),
                _normal(rng, (hidden,), scale=0.1), _normal(rng, (hidden, width), scale=hidden ** -0.5),
                _normal(rng, (width,), scale=0.1)]

    def jax_fn(x, w1, b1, w2, b2):
        import jax
        return jax.nn.gelu(x @ w1 + b1) @ w2 + b2

    def numpy_fn(x, w1, b1, w2, b2):
        return _gelu_np(x @ w1 + b1) @ w2 + b2

    def nn_module(types):
        return nn_function("mlp", types, lambda x, w1, b1, w2, b2: nn.linear(
            nn.gelu(nn.linear(x, w1, b1), approximate=True), w2, b2))

    return Workload("mlp", "mlp", f"batch {batch}, {width}-{hidden}-{width}, gelu", "f32",
                    2.0 * 2 * batch * width * hidden, make_args, jax_fn, nn_module, numpy_fn, inputs=1)


# ---------------------------------------------------------------------------
# CNN: three 3x3 convs (the last two with stride 2), relu, global mean, dense
# ---------------------------------------------------------------------------
_CNN_LAYERS = ((3, 32, 1), (32, 64, 2), (64, 128, 2))  # (cin, cout, stride)


def cnn(batch: int, size: int, classes: int = 10) -> Workload:
    def make_args():
        rng = _rng(2)
        args = [_normal(rng, (batch, size, size, 3))]
        for cin, cout, _ in _CNN_LAYERS:
            args += [_normal(rng, (3, 3, cin, cout), scale=(9 * cin) ** -0.5), _normal(rng, (cout,), scale=0.1)]
        args += [_normal(rng, (_CNN_LAYERS[-1][1], classes), scale=0.1), _normal(rng, (classes,), scale=0.1)]
        return args

    def jax_fn(x, *params):
        import jax
        for i, (_, _, stride) in enumerate(_CNN_LAYERS):
            w, b = params[2 * i], params[2 * i + 1]
            x = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            x = jax.nn.relu(x + b)
        return x.mean(axis=(1, 2)) @ params[-2] + params[-1]

    def nn_module(types):

        def body(x, *params):
            for i, (_, _, stride) in enumerate(_CNN_LAYERS):
                x = nn.relu(nn.conv2d(x, params[2 * i], params[2 * i + 1], strides=[stride, stride],
                                      padding="SAME"))
            return nn.linear(nn.reduce_mean(x, axes=[1, 2]), params[-2], params[-1])
        return nn_function("cnn", types, body)

    flops, hw = 0.0, size
    for cin, cout, stride in _CNN_LAYERS:
        hw = -(-hw // stride)
        flops += 2.0 * batch * hw * hw * cout * 9 * cin
    flops += 2.0 * batch * _CNN_LAYERS[-1][1] * classes
    return Workload("cnn", "cnn", f"batch {batch}, {size}x{size}x3, convs 3-32-64-128 (3x3), dense {classes}",
                    "f32", flops, make_args, jax_fn, nn_module, inputs=1)


# ---------------------------------------------------------------------------
# one multi-head attention layer: projections, softmax(q k^T / sqrt(d)) v, output projection
# ---------------------------------------------------------------------------
def _heads_jax(x, nh):
    b, s, d = x.shape
    return x.reshape(b, s, nh, d // nh).transpose(0, 2, 1, 3)


def _merge_jax(x):
    b, nh, s, hd = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, s, nh * hd)


def _attention_jax(q, k, v, causal=False):
    import jax
    import jax.numpy as jnp
    scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(q.shape[-1]))
    if causal:
        s = q.shape[2]
        scores = jnp.where(jnp.tril(jnp.ones((s, s), bool)), scores, -jnp.inf)
    return jax.nn.softmax(scores, axis=-1) @ v


def _heads_nn(x, batch, seq, nh, hd):
    from stepwell.core.types import TensorType
    x = nn.reshape(x, result_type=TensorType((batch, seq, nh, hd), "f32"))
    return nn.transpose(x, permutation=[0, 2, 1, 3])


def _merge_nn(x, batch, seq, width):
    from stepwell.core.types import TensorType
    return nn.reshape(nn.transpose(x, permutation=[0, 2, 1, 3]),
                      result_type=TensorType((batch, seq, width), "f32"))


def attention(seq: int, width: int, heads: int, batch: int = 1) -> Workload:
    hd = width // heads

    def make_args():
        rng = _rng(3)
        return [_normal(rng, (batch, seq, width))] + [_normal(rng, (width, width), scale=width ** -0.5)
                                                      for _ in range(4)]

    def jax_fn(x, wq, wk, wv, wo):
        a = _attention_jax(_heads_jax(x @ wq, heads), _heads_jax(x @ wk, heads), _heads_jax(x @ wv, heads))
        return _merge_jax(a) @ wo

    def nn_module(types):

        def body(x, wq, wk, wv, wo):
            q, k, v = (_heads_nn(nn.linear(x, w), batch, seq, heads, hd) for w in (wq, wk, wv))
            return nn.linear(_merge_nn(nn.attention(q, k, v), batch, seq, width), wo)
        return nn_function("attention", types, body)

    flops = 4 * 2.0 * batch * seq * width * width + 2 * 2.0 * batch * heads * seq * seq * hd
    return Workload("attention", "attention", f"batch {batch}, seq {seq}, width {width}, {heads} heads",
                    "f32", flops, make_args, jax_fn, nn_module, inputs=1)


# ---------------------------------------------------------------------------
# transformer block (stepwell.models: embedding, layer norm, causal attention, gelu MLP)
# ---------------------------------------------------------------------------
def block(seq: int, width: int, heads: int, hidden: int, vocab: int) -> Workload:
    from stepwell import models
    cfg = models.BlockConfig(vocab=vocab, seq=seq, width=width, heads=heads, hidden=hidden)

    def make_args():
        return [models.block_inputs(cfg), *models.block_params(cfg).values()]

    flops = (4 * 2.0 * seq * width * width + 2 * 2.0 * seq * seq * width
             + 2 * 2.0 * seq * width * hidden)
    return Workload("transformer_block", "block",
                    f"seq {seq}, width {width}, {heads} heads, MLP {hidden}, causal",
                    "f32", flops, make_args, models.transformer_block_jax(cfg),
                    lambda types: models.transformer_block(cfg), inputs=1)


# ---------------------------------------------------------------------------
# GPT-2-style decoder: token + position embeddings, pre-LN blocks, tied output embedding
# ---------------------------------------------------------------------------
_GPT2_LAYER = ("ln1_s", "ln1_b", "wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo",
               "ln2_s", "ln2_b", "w1", "b1", "w2", "b2")


@dataclass(frozen=True)
class GPT2Config:
    layers: int = 12
    width: int = 768
    heads: int = 12
    vocab: int = 50257
    seq: int = 128
    positions: int = 1024
    batch: int = 1


def gpt2_params(cfg: GPT2Config, seed: int = 0) -> list[np.ndarray]:
    """Random weights (fixed seed, GPT-2's 0.02 init scale): wte, wpe, 16 per layer, ln_f."""
    rng = _rng(seed)
    d, h = cfg.width, 4 * cfg.width
    ones = lambda n: np.ones(n, np.float32)    # noqa: E731
    zeros = lambda n: np.zeros(n, np.float32)  # noqa: E731
    params = [_normal(rng, (cfg.vocab, d), scale=0.02), _normal(rng, (cfg.positions, d), scale=0.01)]
    for _ in range(cfg.layers):
        params += [ones(d), zeros(d)]
        for _ in range(4):  # q, k, v, out projections with biases
            params += [_normal(rng, (d, d), scale=0.02), zeros(d)]
        params += [ones(d), zeros(d), _normal(rng, (d, h), scale=0.02), zeros(h),
                   _normal(rng, (h, d), scale=0.02 / math.sqrt(2 * cfg.layers)), zeros(d)]
    return params + [ones(d), zeros(d)]


def gpt2(cfg: GPT2Config) -> Workload:
    d, nh, s, bsz = cfg.width, cfg.heads, cfg.seq, cfg.batch
    hd = d // nh

    def make_args():
        ids = _rng(7).integers(0, cfg.vocab, (bsz, s)).astype(np.int32)
        pos = np.broadcast_to(np.arange(s, dtype=np.int32), (bsz, s)).copy()
        return [ids, pos, *gpt2_params(cfg)]

    def jax_fn(ids, pos, wte, wpe, *rest):
        import jax
        x = wte[ids] + wpe[pos]
        for i in range(cfg.layers):
            p = dict(zip(_GPT2_LAYER, rest[16 * i:16 * (i + 1)]))
            h = _layer_norm_jax(x, p["ln1_s"], p["ln1_b"])
            q, k, v = (_heads_jax(h @ p[w] + p[b], nh) for w, b in (("wq", "bq"), ("wk", "bk"), ("wv", "bv")))
            x = x + _merge_jax(_attention_jax(q, k, v, causal=True)) @ p["wo"] + p["bo"]
            h = _layer_norm_jax(x, p["ln2_s"], p["ln2_b"])
            x = x + jax.nn.gelu(h @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        x = _layer_norm_jax(x, rest[-2], rest[-1])
        return x @ wte.T

    def nn_module(types):

        def body(ids, pos, wte, wpe, *rest):
            x = nn.add(nn.embedding(wte, ids), nn.embedding(wpe, pos))
            for i in range(cfg.layers):
                p = dict(zip(_GPT2_LAYER, rest[16 * i:16 * (i + 1)]))
                h = nn.layer_norm(x, p["ln1_s"], p["ln1_b"])
                q, k, v = (_heads_nn(nn.linear(h, p[w], p[b]), bsz, s, nh, hd)
                           for w, b in (("wq", "bq"), ("wk", "bk"), ("wv", "bv")))
                a = _merge_nn(nn.attention(q, k, v, causal=True), bsz, s, d)
                x = nn.add(x, nn.linear(a, p["wo"], p["bo"]))
                h = nn.layer_norm(x, p["ln2_s"], p["ln2_b"])
                x = nn.add(x, nn.linear(nn.gelu(nn.linear(h, p["w1"], p["b1"]), approximate=True),
                                        p["w2"], p["b2"]))
            x = nn.layer_norm(x, rest[-2], rest[-1])
            return nn.linear(x, nn.transpose(wte, permutation=[1, 0]))
        return nn_function("gpt2", types, body)

    per_layer = (4 * 2.0 * s * d * d + 2 * 2.0 * nh * s * s * hd + 2 * 2.0 * s * d * 4 * d)
    flops = bsz * (cfg.layers * per_layer + 2.0 * s * d * cfg.vocab)
    return Workload("gpt2", "gpt2",
                    f"GPT-2-style: {cfg.layers} layers, width {d}, {nh} heads, vocab {cfg.vocab}, "
                    f"batch {bsz}, seq {s}, tied embeddings", "f32", flops, make_args, jax_fn, nn_module,
                    rtol=1e-3, inputs=2,
                    notes=f"{_param_count(cfg) / 1e6:.0f}M parameters (random, fixed seed)")


def _param_types(cfg: GPT2Config):
    from stepwell.core.types import TensorType
    d, h = cfg.width, 4 * cfg.width
    shapes = [(cfg.vocab, d), (cfg.positions, d)]
    for _ in range(cfg.layers):
        shapes += [(d,), (d,)] + [(d, d), (d,)] * 4 + [(d,), (d,), (d, h), (h,), (h, d), (d,)]
    shapes += [(d,), (d,)]
    return [TensorType(sh, "f32") for sh in shapes]


def _param_count(cfg: GPT2Config) -> int:
    return sum(math.prod(t.shape) for t in _param_types(cfg))


# ---------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------
def suite(mode: str = "full") -> list[Workload]:
    """The workloads of a mode, in report order (the MoE ones, then the LLM prefill/decode ones last)."""
    from stepwell.bench import llm
    from stepwell.bench.workloads_moe import moe_workloads
    return _suite(mode) + moe_workloads(mode) + llm.suite(mode)


def _suite(mode: str) -> list[Workload]:
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}' (modes: {', '.join(MODES)})")
    if mode == "full":
        sizes = {"f32": (512, 1024, 2048), "bf16": (512, 1024, 2048), "f16": (512, 1024, 2048)}
        return [*(matmul(n, dt) for dt, ns in sizes.items() for n in ns),
                mlp(256, 1024, 4096), cnn(32, 64), attention(512, 512, 8),
                block(256, 512, 8, 2048, 1024), gpt2(GPT2Config())]
    if mode == "quick":
        sizes = {"f32": (512, 1024, 2048), "bf16": (512,), "f16": (512,)}
        return [*(matmul(n, dt) for dt, ns in sizes.items() for n in ns),
                mlp(256, 1024, 4096), cnn(8, 64), attention(512, 512, 8),
                block(256, 512, 8, 2048, 1024), gpt2(GPT2Config(layers=2))]
    sizes = {"f32": (32, 64), "bf16": (32,), "f16": (32,)}
    return [*(matmul(n, dt) for dt, ns in sizes.items() for n in ns),
            mlp(8, 32, 64), cnn(2, 8), attention(16, 32, 4), block(16, 32, 4, 64, 64),
            gpt2(GPT2Config(layers=1, width=32, heads=4, vocab=97, seq=16, positions=32))]
