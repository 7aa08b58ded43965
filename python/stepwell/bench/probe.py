"""The machine's f32 peak, measured: a short FMA probe run at the start and the end.

The probe is an IREE kernel compiled for the host CPU (``cpu`` target flags): one
elementwise ``linalg.generic`` over 2^18 f32 values whose body runs ``CHAINS``
independent chains of ``DEPTH`` dependent ``math.fma`` each. IREE vectorizes it to
the widest FMA (zmm on AVX-512) and spreads it over all cores; the independent
chains hide the FMA latency, and the 1 MiB in / 1 MiB out are noise beside the
2^18 * CHAINS * DEPTH * 2 FLOPs, so the kernel runs at the FMA throughput.
Measured on the 2-core AVX-512 machine of benchmarks/README.md: 347 GFLOP/s, against
350 for a hand-written loop of 12 independent ``vfmadd231ps zmm`` (``benchmarks/fma_peak.c``).
Fewer chains leave FMA latency exposed (8: 332); 16 chains x 32 read 244 (measured). The
probe reports the best of ``rounds`` timed calls (the machine is shared: the best
call is the one least disturbed). A run is flagged *contended* when its start and
end probes differ by more than 15%, or either falls below 75% of a reference
peak given with ``--peak-gflops``.
"""

from __future__ import annotations

import time

import numpy as np

CHAINS = 12
DEPTH = 128
SIZE = 1 << 18
TOLERANCE = 0.15
LOW = 0.75

METHOD = (f"IREE-compiled f32 FMA kernel (cpu target flags): {SIZE} elements x {CHAINS} independent "
          f"chains x {DEPTH} dependent math.fma, all cores; best of the timed calls")


def _kernel_text(size: int = SIZE, chains: int = CHAINS, depth: int = DEPTH) -> str:
    lines = [f"%c{c}_0 = arith.addf %x, %k{c} : f32" for c in range(chains)]
    for d in range(1, depth + 1):
        lines += [f"%c{c}_{d} = math.fma %c{c}_{d - 1}, %m, %a : f32" for c in range(chains)]
    total = f"%c0_{depth}"
    for c in range(1, chains):
        lines.append(f"%s{c} = arith.addf {total}, %c{c}_{depth} : f32")
        total = f"%s{c}"
    consts = "\n  ".join(f"%k{c} = arith.constant {c + 1}.0e-3 : f32" for c in range(chains))
    body = "\n    ".join(lines)
    t = f"tensor<{size}xf32>"
    return f"""#id = affine_map<(d0) -> (d0)>
func.func @main(%arg0: {t}) -> {t} {{
  %m = arith.constant 0.999 : f32
  %a = arith.constant 1.0e-3 : f32
  {consts}
  %e = tensor.empty() : {t}
  %r = linalg.generic {{indexing_maps = [#id, #id], iterator_types = ["parallel"]}}
      ins(%arg0 : {t}) outs(%e : {t}) {{
  ^bb0(%x: f32, %o: f32):
    {body}
    linalg.yield {total} : f32
  }} -> {t}
  return %r : {t}
}}"""


class Probe:
    """Compile once; :meth:`measure` gives GFLOP/s."""

    def __init__(self, size: int = SIZE):
        from stepwell.compiler import driver as compiler
        from stepwell.bench.runners import _IreeExecutable
        self.size = size
        self.flops = 2.0 * size * CHAINS * DEPTH
        exe = compiler.compile(_kernel_text(size), "cpu")
        self.call = _IreeExecutable(exe, [np.linspace(0, 1, size, dtype=np.float32)])
        self.call()

    def measure(self, rounds: int = 20, seconds: float = 1.0) -> float:
        best = float("inf")
        deadline = time.perf_counter() + seconds
        for i in range(rounds):
            start = time.perf_counter()
            self.call()
            best = min(best, time.perf_counter() - start)
            if i >= 3 and time.perf_counter() > deadline:
                break
        return self.flops / best / 1e9


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
