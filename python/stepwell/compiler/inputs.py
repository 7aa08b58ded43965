"""Inputs and outputs for ``stepwell run``, in ``iree-run-module``'s syntax.

    parse_input("2x3xf32=1,2,3,4,5,6")   # values (commas, spaces or [..] groups)
    parse_input("2x3xf32=1")             # one value: splat
    parse_input("f32=3.5")               # rank 0
    parse_input("@x.npy"), parse_input("x.npy")   # a numpy file
    save_outputs("out.npz", outputs)     # output0, output1, ... (atomic write)
    print(format_outputs(outputs))       # result[0]: 2x3xf32=[1 2 3][4 5 6]
"""

from __future__ import annotations

import os
import re

import numpy as np

from stepwell.core.diagnostics import StepwellError
from stepwell.core.files import atomic_file
from stepwell.core.types import TensorType, dtype_of, numpy_dtype

__all__ = ["parse_input", "parse_inputs", "save_outputs", "format_output", "format_outputs"]

_EXAMPLES = "e.g. 2x3xf32=1,2,3,4,5,6, f32=3.5 or @x.npy"
_TYPE = re.compile(r"^(?:tensor<(?P<t1>[^>]*)>|(?P<t2>[\w?]+))$")
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


def parse_inputs(specs, expected=None) -> list[np.ndarray]:
    """Each spec parsed; ``expected`` (optional) gives the function's argument types."""
    specs = list(specs)
    return [parse_input(s, expected[i] if expected and i < len(expected) else None)
            for i, s in enumerate(specs)]


def parse_input(spec: str, expected: "TensorType | str | None" = None) -> np.ndarray:
    """One ``iree-run-module`` style input as a numpy array.

    ``expected`` (the argument's type) is only used to read a ``.npy`` file holding
    bfloat16 data, which numpy stores without its type (as ``V2``)."""
    if not isinstance(spec, str) or not spec.strip():
        raise StepwellError(f"empty input: expected TYPE=VALUES or a .npy file ({_EXAMPLES})")
    spec = spec.strip()
    if spec.startswith("@") or ("=" not in spec and spec.lower().endswith((".npy", ".npz"))):
        return _load_npy(spec[1:] if spec.startswith("@") else spec, expected)
    if "=" not in spec:
        raise StepwellError(f"input '{spec}' is neither TYPE=VALUES nor a .npy file ({_EXAMPLES})")
    type_text, values = spec.split("=", 1)
    ttype = _parse_type(type_text.strip(), spec)
    return _values(ttype, values, spec)


def _parse_type(text: str, spec: str) -> TensorType:
    m = _TYPE.match(text)
    if not m:
        raise StepwellError(f"input '{spec}': cannot read the type '{text}' ({_EXAMPLES})")
    body = m["t1"] if m["t1"] is not None else m["t2"]
    *dims, dtype = body.split("x")
    try:
        numpy_dtype(dtype)
    except ValueError:
        raise StepwellError(f"input '{spec}': unknown element type '{dtype}' (one of: f16, bf16, "
                            f"f32, f64, i1, i8, i16, i32, i64)") from None
    shape = []
    for d in dims:
        if not d.isdigit():
            raise StepwellError(f"input '{spec}': dimension '{d}' is not a non-negative integer "
                                f"(shapes are static, like 2x3x{dtype})")
        shape.append(int(d))
    return TensorType(tuple(shape), dtype)


def _values(ttype: TensorType, text: str, spec: str) -> np.ndarray:
    tokens = [t for t in re.split(r"[\s,\[\]]+", text.strip()) if t]
    count = int(np.prod(ttype.shape, dtype=np.int64))
    shape = "x".join(map(str, ttype.shape))
    needs = f"shape {shape} needs {count} (or 1 to fill it)" if shape else "a scalar needs 1"
    if not tokens:
        raise StepwellError(f"input '{spec}' has no values after '=': {needs}")
    if len(tokens) not in (1, count):
        raise StepwellError(f"input '{spec}' has {len(tokens)} values; {needs}")
    dtype = ttype.numpy_dtype()
    parsed = [_number(tok, ttype.dtype, spec) for tok in tokens]
    if len(parsed) == 1:
        return np.full(ttype.shape, parsed[0], dtype=dtype)
    return np.array(parsed, dtype=dtype).reshape(ttype.shape)


def _number(tok: str, dtype: str, spec: str):
    low = tok.lower()
    if dtype == "i1":
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise StepwellError(f"input '{spec}': '{tok}' is not an i1 value (true/false/1/0)")
    if dtype.startswith("i"):
        try:
            value = int(tok, 0)
        except ValueError:
            raise StepwellError(f"input '{spec}': '{tok}' is not an integer ({dtype})") from None
        info = np.iinfo(numpy_dtype(dtype))
        if not info.min <= value <= info.max:
            raise StepwellError(f"input '{spec}': {value} is out of range for {dtype} "
                                f"[{info.min}, {info.max}]")
        return value
    try:
        return float(tok)
    except ValueError:
        raise StepwellError(f"input '{spec}': '{tok}' is not a number ({dtype})") from None


def _load_npy(path: str, expected) -> np.ndarray:
    if not path:
        raise StepwellError("input '@' names no file (e.g. @x.npy)")
    if path.lower().endswith(".npz"):
        raise StepwellError(f"input '{path}' is an .npz archive; give each input as its own "
                            f".npy file (numpy.save) or as TYPE=VALUES")
    if not os.path.exists(path):
        raise StepwellError(f"input file '{path}' does not exist")
    if os.path.isdir(path):
        raise StepwellError(f"input '{path}' is a directory, not a .npy file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise StepwellError(f"input '{path}' is not a readable .npy file: {e}") from None
    if not isinstance(array, np.ndarray):
        raise StepwellError(f"input '{path}' is an archive; give each input as its own .npy file")
    if array.dtype == np.dtype("V2"):
        want = TensorType.parse(expected) if isinstance(expected, str) else expected
        if want is not None and want.dtype == "bf16":
            return array.view(numpy_dtype("bf16"))
        raise StepwellError(f"input '{path}' holds 2-byte values of unknown type (numpy saves "
                            f"bfloat16 without its type): save it as float32")
    try:
        dtype_of(array.dtype)
    except ValueError:
        raise StepwellError(f"input '{path}' has dtype {array.dtype}, which stepwell does not "
                            f"run (f16, bf16, f32, f64, bool, int8..int64)") from None
    return array


# ---------------------------------------------------------------------------
def _as_tuple(outputs) -> tuple:
    if outputs is None:
        return ()
    if isinstance(outputs, (tuple, list)):
        return tuple(outputs)
    return (outputs,)


def save_outputs(path, outputs) -> None:
    """Write results to an ``.npz`` (``output0``, ``output1``, ...), atomically.

    bfloat16 arrays are stored as float32 (exact): numpy files cannot name bfloat16."""
    path = os.fspath(path)
    if not path.lower().endswith(".npz"):
        raise StepwellError(f"output file '{path}' must end in .npz")
    arrays = {}
    for i, a in enumerate(_as_tuple(outputs)):
        a = np.asarray(a)
        if a.dtype == numpy_dtype("bf16"):
            a = a.astype(np.float32)
        arrays[f"output{i}"] = a
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StepwellError(f"cannot write '{path}': folder '{folder}' does not exist")
    with atomic_file(path, suffix=".npz.tmp") as f:
        np.savez(f, **arrays)


def format_output(array, max_elements: int = 1024) -> str:
    """``2x3xf32=[1 2 3][4 5 6]`` (iree-run-module style); long arrays are cut."""
    a = np.asarray(array)
    try:
        dtype = dtype_of(a.dtype)
    except ValueError:
        dtype = str(a.dtype)
    head = "".join(f"{d}x" for d in a.shape) + dtype
    if a.size > max_elements:
        flat = a.reshape(-1)[:max_elements]
        return f"{head}={' '.join(_fmt(v) for v in flat)} ... ({a.size} elements)"
    return f"{head}={_nested(a)}"


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    return f"{float(v):g}"


def _nested(a: np.ndarray) -> str:
    """iree-run-module's layout: the outer level bare, inner levels in brackets."""
    if a.ndim == 0:
        return _fmt(a[()])
    if a.ndim == 1:
        return " ".join(_fmt(v) for v in a)
    return "".join(_bracketed(sub) for sub in a)


def _bracketed(a: np.ndarray) -> str:
    if a.ndim == 1:
        return "[" + " ".join(_fmt(v) for v in a) + "]"
    return "[" + "".join(_bracketed(sub) for sub in a) + "]"


def format_outputs(outputs) -> str:
    """One ``result[i]: ...`` line per output."""
    return "\n".join(f"result[{i}]: {format_output(a)}" for i, a in enumerate(_as_tuple(outputs)))
