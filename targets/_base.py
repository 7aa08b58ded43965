"""What a target is: one table entry, resolved with an optional ``:option``.

A :class:`Target` names the IREE backend and its flags, the runtime driver and the
capabilities passes may query. A target family with variants (GPU architectures)
lists its :class:`Option` names; ``"cuda:sm_80"`` resolves the ``cuda`` entry with
option ``sm_80``, which adds ``--iree-cuda-target=sm_80`` to the flags. Options are
validated here, before IREE sees them: unknown names crash ``iree-compile``.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, replace

from stepwell.core.diagnostics import StepwellError

log = logging.getLogger("stepwell.targets")
_LOGGED: set[str] = set()


@dataclass(frozen=True)
class Capabilities:
    """What a target's code can do, for passes and tests to query."""
    f16: bool = True           # f16 tensors compile and run correctly
    bf16: bool = True          # bf16 tensors compile and run correctly
    f64: bool = True           # native f64 arithmetic (SPIR-V Float64)
    i64: bool = True           # native i64 arithmetic (SPIR-V Int64)
    i8_dot: bool = False       # hardware int8 dot products (VNNI, dp4a, dot4...)
    fused_attention: bool = True  # IREE codegen takes iree_linalg_ext.attention whole
    subgroup_size: int | None = None  # GPU subgroup (warp/wave) width; None on CPUs
    # element types that compile and run correctly but without hardware support: their
    # conversions are done in integer code (bf16 on CPUs without avx512_bf16/bf16)
    emulated: tuple[str, ...] = ()


@dataclass(frozen=True)
class Option:
    """One allowed ``:option`` of a target family (a GPU architecture)."""
    name: str
    capabilities: Capabilities | None = None  # None: the family's
    compile_as: str | None = None  # the name IREE is given, where it differs
    why: str = ""                  # logged once when ``compile_as`` is used


@dataclass(frozen=True)
class Target:
    """A compilation target. Table entries leave ``option`` unset; :meth:`resolve`
    (``stepwell.targets.get``) fills it and appends the option's flag."""
    name: str
    backend: str                   # IREE HAL target backend (--iree-hal-target-backends)
    driver: str                    # IREE runtime HAL driver
    flags: tuple[str, ...] = ()
    capabilities: Capabilities = Capabilities()
    description: str = ""
    arch: str | None = None        # CPU code's machine (platform.machine() spelling)
    option_flag: str | None = None  # e.g. "--iree-cuda-target={}"
    options: tuple[Option, ...] = ()
    default_option: str | None = None
    rejected: tuple[tuple[str, str], ...] = ()  # (option, why) known to crash IREE
    option: str | None = None      # the resolved option
    # passes of stepwell's lowering this target runs with options, e.g.
    # "prim-to-linalg{widen=true}": they replace that pass in the named pipelines
    pass_options: tuple[str, ...] = ()
    # stepwell's data tiling for this target: a pass (with options) that sw.compile runs on
    # the linalg module right before IREE, after the tuning database configured its ops
    # ("linalg-data-tile" on the x86 cpu targets; docs/tuning.md); "" for none
    data_tiling: str = ""
    # the vector stage's tiling facts (targets/tiling.py): SIMD register (CPU) or
    # per-thread vector load (GPU) width in bits (None: measured on this machine),
    # rows of a matmul tile, and what the width stands for
    vector_bits: int | None = 128
    matmul_m: int = 8
    vector_note: str = ""

    @property
    def spec(self) -> str:
        """The full name, ``cuda:sm_80`` style (the bare name if there are no options)."""
        return f"{self.name}:{self.option}" if self.option else self.name

    def option_names(self) -> list[str]:
        return [o.name for o in self.options]

    def resolve(self, option: str | None = None) -> "Target":
        """This target with ``option`` (or the default) validated and applied."""
        if self.option is not None:
            if option in (None, self.option):
                return self
            raise StepwellError(f"target '{self.spec}' already has an option")
        if not self.options:
            if option is not None:
                raise StepwellError(f"target '{self.name}' takes no options "
                                    f"(got '{self.name}:{option}')")
            return self
        name = self.default_option if option is None else option
        why = dict(self.rejected).get(name)
        if why is not None:
            raise StepwellError(f"target '{self.name}:{name}' is not supported: {why}")
        chosen = next((o for o in self.options if o.name == name), None)
        if chosen is None:
            known = ", ".join(self.option_names())
            if not name:
                raise StepwellError(f"target '{self.name}:' needs an option after ':' "
                                    f"(options: {known})")
            close = difflib.get_close_matches(name, self.option_names(), n=1, cutoff=0.6)
            hint = f"; did you mean '{self.name}:{close[0]}'?" if close else ""
            raise StepwellError(f"target '{self.name}' has no option '{name}' "
                                f"(options: {known}){hint}")
        value = chosen.compile_as or chosen.name
        if chosen.compile_as and chosen.why and chosen.name not in _LOGGED:
            _LOGGED.add(chosen.name)
            log.warning("%s:%s is compiled as %s: %s", self.name, chosen.name, value, chosen.why)
        flags = self.flags + ((self.option_flag.format(value),) if self.option_flag else ())
        return replace(self, option=chosen.name, flags=flags,
                       capabilities=chosen.capabilities or self.capabilities)

    def __str__(self) -> str:
        return self.spec


@dataclass(frozen=True)
class Availability:
    """Whether a target can run here; false with the reason (and how to fix it)."""
    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok
