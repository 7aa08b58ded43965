"""Pytrees without JAX: the structure of inputs and outputs as JSON, and names from paths.

A spec is "*" (a leaf), null (None: no leaves), {"tuple": [...]}, {"list": [...]} or
{"dict": [[key, spec], ...]} with keys in JAX's flattening order (sorted). The manifest
stores them, so a loaded export rebuilds the function's input and output structure with
numpy alone. Parameter names are pytree paths (``params/Dense_0/kernel``).
"""

from __future__ import annotations

import re

from stepwell.core.diagnostics import StepwellError

OPAQUE = object()   # a tree holding nodes other than tuples, lists and string-keyed dicts



def tree_spec(tree, is_leaf):
    """The JSON spec of a pytree of plain containers, or None if it holds other nodes."""
    if tree is None:
        return None
    if is_leaf(tree):
        return "*"
    if isinstance(tree, (tuple, list)) and not hasattr(tree, "_fields"):
        items = [tree_spec(t, is_leaf) for t in tree]
        if any(i is OPAQUE for i in items):
            return OPAQUE
        return {"tuple" if isinstance(tree, tuple) else "list": items}
    if isinstance(tree, dict) or type(tree).__name__ == "FrozenDict":
        try:
            keys = sorted(tree.keys())
        except TypeError:
            return OPAQUE
        if not all(isinstance(k, str) for k in keys):
            return OPAQUE
        items = [[k, tree_spec(tree[k], is_leaf)] for k in keys]
        if any(v is OPAQUE for _, v in items):
            return OPAQUE
        return {"dict": items}
    return OPAQUE


def flatten(spec, value, where="inputs"):
    """Leaves of ``value`` following ``spec``; StepwellError if the structure differs."""
    if spec is None:
        if value is not None:
            raise StepwellError(f"{where}: expected None, got {type(value).__name__}")
        return []
    if spec == "*":
        return [value]
    if "dict" in spec:
        if not isinstance(value, dict) and not hasattr(value, "keys"):
            raise StepwellError(f"{where}: expected a dict with keys "
                                f"{[k for k, _ in spec['dict']]}, got {type(value).__name__}")
        want = [k for k, _ in spec["dict"]]
        if sorted(value.keys()) != want:
            raise StepwellError(f"{where}: expected a dict with keys {want}, got keys "
                                f"{sorted(value.keys())}")
        return [leaf for k, s in spec["dict"] for leaf in flatten(s, value[k], f"{where}[{k!r}]")]
    items = spec.get("tuple", spec.get("list"))
    if not isinstance(value, (tuple, list)) or len(value) != len(items):
        raise StepwellError(f"{where}: expected a sequence of {len(items)}, got "
                            f"{type(value).__name__}"
                            + (f" of {len(value)}" if isinstance(value, (tuple, list)) else ""))
    return [leaf for i, (s, v) in enumerate(zip(items, value))
            for leaf in flatten(s, v, f"{where}[{i}]")]


def unflatten(spec, leaves):
    it = iter(leaves)

    def build(s):
        if s is None:
            return None
        if s == "*":
            return next(it)
        if "dict" in s:
            return {k: build(v) for k, v in s["dict"]}
        if "tuple" in s:
            return tuple(build(v) for v in s["tuple"])
        return [build(v) for v in s["list"]]
    return build(spec)


def is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def json_tree(spec):
    return None if spec is OPAQUE else {"spec": spec}


def _key_part(entry) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def path_name(path, root: str = "") -> str:
    """``(DictKey('params'), DictKey('Dense_0'), DictKey('kernel'))`` -> ``params/Dense_0/kernel``."""
    parts = [root] if root else []
    parts += [_key_part(p) for p in path]
    return "/".join(parts) or "param"


def symbol(name: str, taken: set) -> str:
    base = "param." + (re.sub(r"[^A-Za-z0-9_$.]", "_", name.replace("/", ".")) or "_")
    sym, n = base, 1
    while sym in taken:
        sym, n = f"{base}_{n}", n + 1
    taken.add(sym)
    return sym
