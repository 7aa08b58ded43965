"""``State``: a value an exported model keeps on the device between calls (a KV cache).

An entry point that returns a state (``sw.jax.export(..., state="cache")``) gives it
back as a :class:`State`: the device buffer, not a host copy. Passing it to the next
call hands IREE that buffer, which the compiled update writes in place (measured in
docs/llm.md: no copy of the cache per token). Since the call may have changed the
buffer, the state passed in is *consumed*: using it again is an error; the call's
result is the current state. ``state.numpy()`` copies it to the host.

A state remembers which model made it (the SHA-256 of the module and the parameters)
and its shape: a cache from another model, or of another batch size, is refused
before anything runs.
"""

from __future__ import annotations

import numpy as np

from stepwell.core.diagnostics import StepwellError


class State:
    """A value kept on the device (``iree.runtime.DeviceArray``), owned by one model."""

    def __init__(self, name: str, array, model_id: str, model_name: str):
        self.name = name
        self._array = array
        self.model_id = model_id
        self.model_name = model_name
        self.consumed = False

    @property
    def shape(self) -> tuple:
        return tuple(self._array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._array.dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def numpy(self) -> np.ndarray:
        """A host copy."""
        from stepwell.compiler.runtime import to_host
        self._check_live()
        return to_host(self._array)

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        what = "consumed" if self.consumed else f"{self.dtype.name}[{', '.join(map(str, self.shape))}]"
        return f"<stepwell.State '{self.name}' of {self.model_name}: {what}>"

    def _check_live(self) -> None:
        if self.consumed:
            raise StepwellError(f"this '{self.name}' was consumed by a call that updated it in place: "
                                f"pass the '{self.name}' that call returned")

    def take(self, model_id: str, model_name: str, where: str):
        """The device array, for a call of ``model_id`` (which consumes it)."""
        if self.model_id != model_id:
            raise StepwellError(f"{where}: this '{self.name}' comes from another model "
                                f"('{self.model_name}', a different export); a state only works "
                                f"with the model that made it ('{model_name}')")
        self._check_live()
        return self._array
