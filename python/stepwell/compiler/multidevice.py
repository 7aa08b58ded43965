"""Running a module compiled for several devices (``nn-partition``, docs/distributed.md).

A partitioned entry point takes each input as N local shards, shard ``d`` on device
``d`` (``iree.abi.affinity``), and returns each output the same way. Its reflection
entry ``stepwell.sharding`` names the mesh and each input's and output's global type
and partition spec; from it a call splits global numpy arrays into shards, puts each
on its device, and joins the result shards back (:meth:`MultiDeviceInvoker.shards`
gives them unjoined, one array per device).

Devices: ``create_hal_module(instance, devices=[...])`` with N devices of the
target's driver, in ordinal order (N CPU devices of ``local-task``, or the first N
GPUs). A module that needs more devices than the runtime has (or was given) fails
when it is loaded, naming both counts. Contexts and modules are dropped before the
devices at exit (``runtime._release``).
"""

from __future__ import annotations

import json
import re

import numpy as np

from stepwell.core import sharding as sh
from stepwell.core.diagnostics import StepwellError
from stepwell.core.types import TensorType

KEY = "stepwell.sharding"
_LOCAL = ("local-task", "local-sync")


class Layout:
    """The mesh and the global types and specs of an entry point's inputs and outputs."""

    def __init__(self, meta: dict):
        self.mesh = sh.Mesh(tuple(meta["mesh"]["axes"]), tuple(meta["mesh"]["shape"]))
        self.inputs = [self._io(x) for x in meta["inputs"]]
        self.outputs = [self._io(x) for x in meta["outputs"]]

    @staticmethod
    def _io(entry):
        t = TensorType.parse(entry["type"]) if entry["type"].startswith("tensor<") else None
        spec = None if entry["spec"] is None else tuple(tuple(a) for a in entry["spec"])
        return entry["type"], t, spec

    @property
    def devices(self) -> int:
        return self.mesh.size


def layout_of(vm_function) -> Layout | None:
    meta = vm_function.reflection.get(KEY)
    return Layout(json.loads(meta)) if meta else None


def devices_needed(vm_module) -> int:
    """The devices a module's entry points are placed on (1 when it is not partitioned)."""
    need = 1
    for name in vm_module.function_names:
        fn = vm_module.lookup_function(name)
        decl = fn.reflection.get("iree.abi.declaration", "") if fn is not None else ""
        ordinals = [int(d) for d in re.findall(r"#hal\.device\.(?:promise|affinity)<@d(\d+)>", decl)]
        need = max([need, *(d + 1 for d in ordinals)])
    return need


def available(driver: str) -> int | None:
    """How many devices a driver can open (None: as many as asked, CPU devices; or no such
    driver here, which running reports)."""
    from stepwell.compiler.runtime import _rt
    rt = _rt()
    if driver in _LOCAL or driver not in rt.query_available_drivers():
        return None
    try:
        return len(rt.get_driver(driver).query_available_devices())
    except Exception:  # noqa: BLE001  (no device or no driver library: running reports it)
        return None


def check_count(needed: int, driver: str, given: int | None) -> None:
    """A clear error when a module needs more devices than the runtime has."""
    have = given if given is not None else available(driver)
    if have is not None and needed > have:
        source = f"devices={given}" if given is not None else f"the '{driver}' driver finds {have}"
        raise StepwellError(f"the module is partitioned over {needed} devices, but the runtime has "
                            f"{have} ({source}): run it with at least {needed} devices, or "
                            f"compile it for a smaller mesh")


def device_set(driver: str, count: int):
    """``(devices, hal module)`` for ``count`` devices of ``driver``, made once and cached
    (with the single devices, in ``runtime._DEVICES``)."""
    from stepwell.compiler import runtime
    rt = runtime._rt()
    with runtime._LOCK:
        key = (driver, count)
        if key not in runtime._DEVICES:
            check_count(count, driver, None)
            drv = rt.get_driver(driver)
            if driver in _LOCAL:
                devs = [drv.create_default_device() for _ in range(count)]
            else:
                infos = drv.query_available_devices()[:count]
                devs = [drv.create_device(info["device_id"]) for info in infos]
            runtime._DEVICES[key] = (devs, rt.create_hal_module(runtime._instance(), devices=devs))
        return runtime._DEVICES[key]


class MultiDeviceInvoker:
    """Calls one partitioned entry point with global numpy arrays."""

    def __init__(self, context, devices, vm_function, layout: Layout):
        self.context, self.devices, self.vm_function, self.layout = context, devices, vm_function, layout

    def __call__(self, *arrays):
        outs = tuple(join(shards, t, spec, self.layout.mesh)
                     for shards, (_, t, spec) in zip(self.shards(*arrays), self.layout.outputs))
        return outs if len(outs) != 1 else outs[0]

    def shards(self, *arrays) -> list[list[np.ndarray]]:
        """Each output as its N per-device arrays (device order)."""
        from stepwell.compiler.runtime import _rt, to_host
        rt = _rt()
        mesh, n = self.layout.mesh, self.layout.devices
        args = rt.VmVariantList(n * len(arrays))
        for a, (_, t, spec) in zip(arrays, self.layout.inputs):
            for d in range(n):
                if t is None:  # a scalar: each device's call takes the same number
                    (args.push_float if isinstance(a, float) else args.push_int)(a)
                    continue
                part = a if spec is None else np.ascontiguousarray(a[sh.shard_index(a.shape, spec, mesh, d)])
                args.push_ref(rt.asdevicearray(self.devices[d], part)._buffer_view)
        results = rt.VmVariantList(n * len(self.layout.outputs))
        self.context.invoke(self.vm_function, args, results)
        out = []
        for i, (_, t, _) in enumerate(self.layout.outputs):
            parts = []
            for d in range(n):
                view = results.get_as_object(i * n + d, rt.HalBufferView)
                parts.append(to_host(rt.DeviceArray(self.devices[d], view, implicit_host_transfer=True,
                                                    override_dtype=t.numpy_dtype())))
                del view
            out.append(parts)
        return out


def join(parts: list, t: TensorType, spec, mesh: sh.Mesh) -> np.ndarray:
    """The global array of per-device ``parts`` laid out as ``spec`` (replicated copies:
    the first device's)."""
    if spec is None:
        return parts[0]
    out = np.empty(t.shape, dtype=parts[0].dtype)
    for d, part in reversed(list(enumerate(parts))):
        out[sh.shard_index(t.shape, spec, mesh, d)] = part
    return out
