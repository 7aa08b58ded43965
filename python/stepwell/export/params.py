"""The parameter archive (``params.irpa``): written leaf by leaf from views of the arrays.

No copy of the weights is made for contiguous leaves of the declared dtype. Quantized
exports write each quantized weight's arrays (``qweight``, ``scales``, ``zero_points``)
in place of the float weight.
"""

from __future__ import annotations

import json

import numpy as np

from stepwell.core.diagnostics import StepwellError


def _metadata(array: np.ndarray) -> str:
    """IREE's tensor metadata (``TENSORv0:{json}``), readable by iree-turbine."""
    d = {"type": "Tensor", "dtype": array.dtype.name, "shape": list(array.shape),
         "dtype_desc": {"class_name": type(array.dtype).__name__,
                        "is_complex": array.dtype.kind == "c",
                        "is_floating_point": array.dtype.kind == "f" or array.dtype.name == "bfloat16",
                        "is_signed": array.dtype.kind in "if" or array.dtype.name == "bfloat16",
                        "itemsize": array.dtype.itemsize}}
    return "TENSORv0:" + json.dumps(d)


def write_parameters(file: str, flat_params, names, types) -> None:
    """Write the archive leaf by leaf from byte views of the arrays: a leaf is copied
    only when it is not a contiguous host array of the declared dtype."""
    import iree.runtime as rt
    index = rt.ParameterIndex()
    for (_, leaf), n, t in zip(flat_params, names, types):
        array = np.asarray(leaf)
        want = t.numpy_dtype()
        if array.dtype != want:
            array = array.astype(want)
        if tuple(array.shape) != tuple(t.shape):
            raise StepwellError(f"export: parameter '{n}' has shape {list(array.shape)}, "
                                f"the module expects {list(t.shape)}")
        array = np.ascontiguousarray(array)
        index.add_buffer(n, array.reshape(-1).view(np.uint8), metadata=_metadata(array))
    index.create_archive_file(file)


def quantized_leaves(plan, flat_params, qopts):
    """The archive's leaves after quantization: the float parameters kept, then each
    quantized weight's arrays (computed here, on the host), with their manifest records."""
    from stepwell.export import quantized as xq
    leaves = [flat_params[j] for j in plan.keep]
    records = [None] * len(plan.keep)
    arrays = {}
    for name, _, w, role in plan.new_params:
        key = (w.source, w.transposed)
        if key not in arrays:
            arrays[key] = w.arrays(flat_params[w.source][1], qopts)
        leaves.append((None, arrays[key][role]))
        records.append(xq.manifest_entry(w, role, qopts))
    return leaves, records
