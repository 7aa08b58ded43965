"""The runners of the LLM workloads (``bench/llm.py``), side by side in one process:

=====================  ==================================================================
``stepwell``           the decoder exported with ``sw.jax.export`` (f32 weights as IREE
                       parameters, the KV cache a device state updated in place)
``stepwell-int8``      the same, linear weights int8 (``quantize="int8"``, groups of 128)
``stepwell-int4``      the same, int4 (groups of 128)
``stepwell-nocache``   the model without a cache: each step runs the whole context
``stepwell-static``    the f32 decoder exported with static shapes (this batch, this prompt
                       length): what the dynamic export is measured against
``jax``                ``jax.jit`` of the same functions, the cache donated (updated in place)
=====================  ==================================================================

One export per (model, runner) serves both batch sizes and both workloads (batch and
prompt length are dynamic): the export is made once per run and kept (the static one:
once per batch size).
"""

from __future__ import annotations

import shutil
import tempfile
import time

import numpy as np

from stepwell.bench.runners import Prepared, Runner, Skip, _compile_only

_EXPORTS: dict = {}   # (model, runner) -> (loaded model, export seconds)


def llm_token(ids) -> np.ndarray:
    """The token each row decodes after its prompt: fixed (the prompt's first), not the
    argmax of the runner's own prefill, so that every runner decodes the same token
    whatever its rounding (an int8 argmax that differs from f32's on one row of 8 made
    that row's logits differ wholly)."""
    return np.ascontiguousarray(ids[:, 0]).astype(np.int32)


def _weights_read(manifest) -> int:
    """Bytes of the parameters a token reads whole: all but the embedding tables that
    are only gathered from (the position table; the token table once a quantized copy
    of it is the output projection)."""
    names = {p["name"] for p in manifest["parameters"]}
    out = 0
    for p in manifest["parameters"]:
        if p["name"] == "1" or (p["name"] == "0" and "0.T.qweight" in names):
            continue
        out += int(np.prod(p["shape"], dtype=np.int64)) * np.dtype(p["dtype"]).itemsize
    return out


def _exported(m, quantize, target, cache: bool, static_batch: int | None = None):
    """The (model, runner)'s export, made on first use and kept for the run."""
    key = (m, quantize, str(target), cache, static_batch)
    if key not in _EXPORTS:
        from stepwell.bench import llm
        from stepwell.bench.workloads import gpt2_params
        from stepwell.export import export, load
        prefill, decode, next_logits = llm.functions(m)
        params = gpt2_params(m.cfg)
        batch = static_batch or 1
        ids, lengths = llm.inputs(m, batch)
        folder = tempfile.mkdtemp(prefix="stepwell-bench-llm-")
        try:
            start = time.perf_counter()
            if cache:
                import jax
                cache_spec = jax.ShapeDtypeStruct(m.cache_shape(batch), np.float32)
                options = llm.export_options(m)
                if static_batch:
                    options.pop("dynamic_dims")
                    options.pop("specialize")
                export({"prefill": prefill, "decode": decode}, params,
                       {"prefill": (ids, lengths), "decode": (ids[:, 0], lengths, cache_spec)},
                       path=f"{folder}/m", target=str(target), quantize=quantize, cache=False, **options)
            else:
                export(next_logits, params, ids, lengths, path=f"{folder}/m", target=str(target),
                       dynamic_dims=("b, s", "b"), cache=False)
            seconds = time.perf_counter() - start
            model = None if _compile_only(target) else load(f"{folder}/m")
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # loaded: the runtime holds its data
        _EXPORTS[key] = (model, seconds)
    return _EXPORTS[key]


class StepwellLLM(Runner):
    def __init__(self, m, kind: str, batch: int, quantize: str | None = None, static: bool = False):
        self.m, self.kind, self.batch, self.quantize, self.static = m, kind, batch, quantize, static
        self.name = "stepwell" + (f"-{quantize}" if quantize else "") + ("-static" if static else "")
        self.description = (f"sw.jax.export of prefill/decode ({quantize or 'f32'} weights, "
                            f"{'static' if static else 'dynamic batch and prompt length'}), the KV "
                            "cache a device state updated in place; sw.load")

    def prepare(self, w, target, options) -> Prepared:
        model, export_s = _exported(self.m, self.quantize, target, cache=True,
                                    static_batch=self.batch if self.static else None)
        compile = {"export_s": export_s, "total_s": export_s}
        if model is None:
            return Prepared(lambda: None, lambda: None, compile, {}, False, _compile_only(target))
        ids, lengths = w.args()[:2]
        info = {"bytes_per_call": _weights_read(model.manifest)
                + (self.m.cache_bytes(self.batch) if self.kind == "decode" else 0)}
        if self.kind == "prefill":
            def call():
                return model.prefill(ids, lengths)
            return Prepared(call, lambda: np.asarray(call()["logits"]), compile, info)
        state = {"cache": model.prefill(ids, lengths)["cache"]}
        token = llm_token(ids)

        def step():
            out = model.decode(token, lengths, state["cache"])
            state["cache"] = out["cache"]
            return out
        return Prepared(step, lambda: np.asarray(step()["logits"]), compile, info)


class StepwellNoCache(Runner):
    name = "stepwell-nocache"
    description = "sw.jax.export of the model without a cache: a decode step runs the whole context"

    def __init__(self, m, kind: str, batch: int):
        self.m, self.kind, self.batch = m, kind, batch

    def prepare(self, w, target, options) -> Prepared:
        if self.kind != "decode":
            raise Skip("prefill computes the same with or without a cache")
        model, export_s = _exported(self.m, None, target, cache=False)
        compile = {"export_s": export_s, "total_s": export_s}
        if model is None:
            return Prepared(lambda: None, lambda: None, compile, {}, False, _compile_only(target))
        ids, lengths = w.args()[:2]
        # the whole context of cache_len tokens; the logits after the prompt and its next
        # token (causal: what follows does not change them), the decode step's result
        context = np.concatenate([ids, llm_token(ids)[:, None], np.resize(ids, (self.batch, self.m.new - 1))],
                                 axis=1)
        after = lengths + 1
        info = {"bytes_per_call": _weights_read(model.manifest)}
        return Prepared(lambda: model(context, after), lambda: np.asarray(model(context, after)), compile, info)


class JaxLLM(Runner):
    name = "jax"
    description = "jax.jit of the same prefill/decode, the cache donated (XLA updates it in place)"

    def __init__(self, m, kind: str, batch: int):
        self.m, self.kind, self.batch = m, kind, batch

    def prepare(self, w, target, options) -> Prepared:
        import jax

        from stepwell.bench import llm
        prefill, decode, _ = llm.functions(self.m)
        args = w.args()
        ids, lengths = (jax.device_put(a) for a in args[:2])
        params = [jax.device_put(a) for a in args[2:]]
        pre = jax.jit(prefill)
        info = {"bytes_per_call": llm.weight_bytes(self.m)
                + (self.m.cache_bytes(self.batch) if self.kind == "decode" else 0)}
        start = time.perf_counter()
        first = jax.block_until_ready(pre(params, ids, lengths))
        compile = {"first_call_s": time.perf_counter() - start}
        if self.kind == "prefill":
            return Prepared(lambda: jax.block_until_ready(pre(params, ids, lengths)),
                            lambda: np.asarray(pre(params, ids, lengths)["logits"]), compile, info)
        dec = jax.jit(decode, donate_argnums=(3,))
        token = jax.device_put(llm_token(np.asarray(ids)))
        state = {"cache": first["cache"]}

        def step():
            out = jax.block_until_ready(dec(params, token, lengths, state["cache"]))
            state["cache"] = out["cache"]
            return out
        step()
        compile["total_s"] = time.perf_counter() - start
        return Prepared(step, lambda: np.asarray(step()["logits"]), compile, info)


def llm_runners(m, kind: str, batch: int) -> dict:
    """name -> Runner for one LLM workload (jax.jit is the reference: ratios are to it)."""
    rs = [StepwellLLM(m, kind, batch), StepwellLLM(m, kind, batch, "int8"), StepwellLLM(m, kind, batch, "int4"),
          StepwellNoCache(m, kind, batch), StepwellLLM(m, kind, batch, static=True), JaxLLM(m, kind, batch)]
    return {r.name: r for r in rs}
