"""Target tables: one registry, one small table per target family.

    import stepwell as sw
    t = sw.targets.get("cuda:sm_80")     # resolved Target: backend, flags, driver, caps
    sw.targets.available("vulkan")       # Availability: truthy, or false with a reason
    sw.targets.names()                   # ["cpu", "cpu-generic", ...]

Adding a target means adding one :class:`Target` entry to a family's ``TARGETS``
list (``cpu.py``, ``vulkan.py``, ``cuda.py``, ``rocm.py``), never touching passes.
Names and options are validated here, before IREE sees them.
"""

from __future__ import annotations

import difflib
import threading

from stepwell.core import hooks
from stepwell.core.diagnostics import StepwellError
from stepwell.targets import cpu, cuda, rocm, vulkan
from stepwell.targets._base import Availability, Capabilities, Option, Target

__all__ = ["Target", "Capabilities", "Option", "Availability", "get", "names", "all_targets",
           "available", "detect", "host_arch", "cpu"]

host_arch = cpu.host_arch

REGISTRY: dict[str, Target] = {}
for _family in (cpu, vulkan, cuda, rocm):
    for _t in _family.TARGETS:
        assert _t.name not in REGISTRY, f"target '{_t.name}' is defined twice"
        REGISTRY[_t.name] = _t


def names() -> list[str]:
    return list(REGISTRY)


def all_targets() -> list[Target]:
    """Every table entry, resolved with its default option."""
    return [t.resolve() for t in REGISTRY.values()]


def get(target: "str | Target") -> Target:
    """The resolved :class:`Target` for ``"name"`` or ``"name:option"``."""
    if isinstance(target, Target):
        return target.resolve()
    if not isinstance(target, str):
        raise StepwellError(f"a target is a name such as 'cpu' or 'cuda:sm_80', "
                            f"not {type(target).__name__}")
    name, sep, option = target.strip().partition(":")
    entry = REGISTRY.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, REGISTRY, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise StepwellError(f"unknown target '{target}' "
                            f"(known targets: {', '.join(REGISTRY)}){hint}")
    return entry.resolve(option if sep else None)


_AVAILABLE: dict[str, Availability] = {}
_LOCK = threading.Lock()


def available(target: "str | Target") -> Availability:
    """Whether ``target``'s code can run on this machine: the runtime driver exists and
    a device was created (cached per driver). False carries the reason and the fix."""
    t = get(target)
    here = host_arch()
    if t.arch is not None and t.arch != here:
        return Availability(False, f"target '{t.spec}' makes {t.arch} code and this machine is "
                                   f"{here}: compile only (run the .vmfb on {t.arch} hardware)")
    with _LOCK:
        if t.driver not in _AVAILABLE:  # the runtime (a higher layer) answers through its hook
            _AVAILABLE[t.driver] = hooks.get("probe_driver")(t.driver)
        return _AVAILABLE[t.driver]


_ELF_ARCH = {"x86_64": "x86_64", "arm_64": "aarch64", "riscv_64": "riscv64"}


def detect(vmfb: bytes) -> Target | None:
    """The target a compiled module was most likely built for, from the executable
    formats it embeds (``embedded-elf-arm_64``, ``cuda-nvptx-fb``, ...); None if it
    holds no device code or nothing in the table matches."""
    import re
    formats = set(re.findall(rb"embedded-elf-\w+|[a-z]+-[a-z]+-fb", bytes(vmfb)))
    for fmt in sorted(f.decode() for f in formats):
        if fmt.startswith("embedded-elf-"):
            arch = _ELF_ARCH.get(fmt[len("embedded-elf-"):])
            cpus = [t for t in REGISTRY.values() if t.backend == "llvm-cpu" and t.arch == arch]
            if cpus:
                # The host target when the code is for this machine, else the cross one.
                return get(next((t for t in cpus if t.name == "cpu"), cpus[0]))
        else:
            family = fmt.split("-", 1)[0]
            gpu = next((t for t in REGISTRY.values() if t.backend.split("-")[0] == family), None)
            if gpu is not None:
                return get(gpu)
    return None
