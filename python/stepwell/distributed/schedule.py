"""Who waits for whom: read IREE's stream IR of a multi-device module (docs/distributed.md).

``compile_to(m, "stream")`` shows how IREE schedules a partitioned module: each
``stream.cmd.execute on(#hal.device.affinity<@dK>) await(%t)`` is a batch of work
(dispatches, copies) submitted to device ``K`` once the timepoints it awaits are
reached; ``stream.timepoint.join`` merges timepoints, allocations and deallocations
carry them along, and ``stream.timepoint.await`` makes the host wait (everything
submitted after it waits too). :func:`regions` lists the execute regions with the
dispatches in them and the other devices whose work each one (transitively) waits
for: a region that computes before a collective should wait for none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_EXECUTE = re.compile(r"^\s*(%[\w#]+) = stream\.cmd\.execute (?:once )?on\(#hal\.device\.affinity<@(\w+)>\)"
                      r"(?: await\(([^)]*)\))?")
_JOIN = re.compile(r"^\s*(%[\w#]+) = stream\.timepoint\.join max\(([^)]*)\)")
_ALLOCA = re.compile(r"^\s*%[\w#]+, (%[\w#]+) = stream\.resource\.alloca .*?(?:await\(([^)]*)\))?\s*=>")
_DEALLOCA = re.compile(r"^\s*(%[\w#]+) = stream\.resource\.dealloca .*?await\(([^)]*)\)")
_HOST_AWAIT = re.compile(r"^\s*%[\w#]+(?:, %[\w#]+)* = stream\.timepoint\.await (?:sync )?([^=]*?)=>")
_DISPATCH = re.compile(r"stream\.cmd\.dispatch @[\w$.-]+::@([\w$.-]+)")
_TRANSFER = re.compile(r"stream\.cmd\.(?:copy|flush|collective)")
_CONTRACTION = re.compile(r"matmul|mmt4d|contract|attention|batch_mmt4d")


@dataclass
class Region:
    name: str
    device: str
    dispatches: list = field(default_factory=list)
    transfers: int = 0
    waits_for: set = field(default_factory=set)   # other devices whose work it waits for

    @property
    def computes(self) -> bool:
        """Whether it runs a contraction (matmul, attention...)."""
        return any(_CONTRACTION.search(d) for d in self.dispatches)


def _names(text: str | None) -> list[str]:
    return re.findall(r"%[\w#]+", text or "")


def regions(stream_ir: str, function: str = "main") -> list[Region]:
    """The execute regions of ``function`` in program order, with what each waits for."""
    start = stream_ir.find(f"util.func public @{function}(")
    lines = stream_ir[start:].splitlines() if start >= 0 else []
    deps: dict[str, set] = {}      # timepoint -> regions it stands for
    host: set = set()              # regions the host has waited for so far
    out: list[Region] = []
    by_name: dict[str, Region] = {}
    current = None
    depth = 0
    for line in lines[1:]:
        if current is not None:
            current.dispatches += _DISPATCH.findall(line)
            current.transfers += len(_TRANSFER.findall(line))
            depth += line.count("{") - line.count("}")
            if depth <= 0:
                current = None
            continue
        if re.match(r"^\s*}\s*$", line) or line.strip().startswith("util.func "):
            break  # the end of the function
        if m := _EXECUTE.match(line):
            name, device = m[1], m[2]
            waits = set(host)
            for t in _names(m[3]):
                waits |= deps.get(t, set())
            region = Region(name, device)
            region.after = waits  # the regions it waits for
            by_name[name] = region
            out.append(region)
            deps[name] = waits | {name}
            current, depth = region, line.count("{") - line.count("}")
            if depth <= 0:
                current = None
        elif m := _JOIN.match(line):
            deps[m[1]] = set().union(*(deps.get(t, set()) for t in _names(m[2])))
        elif m := _ALLOCA.match(line):
            deps[m[1]] = set().union(set(), *(deps.get(t, set()) for t in _names(m[2])))
        elif m := _DEALLOCA.match(line):
            deps[m[1]] = set().union(*(deps.get(t, set()) for t in _names(m[2])))
        elif m := _HOST_AWAIT.match(line):
            for t in _names(m[1]):
                host |= deps.get(t, set())
    for region in out:
        region.waits_for = {by_name[r].device for r in region.after
                            if by_name[r].device != region.device}
    return out


def compute_waits(stream_ir: str, function: str = "main") -> list[Region]:
    """The regions that run a contraction while waiting for another device's work:
    empty when every device computes on its own until a collective."""
    return [r for r in regions(stream_ir, function) if r.computes and r.waits_for]
