"""What IREE makes of a CPU target, read from IREE itself: the CPU name and features it
resolves (``host`` becomes ``znver4``, ...), its native vector size, and the inner tiles
its data tiling gives each contraction's element types (the tiles its ``mmt4d``
microkernels take: ``16x16x1`` for f32 on AVX-512, ``8x8x1`` on AVX2).

    info = iree_cpu.info("cpu")
    info.cpu, info.vector_bytes            # "znver4", 64
    iree_cpu.inner_tiles("cpu", "f32", "f32", "f32")   # (16, 16, 1)

One probe per target: ``iree-compile --compile-to=executable-configurations`` of a module
holding one data-tiled matmul per element-type combination (no code generation, about
a second), whose dispatch names (``..._mmt4d_4x6x128x16x16x1_f32``) carry the tiles. The
answer is kept in memory and in stepwell's cache folder (``iree-cpu-<key>.json``), keyed
by the IREE version, the target's flags and this machine's CPU (``/proc/cpuinfo``), so a
new IREE or another machine sharing the folder probes again. A probe that fails leaves
no tiles (stepwell's data tiling then leaves the contractions to IREE) and a warning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field

from stepwell.core.files import atomic_file, cache_dir

log = logging.getLogger("stepwell.targets")

__all__ = ["CpuInfo", "info", "inner_tiles", "COMBOS"]

# (lhs, rhs, result) element types probed: what stepwell's contractions use.
COMBOS = (("f32", "f32", "f32"), ("f16", "f16", "f32"), ("bf16", "bf16", "f32"),
          ("i8", "i8", "i32"))
_ZERO = {"f32": "0.0", "i32": "0"}


@dataclass(frozen=True)
class CpuInfo:
    """IREE's view of one CPU target."""
    cpu: str                      # the resolved CPU ("znver4", "x86-64", "" when generic)
    features: str                 # LLVM feature string ("+avx,+avx2,...")
    vector_bytes: int             # native vector size
    tiles: dict = field(default_factory=dict)  # "lhs,rhs,out" -> [m0, n0, k0]

    def key(self) -> str:
        """A short stable name of the CPU and its features (part of tuning keys)."""
        digest = hashlib.sha256(self.features.encode()).hexdigest()[:12]
        return f"{self.cpu or 'generic'}+{digest}"


_LOCK = threading.Lock()
_MEMORY: dict[str, CpuInfo] = {}


def _probe_module() -> str:
    funcs = []
    for i, (a, b, c) in enumerate(COMBOS):
        funcs.append(f"""
func.func @f{i}(%a: tensor<64x128x{a}>, %b: tensor<128x96x{b}>) -> tensor<64x96x{c}> {{
  %z = arith.constant {_ZERO[c]} : {c}
  %e = tensor.empty() : tensor<64x96x{c}>
  %f = linalg.fill ins(%z : {c}) outs(%e : tensor<64x96x{c}>) -> tensor<64x96x{c}>
  %r = linalg.matmul ins(%a, %b : tensor<64x128x{a}>, tensor<128x96x{b}>) outs(%f : tensor<64x96x{c}>) -> tensor<64x96x{c}>
  return %r : tensor<64x96x{c}>
}}""")
    return "\n".join(funcs)


_MMT4D = re.compile(r"@\w*?_mmt4d_(\d+(?:x\d+)+)_(\w+?)\b")


def parse(text: str) -> CpuInfo:
    """A :class:`CpuInfo` from IREE's configured executables (the probe's output)."""
    cpu = re.search(r'\bcpu = "([^"]*)"', text)
    features = re.search(r'\bcpu_features = "([^"]*)"', text)
    vector = re.search(r"\bnative_vector_size = (\d+)", text)
    tiles = {}
    for m in _MMT4D.finditer(text):
        dims = [int(d) for d in m[1].split("x")]
        types = m[2].split("x") if "x" in m[2] else [m[2]] * 3
        if len(dims) >= 6 and len(types) == 3:
            tiles.setdefault(",".join(types), dims[-3:])
    return CpuInfo(cpu[1] if cpu else "", features[1] if features else "",
                   int(vector[1]) if vector else 16, tiles)


@functools.lru_cache(maxsize=None)
def _host_signature() -> str:
    """This machine's CPU as the OS describes it (a cached probe of ``host`` is only
    valid on the machine that made it)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features", "CPU part"))]
        return "".join(sorted(set(lines)))
    except OSError:
        import platform
        return platform.processor() + platform.machine()


@functools.lru_cache(maxsize=None)
def _iree_version() -> str:
    try:
        from iree.compiler import version
        return f"{version.VERSION} {sorted(getattr(version, 'REVISIONS', {}).items())}"
    except Exception:  # noqa: BLE001  (an odd install: probe again each process)
        return f"unknown-{os.getpid()}"


def _key(flags) -> str:
    text = "\0".join([_iree_version(), _host_signature(), *flags])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def info(target) -> CpuInfo | None:
    """IREE's :class:`CpuInfo` for ``target`` (a name or Target); None for non-CPU targets."""
    from stepwell import targets
    t = targets.get(target)
    if t.backend != "llvm-cpu":
        return None
    flags = tuple(t.flags)
    key = _key(flags)
    with _LOCK:
        if key in _MEMORY:
            return _MEMORY[key]
        found = _read(key)
        if found is None:
            found = _probe(t)
            if found.tiles:
                _write(key, found)
        _MEMORY[key] = found
        return found


def inner_tiles(target, lhs: str, rhs: str, out: str) -> tuple[int, int, int] | None:
    """IREE's data-tiling inner tile ``(m0, n0, k0)`` for a contraction of these element
    types on ``target``, or None when IREE does not data-tile it there."""
    found = info(target)
    tile = found.tiles.get(f"{lhs},{rhs},{out}") if found else None
    return tuple(tile) if tile else None


def _probe(t) -> CpuInfo:
    from stepwell.core.ir import iree_tools
    args = [*t.flags, "--compile-to=executable-configurations"]
    try:
        out = iree_tools.compile_str(_probe_module(), target_backends=[t.backend], extra_args=args)
    except iree_tools.CompilerToolError as e:
        log.warning("could not read IREE's data tiling for target '%s' (%s): stepwell's data "
                    "tiling is off for it", t.spec, str(e).strip().splitlines()[0][:200])
        return CpuInfo("", "", 16, {})
    return parse(out.decode("utf-8", "replace"))


def _path(key: str) -> str:
    return os.path.join(cache_dir(), f"iree-cpu-{key}.json")


def _read(key: str) -> CpuInfo | None:
    try:
        with open(_path(key)) as f:
            data = json.load(f)
        return CpuInfo(str(data["cpu"]), str(data["features"]), int(data["vector_bytes"]),
                       {str(k): [int(x) for x in v] for k, v in data["tiles"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write(key: str, found: CpuInfo) -> None:
    try:
        os.makedirs(cache_dir(), exist_ok=True)
        with atomic_file(_path(key)) as f:
            f.write(json.dumps({"cpu": found.cpu, "features": found.features,
                                "vector_bytes": found.vector_bytes, "tiles": found.tiles}).encode())
    except OSError:
        pass  # the probe is redone next process
