"""A trial: candidate -> module -> timings, as pure functions that any worker can run.

:func:`compile_candidate` makes the task's micro-module with one configuration (None:
the baseline, the untuned compile) and compiles it (no caches, no database), giving the
``.vmfb`` or IREE's error: a candidate IREE rejects or crashes on is *rejected*, never
an exception. :func:`benchmark` runs the baseline and several candidates on the same
inputs (seeded normal data for floats, small integers otherwise; weights as IREE
parameters), interleaved: each round takes, for every candidate in a fresh random
order, a baseline sample and a candidate sample right after each other (which goes
first alternates), each sample the best of enough calls to last ``sample_s``.
:func:`verdict` compares a candidate with the baseline: the ratios ``baseline /
candidate`` of the paired samples; their median is the speed-up, half their
interquartile range the spread. A candidate is *faster* only if its lower-quartile
ratio is at least 1.05 (in three pairs of four it beat the baseline by 5 % or more),
the ratio of the best baseline sample to its best sample is too (the least disturbed
calls agree), and its results match the baseline's. On a busy machine a winner chosen
among many noisy candidates is then confirmed by a second, longer run
(``search.confirm``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import numpy as np

from stepwell.core.diagnostics import StepwellError

__all__ = ["Compiled", "Measured", "compile_candidate", "benchmark", "verdict", "MIN_SPEEDUP"]

MIN_SPEEDUP = 1.05


@dataclass
class Compiled:
    config: dict | None
    vmfb: bytes | None
    error: str = ""
    seconds: float = 0.0


@dataclass
class Measured:
    times: list = field(default_factory=list)   # seconds per sample
    paired: list = field(default_factory=list)  # the baseline sample taken next to each
    error: str = ""                             # failed to load or run
    mismatch: str = ""                          # results differ from the baseline's


def compile_candidate(task, config: dict | None, target_spec: str) -> Compiled:
    """Compile ``task``'s micro-module with ``config`` (None: untuned) for ``target_spec``."""
    from stepwell.compiler import driver
    from stepwell.core.module import parse
    start = time.perf_counter()
    try:
        vmfb = driver.compile_vmfb(parse(task.text), target_spec, cache=False,
                                   tuning={task.key: config} if config else "off")
    except StepwellError as e:
        return Compiled(config, None, "; ".join(d.message for d in e.diagnostics[:2]),
                        time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001  (a candidate must never stop the search)
        return Compiled(config, None, f"{type(e).__name__}: {e}", time.perf_counter() - start)
    return Compiled(config, vmfb, "", time.perf_counter() - start)


def _data(shape, dtype: str, rng) -> np.ndarray:
    from stepwell.core.types import numpy_dtype
    np_dtype = numpy_dtype(dtype)
    if dtype.startswith(("f", "bf")):
        scale = 1.0 / np.sqrt(max(shape[-1], 1)) if shape else 1.0
        return (rng.standard_normal(shape) * scale).astype(np_dtype)
    if dtype == "i1":
        return rng.integers(0, 2, shape).astype(np_dtype)
    return rng.integers(-8, 8, shape).astype(np_dtype)


def inputs(task, seed: int = 0):
    """(arguments, parameter index) of the task's micro-module: real data, seeded."""
    import iree.runtime as rt
    rng = np.random.default_rng(seed)
    args = [_data(tuple(shape), dtype, rng) for shape, dtype in task.args]
    index = None
    if task.params:
        index = rt.ParameterIndex()
        for name, shape, dtype in task.params:
            index.add_buffer(name, _data(tuple(shape), dtype, rng).tobytes())
    return args, index


class _Runner:
    """One loaded variant, called on device-resident inputs."""

    def __init__(self, vmfb, target, args, index):
        import iree.runtime as rt

        from stepwell.compiler import runtime
        self.exe = runtime.Executable(vmfb, target, parameters=index, parameter_scope="tune")
        fn = self.exe.function("main")
        self.invoke = self.exe._invoker(fn)
        dev, _ = runtime.device(self.exe.target.driver)
        self.args = [rt.asdevicearray(dev, np.ascontiguousarray(a)) for a in args]

    def __call__(self):
        return self.invoke(*self.args)

    def output(self) -> np.ndarray:
        from stepwell.compiler.runtime import to_host
        out = self()
        return np.asarray(to_host(out[0] if isinstance(out, tuple) else out))


def _mismatch(got: np.ndarray, want: np.ndarray) -> str:
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    kind = str(want.dtype)
    if kind in ("float32", "float64", "float16", "bfloat16"):
        g, w = got.astype(np.float64), want.astype(np.float64)
        if not np.array_equal(np.isnan(g), np.isnan(w)):
            return "NaNs differ"
        scale = max(float(np.nanmax(np.abs(w))) if w.size else 0.0, 1e-30)
        err = float(np.nanmax(np.abs(g - w))) / scale if w.size else 0.0
        tol = {"float32": 1e-3, "float64": 1e-6}.get(kind, 2e-2)
        return "" if err <= tol else f"max error {err:.2e} of the largest value (> {tol:g})"
    return "" if np.array_equal(got, want) else "integer results differ"


def benchmark(task, vmfbs: dict, target_spec: str, *, rounds: int = 5, sample_s: float = 0.02,
              seed: int = 0, deadline: float | None = None) -> dict[str, Measured]:
    """Time the variants ``vmfbs`` (name -> bytes; ``"baseline"`` among them), interleaved
    over ``rounds`` (fewer, but at least 3, past ``deadline``), on the same inputs."""
    from stepwell import targets
    target = targets.get(target_spec)
    args, index = inputs(task, seed)
    out: dict[str, Measured] = {name: Measured() for name in vmfbs}
    runners = {}
    reference = None
    for name, vmfb in vmfbs.items():
        try:
            runners[name] = _Runner(vmfb, target, args, index)
            result = runners[name].output()
        except Exception as e:  # noqa: BLE001
            out[name].error = f"{type(e).__name__}: {e}"
            runners.pop(name, None)
            continue
        if name == "baseline":
            reference = result
        elif reference is not None:
            out[name].mismatch = _mismatch(result, reference)
    if "baseline" not in runners:
        return out
    start = time.perf_counter()
    runners["baseline"]()
    one = max(time.perf_counter() - start, 1e-6)
    reps = int(min(50, max(1, sample_s / one)))

    def sample(name) -> float:
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            runners[name]()
            best = min(best, time.perf_counter() - t0)
        return best

    candidates = [n for n in runners if n != "baseline"]
    shuffle = random.Random(seed)
    for r in range(rounds):
        if r >= 3 and deadline is not None and time.monotonic() > deadline:
            break
        shuffle.shuffle(candidates)
        for i, name in enumerate(candidates):  # each candidate right next to a baseline sample
            first, second = ("baseline", name) if (r + i) % 2 == 0 else (name, "baseline")
            t1, t2 = sample(first), sample(second)
            base, cand = (t1, t2) if first == "baseline" else (t2, t1)
            out[name].times.append(cand)
            out[name].paired.append(base)
            out["baseline"].times.append(base)
        if not candidates:
            out["baseline"].times.append(sample("baseline"))
    return out


def verdict(base: Measured, cand: Measured) -> tuple[str, float | None, float | None]:
    """(status, speed-up, spread) of a candidate against the baseline of the same run:
    the ratios of each candidate sample to the baseline sample taken next to it; faster
    if their lower quartile is at least 1.05 and so is the ratio of the best samples."""
    if cand.error:
        return "error", None, None
    if cand.mismatch:
        return "mismatch", None, None
    paired = cand.paired or base.times
    n = min(len(paired), len(cand.times))
    if n == 0:
        return "error", None, None
    ratios = np.array(paired[:n]) / np.array(cand.times[:n])
    speedup = float(np.median(ratios))
    q25, q75 = (float(x) for x in np.quantile(ratios, [0.25, 0.75]))
    best = min(base.times or paired) / min(cand.times)
    faster = q25 >= MIN_SPEEDUP and best >= MIN_SPEEDUP
    return ("faster" if faster else "slower"), speedup, (q75 - q25) / 2
