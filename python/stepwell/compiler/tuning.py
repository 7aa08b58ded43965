"""Applying the tuning database and the target's data tiling to a linalg module, at compile.

``sw.compile``, ``sw.jax.jit``, ``sw.jax.export`` and the CLIs call :func:`apply` on the
linalg-level module right before IREE. ``tuning`` is ``"auto"`` (the database at
``STEPWELL_TUNING_DB`` or in the cache folder, when it exists), ``"off"`` (none), a path,
or a :class:`~stepwell.compiler.tuning_db.TuningDB`. For each dispatch root
(``tuning_keys.roots``) found in the database for this target and IREE, its
configuration goes onto the op:

=================  ===================================================================
``mmt4d``          ``stepwell.data_tile = {distribution, inner_tiles}``: the target's
                   data-tiling pass (``linalg-data-tile``) uses them for this op
``iree``           ``stepwell.data_tile = false``: IREE's own data tiling, with the
                   global flag ``--iree-llvmcpu-matmul-tile-bytes`` when one was chosen
``double_tiling``  a ``compilation_info`` with IREE's ``DoubleTilingExpert`` (no data tiling)
``conv``           a ``compilation_info`` with ``ConvTileAndDecomposeExpert``
``default``        nothing: the untuned compile was the fastest
=================  ===================================================================

Then the target's data-tiling pass runs (``Target.data_tiling``; its defaults for the
ops the database does not know). A database that cannot be read is reported once and
the compile goes on untuned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from stepwell.compiler import tuning_keys
from stepwell.compiler.tuning_db import TuningDB, TuningDBError, default_path
from stepwell.core.diagnostics import StepwellError
from stepwell.core.ir import context, ir
from stepwell.core.pipeline import Pipeline
from stepwell.passes.linalg_data_tile import ATTR
from stepwell.targets import iree_config

log = logging.getLogger("stepwell.tuning")

__all__ = ["apply", "Applied", "open_db", "config_attrs", "TUNING_MODES"]

TUNING_MODES = ("auto", "off")
_WARNED: set[str] = set()


@dataclass
class Applied:
    """What :func:`apply` put into a module."""
    configs: list = field(default_factory=list)  # (op key, config) of tuned ops
    flags: tuple = ()                            # global iree-compile flags chosen
    target_key: str = ""
    iree: str = ""
    db: TuningDB | None = None

    def cache_text(self) -> list[str]:
        """For the compile cache key."""
        import json
        return [f"tuning {k} {json.dumps(c, sort_keys=True)}" for k, c in self.configs]


def warn_once(key: str, message: str, *args) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message, *args)


def open_db(tuning) -> TuningDB | None:
    """The database ``tuning`` names, or None ("off", or "auto" with no database yet).
    A database that cannot be used is reported once, and None returned."""
    if tuning is None or tuning == "off":
        return None
    if isinstance(tuning, TuningDB):
        return tuning
    if not isinstance(tuning, str) and not hasattr(tuning, "__fspath__"):
        raise StepwellError(f"tuning must be 'auto', 'off' or a database path, not {type(tuning).__name__}")
    import os
    path = default_path() if tuning == "auto" else os.fspath(tuning)
    if tuning != "auto" and not os.path.exists(path):
        raise StepwellError(f"no tuning database at '{path}' (tuning='auto', 'off' or an existing "
                            "file made by 'stepwell tune')")
    try:
        db = TuningDB(path, create=False)
    except TuningDBError as e:
        warn_once(f"db {path}", "error: %s; compiling untuned", e.diagnostics[0].message)
        return None
    return db if db.exists else None


def config_attrs(root, config: dict) -> tuple[dict[str, str], tuple[str, ...]]:
    """(attribute name -> text, global flags) that put ``config`` on ``root``'s op."""
    kind = config.get("kind")
    if kind == "default":
        return {}, ()
    if kind == "mmt4d":
        parts = [f"distribution = array<i64: {', '.join(map(str, config['distribution']))}>"]
        if config.get("inner_tiles"):
            parts.append(f"inner_tiles = array<i64: {', '.join(map(str, config['inner_tiles']))}>")
        return {ATTR: "{" + ", ".join(parts) + "}"}, ()
    if kind == "iree":
        flags = ((f"--iree-llvmcpu-matmul-tile-bytes={int(config['tile_bytes'])}",)
                 if config.get("tile_bytes") else ())
        return {ATTR: "false"}, flags
    if kind in ("double_tiling", "conv"):
        info = iree_config.compilation_info(kind, config["distribution"], config["parallel"],
                                            config["reduction"])
        attrs = {"compilation_info": info}
        if kind == "double_tiling":
            attrs[ATTR] = "false"
        return attrs, ()
    raise StepwellError(f"unknown tuning configuration kind '{kind}'")


def annotate(root, config: dict) -> tuple[str, ...]:
    """Put ``config`` on ``root``'s op; returns its global flags."""
    attrs, flags = config_attrs(root, config)
    with context():
        for name, text in attrs.items():
            root.op.attributes[name] = ir.Attribute.parse(text)
    return flags


def data_tiling_pass(target) -> str:
    """The target's data-tiling pipeline text with its target option, or ""."""
    text = getattr(target, "data_tiling", "")
    if not text:
        return ""
    name, brace, rest = text.partition("{")
    opts = rest.rstrip("}").strip() if brace else ""
    if "target=" not in opts:
        opts = (opts + " " if opts else "") + f"target={target.spec}"
    return f"{name}{{{opts}}}"


def apply(module, target, tuning="auto"):
    """(module, :class:`Applied`): ``module`` with the database's configurations and the
    target's data tiling; the same module object when there is nothing to do.
    ``tuning`` may also be a dict ``{op key: configuration}`` (what ``stepwell tune``
    compiles its candidates with)."""
    applied = Applied()
    given = tuning if isinstance(tuning, dict) else None
    db = None if given is not None or target.backend != "llvm-cpu" else open_db(tuning)
    pass_text = data_tiling_pass(target)
    tuned = bool(given) or (db is not None and db.has_target(target.spec))
    if not tuned and not pass_text:
        return module, applied
    module = module.clone()
    if tuned:
        if db is not None:
            applied.db, applied.target_key = db, tuning_keys.target_key(target)
            applied.iree = tuning_keys.iree_version()
        _annotate_all(module, applied, given)
    if not pass_text and any(c.get("kind") == "mmt4d" for _, c in applied.configs):
        # a target without default data tiling still takes tuned mmt4d configurations
        pass_text = f"linalg-data-tile{{target={target.spec} min-flops={1 << 62}}}"
    if pass_text:
        Pipeline(pass_text).run(module)
    _strip(module)
    return module, applied


def _annotate_all(module, applied: Applied, given: dict | None) -> None:
    flags: dict[str, tuple[int, str]] = {}
    for root in tuning_keys.roots(module):
        if not root.tunable:
            continue
        if given is not None:
            config = given.get(root.key)
        else:
            row = applied.db.best(root.key, applied.target_key, applied.iree)
            config = row["config"] if row is not None and not row["stale"] else None
        if config is None:
            continue
        try:
            got = annotate(root, config)
        except (StepwellError, ValueError, KeyError, TypeError) as e:
            if given is not None:
                raise
            warn_once(f"bad {root.key}", "ignoring the tuning database's entry for %s: %s",
                      root.describe(), e)
            continue
        applied.configs.append((root.key, config))
        for flag in got:  # one value per flag: the largest op's
            name = flag.split("=", 1)[0]
            if name not in flags or flags[name][0] < root.flops:
                flags[name] = (root.flops, flag)
    applied.flags = tuple(f for _, f in flags.values())


def _strip(module) -> None:
    """Drop the ``stepwell.data_tile`` hints (IREE does not need them)."""
    from stepwell.core.verifier import walk
    with context():
        for op in walk(module.operation):
            if ATTR in op.attributes:
                del op.attributes[ATTR]


def mark_stale(applied: Applied) -> None:
    """IREE rejected a compile with these configurations: mark them stale (once)."""
    if applied.db is None:
        return
    for key, _ in applied.configs:
        try:
            applied.db.mark_stale(key, applied.target_key, applied.iree)
        except Exception as e:  # noqa: BLE001  (a read-only database: the warning says enough)
            warn_once(f"stale {key}", "could not mark a tuning entry stale: %s", e)
