"""The MoE benchmark workloads (docs/moe.md): a Mixtral-style layer (top-k of E
SwiGLU experts) written as users write it in JAX, and the same layer with the
``nn`` builders (``nn.top_k``, ``nn.softmax``, ``nn.moe_ffn``).

* ``moe``: T=512 tokens, D=256, H=512, E=8, k=2, the dense JAX form (every expert
  on every token, combine weights by a scatter: MaxText's dense path), dropless;
* ``moe_capacity``: the same layer in the fastest JAX formulation, Switch/MaxText's
  capacity einsums (capacity factor 1.25: tokens over capacity are dropped); the
  ``nn`` version is ``nn.moe_ffn {capacity}``;
* ``moe_decode_1``, ``moe_decode_8``: T=1 and T=8 tokens (decoding), dense JAX form.

FLOPs are the routed work (T*k tokens through one expert each: 6*D*H per token, plus
the router), whatever a runner computes. The notes give the expert weight bytes the
routed layer reads for these inputs (the touched experts' only) against all of them.
"""

from __future__ import annotations

import math

import numpy as np

from stepwell.bench.workloads import Workload, _normal, _rng, nn, nn_function

SIZES = {"full": dict(d=256, h=512, e=8, k=2, t=512), "quick": dict(d=256, h=512, e=8, k=2, t=512),
         "tiny": dict(d=8, h=16, e=4, k=2, t=16)}
CAPACITY_FACTOR = 1.25


def capacity(t: int, e: int, k: int) -> int:
    return math.ceil(t * k / e * CAPACITY_FACTOR)


def _args(t, d, h, e, seed=11):
    rng = _rng(seed)
    return [_normal(rng, (t, d)), _normal(rng, (d, e), scale=d ** -0.5),
            _normal(rng, (e, d, h), scale=d ** -0.5), _normal(rng, (e, d, h), scale=d ** -0.5),
            _normal(rng, (e, h, d), scale=h ** -0.5)]


def _route(x, wr, k):
    import jax
    vals, ids = jax.lax.top_k(x @ wr, k)
    return jax.nn.softmax(vals, axis=-1), ids


def dense_jax(k: int):
    """The layer as written densely: every expert on every token, a scattered combine."""
    def fn(x, wr, wg, wu, wd):
        import jax
        import jax.numpy as jnp
        w, ids = _route(x, wr, k)
        comb = jnp.zeros((x.shape[0], wg.shape[0]), x.dtype).at[jnp.arange(x.shape[0])[:, None], ids].set(w)
        g, u = jnp.einsum("td,edh->teh", x, wg), jnp.einsum("td,edh->teh", x, wu)
        return jnp.einsum("ted,te->td", jnp.einsum("teh,ehd->ted", jax.nn.silu(g) * u, wd), comb)
    return fn


def capacity_jax(k: int, c: int):
    """Switch/MaxText capacity einsums: dispatch [T, E, C] one-hots, batched experts, combine."""
    def fn(x, wr, wg, wu, wd):
        import jax
        import jax.numpy as jnp
        w, ids = _route(x, wr, k)
        e = wg.shape[0]
        oh = jax.nn.one_hot(ids.reshape(-1), e, dtype=jnp.int32)
        pos = jnp.sum((jnp.cumsum(oh, axis=0) - 1) * oh, axis=1).reshape(ids.shape)
        keep = (pos < c).astype(x.dtype)
        oh_e, oh_c = jax.nn.one_hot(ids, e, dtype=x.dtype), jax.nn.one_hot(pos, c, dtype=x.dtype)
        combine = jnp.einsum("tk,tke,tkc->tec", w * keep, oh_e, oh_c)
        dispatch = jnp.einsum("tke,tkc->tec", oh_e * keep[..., None], oh_c)
        xe = jnp.einsum("td,tec->ecd", x, dispatch)
        g, u = jnp.einsum("ecd,edh->ech", xe, wg), jnp.einsum("ecd,edh->ech", xe, wu)
        return jnp.einsum("ecd,tec->td", jnp.einsum("ech,ehd->ecd", jax.nn.silu(g) * u, wd), combine)
    return fn


def _nn_module(name: str, k: int, cap: int = 0):
    def build(types):
        def body(x, wr, wg, wu, wd):
            values, ids = nn.top_k(nn.matmul(x, wr), k=k)
            return nn.moe_ffn(x, nn.softmax(values, axis=-1), ids, wg, wu, wd, capacity=cap or None)
        return nn_function(name, types, body)
    return build


def touched_experts(args, k: int) -> int:
    """How many experts the inputs' routing uses (numpy top-k of the router logits)."""
    x, wr = args[0], args[1]
    return len(np.unique(np.argsort(-(x @ wr), axis=1, kind="stable")[:, :k]))


def weight_bytes_note(t, d, h, e, k) -> str:
    per_expert = 3 * d * h * 4
    used = touched_experts(_args(t, d, h, e), k)
    return (f"expert weights read routed: {used} of {e} experts, {used * per_expert / 1e6:.2f} MB of "
            f"{e * per_expert / 1e6:.2f} MB (dense reads all)")


def _workload(name, t, d, h, e, k, jax_fn, cap=0, notes=""):
    flops = 2.0 * t * d * e + t * k * 6.0 * d * h
    what = f"T={t}, D={d}, H={h}, E={e}, top-{k}, SwiGLU" + (f", capacity {cap}" if cap else ", dropless")
    return Workload(name, "moe", what, "f32", flops, lambda: _args(t, d, h, e), jax_fn,
                    _nn_module(name, k, cap), rtol=1e-4, inputs=1, notes=notes)


def moe_workloads(mode: str) -> list[Workload]:
    s = SIZES[mode]
    d, h, e, k, t = s["d"], s["h"], s["e"], s["k"], s["t"]
    c = capacity(t, e, k)
    out = [_workload("moe", t, d, h, e, k, dense_jax(k), notes=weight_bytes_note(t, d, h, e, k)),
           _workload("moe_capacity", t, d, h, e, k, capacity_jax(k, c), cap=c,
                     notes="the fastest JAX formulation (capacity einsums, factor 1.25)")]
    for td in (1, 8):
        out.append(_workload(f"moe_decode_{td}", td, d, h, e, k, dense_jax(k),
                             notes=weight_bytes_note(td, d, h, e, k)))
    return out
