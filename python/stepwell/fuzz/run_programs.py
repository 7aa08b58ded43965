"""The program campaign: generate, compile through stepwell, compare with the op
references and with JAX.

Programs are compiled in batches (one module of ``batch`` functions, one IREE
compile: 0.3-1 s each); a batch that fails to compile is split to find the program
that does. Each program's outcome:

* ``ok``: the compiled result matches its op references (numpy, ``spec.evaluate``)
  and the JAX twin, and the references match JAX;
* ``mismatch``: a difference beyond the tolerance (below);
* ``compile``: stepwell refused a valid program (a StepwellError);
* ``traceback``: anything else raised (an internal error);
* ``generator``: the program text did not parse (a fuzzer bug).

Tolerance: with ``(rtol, atol)`` the table tolerance (``stepwell.numerics.testing``)
of the program's least precise float type (bf16, then f16, else the result's: a value
rounded to bf16 once keeps that error when cast back to f32), every element must
satisfy ``|got - want| <= k * (atol * S + rtol * |want|)`` with ``S = max(1, max
|want|)``, ``k = 1`` for f32 programs and ``k = number of ops`` for programs with
f16/bf16 values (each op rounds once).
"""

from __future__ import annotations

import traceback

import numpy as np

from stepwell.core.diagnostics import StepwellError
from stepwell.fuzz.choice import Chooser
from stepwell.fuzz.programs import generate, jax_function
from stepwell.fuzz.report import Report
from stepwell.numerics.testing import tolerance


def case(seed: int, index: int):
    """Program ``index`` of campaign ``seed`` (the reproducer of a failure)."""
    return generate(Chooser(f"programs:{seed}:{index}"))


def mismatch(got, want, dtype: str, k: int) -> str | None:
    """Why ``got`` differs from ``want`` beyond the tolerance, or None."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    g, w = got.astype(np.float64), want.astype(np.float64)
    rtol, atol = tolerance(dtype)
    scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
    err = np.abs(g - w)
    bad = ~(err <= k * (atol * scale + rtol * np.abs(w)))
    if not np.any(bad):
        return None
    i = np.unravel_index(int(np.argmax(np.where(bad, err, -1))), err.shape)
    return f"max error {float(err[i]):.3g} at {tuple(int(x) for x in i)}: got {g[i]:.6g}, want {w[i]:.6g}"


class GeneratorBug(Exception):
    """The generated text does not parse or verify: the fuzzer's fault."""


def least_precise(prog) -> str:
    """bf16 if any value of ``prog`` is bf16, else f16 if any is, else the result's type."""
    types = {a.type.dtype for a in prog.args} | {v.type.dtype for *_, v in prog.ops}
    return next((t for t in ("bf16", "f16") if t in types), prog.result.type.dtype)


def _compile(texts, target):
    import stepwell as sw
    try:
        module = sw.parse("".join(texts), name="fuzz.mlir")
    except StepwellError as e:
        raise GeneratorBug(str(e)) from None
    return sw.compile(module, target=target)


def _check(report, index, prog, got, target_jax=True):
    want = prog.result.array
    k = len(prog.ops) if prog.low_precision else 1
    dtype = least_precise(prog)
    why = mismatch(got, want, dtype, k)
    if why is None and target_jax:
        import jax
        twin = np.asarray(jax.jit(jax_function(prog))(*prog.inputs))
        why = mismatch(got, twin, dtype, k)
        if why is not None:
            why = "against JAX: " + why
        elif mismatch(want, twin, dtype, k) is not None:
            why = "the op references disagree with JAX: " + mismatch(want, twin, dtype, k)
    if why is None:
        report.add("ok", index)
    else:
        report.add("mismatch", index, why, prog.text())


def _run_batch(report, items, target, jax_check):
    """Compile ``items`` ((index, program)) together; split on a compile failure."""
    texts = [p.text(f"f{i}") for i, p in items]
    try:
        exe = _compile(texts, target)
    except (StepwellError, GeneratorBug) as e:
        if len(items) == 1:
            i, p = items[0]
            report.add("generator" if isinstance(e, GeneratorBug) else "compile", i, str(e), p.text())
            return
        half = len(items) // 2
        _run_batch(report, items[:half], target, jax_check)
        _run_batch(report, items[half:], target, jax_check)
        return
    except Exception:  # noqa: BLE001  (an internal error: reported with its traceback)
        if len(items) == 1:
            i, p = items[0]
            report.add("traceback", i, traceback.format_exc(), p.text())
            return
        half = len(items) // 2
        _run_batch(report, items[:half], target, jax_check)
        _run_batch(report, items[half:], target, jax_check)
        return
    for i, p in items:
        try:
            got = exe.function(f"f{i}")(*p.inputs)
        except StepwellError as e:
            report.add("compile", i, f"running: {e}", p.text())
            continue
        except Exception:  # noqa: BLE001
            report.add("traceback", i, traceback.format_exc(), p.text())
            continue
        _check(report, i, p, got, jax_check)


def run(count: int, seed: int = 0, *, start: int = 0, batch: int = 16, target: str = "cpu",
        jax_check: bool = True, progress=None, report: Report | None = None) -> Report:
    """Cases ``start .. start+count-1`` of campaign ``seed``."""
    report = report or Report("programs", seed)
    report.notes.setdefault("target", target)
    for first in range(start, start + count, batch):
        items = []
        for i in range(first, min(first + batch, start + count)):
            try:
                items.append((i, case(seed, i)))
            except Exception:  # noqa: BLE001  (a generator bug, not a compiler one)
                report.add("generator", i, traceback.format_exc(), f"seed {seed} index {i}")
        if items:
            _run_batch(report, items, target, jax_check)
        if progress is not None:
            progress(report)
    return report
