"""Random JAX programs through ``sw.jax.jit``, against ``jax.jit``.

Each program is Python source: 1-5 ``jax.numpy``/``jax.lax`` steps on a float input
(and extra inputs), drawn from elementwise math, broadcasting arithmetic, reductions,
cumulative ops, sorting, argmax, indexing and gathers, reshapes, transposes, matmuls,
softmax/logsumexp, comparisons and integer casts, clamps, padding and
concatenation. Outcome per program:

* ``ok``: same structure, shapes, dtypes and values as ``jax.jit`` (the tolerance
  table, ``stepwell.numerics.testing``, scaled by the output's magnitude);
* ``refused``: a StepwellError that names the op (``'stablehlo.x'``, ``'nn.x'`` or
  ``JAX primitive 'x'``): a clear refusal;
* ``unclear``: a StepwellError that names no op; ``traceback``: any other exception;
  ``mismatch``: different values; ``generator``: jax.jit itself fails (a fuzzer bug).
"""

from __future__ import annotations

import re
import traceback

import numpy as np

from stepwell.fuzz.choice import Chooser
from stepwell.fuzz.report import Report
from stepwell.fuzz.run_programs import mismatch

# (source with {x} the current value and {w} a fresh input of x's shape, needs) where
# needs says what the step requires of x: "" anything, "2d" rank >= 2, "pos" positive
STEPS = [
    ("jnp.sin({x})", ""), ("jnp.tanh({x})", ""), ("jnp.exp(jnp.clip({x}, -5, 5))", ""),
    ("jnp.log1p(jnp.abs({x}))", ""), ("jnp.sqrt(jnp.abs({x}) + 1)", ""), ("jnp.abs({x})", ""),
    ("-{x}", ""), ("{x} * {x}", ""), ("jnp.floor({x})", ""), ("jnp.round({x})", ""),
    ("jnp.sign({x})", ""), ("jax.scipy.special.erf({x})", ""), ("jax.nn.sigmoid({x})", ""),
    ("jax.nn.relu({x})", ""), ("jax.nn.gelu({x})", ""), ("jax.nn.silu({x})", ""),
    ("{x} + {w}", ""), ("{x} - {w}[..., :1]", ""), ("{x} * 2.5 + 1", ""), ("{x} / (jnp.abs({w}) + 1)", ""),
    ("jnp.maximum({x}, {w})", ""), ("jnp.minimum({x}, 0.5)", ""), ("jnp.where({x} > 0, {x}, {w})", ""),
    ("jnp.power(jnp.abs({x}) + 1, 1.5)", ""), ("jnp.clip({x}, -1, 1)", ""),
    ("jnp.sum({x}, axis=-1, keepdims=True) + {x}", ""), ("jnp.max({x}, axis=0)", "2d"),
    ("jnp.mean({x})", ""), ("jnp.min({x}, axis=-1)", "2d"), ("jnp.prod(jnp.tanh({x}), axis=-1)", "2d"),
    ("jnp.cumsum({x}, axis=-1)", ""), ("jnp.sort({x}, axis=-1)", ""),
    ("jnp.argmax({x}, axis=-1).astype(jnp.float32)", "2d"),
    ("jax.nn.softmax({x}, axis=-1)", ""), ("jax.nn.logsumexp({x}, axis=-1)", "2d"),
    ("jnp.swapaxes({x}, 0, -1)", "2d"), ("{x}.reshape(-1)", ""), ("{x}[..., ::2]", ""), ("{x}[::-1]", ""),
    ("{x} @ jnp.swapaxes({x}, -1, -2)", "2d"), ("jnp.concatenate([{x}, {w}], axis=-1)", ""),
    ("jnp.pad({x}, 1)", ""), ("jnp.take({x}, jnp.array([0, 0, 1]) % {x}.shape[0], axis=0)", ""),
    ("({x} > {w}).astype(jnp.float32)", ""), ("{x}.astype(jnp.int32).astype(jnp.float32)", ""),
    ("({x}.astype(jnp.int32) % 3).astype(jnp.float32)", ""), ("{x}.astype(jnp.bfloat16).astype(jnp.float32)", ""),
    ("jax.lax.dynamic_slice_in_dim({x}, 1, 1, axis=0)", ""), ("jnp.flip({x}, axis=-1)", ""),
    ("jnp.tile({x}, 2)", ""), ("jnp.expand_dims({x}, 0) * {x}", ""), ("jnp.linalg.norm({x}, axis=-1)", "2d"),
    ("jnp.var({x}, axis=-1)", "2d"), ("jnp.fft.rfft({x}, axis=-1).real", ""),
    ("jnp.cumprod(jnp.tanh({x}), axis=-1)", ""), ("jnp.triu({x})", "2d"), ("jnp.outer({x}[0], {x}[-1])", "2d"),
]
_NAMES_OP = re.compile(r"'(?:stablehlo|chlo|nn|prim|linalg|arith|math|tensor|func)\.\w+'|JAX primitive '\w+'")


def _source(lines, shapes, seed_) -> str:
    params = ", ".join(["x", *(f"w{i}" for i in range(len(shapes) - 1))])
    body = "\n".join(lines)
    return (f"import jax\nimport jax.numpy as jnp\nimport numpy as np\n\n"
            f"def f({params}):\n{body}\n    return x\n\n"
            f"def make():\n    rng = np.random.default_rng({seed_})\n"
            f"    args = [rng.standard_normal(s).astype(np.float32) for s in {shapes}]\n"
            f"    return f, args\n")


def case(seed: int, index: int) -> str:
    """Program ``index`` of campaign ``seed`` as Python source defining ``make()``. Each
    step is kept only when JAX accepts it (``jax.eval_shape``); a fresh input ``{w}``
    takes the current value's shape."""
    import jax
    ch = Chooser(f"jax:{seed}:{index}")
    shapes = [tuple(ch.integer(2, 5) for _ in range(ch.integer(1, 3)))]
    lines: list[str] = []
    current = jax.ShapeDtypeStruct(shapes[0], np.float32)
    for _ in range(ch.integer(1, 5)):
        src, needs = ch.pick([s for s in STEPS if s[1] != "2d" or len(current.shape) >= 2])
        new_shapes = shapes + ([tuple(current.shape)] if "{w}" in src else [])
        line = "    x = " + src.format(x="x", w=f"w{len(shapes) - 1}")
        env: dict = {}
        try:
            exec(compile(_source(lines + [line], new_shapes, 0), "<fuzz>", "exec"), env)  # noqa: S102
            out = jax.eval_shape(env["f"], *(jax.ShapeDtypeStruct(s, np.float32) for s in new_shapes))
        except Exception:  # noqa: BLE001  (JAX refuses this step here: draw another)
            continue
        if out.dtype != np.float32 or out.size == 0:
            continue
        lines.append(line)
        shapes, current = new_shapes, out
    if not lines:
        lines = ["    x = jnp.tanh(x)"]
    return _source(lines, shapes, ch.integer(0, 2 ** 31 - 1))


def _leaves(x):
    import jax
    return [np.asarray(v) for v in jax.tree.leaves(x)]


def check(source: str, target: str = "cpu") -> tuple[str, str]:
    """(outcome, detail) of one program."""
    import jax

    import stepwell as sw
    env: dict = {}
    try:
        exec(compile(source, "<fuzz>", "exec"), env)  # noqa: S102  (our own generated source)
        fn, args = env["make"]()
        want = _leaves(jax.jit(fn)(*args))
    except Exception:  # noqa: BLE001  (jax.jit itself fails: the program is invalid)
        return "generator", traceback.format_exc()[-1500:]
    try:
        got = _leaves(sw.jax.jit(fn, target=target)(*args))
    except sw.StepwellError as e:
        text = str(e)
        return ("refused", "") if _NAMES_OP.search(text) else ("unclear", text)
    except Exception:  # noqa: BLE001
        return "traceback", traceback.format_exc()[-3000:]
    if len(got) != len(want):
        return "mismatch", f"{len(got)} outputs, jax.jit has {len(want)}"
    for g, w in zip(got, want):
        if g.dtype != w.dtype:
            return "mismatch", f"dtype {g.dtype} != {w.dtype}"
        from stepwell.core.types import dtype_of
        why = mismatch(g, w, dtype_of(w.dtype) if w.dtype.kind == "f" else "f32", 1)
        if why:
            return "mismatch", why
    return "ok", ""


def run(count: int, seed: int = 0, *, start: int = 0, target: str = "cpu", progress=None,
        report: Report | None = None) -> Report:
    report = report or Report("jax", seed)
    report.notes.setdefault("target", target)
    for i in range(start, start + count):
        source = case(seed, i)
        outcome, detail = check(source, target)
        report.add(outcome, i, detail, source)
        if progress is not None and (i - start) % 25 == 24:
            progress(report)
    return report
