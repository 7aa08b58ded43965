"""Compiling one module for several devices (``nn-partition``'s output).

A partitioned module places its arguments and transfers on ``#hal.device.promise<@dK>``;
the devices themselves are declared by flags, one per device, ordinal ``K`` of the
target's runtime driver::

    --iree-hal-target-device=d0=local[0] --iree-hal-target-device=d1=local[1]
    --iree-hal-local-target-device-backends=llvm-cpu          (CPU devices only)

(``--iree-hal-target-backends`` would declare one device and override these.) The
same executables serve every device of a target: one per distinct local shape.
"""

from __future__ import annotations

from stepwell.core import sharding

# IREE backend -> the device alias that --iree-hal-target-device takes
_ALIASES = {"llvm-cpu": "local", "cuda": "cuda", "vulkan-spirv": "vulkan", "rocm": "hip"}


def device_count(module) -> int:
    """How many devices a module is compiled for (1 unless it was partitioned)."""
    op = module.operation
    if sharding.PARTITIONED not in op.attributes:
        return 1
    return sharding.mesh_of(op).size


def needs_partitioning(module) -> bool:
    op = module.operation
    return sharding.MESH in op.attributes and sharding.PARTITIONED not in op.attributes


def backends_and_flags(target, count: int) -> tuple[list, list]:
    """``(target_backends, extra flags)`` for ``iree-compile`` on ``count`` devices."""
    if count <= 1:
        return [target.backend], []
    from stepwell.core.diagnostics import StepwellError
    from stepwell.passes._partition_expand import device_symbol
    alias = _ALIASES.get(target.backend)
    if alias is None:
        raise StepwellError(f"target '{target.spec}' cannot be compiled for several devices "
                            f"(backends: {', '.join(_ALIASES)})")
    flags = [f"--iree-hal-target-device={device_symbol(d)}={alias}[{d}]" for d in range(count)]
    # a constant the SPMD bodies share (IREE hoists it into a global) gets one copy per
    # device; without it: "op affinity @d3 is not compatible with the partition affinity @d2"
    flags.append("--iree-flow-experimental-replicate-globals-per-affinity")
    if alias == "local":
        from iree.compiler.tools.binaries import find_tool
        flags += [f"--iree-hal-local-target-device-backends={target.backend}",
                  f"--iree-llvmcpu-embedded-linker-path={find_tool('iree-lld')}"]
    return [], flags


def partition(module, mesh=None):
    """A copy of ``module`` with ``mesh`` (when given) as its ``nn.mesh``, partitioned."""
    from stepwell.core.diagnostics import StepwellError
    from stepwell.core.pipeline import Pipeline
    copy = module.clone()
    if mesh is not None:
        try:
            sharding.set_mesh(copy.operation, mesh)
        except sharding.ShardingError as e:
            raise StepwellError(f"mesh: {e}") from None
        copy.verify()  # the specs against the new mesh
    Pipeline("nn-partition").run(copy)
    return copy
