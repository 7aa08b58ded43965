"""Calling one entry point of a loaded export: inputs checked against the manifest.

Checked before anything runs, each with the input's name: the count and structure,
dtype (same-kind conversions that lose nothing are made), rank and static sizes, the
named dimensions (inputs sharing a symbol, e.g. the batch ``b``, must agree), their
limits (``dim_limits``: a prompt longer than the context), and states (a cache from
another model, or one already consumed).
"""

from __future__ import annotations

import numpy as np

from stepwell.core.diagnostics import StepwellError
from stepwell.export.manifest import np_dtype
from stepwell.export.pytree import OPAQUE, flatten, is_array, unflatten
from stepwell.export.state import State


class EntryPoint:
    """One function of an export; call it like the exported function without ``params``."""

    def __init__(self, model, name: str, record: dict):
        self.model = model
        self.name = name
        self.inputs = record["inputs"]
        self.outputs = record["outputs"]
        self.state = record.get("state", {})
        self._in_tree = (record.get("input_tree") or {}).get("spec", OPAQUE)
        self._out_tree = (record.get("output_tree") or {}).get("spec", OPAQUE)
        self._limits = model.manifest.get("dim_limits", {})
        self.specializations = []   # ({symbol: size}, function name): static copies
        self._sizes = {}

    def __repr__(self) -> str:
        ins = ", ".join(f"{i['name']}: {describe_io(i)}" for i in self.inputs)
        outs = ", ".join(describe_io(o) for o in self.outputs)
        return f"<stepwell entry point {self.name}({ins}) -> ({outs})>"

    def check_inputs(self, args) -> list:
        """The call's arguments as the flat inputs the module takes (numpy arrays, or the
        device arrays of states), checked against the manifest."""
        top = None if self._in_tree in (OPAQUE, None) else self._in_tree.get("tuple")
        if top is not None and len(args) != len(top) and len(args) != len(self.inputs):
            self._count_error(len(args), len(top))
        if self._in_tree is OPAQUE or self._in_tree is None:
            leaves = list(args)
        else:
            try:
                leaves = flatten(self._in_tree, tuple(args))
            except StepwellError:
                if len(args) != len(self.inputs) or not all(is_array(a) for a in args):
                    raise
                leaves = list(args)   # the flat leaves, in manifest order
        if len(leaves) != len(self.inputs):
            self._count_error(len(leaves), len(self.inputs))
        arrays, seen = [], {}
        for spec, value in zip(self.inputs, leaves):
            where = f"input '{spec['name']}'"
            if isinstance(value, State):
                a = value.take(self.model.model_id, self.model.name, where)
                shape, dtype = value.shape, value.dtype
                if dtype != np_dtype(spec["dtype"]):
                    raise StepwellError(f"{where} expects {spec['dtype']}, got a state of {dtype.name}")
            else:
                a = _as_array(value, spec)
                shape = a.shape
            self._check_shape(spec, shape, seen)
            arrays.append(a if isinstance(value, State) or not a.ndim else np.ascontiguousarray(a))
        self._sizes = {k: v[0] for k, v in seen.items()}
        return arrays

    def _check_shape(self, spec: dict, shape, seen: dict) -> None:
        want = spec["shape"]
        ok = len(shape) == len(want) and all(w is None or w == d for w, d in zip(want, shape))
        if not ok:
            raise StepwellError(f"input '{spec['name']}' expects shape {shape_text(want)} "
                                f"({spec['dtype']}), got {shape_text(list(shape))}")
        dims = spec.get("dims") or [("b" if i == 0 else None) if d is None else d
                                    for i, d in enumerate(want)]  # (exports before named dims)
        for i, (sym, size) in enumerate(zip(dims, shape)):
            if not isinstance(sym, str) or not sym.isidentifier():
                continue
            limit = self._limits.get(sym)
            if limit is not None and size > limit:
                raise StepwellError(f"input '{spec['name']}' dimension {i} ({sym}) is {size}, more than "
                                    f"the model's limit of {limit} for '{sym}'")
            if sym in seen and seen[sym][0] != size:
                first, other, j = seen[sym][0], seen[sym][1], seen[sym][2]
                raise StepwellError(f"input '{spec['name']}' has {sym} = {size} (dimension {i}), input "
                                    f"'{other}' has {sym} = {first} (dimension {j}): inputs share the "
                                    f"dimension '{sym}'")
            seen.setdefault(sym, (size, spec["name"], i))

    def _count_error(self, got: int, want: int):
        names = ", ".join(i["name"] for i in self.inputs)
        who = "the model" if self.name == "main" else f"'{self.name}'"
        raise StepwellError(f"{who} takes {want} input{'s' if want != 1 else ''} ({names}), got {got}")

    def __call__(self, *args):
        arrays = self.check_inputs(args)
        state_out = {v["output"]: k for k, v in self.state.items()}
        name = next((n for dims, n in self.specializations
                     if all(self._sizes.get(k) == v for k, v in dims.items())), self.name)
        out = self.model.executable.function(name)(*arrays, on_device=tuple(state_out))
        for k, v in self.state.items():  # the buffers passed in may now hold the update
            if v.get("input") is not None and isinstance(_leaf(args, self, v["input"]), State):
                _leaf(args, self, v["input"]).consumed = True
        outs = list(out) if isinstance(out, tuple) else ([] if out is None else [out])
        outs = [State(state_out[i], o, self.model.model_id, self.model.name) if i in state_out else o
                for i, o in enumerate(outs)]
        if self._out_tree is OPAQUE:
            return outs[0] if len(outs) == 1 and not isinstance(out, tuple) else tuple(outs)
        return unflatten(self._out_tree, outs)


def _leaf(args, entry: EntryPoint, i: int):
    """The ``i``-th flat input of a call (as given)."""
    if entry._in_tree in (OPAQUE, None):
        return args[i]
    try:
        return flatten(entry._in_tree, tuple(args))[i]
    except StepwellError:
        return args[i]


def _as_array(value, spec: dict) -> np.ndarray:
    want = np_dtype(spec["dtype"])
    try:
        if isinstance(value, (list, tuple, int, float, bool)):
            a = np.asarray(value, dtype=want)   # Python values take the input's dtype
        else:
            a = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise StepwellError(f"input '{spec['name']}': {e}") from None
    return cast(a, want, spec)


def cast(a: np.ndarray, want: np.dtype, spec: dict) -> np.ndarray:
    """``a`` as ``want``: same-kind conversions that lose nothing the caller meant
    (int64 -> int32 within range, float64 -> float32); others are errors."""
    if a.dtype == want:
        return a
    kinds = {"f": "f", "V": "f", "i": "i", "u": "i", "b": "b"}
    src_kind = "f" if a.dtype.name == "bfloat16" else kinds.get(a.dtype.kind)
    dst_kind = "f" if np.dtype(want).name == "bfloat16" else kinds.get(np.dtype(want).kind)
    if src_kind != dst_kind:
        raise StepwellError(f"input '{spec['name']}' expects {spec['dtype']}, got {a.dtype.name}")
    if dst_kind == "i" and a.size:
        info = np.iinfo(want)
        if a.min() < info.min or a.max() > info.max:
            raise StepwellError(f"input '{spec['name']}' ({spec['dtype']}) holds values outside "
                                f"[{info.min}, {info.max}]")
    return a.astype(want)


def shape_text(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def describe_io(spec: dict) -> str:
    dims = spec.get("dims") or spec["shape"]
    return f"{spec['dtype']}[{', '.join('?' if d is None else str(d) for d in dims)}]"
