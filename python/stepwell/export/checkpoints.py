"""Weights from checkpoint files into a model's parameter pytree.

    from stepwell import checkpoints
    template = jax.eval_shape(model.init, jax.random.key(0), x)   # or real init params
    params = checkpoints.load("weights.safetensors", template)    # same pytree, numpy leaves
    sw.jax.export(model.apply, params, x, path="out/")

Formats (chosen by the file name, else by the first bytes; a folder is Orbax):

- ``.npz``: keys are flattened paths (``params/Dense_0/kernel``); read lazily with ``numpy.load``;
- ``.safetensors``: the same keys, or dotted (``params.Dense_0.kernel``); ``safetensors.safe_open``;
- ``.msgpack``: Flax's format (``flax.serialization.to_bytes``), nested dicts;
  ``flax.serialization.msgpack_restore``;
- an Orbax checkpoint folder (``orbax.checkpoint``), the saved pytree.

Keys match the template's leaf paths joined by ``/`` (``.`` works too when no key
holds a ``/``). A checkpoint saved from ``variables["params"]`` loads into a template
of the whole ``variables`` (and the other way round): a leading collection name
(``params/``) is added or dropped when that is what makes the keys match. Dtypes are
converted within their kind (float16 -> float32, int64 -> int32 in range); any
missing, unexpected (with ``strict=True``), mis-shaped or wrong-kind parameter is
named in one :class:`~stepwell.StepwellError`, one line each.
"""

from __future__ import annotations

import os

import numpy as np

from stepwell.core.diagnostics import Diagnostic, StepwellError

__all__ = ["load", "read", "restore", "flatten", "save_npz", "save_safetensors", "save_msgpack",
           "detect_format", "FORMATS"]

FORMATS = ("npz", "safetensors", "msgpack", "orbax")
_MAX_LINES = 20


# ---------------------------------------------------------------------------
def flatten(tree) -> dict[str, object]:
    """``{"params/Dense_0/kernel": leaf, ...}``: a pytree's leaves by ``/``-joined path."""
    import jax

    from stepwell.export.pytree import path_name
    return {path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _nested_to_flat(tree, prefix="") -> dict[str, object]:
    """Nested dicts (msgpack/Orbax restore results) flattened without JAX's sorting rules."""
    out = {}
    if isinstance(tree, dict) or hasattr(tree, "items") and not hasattr(tree, "shape"):
        for k, v in tree.items():
            out.update(_nested_to_flat(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(_nested_to_flat(v, f"{prefix}/{i}" if prefix else str(i)))
    elif tree is not None:
        out[prefix or "param"] = tree
    return out


# ---------------------------------------------------------------------------
def detect_format(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise StepwellError(f"no such checkpoint: '{path}'")
    if os.path.isdir(path):
        return "orbax"
    low = path.lower()
    for suffix, fmt in ((".npz", "npz"), (".safetensors", "safetensors"), (".msgpack", "msgpack")):
        if low.endswith(suffix):
            return fmt
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK"):
        return "npz"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] and (head[0] & 0xF0 == 0x80 or head[0] in (0xDE, 0xDF)):
        return "msgpack"
    raise StepwellError(f"'{path}': cannot tell the checkpoint format (name it .npz, "
                        ".safetensors or .msgpack, or give an Orbax folder)")


def read(path, format: str | None = None) -> dict[str, object]:
    """The checkpoint's arrays by ``/``-joined key (lazy for .npz and safetensors:
    values are numpy arrays, or loaders read on access)."""
    path = os.fspath(path)
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise StepwellError(f"unknown checkpoint format '{fmt}' (one of: {', '.join(FORMATS)})")
    try:
        return _READERS[fmt](path)
    except StepwellError:
        raise
    except FileNotFoundError as e:
        if os.path.exists(path):  # a folder without the files a checkpoint has
            raise StepwellError(f"'{path}' is not a readable {fmt} checkpoint: no file "
                                f"'{e.filename or e}'") from None
        raise StepwellError(f"no such checkpoint: '{path}'") from None
    except Exception as e:  # noqa: BLE001  (each library raises its own kinds)
        raise StepwellError(f"'{path}' is not a readable {fmt} checkpoint: "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


class _Lazy:
    """A value read on first use (a large checkpoint is never all in memory twice)."""

    def __init__(self, get, shape, dtype):
        self.get, self.shape, self.dtype = get, tuple(shape), dtype


def _read_npz(path):
    import zipfile
    if not zipfile.is_zipfile(path):
        raise StepwellError(f"'{path}' is not an .npz checkpoint (not a zip archive)")
    data = np.load(path, allow_pickle=False)
    out = {}
    for k in data.files:
        out[k] = _Lazy(lambda k=k: data[k], *_npz_header(data, k))
    return out


def _npz_header(data, key):
    """Shape and dtype of one .npz member without reading its data."""
    import zipfile
    from numpy.lib import format as npf
    zf = data.zip if hasattr(data, "zip") else zipfile.ZipFile(data.fid)
    with zf.open(key + ".npy") as f:
        version = npf.read_magic(f)
        shape, _, dtype = (npf.read_array_header_1_0(f) if version == (1, 0)
                           else npf.read_array_header_2_0(f))
    return shape, dtype


def _read_safetensors(path):
    try:
        from safetensors import safe_open
    except ImportError:
        raise StepwellError("reading .safetensors needs the 'safetensors' package "
                            "(pip install safetensors)") from None
    f = safe_open(path, framework="numpy")
    out = {}
    for k in f.keys():
        sl = f.get_slice(k)
        out[k] = _Lazy(lambda k=k: f.get_tensor(k), sl.get_shape(), _st_dtype(sl.get_dtype()))
    return out


def _st_dtype(name: str):
    table = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
             "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
    from stepwell.export.manifest import np_dtype as _np_dtype
    return _np_dtype(table.get(name, "float32"))


def _read_msgpack(path):
    from flax.serialization import msgpack_restore
    with open(path, "rb") as f:
        state = msgpack_restore(f.read())
    return _nested_to_flat(state)


def _read_orbax(path):
    import orbax.checkpoint as ocp
    path = os.path.abspath(path)
    items = os.listdir(path)
    # A CheckpointManager step folder holds one item folder ("default", "state", ...).
    if not any(i.startswith(("_METADATA", "_CHECKPOINT_METADATA", "manifest.ocdbt", "d"))
               or i == "checkpoint" for i in items):
        subs = [i for i in items if os.path.isdir(os.path.join(path, i))]
        if len(subs) == 1:
            path = os.path.join(path, subs[0])
    import warnings
    with warnings.catch_warnings(), ocp.PyTreeCheckpointer() as ckptr:
        # One host, one device: the saved sharding is the only one there is.
        warnings.filterwarnings("ignore", message="Sharding info not provided")
        state = ckptr.restore(path)
    return _nested_to_flat(state)


_READERS = {"npz": _read_npz, "safetensors": _read_safetensors, "msgpack": _read_msgpack,
            "orbax": _read_orbax}


# ---------------------------------------------------------------------------
def load(path, template, *, format: str | None = None, strict: bool = True):
    """The checkpoint at ``path`` as a pytree shaped like ``template`` (its leaves may
    be arrays or ``jax.ShapeDtypeStruct``), with numpy leaves of the template's dtypes.

    ``strict=False`` ignores checkpoint entries the model does not have; missing and
    mis-shaped ones are always errors."""
    path = os.fspath(path)
    return restore(read(path, format), template, strict=strict, source=path)


def restore(flat: dict, template, *, strict: bool = True, source: str = "checkpoint"):
    """Like :func:`load`, from ``{key: array}`` already in memory."""
    import jax

    from stepwell.export.pytree import path_name
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    want = {path_name(p): leaf for p, leaf in leaves}
    keys = _match_keys(list(flat), list(want))
    by_template = {t: k for k, t in keys.items() if t is not None}
    problems = []
    for name, leaf in want.items():
        if name not in by_template:
            problems.append(f"missing parameter '{name}' ({_describe(leaf)})")
    if strict:
        for k, t in keys.items():
            if t is None:
                problems.append(f"unexpected parameter '{k}' ({_describe(flat[k])}): the model has "
                                "no such parameter (strict=False ignores it)")
    for name, key in by_template.items():
        got, leaf = flat[key], want[name]
        if tuple(got.shape) != tuple(leaf.shape):
            problems.append(f"parameter '{name}' has shape {list(got.shape)} in the checkpoint, "
                            f"the model expects {list(leaf.shape)}")
        elif not _same_kind(np.dtype(got.dtype), np.dtype(leaf.dtype)):
            problems.append(f"parameter '{name}' is {np.dtype(got.dtype).name} in the checkpoint, "
                            f"the model expects {np.dtype(leaf.dtype).name}")
    if problems:
        head = (f"{source}: the checkpoint does not match the model ({len(problems)} "
                f"problem{'s' if len(problems) != 1 else ''})")
        diags = [Diagnostic(head, "error")] + [Diagnostic(p, "note") for p in problems[:_MAX_LINES]]
        if len(problems) > _MAX_LINES:
            diags.append(Diagnostic(f"... and {len(problems) - _MAX_LINES} more", "note"))
        raise StepwellError(diags)
    out = []
    for p, leaf in leaves:
        value = flat[by_template[path_name(p)]]
        array = np.asarray(value.get() if isinstance(value, _Lazy) else value)
        dtype = np.dtype(leaf.dtype)
        if array.dtype != dtype:
            if dtype.kind in "iu" and array.size:
                info = np.iinfo(dtype)
                if array.min() < info.min or array.max() > info.max:
                    raise StepwellError(f"{source}: parameter '{path_name(p)}' holds values "
                                        f"outside {dtype.name}")
            array = array.astype(dtype)
        out.append(array)
    return jax.tree_util.tree_unflatten(treedef, out)


def _same_kind(a: np.dtype, b: np.dtype) -> bool:
    def kind(d):
        return "f" if d.kind == "f" or d.name == "bfloat16" else ("i" if d.kind in "iu" else d.kind)
    return kind(a) == kind(b)


def _describe(leaf) -> str:
    dtype = np.dtype(leaf.dtype).name if hasattr(leaf, "dtype") else type(leaf).__name__
    shape = list(getattr(leaf, "shape", ()))
    return f"{dtype}{shape}"


def _match_keys(ckpt_keys: list[str], model_keys: list[str]) -> dict[str, str | None]:
    """Each checkpoint key -> the model key it fills (None: no such parameter).
    Tries the keys as they are, with '.' read as '/', and with a leading collection
    name added or removed; keeps the reading that matches most keys."""
    model = set(model_keys)
    dotted = not any("/" in k for k in ckpt_keys) and any("." in k for k in ckpt_keys)
    base = {k: (k.replace(".", "/") if dotted else k) for k in ckpt_keys}
    candidates = [base]
    roots = {k.split("/", 1)[0] for k in model_keys if "/" in k}
    for root in roots:  # the checkpoint lacks the collection name
        candidates.append({k: f"{root}/{v}" for k, v in base.items()})
    ck_roots = {v.split("/", 1)[0] for v in base.values() if "/" in v}
    if len(ck_roots) == 1:  # the checkpoint has one the model lacks
        root = next(iter(ck_roots))
        candidates.append({k: v[len(root) + 1:] if v.startswith(root + "/") else v
                           for k, v in base.items()})
    best = max(candidates, key=lambda c: sum(v in model for v in c.values()))
    return {k: (v if v in model else None) for k, v in best.items()}


# ---------------------------------------------------------------------------
def _host_arrays(tree) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in flatten(tree).items()}


def save_npz(path, tree) -> None:
    """Save a pytree of arrays as ``.npz`` with ``/``-joined keys (written atomically)."""
    _atomic(path, lambda f: np.savez(f, **_host_arrays(tree)))


def save_safetensors(path, tree, metadata: dict | None = None) -> None:
    from safetensors.numpy import save
    arrays = {k: np.ascontiguousarray(v) for k, v in _host_arrays(tree).items()}
    _atomic(path, lambda f: f.write(save(arrays, metadata=metadata)))


def save_msgpack(path, tree) -> None:
    """Flax's format (``flax.serialization.to_bytes`` of the pytree)."""
    from flax.serialization import msgpack_serialize, to_state_dict
    import jax
    state = jax.tree.map(np.asarray, to_state_dict(tree))
    _atomic(path, lambda f: f.write(msgpack_serialize(state)))


def _atomic(path, write) -> None:
    from stepwell.core.files import atomic_file
    with atomic_file(path) as f:
        write(f)
