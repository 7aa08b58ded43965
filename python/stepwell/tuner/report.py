"""What ``stepwell tune`` shows: a progress bar while it searches, a table at the end."""

from __future__ import annotations

import time

__all__ = ["Progress", "summary_table", "config_summary", "print_untunable", "show_database"]


def config_summary(config: dict) -> str:
    """One short line for a configuration: ``mmt4d 4x4 (16x16x1)``, ``IREE default``."""
    kind = config.get("kind")
    if kind == "default":
        return "default"
    if kind == "mmt4d":
        tiles = config.get("inner_tiles")
        return "mmt4d " + "x".join(map(str, config["distribution"])) + (
            f" ({'x'.join(map(str, tiles))})" if tiles else "")
    if kind == "iree":
        tb = config.get("tile_bytes")
        return "IREE data tiling" + (f", tile-bytes={tb}" if tb else "")
    if kind in ("double_tiling", "conv"):
        name = "DoubleTiling" if kind == "double_tiling" else "ConvTileAndDecompose"
        return (f"{name} " + "x".join(str(d) for d in config["distribution"] if d) + " / "
                + "x".join(str(d) for d in config["parallel"] if d))
    return str(config)


class Progress:
    """A rich progress bar with an ETA over the planned trials (no-op when ``quiet``)."""

    def __init__(self, total: int, budget: float, quiet: bool = False, console=None):
        self.quiet = quiet
        self.start = time.monotonic()
        self.budget = budget
        if quiet:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(bar_width=16),
                                 MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), TextColumn("{task.fields[budget]}"),
                                 console=console, transient=False)
        self._id = self._bar.add_task("tuning", total=max(total, 1), budget="")

    def __enter__(self):
        if not self.quiet:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        if not self.quiet:
            self._bar.__exit__(*exc)

    def task(self, description: str) -> None:
        if not self.quiet:
            self._bar.update(self._id, description=description[:32])

    def advance(self, n: int) -> None:
        if not self.quiet and n:
            left = self.budget - (time.monotonic() - self.start)
            self._bar.update(self._id, advance=n, budget=f"{max(left, 0):.0f}s left")

    def log(self, message: str) -> None:
        if not self.quiet:
            self._bar.console.print(message)


def _ms(s) -> str:
    return "-" if s is None else (f"{s * 1e3:.3f}" if s < 0.01 else f"{s * 1e3:.1f}")


def summary_table(results, title: str = "stepwell tune"):
    """A rich Table: op and shapes, baseline, best, speed-up, configuration, trials."""
    from rich.table import Table
    table = Table(title=title)
    for col, just in (("op", "left"), ("baseline ms", "right"), ("best ms", "right"),
                      ("speed-up", "right"), ("configuration", "left"), ("trials", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for r in results:
        count = f" (x{r.task.count})" if r.task.count > 1 else ""
        trials = f"{r.trials}" + (f" +{r.resumed} earlier" if r.resumed else "") + (
            f", {r.rejected} rejected" if r.rejected else "") + (
            f"; {r.status}" if r.status != "tuned" else "")
        table.add_row(r.task.describe + count, _ms(r.baseline_s), _ms(r.best_s), f"{r.speedup:.2f}x",
                      config_summary(r.config), trials)
    return table


def print_untunable(console, untunable) -> None:
    if not untunable:
        return
    console.print(f"[bold]{len(untunable)} dispatch root(s) not tuned:[/bold]")
    seen = set()
    for root in untunable:
        line = f"  {root.describe()}: {root.why}"
        if line not in seen:
            seen.add(line)
            console.print(line, markup=False, highlight=False)


def show_database(console, db) -> None:
    """``stepwell tune --show``: every best entry of the database."""
    from rich.table import Table
    if not db.exists:
        console.print(f"{db.path}: no tuning database yet (stepwell tune INPUT makes one)")
        return
    entries = db.entries()
    counts = db.counts()
    table = Table(title=f"{db.path}: {counts['best']} ops, {counts['trials']} trials")
    for col in ("op", "target", "IREE", "configuration", "speed-up", "stale"):
        table.add_column(col)
    for e in entries:
        sig = e["signature"]
        shapes = " * ".join("x".join(map(str, s)) for s in sig.get("shapes", [])[:2])
        table.add_row(f"{sig.get('kind', '?')} {shapes}", e["target_key"], e["iree"],
                      config_summary(e["config"]), f"{e['speedup']:.2f}x", "stale" if e["stale"] else "")
    console.print(table)
