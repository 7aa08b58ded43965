"""Atomic file writes (a reader sees the old file or the whole new one, never a part), and
stepwell's cache folder."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def atomic_file(path, suffix: str = ".tmp"):
    """A binary file object for ``path``: written to a temporary file in the same folder,
    renamed over ``path`` on success (keeping a replaced file's permissions, else the
    usual umask mode), removed on failure."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cache_dir() -> str:
    """stepwell's cache folder (not created here): ``$STEPWELL_CACHE_DIR``, else the user
    cache folder (``$XDG_CACHE_HOME/stepwell`` or ``~/.cache/stepwell`` on Linux,
    ``~/Library/Caches/stepwell`` on macOS, ``%LOCALAPPDATA%\\stepwell\\Cache`` on Windows)."""
    env = os.environ.get("STEPWELL_CACHE_DIR")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/stepwell")
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
        return os.path.join(base, "stepwell", "Cache")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "stepwell")
