"""The machine's f32 peak, measured: a short FMA probe run at the start and the end.

The probe is IREE code compiled for the host CPU (``cpu`` target flags): elementwise
``linalg.generic`` kernels over 2^18 f32 values whose bodies run ``C`` chains of
``DEPTH`` ``math.fma`` each. IREE vectorizes them to the widest FMA the CPU has (zmm on
AVX-512, ymm on AVX2, NEON/SVE on Arm) and spreads them over all cores; the 1 MiB in
and out are noise beside the 2^18 * C * DEPTH * 2 FLOPs, so a kernel runs at the FMA
throughput when enough FMAs are independent to hide their latency and all of them fit
in registers.

Two traps, measured on AVX2 code (znver3) and AVX-512 code (znver4) on one machine:

* With independent chains summed at the end, LLVM's scheduler may run the chains one
  after another to save registers, leaving one or two FMAs in flight: 12 chains read
  14-39 GFLOP/s on AVX2 where the machine does 220 (the probe read 47 on a 2-core AVX2
  machine whose matmul ran at 84). Here each step of chain ``c`` also reads chain
  ``c + 1``'s previous value (``x[c] = fma(x[c], 0.5, x[c+1])``: the values stay finite),
  so every step of every chain must be done before the next step starts: a wavefront
  of ``C`` independent FMAs at each step, which no scheduler can serialize. 12 chains
  then read 223 (AVX2) and 206 (AVX-512) GFLOP/s.
* How many chains fit depends on the ISA (16 ymm, 32 zmm or NEON registers, and the
  vector width IREE picks): too few leave latency exposed, too many spill. The probe
  runs several widths (``CHAINS``) and a mul+add variant (for CPUs without FMA) from
  one module and reports the fastest: the peak is what the best of them reaches.

Each variant reports the best of ``rounds`` timed calls (the machine is shared: the
best call is the one least disturbed). A run is flagged *contended* when its start
and end probes differ by more than 15%, or either falls below 75% of a reference
peak given with ``--peak-gflops``.
"""

from __future__ import annotations

import time

import numpy as np

CHAINS = (8, 12, 16, 24)
DEPTH = 64
SIZE = 1 << 18
TOLERANCE = 0.15
LOW = 0.75

METHOD = (f"IREE-compiled f32 FMA kernels (cpu target flags): {SIZE} elements x "
          f"{'/'.join(map(str, CHAINS))} wavefront chains x {DEPTH} math.fma (and a mul+add "
          f"variant), all cores; the fastest variant's best timed call")


def _kernel_text(size: int = SIZE, chains: int = 12, depth: int = DEPTH, fused: bool = True,
                 name: str = "main") -> str:
    """One probe kernel: ``chains`` chains of ``depth`` steps, step ``d`` of chain ``c``
    reading chain ``c + 1``'s step ``d - 1`` (2 FLOPs per step)."""
    lines = [f"%c{c}_0 = arith.addf %x, %k{c} : f32" for c in range(chains)]
    for d in range(1, depth + 1):
        for c in range(chains):
            prev, other = f"%c{c}_{d - 1}", f"%c{(c + 1) % chains}_{d - 1}"
            if fused:
                lines.append(f"%c{c}_{d} = math.fma {prev}, %m, {other} : f32")
            else:
                lines.append(f"%t{c}_{d} = arith.mulf {prev}, %m : f32")
                lines.append(f"%c{c}_{d} = arith.addf %t{c}_{d}, {other} : f32")
    total = f"%c0_{depth}"
    for c in range(1, chains):
        lines.append(f"%s{c} = arith.addf {total}, %c{c}_{depth} : f32")
        total = f"%s{c}"
    consts = "\n  ".join(f"%k{c} = arith.constant {c + 1}.0e-3 : f32" for c in range(chains))
    body = "\n    ".join(lines)
    t = f"tensor<{size}xf32>"
    return f"""func.func @{name}(%arg0: {t}) -> {t} {{
  %m = arith.constant 0.5 : f32
  {consts}
  %e = tensor.empty() : {t}
  %r = linalg.generic {{indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                       iterator_types = ["parallel"]}}
      ins(%arg0 : {t}) outs(%e : {t}) {{
  ^bb0(%x: f32, %o: f32):
    {body}
    linalg.yield {total} : f32
  }} -> {t}
  return %r : {t}
}}"""


def variants() -> dict[str, tuple[int, bool]]:
    """Kernel name -> (chains, fused): the fma widths and one mul+add kernel."""
    out = {f"fma{c}": (c, True) for c in CHAINS}
    out["muladd12"] = (12, False)
    return out


def _module_text(size: int = SIZE) -> str:
    return "\n".join(_kernel_text(size, c, DEPTH, fused, name) for name, (c, fused) in variants().items())


class Probe:
    """Compile once; :meth:`measure` gives GFLOP/s (the fastest variant's)."""

    def __init__(self, size: int = SIZE, flags=()):
        """``flags``: extra iree-compile flags (``--iree-llvmcpu-target-cpu=haswell``
        measures the AVX2 peak of an AVX-512 machine)."""
        import iree.runtime as rt

        from stepwell.compiler import driver as compiler, runtime
        self.size = size
        exe = compiler.compile(_module_text(size), "cpu", flags=flags)
        dev, _ = runtime.device(exe.target.driver)
        x = rt.asdevicearray(dev, np.linspace(0, 1, size, dtype=np.float32))
        self.calls = {}
        for name, (chains, _) in variants().items():
            invoke = exe._invoker(exe.function(name))
            self.calls[name] = (lambda invoke=invoke: invoke(x), 2.0 * size * chains * DEPTH)
            self.calls[name][0]()
        self.exe = exe
        self.last: dict[str, float] = {}

    def measure(self, rounds: int = 20, seconds: float = 1.0) -> float:
        """The best GFLOP/s over the variants (each: best of ``rounds`` calls, at most
        ``seconds`` in all); ``last`` keeps each variant's."""
        best_time = {name: float("inf") for name in self.calls}
        deadline = time.perf_counter() + seconds
        for i in range(rounds):
            for name, (call, _) in self.calls.items():
                start = time.perf_counter()
                call()
                best_time[name] = min(best_time[name], time.perf_counter() - start)
            if i >= 3 and time.perf_counter() > deadline:
                break
        self.last = {name: self.calls[name][1] / t / 1e9 for name, t in best_time.items()}
        return max(self.last.values())


def verdict(start: float | None, end: float | None, reference: float | None = None) -> dict:
    """The probe section of a report: values, the peak used for fractions, contention."""
    values = [v for v in (start, end) if v]
    peak = max(values) if values else None
    reasons = []
    if start and end and abs(start - end) / max(start, end) > TOLERANCE:
        reasons.append(f"start and end probes differ by {abs(start - end) / max(start, end):.0%} "
                       f"(> {TOLERANCE:.0%})")
    if reference:
        low = [v for v in values if v < LOW * reference]
        if low:
            reasons.append(f"probe {min(low):.0f} GFLOP/s is below {LOW:.0%} of the reference "
                           f"peak {reference:.0f} GFLOP/s")
    return {"method": METHOD, "start_gflops": start, "end_gflops": end, "peak_gflops": peak,
            "reference_gflops": reference, "contended": bool(reasons), "reasons": reasons}


# -- memory bandwidth ----------------------------------------------------------------------

BANDWIDTH_BYTES = 1 << 28   # 256 MiB read per call: far beyond the caches
BANDWIDTH_METHOD = (f"IREE-compiled f32 row sums over {BANDWIDTH_BYTES >> 20} MiB (cpu target flags), "
                    "all cores; bytes read / best call time")


def _bandwidth_text(rows: int, cols: int = 1024) -> str:
    t, r = f"tensor<{rows}x{cols}xf32>", f"tensor<{rows}xf32>"
    return f"""func.func @main(%x: {t}) -> {r} {{
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : {r}
  %f = linalg.fill ins(%z : f32) outs(%e : {r}) -> {r}
  %s = linalg.reduce ins(%x : {t}) outs(%f : {r}) dimensions = [1]
    (%in: f32, %acc: f32) {{
      %a = arith.addf %in, %acc : f32
      linalg.yield %a : f32
    }}
  return %s : {r}
}}"""


class BandwidthProbe:
    """The memory bandwidth a compiled kernel reaches reading a large buffer once
    (what a decode step does with the weights): :meth:`measure` gives GB/s."""

    def __init__(self, nbytes: int = BANDWIDTH_BYTES):
        from stepwell.bench.runners import _IreeExecutable
        from stepwell.compiler import driver as compiler
        rows = nbytes // (4 * 1024)
        self.nbytes = rows * 1024 * 4
        exe = compiler.compile(_bandwidth_text(rows), "cpu")
        self.call = _IreeExecutable(exe, [np.ones((rows, 1024), np.float32)])
        self.call()

    def measure(self, rounds: int = 10, seconds: float = 2.0) -> float:
        best = float("inf")
        deadline = time.perf_counter() + seconds
        for i in range(rounds):
            start = time.perf_counter()
            self.call()
            best = min(best, time.perf_counter() - start)
            if i >= 2 and time.perf_counter() > deadline:
                break
        return self.nbytes / best / 1e9
