"""The tuning database: what ``stepwell tune`` measured, kept in SQLite (the standard
library's ``sqlite3``) and read by every compile.

Where: ``$STEPWELL_TUNING_DB``, else ``tuning.sqlite`` in stepwell's cache folder
(``stepwell.core.files.cache_dir``). Two tables:

``trials``  every candidate measured: the op's key, the target's key, the IREE version,
            the configuration (JSON numbers), its status (``faster``, ``slower``,
            ``mismatch``, ``rejected``, ``error``), baseline and candidate seconds, the
            speed-up and the spread. One row per (op, target, IREE, configuration):
            a rerun finds what was measured and skips it.
``best``    one row per (op, target, IREE): the configuration to apply (``{"kind":
            "default"}`` when IREE's own choice won), its speed-up, the op's readable
            signature, and ``stale`` (set when IREE rejected it in a compile).

Configurations are numbers (``{"kind": "mmt4d", "distribution": [4, 4], "inner_tiles":
[16, 16, 1]}``); their attribute text is made for the running IREE
(``stepwell.targets.iree_config``). Writes are single short transactions; a best row
is replaced only by a faster one (or over a stale one), so two processes tuning into
one file lose nothing. A file that is not a stepwell tuning database raises
:class:`TuningDBError`, whose message names it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from stepwell.core.diagnostics import StepwellError
from stepwell.core.files import cache_dir

__all__ = ["TuningDB", "TuningDBError", "default_path", "FORMAT", "SCHEMA_VERSION"]

FORMAT = "stepwell-tuning-db"
SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    op_key TEXT NOT NULL, target_key TEXT NOT NULL, iree TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL, base_s REAL, cand_s REAL, speedup REAL, spread REAL,
    detail TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
    PRIMARY KEY (op_key, target_key, iree, config));
CREATE TABLE IF NOT EXISTS best (
    op_key TEXT NOT NULL, target_key TEXT NOT NULL, iree TEXT NOT NULL,
    signature TEXT NOT NULL, config TEXT NOT NULL, speedup REAL NOT NULL,
    base_s REAL, best_s REAL, stale INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL,
    PRIMARY KEY (op_key, target_key, iree));
"""
_BEST_COLUMNS = ("op_key", "target_key", "iree", "signature", "config", "speedup", "base_s",
                 "best_s", "stale", "updated")
_TRIAL_COLUMNS = ("op_key", "target_key", "iree", "config", "status", "base_s", "cand_s",
                  "speedup", "spread", "detail", "created")


class TuningDBError(StepwellError):
    """The tuning database cannot be used (not a database, another program's, newer)."""


def default_path() -> str:
    """``$STEPWELL_TUNING_DB``, else ``<cache folder>/tuning.sqlite``."""
    env = os.environ.get("STEPWELL_TUNING_DB")
    return os.path.abspath(os.path.expanduser(env)) if env else os.path.join(cache_dir(), "tuning.sqlite")


def config_text(config: dict) -> str:
    """The canonical JSON of a configuration (the key of a trial)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


class TuningDB:
    """One tuning database file. ``create=False`` and a missing file: every lookup is empty."""

    def __init__(self, path: str | None = None, *, create: bool = True):
        self.path = os.path.abspath(path or default_path())
        self._conn = None
        if not create and not os.path.exists(self.path):
            return
        try:
            if create:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
        except OSError as e:
            raise TuningDBError(f"{self.path}: cannot create the tuning database's folder "
                                f"({e.strerror}); set STEPWELL_TUNING_DB to another file") from None
        try:
            self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._check_or_create()
        except sqlite3.DatabaseError as e:
            self.close()
            raise TuningDBError(f"{self.path}: not a usable stepwell tuning database ({e}); "
                                "move it away or set STEPWELL_TUNING_DB to another file") from None

    # -- setup ------------------------------------------------------------------------
    def _check_or_create(self) -> None:
        c = self._conn
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            with self._write():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    c.execute(statement)
                c.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?), ('schema', ?)",
                          (FORMAT, SCHEMA_VERSION))
            return
        meta = dict(c.execute("SELECT name, value FROM meta")) if "meta" in tables else {}
        if meta.get("format") != FORMAT:
            raise TuningDBError(f"{self.path}: not a stepwell tuning database (tables: "
                                f"{', '.join(sorted(tables))}); move it away or set "
                                "STEPWELL_TUNING_DB to another file")
        if meta.get("schema") != SCHEMA_VERSION:
            raise TuningDBError(f"{self.path}: a stepwell tuning database of schema "
                                f"{meta.get('schema')}, this stepwell reads schema {SCHEMA_VERSION}")

    class _Tx:
        def __init__(self, conn):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, kind, value, tb):
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
            return False

    def _write(self):
        return self._Tx(self._conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def exists(self) -> bool:
        return self._conn is not None

    # -- reading ----------------------------------------------------------------------
    def has_target(self, target_spec: str) -> bool:
        """Whether any best row belongs to a target key of this stepwell target."""
        if self._conn is None:
            return False
        row = self._conn.execute("SELECT 1 FROM best WHERE target_key LIKE ? LIMIT 1",
                                 (target_spec + "|%",)).fetchone()
        return row is not None

    def best(self, op_key: str, target_key: str, iree: str) -> dict | None:
        """The best row (``config`` decoded) for one op, or None."""
        if self._conn is None:
            return None
        row = self._conn.execute(f"SELECT {', '.join(_BEST_COLUMNS)} FROM best WHERE op_key = ? "
                                 "AND target_key = ? AND iree = ?", (op_key, target_key, iree)).fetchone()
        return _best_row(row) if row else None

    def trials(self, op_key: str, target_key: str, iree: str) -> dict[str, dict]:
        """Measured trials of one op: canonical config text -> row."""
        if self._conn is None:
            return {}
        rows = self._conn.execute(f"SELECT {', '.join(_TRIAL_COLUMNS)} FROM trials WHERE op_key = ? "
                                  "AND target_key = ? AND iree = ?", (op_key, target_key, iree))
        return {r[3]: dict(zip(_TRIAL_COLUMNS, r)) for r in rows}

    def entries(self) -> list[dict]:
        """Every best row, most recent first."""
        if self._conn is None:
            return []
        rows = self._conn.execute(f"SELECT {', '.join(_BEST_COLUMNS)} FROM best ORDER BY updated DESC")
        return [_best_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        if self._conn is None:
            return {"best": 0, "trials": 0}
        return {t: self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("best", "trials")}

    # -- writing ----------------------------------------------------------------------
    def record_trial(self, op_key, target_key, iree, config: dict, status: str, *, base_s=None,
                     cand_s=None, speedup=None, spread=None, detail: str = "") -> None:
        """Store one measured trial (a rerun of the same configuration replaces it)."""
        with self._write() as c:
            c.execute(f"INSERT OR REPLACE INTO trials ({', '.join(_TRIAL_COLUMNS)}) "
                      f"VALUES ({', '.join('?' * len(_TRIAL_COLUMNS))})",
                      (op_key, target_key, iree, config_text(config), status, base_s, cand_s, speedup,
                       spread, detail[:2000], time.time()))

    def set_best(self, op_key, target_key, iree, signature: dict, config: dict, speedup: float,
                 *, base_s=None, best_s=None) -> bool:
        """Keep ``config`` for the op unless a faster, fresh one is there; True if stored."""
        with self._write() as c:
            cur = c.execute(
                f"INSERT INTO best ({', '.join(_BEST_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?) "
                "ON CONFLICT (op_key, target_key, iree) DO UPDATE SET signature = excluded.signature, "
                "config = excluded.config, speedup = excluded.speedup, base_s = excluded.base_s, "
                "best_s = excluded.best_s, stale = 0, updated = excluded.updated "
                "WHERE best.stale = 1 OR excluded.speedup > best.speedup "
                "OR (best.config = excluded.config)",
                (op_key, target_key, iree, json.dumps(signature, sort_keys=True), config_text(config),
                 float(speedup), base_s, best_s, time.time()))
            return cur.rowcount > 0

    def mark_stale(self, op_key: str, target_key: str, iree: str) -> None:
        with self._write() as c:
            c.execute("UPDATE best SET stale = 1 WHERE op_key = ? AND target_key = ? AND iree = ?",
                      (op_key, target_key, iree))

    # -- sharing ----------------------------------------------------------------------
    def export_json(self) -> dict:
        """The best rows as a JSON-able document (``--export``)."""
        return {"format": FORMAT, "schema": SCHEMA_VERSION,
                "entries": [{k: e[k] for k in _BEST_COLUMNS if k != "stale"} | {"stale": bool(e["stale"])}
                            for e in self.entries()]}

    def import_json(self, document: dict, source: str = "the file") -> tuple[int, int]:
        """Merge an exported document; (rows taken, rows kept because ours were faster)."""
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise TuningDBError(f"{source}: not a stepwell tuning export (no \"format\": \"{FORMAT}\")")
        entries = document.get("entries")
        if not isinstance(entries, list):
            raise TuningDBError(f"{source}: \"entries\" must be a list")
        taken = kept = 0
        for i, e in enumerate(entries):
            try:
                config = e["config"] if isinstance(e["config"], dict) else json.loads(e["config"])
                signature = e["signature"] if isinstance(e["signature"], dict) else json.loads(e["signature"])
                stored = (not e.get("stale")) and self.set_best(
                    str(e["op_key"]), str(e["target_key"]), str(e["iree"]), signature, config,
                    float(e["speedup"]), base_s=e.get("base_s"), best_s=e.get("best_s"))
            except (KeyError, TypeError, ValueError) as err:
                raise TuningDBError(f"{source}: entry {i} is malformed ({type(err).__name__}: {err})") from None
            taken, kept = taken + bool(stored), kept + (not stored)
        return taken, kept


def _best_row(row) -> dict:
    out = dict(zip(_BEST_COLUMNS, row))
    out["config"] = json.loads(out["config"])
    out["signature"] = json.loads(out["signature"])
    return out
