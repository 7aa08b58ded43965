"""The on-disk compilation cache: compiled ``.vmfb`` bytes kept between processes.

IREE compiles 5-20x slower than XLA (0.3-1.3 s for small models), so ``sw.compile``
and ``sw.jax.jit`` look here before calling ``iree-compile``::

    exe = sw.compile(m, target="cpu")              # cache=None: on unless disabled
    exe = sw.compile(m, target="cpu", cache=False) # always compile
    sw.cache.stats()   # {'hits': 1, 'misses': 0, 'writes': 0, 'corrupt': 0, ...}

Where: ``$STEPWELL_CACHE_DIR``, else the user cache folder (``$XDG_CACHE_HOME/stepwell``
or ``~/.cache/stepwell`` on Linux, ``~/Library/Caches/stepwell`` on macOS,
``%LOCALAPPDATA%\\stepwell\\Cache`` on Windows). ``STEPWELL_NO_CACHE=1`` (or
``stepwell compile --no-cache``) turns it off.

An entry's key is the SHA-256 of the module text (without locations), the target,
IREE's input type and flags, the stepwell version and the IREE compiler version, so
a new stepwell or IREE never reuses an old binary. Each file holds a header (magic,
payload length, payload SHA-256) and the payload; it is written to a temporary file
and renamed into place, so readers see a whole entry or none. An entry that is
truncated or whose hash does not match is ignored (counted as ``corrupt``), deleted
and rebuilt by the caller. When the folder grows past ``$STEPWELL_CACHE_MAX_BYTES``
(default 2 GiB) the least recently used entries are removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading

from stepwell.core.files import atomic_file, cache_dir

__all__ = ["cache_dir", "enabled", "key", "get", "put", "stats", "reset_stats", "clear",
           "compiler_version"]

log = logging.getLogger("stepwell.cache")

MAGIC = b"STEPWELL-VMFB-CACHE 1\n"
SUFFIX = ".vmfb-cache"
_HEADER = len(MAGIC) + 16 + 1 + 64 + 1   # magic, 16 hex digits of length, \n, sha256 hex, \n
_DEFAULT_MAX_BYTES = 2 << 30

_LOCK = threading.Lock()
_STATS = {"hits": 0, "misses": 0, "writes": 0, "corrupt": 0, "errors": 0}
_WARNED: set[str] = set()


def enabled(cache: bool | None = None) -> bool:
    """Whether to use the disk cache: ``cache`` if given, else on unless
    ``STEPWELL_NO_CACHE`` is set to a true value."""
    if cache is not None:
        return bool(cache)
    return os.environ.get("STEPWELL_NO_CACHE", "").strip().lower() in ("", "0", "false", "no", "off")


_COMPILER_VERSION: str | None = None


def compiler_version() -> str:
    """The IREE compiler's version and source revision (part of every key)."""
    global _COMPILER_VERSION
    if _COMPILER_VERSION is None:
        try:
            from iree.compiler import version
            revs = ",".join(f"{k}={v}" for k, v in sorted(getattr(version, "REVISIONS", {}).items()))
            _COMPILER_VERSION = f"{version.VERSION} {revs}".strip()
        except Exception:  # noqa: BLE001  (an odd install still gets a stable key)
            from importlib import metadata
            try:
                _COMPILER_VERSION = metadata.version("iree-base-compiler")
            except metadata.PackageNotFoundError:
                _COMPILER_VERSION = "unknown"
    return _COMPILER_VERSION


def key(text: str, target_spec: str, backend: str, input_type: str, flags) -> str:
    """The hex key of one compilation."""
    from stepwell.core.version import __version__
    parts = ["stepwell " + __version__, "iree " + compiler_version(), target_spec,
             backend, input_type, *flags, text]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _path(k: str, directory: str | None = None) -> str:
    return os.path.join(directory or cache_dir(), k[:2], k + SUFFIX)


def _count(name: str) -> None:
    with _LOCK:
        _STATS[name] += 1


def get(k: str) -> bytes | None:
    """The cached bytes for key ``k``, or None (missing, unreadable or corrupt)."""
    path = _path(k)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        _count("misses")
        return None
    except OSError as e:
        _count("misses")
        _warn_once("read", f"cannot read the stepwell cache entry {path}: {e.strerror}")
        return None
    payload = _unpack(data)
    if payload is None:
        _count("corrupt")
        _count("misses")
        log.warning("ignoring a corrupt stepwell cache entry %s (it will be rebuilt)", path)
        try:
            os.unlink(path)
        except OSError:
            pass
        return None
    _count("hits")
    log.debug("cache hit %s", k)
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    return payload


def _unpack(data: bytes) -> bytes | None:
    if len(data) < _HEADER or not data.startswith(MAGIC):
        return None
    head = data[len(MAGIC):_HEADER]
    try:
        length = int(head[:16], 16)
    except ValueError:
        return None
    digest = head[17:81].decode("ascii", "replace")
    if head[16:17] != b"\n" or head[81:82] != b"\n":
        return None
    payload = data[_HEADER:]
    if len(payload) != length or hashlib.sha256(payload).hexdigest() != digest:
        return None
    return payload


def _pack(payload: bytes) -> bytes:
    return (MAGIC + f"{len(payload):016x}\n".encode() + hashlib.sha256(payload).hexdigest().encode()
            + b"\n" + payload)


def put(k: str, payload: bytes) -> bool:
    """Store ``payload`` under ``k`` atomically; False (and a warning once) if the
    cache folder cannot be written. Never raises."""
    path = _path(k)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        with atomic_file(path, SUFFIX + ".part") as f:
            f.write(_pack(bytes(payload)))
    except OSError as e:
        _count("errors")
        _warn_once("write", f"cannot write the stepwell cache in {folder}: {e.strerror} "
                            "(set STEPWELL_CACHE_DIR, or STEPWELL_NO_CACHE=1)")
        return False
    _count("writes")
    log.debug("cache write %s (%d bytes)", k, len(payload))
    _prune()
    return True


def _warn_once(kind: str, message: str) -> None:
    if kind not in _WARNED:
        _WARNED.add(kind)
        log.warning("%s", message)


def _entries(directory: str):
    for sub in os.scandir(directory):
        if sub.is_dir(follow_symlinks=False):
            for e in os.scandir(sub.path):
                if e.name.endswith(SUFFIX) and not e.name.startswith(".tmp-"):
                    yield e


def _prune() -> None:
    """Remove least recently used entries while the folder is over its size limit."""
    try:
        limit = int(os.environ.get("STEPWELL_CACHE_MAX_BYTES", _DEFAULT_MAX_BYTES))
    except ValueError:
        limit = _DEFAULT_MAX_BYTES
    try:
        entries = [(e.stat().st_mtime, e.stat().st_size, e.path) for e in _entries(cache_dir())]
    except OSError:
        return
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        try:
            os.unlink(path)
            total -= size
        except OSError:
            pass


def clear() -> int:
    """Delete every entry; returns how many were removed."""
    removed = 0
    try:
        for e in list(_entries(cache_dir())):
            try:
                os.unlink(e.path)
                removed += 1
            except OSError:
                pass
    except OSError:
        pass
    return removed


def stats() -> dict[str, int]:
    """Counters of this process: ``hits``, ``misses``, ``writes``, ``corrupt``, ``errors``."""
    with _LOCK:
        return dict(_STATS)


def reset_stats() -> None:
    with _LOCK:
        for name in _STATS:
            _STATS[name] = 0
