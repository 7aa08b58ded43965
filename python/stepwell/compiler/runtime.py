"""Running compiled modules: ``Executable`` (numpy in, numpy out) on IREE's runtime.

    exe = sw.compile(m, target="cpu")
    y = exe(x, w)                       # func @main; several results come as a tuple
    z = exe.function("other")(x)
    exe.save("model.vmfb"); exe = Executable.load("model.vmfb", "cpu")

Inputs are checked against the function's signature (read from the module's
reflection metadata) before anything runs. One VM instance per process and one
device per driver are created on first use, reused, and released at exit.
"""

from __future__ import annotations

import atexit
import gc
import re
import threading
import weakref

import numpy as np

from stepwell.core.diagnostics import StepwellError
from stepwell.core.types import TensorType, dtype_of, numpy_dtype

__all__ = ["Executable", "Function", "probe_driver", "device", "to_host"]


# ---------------------------------------------------------------------------
# Process-wide runtime state: one instance, one device (+ HAL module) per driver.
# ---------------------------------------------------------------------------
_LOCK = threading.RLock()
_INSTANCE = None
_DEVICES: dict = {}      # driver -> (HalDevice, hal VmModule)
_EXECUTABLES: "weakref.WeakSet[Executable]" = weakref.WeakSet()

_FIXES = {
    "vulkan": "install a Vulkan driver (software: apt-get install mesa-vulkan-drivers libvulkan1)",
    "cuda": "needs an NVIDIA GPU with its driver (libcuda.so)",
    "hip": "needs an AMD GPU with ROCm (libamdhip64.so)",
}


def _rt():
    import iree.runtime as rt
    return rt


def _instance():
    global _INSTANCE
    with _LOCK:
        if _INSTANCE is None:
            _INSTANCE = _rt().VmInstance()
        return _INSTANCE


def _clean_iree_message(text: str) -> str:
    """IREE status text without its C source prefix: the first line that says something."""
    line = str(text).strip().splitlines()[0] if str(text).strip() else "unknown error"
    line = re.sub(r"^Error creating (driver|device): ", "", line)
    line = re.sub(r"(?:\S+\.(?:c|cc|cpp)|<vm>):\d+: [A-Z_]+; ", "", line)
    return line.rstrip(":; ")


def device(driver: str):
    """The (cached) ``(HalDevice, hal module)`` of a runtime driver; StepwellError if none."""
    with _LOCK:
        if driver not in _DEVICES:
            rt = _rt()
            if driver not in rt.query_available_drivers():
                raise StepwellError(f"the IREE runtime here has no '{driver}' driver")
            try:
                dev = rt.get_driver(driver).create_default_device()
            except Exception as e:  # noqa: BLE001  (IREE raises ValueError/RuntimeError)
                fix = _FIXES.get(driver, "")
                raise StepwellError(f"no '{driver}' device: {_clean_iree_message(e)}"
                                    + (f"; {fix}" if fix else "")) from None
            _DEVICES[driver] = (dev, rt.create_hal_module(_instance(), dev))
        return _DEVICES[driver]


def probe_driver(driver: str):
    """``Availability`` of a driver: a device could be created (and is now cached)."""
    from stepwell.targets import Availability
    try:
        device(driver)
    except StepwellError as e:
        return Availability(False, str(e.diagnostics[0].message))
    return Availability(True, f"'{driver}' device found")


@atexit.register
def _release() -> None:
    # IREE objects alive at interpreter teardown crash it or print nanobind leak
    # reports: drop every context, module and device in dependency order first.
    global _INSTANCE
    for exe in list(_EXECUTABLES):
        exe._drop_runtime()
    gc.collect()
    _DEVICES.clear()
    gc.collect()
    _INSTANCE = None
    gc.collect()


# ---------------------------------------------------------------------------
# Device -> host: the one place results leave the device.
# ---------------------------------------------------------------------------
def to_host(array) -> np.ndarray:
    """A host-owned numpy copy of a result (``DeviceArray``).

    ``DeviceArray.to_host()`` maps or imports host memory; drivers that refuse that
    (lavapipe: host pointers must be 4096-aligned) are read through a staging buffer.
    """
    rt = _rt()
    if not isinstance(array, rt.DeviceArray):
        return array
    try:
        host = array.to_host()
    except Exception:  # noqa: BLE001
        host = _staging_copy(array)
    # Copy: a mapped result must not outlive its device buffer (or the runtime).
    return np.array(host, copy=True)


def _staging_copy(array) -> np.ndarray:
    """Copy a device buffer into a host-visible staging buffer, then map that."""
    rt = _rt()
    view = array._buffer_view
    dev = array._device
    source = view.get_buffer()
    staging = dev.allocator.allocate_buffer(
        memory_type=int(rt.MemoryType.HOST_LOCAL | rt.MemoryType.DEVICE_VISIBLE),
        allowed_usage=int(rt.BufferUsage.TRANSFER_TARGET | rt.BufferUsage.MAPPING_SCOPED),
        allocation_size=source.byte_length())
    sem = dev.create_semaphore(0)
    dev.queue_copy(source, staging, wait_semaphores=rt.HalFence.create_at(sem, 0),
                   signal_semaphores=rt.HalFence.create_at(sem, 1))
    rt.HalFence.create_at(sem, 1).wait()
    raw = rt.HalElementType.map_to_dtype(view.element_type)
    host = np.array(staging.map().asarray(view.shape, raw), copy=True)
    return host.astype(array.dtype) if array.dtype != raw else host


# ---------------------------------------------------------------------------
# Signatures from reflection metadata ("iree.abi.declaration").
# ---------------------------------------------------------------------------
def _split_top(text: str) -> list[str]:
    """Split at commas outside <>, (), [], {}."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def _arg_type(text: str) -> str:
    """``%input0: tensor<4xf32> {attrs}`` -> ``tensor<4xf32>``."""
    text = text.split(":", 1)[1].strip() if text.startswith("%") else text.strip()
    depth = 0
    for i, ch in enumerate(text):  # drop a trailing attribute dictionary
        if ch in "<([":
            depth += 1
        elif ch in ">)]":
            depth -= 1
        elif ch == "{" and depth == 0:
            return text[:i].strip()
    return text


def parse_declaration(decl: str) -> tuple[list[str], list[str]] | None:
    """Argument and result types of ``sync func @f(%input0: T, ...) -> (%output0: T)``."""
    start = re.search(r"@[\w$.\-]+\(", decl)
    if not start:
        return None
    depth, pos = 1, start.end()
    while pos < len(decl) and depth:
        depth += {"(": 1, ")": -1}.get(decl[pos], 0)
        pos += 1
    if depth:
        return None
    args = [_arg_type(a) for a in _split_top(decl[start.end():pos - 1])]
    rest = decl[pos:].strip()
    res_text = rest[2:].strip() if rest.startswith("->") else ""
    if res_text.startswith("(") and res_text.endswith(")"):
        res_text = res_text[1:-1]
    results = [_arg_type(r) for r in _split_top(res_text)] if res_text else []
    return args, results


def _tensor_type(t: str) -> TensorType | None:
    if not (t.startswith("tensor<") and t.endswith(">")) or "," in t:
        return None
    try:
        tt = TensorType.parse(t)
        tt.numpy_dtype()
        return tt
    except (ValueError, TypeError):
        return None


_SCALAR = re.compile(r"^(i\d+|si\d+|ui\d+|index|f16|bf16|f32|f64)$")


def _scalar(fn: str, i: int, declared: str, a):
    """A scalar (non-tensor) argument as the Python number the VM takes."""
    value = a.item() if isinstance(a, (np.ndarray, np.generic)) and np.ndim(a) == 0 else a
    is_int = not declared.startswith(("f", "bf"))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            is_int and not isinstance(value, int)):
        raise StepwellError(f"function '{fn}' argument {i} expects a scalar {declared}, "
                            f"got {_describe(np.asarray(a))}")
    return value if is_int else float(value)


def _describe(a: np.ndarray) -> str:
    return f"{a.dtype.name}[{','.join(str(d) for d in a.shape)}]"


# ---------------------------------------------------------------------------
class Function:
    """One entry point of an :class:`Executable`: call it with numpy arrays."""

    def __init__(self, exe: "Executable", name: str, vm_function):
        self.exe = exe
        self.name = name
        self._vm_function = vm_function
        decl = vm_function.reflection.get("iree.abi.declaration")
        sig = parse_declaration(decl) if decl else None
        self.arg_types: list[str] | None = sig[0] if sig else None
        self.result_types: list[str] | None = sig[1] if sig else None
        from stepwell.compiler.multidevice import layout_of
        self.layout = layout_of(vm_function)  # partitioned: global types, specs (multidevice.py)
        if self.layout is not None:
            self.arg_types = [x[0] for x in self.layout.inputs]
            self.result_types = [x[0] for x in self.layout.outputs]

    def __repr__(self) -> str:
        if self.arg_types is None:
            return f"<stepwell.Function {self.name}>"
        return (f"<stepwell.Function @{self.name}({', '.join(self.arg_types)}) -> "
                f"({', '.join(self.result_types)}) on {self.exe.target.spec}>")

    def check_inputs(self, args) -> list:
        """The inputs as contiguous numpy arrays (device arrays pass as they are), after
        checking count, shape and dtype."""
        arrays = []
        if self.arg_types is not None and len(args) != len(self.arg_types):
            want = len(self.arg_types)
            raise StepwellError(f"function '{self.name}' expects {want} argument"
                                f"{'s' if want != 1 else ''}, got {len(args)}")
        for i, a in enumerate(args):
            declared = self.arg_types[i] if self.arg_types is not None else None
            if declared is not None and _SCALAR.match(declared):
                arrays.append(_scalar(self.name, i, declared, a))
                continue
            want = _tensor_type(declared) if declared is not None else None
            if isinstance(a, _rt().DeviceArray):  # already on the device: no copy
                if want is not None and (len(a.shape) != want.rank or any(
                        w is not None and w != d for w, d in zip(want.shape, a.shape))
                        or np.dtype(a.dtype) != want.numpy_dtype()):
                    raise StepwellError(f"function '{self.name}' argument {i} expects {want}, got "
                                        f"{np.dtype(a.dtype).name}[{','.join(map(str, a.shape))}]")
                arrays.append(a)
                continue
            if not isinstance(a, (np.ndarray, np.generic)):
                # Python numbers and lists take the declared element type.
                try:
                    a = np.asarray(a, dtype=want.numpy_dtype() if want else None)
                except (TypeError, ValueError) as e:
                    raise StepwellError(f"function '{self.name}' argument {i}: {e}") from None
            a = np.asarray(a)
            if not a.flags.c_contiguous:  # (ascontiguousarray would make rank 0 rank 1)
                a = a.copy(order="C")
            if want is not None:
                shape_ok = a.ndim == want.rank and all(
                    w is None or w == d for w, d in zip(want.shape, a.shape))
                if not shape_ok or a.dtype != want.numpy_dtype():
                    raise StepwellError(f"function '{self.name}' argument {i} expects "
                                        f"{want}, got {_describe(a)}")
            else:
                try:
                    dtype_of(a.dtype)
                except ValueError as e:
                    raise StepwellError(f"function '{self.name}' argument {i}: {e}") from None
            arrays.append(a)
        return arrays

    def __call__(self, *args, on_device=()):
        """Run on numpy inputs (or device arrays); results come back as numpy, except those
        at the positions ``on_device``, which stay device arrays (``to_host`` reads them)."""
        arrays = self.check_inputs(args)
        invoker = self.exe._invoker(self)
        try:
            out = invoker(*arrays)
        except Exception as e:  # noqa: BLE001  (IREE reports runtime failures as RuntimeError)
            raise StepwellError(f"running function '{self.name}' on {self.exe.target.spec} "
                                f"failed: {_clean_iree_message(e)}") from None
        if out is None:
            return None
        outs = out if isinstance(out, tuple) else (out,)
        types = self.result_types if self.result_types and len(self.result_types) == len(outs) \
            else [None] * len(outs)
        host = tuple(o if i in on_device else _result(o, t) for i, (o, t) in enumerate(zip(outs, types)))
        return host if isinstance(out, tuple) else host[0]

    def shards(self, *args) -> list[list[np.ndarray]]:
        """A partitioned function's outputs as their per-device parts (one list per output)."""
        if self.layout is None:
            raise StepwellError(f"function '{self.name}' is not partitioned over devices")
        try:
            return self.exe._invoker(self).shards(*self.check_inputs(args))
        except StepwellError:
            raise
        except Exception as e:  # noqa: BLE001
            raise StepwellError(f"running function '{self.name}' on {self.exe.target.spec} "
                                f"failed: {_clean_iree_message(e)}") from None


def _result(value, declared: str | None):
    """A result as numpy: arrays copied to the host, scalars as numpy scalars."""
    if declared is not None and _SCALAR.match(declared) and isinstance(value, (int, float)):
        try:
            return numpy_dtype(declared).type(value)
        except ValueError:
            return value
    return to_host(value)


class Executable:
    """A compiled module (``.vmfb`` bytes) for one target; ``exe(*arrays)`` runs ``main``."""

    def __init__(self, vmfb: bytes, target="cpu", *, parameters=None, parameter_scope: str = "model",
                 devices: int | None = None):
        """``parameters``: an ``iree.runtime.ParameterIndex`` (e.g. a loaded ``.irpa``
        archive) that the module's ``#flow.parameter.named<"scope"::"key">`` globals
        read from; it is added to the context as IREE's parameters module.
        ``devices``: how many runtime devices there are for a module partitioned over
        several (default: the driver's; fewer than the module needs is an error here)."""
        from stepwell import targets
        self.vmfb = bytes(vmfb)
        self.target = targets.get(target)
        self.devices = devices
        self.parameters = parameters
        self.parameter_scope = parameter_scope
        self._module = None
        self.device_count = 1  # read from the module when it is loaded
        self._context = None
        self._functions: dict[str, Function] = {}
        self._invokers: dict[str, object] = {}
        self._lock = threading.Lock()
        _EXECUTABLES.add(self)
        if devices is not None:
            self._vm_module()  # checks the device count now, not at the first call

    # -- files ----------------------------------------------------------------
    @classmethod
    def load(cls, path, target=None, *, devices: int | None = None) -> "Executable":
        """A ``.vmfb`` file; ``target=None`` reads it from the module's device code
        (``cpu`` when it holds none)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise StepwellError(f"cannot read '{path}': {e.strerror}") from None
        if target is None:
            from stepwell import targets
            target = targets.detect(data) or "cpu"
        exe = cls(data, target)
        exe.devices = devices
        exe._vm_module(str(path))  # a bad file (or too few devices) fails here
        return exe

    def save(self, path) -> None:
        """Write the ``.vmfb`` atomically: a reader sees the old file or the whole new one."""
        from stepwell.core.files import atomic_file
        with atomic_file(path, ".vmfb.tmp") as f:
            f.write(self.vmfb)

    # -- functions ------------------------------------------------------------
    def _vm_module(self, name: str = "module"):
        with self._lock:
            if self._module is None:
                try:
                    self._module = _rt().VmModule.copy_buffer(_instance(), self.vmfb)
                except Exception as e:  # noqa: BLE001
                    raise StepwellError(f"'{name}' is not a valid IREE module (.vmfb): "
                                        f"{_clean_iree_message(e)}") from None
                from stepwell.compiler.multidevice import check_count, devices_needed
                self.device_count = devices_needed(self._module)
                if self.device_count > 1:
                    check_count(self.device_count, self.target.driver, self.devices)
            return self._module

    @property
    def function_names(self) -> list[str]:
        """The module's exported entry points (IREE's internal ``__init`` excluded)."""
        return [n for n in self._vm_module().function_names if not n.startswith("__")]

    def function(self, name: str) -> Function:
        if name not in self._functions:
            vm_function = self._vm_module().lookup_function(name)
            if vm_function is None or name.startswith("__"):
                raise StepwellError(f"no function '{name}' in the module (functions: "
                                    f"{', '.join(self.function_names) or 'none'})")
            self._functions[name] = Function(self, name, vm_function)
        return self._functions[name]

    def __call__(self, *args):
        return self.function("main")(*args)

    def __repr__(self) -> str:
        return f"<stepwell.Executable {self.target.spec} {len(self.vmfb)} bytes>"

    # -- runtime state ----------------------------------------------------------
    def _invoker(self, fn: Function):
        with self._lock:
            inv = self._invokers.get(fn.name)
            if inv is not None:
                return inv
        from stepwell import targets
        ok = targets.available(self.target)
        if not ok:
            raise StepwellError(f"cannot run on target '{self.target.spec}': {ok.reason}")
        rt = _rt()
        module = self._vm_module()
        if self.device_count > 1:
            from stepwell.compiler.multidevice import device_set
            devs, hal = device_set(self.target.driver, self.device_count)
            dev = devs[0]
        else:
            dev, hal = device(self.target.driver)
        with self._lock:
            if self._context is None:
                try:
                    modules = [hal, module]
                    if self.parameters is not None:
                        provider = self.parameters.create_provider(scope=self.parameter_scope)
                        modules.insert(1, rt.create_io_parameters_module(_instance(), provider))
                    self._context = rt.VmContext(_instance(), modules)
                except Exception as e:  # noqa: BLE001
                    msg = _clean_iree_message(e)
                    other = re.search(r'#hal\.device\.target<"([\w-]+)"', msg)
                    if other and "not found or unavailable" in msg:
                        msg = (f"it was compiled for a '{other[1]}' device, not for "
                               f"'{self.target.backend}' (load it with the target it was "
                               f"compiled for)")
                    raise StepwellError(f"cannot load the module on '{self.target.spec}': "
                                        f"{msg}") from None
            if fn.layout is not None:
                from stepwell.compiler.multidevice import MultiDeviceInvoker
                inv = MultiDeviceInvoker(self._context, devs, fn._vm_function, fn.layout)
            else:
                inv = rt.FunctionInvoker(self._context, dev, fn._vm_function)
            self._invokers[fn.name] = inv
            return inv

    def _drop_runtime(self) -> None:
        with self._lock:
            self._invokers.clear()
            for fn in self._functions.values():
                fn._vm_function = None
            self._functions.clear()
            self._context = None
            self._module = None
            self.parameters = None
