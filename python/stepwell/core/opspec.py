"""The op-spec framework: one declarative spec per custom op, one registry.

An ``nn``/``prim`` op is an unregistered MLIR op in generic form. Its :class:`OpSpec`
is the single source of its meaning: operands (optional and variadic ones),
attributes with their MLIR kind and default, result-type inference (which is also
the verifier: it raises :func:`fail` with what was expected against what was found),
a typed builder and numpy reference semantics. The verifier pass, the builders
(``sw.nn.matmul``), ``stepwell-opt --show-dialects`` and the per-op tests are all
derived from the registry.

Spec functions see a :class:`Sig`: operands as :class:`~stepwell.types.TensorType`
(``None`` for a missing optional one, a list for a variadic one), attributes as
Python values with defaults applied, and the declared result types.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from stepwell.core import hooks
from stepwell.core.ir import ir, context
from stepwell.core.types import TensorType, dtype_of

REQUIRED = object()


class SpecFailure(Exception):
    """Raised by spec functions; the verifier turns it into a located diagnostic."""


def fail(message: str):
    raise SpecFailure(message)


def check(cond, message: str) -> None:
    if not cond:
        raise SpecFailure(message)


@dataclass(frozen=True)
class Operand:
    name: str
    doc: str = ""
    optional: bool = False
    variadic: bool = False
    index: bool = False  # ``index`` scalars (run-time sizes), not tensors


class _Index:
    """What a spec function sees for an ``index`` operand (a run-time size)."""

    def __repr__(self) -> str:
        return "index"


INDEX = _Index()


# Attribute kinds and their MLIR spelling (DESIGN.md attribute conventions).
ATTR_KINDS = {
    "i64": "i64 integer",
    "f32": "f32 float",
    "bool": "bool (true/false)",
    "str": "string",
    "i64s": "array<i64: ...>",
}


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str | tuple  # one of ATTR_KINDS, or a tuple of them (a union)
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple = ()

    @property
    def kinds(self) -> tuple:
        return self.kind if isinstance(self.kind, tuple) else (self.kind,)

    def describe(self) -> str:
        kinds = " | ".join(ATTR_KINDS[k] for k in self.kinds)
        if self.choices:
            kinds += " in {" + ", ".join(map(str, self.choices)) + "}"
        return kinds


def attr_to_python(attr: ir.Attribute):
    """(kind, value) of an MLIR attribute, or (None, text) if no spec kind fits."""
    if isinstance(attr, ir.BoolAttr):
        return "bool", attr.value
    if isinstance(attr, ir.IntegerAttr):
        ia = attr
        return ("i64" if str(ia.type) == "i64" else None), ia.value
    if isinstance(attr, ir.FloatAttr):
        fa = attr
        return ("f32" if str(fa.type) == "f32" else None), fa.value
    if isinstance(attr, ir.StringAttr):
        return "str", attr.value
    if isinstance(attr, ir.DenseI64ArrayAttr):
        return "i64s", [int(v) for v in attr]
    return None, str(attr)


def python_to_attr(kind: str, value) -> ir.Attribute:
    ctx = context()
    if kind == "bool":
        return ir.BoolAttr.get(bool(value), ctx)
    if kind == "i64":
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64, ctx), int(value))
    if kind == "f32":
        return ir.FloatAttr.get(ir.F32Type.get(ctx), float(value))
    if kind == "str":
        return ir.StringAttr.get(str(value), ctx)
    if kind == "i64s":
        return ir.DenseI64ArrayAttr.get([int(v) for v in value], ctx)
    raise ValueError(f"unknown attribute kind {kind}")


def _kind_of_python(value, kinds: tuple) -> str:
    """The attribute kind a Python value is built as, for builders."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "i64s"
    if isinstance(value, (int, np.integer)):
        return "i64" if "i64" in kinds or "f32" not in kinds else "f32"
    if isinstance(value, (float, np.floating)):
        return "f32"
    return kinds[0]


class Sig:
    """What spec functions see: operand types, attribute values, result types."""

    def __init__(self, spec: "OpSpec", operands: list, attrs: dict, results: list):
        self.op_spec = spec
        self.operands = operands
        self.attrs = attrs
        self.results = results
        self._by_name = dict(zip((o.name for o in spec.operands), _by_operand(spec, operands)))
        self._by_name.update(attrs)

    def __getattr__(self, name):
        try:
            return self.__dict__["_by_name"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def result(self) -> TensorType:
        check(len(self.results) == 1, f"expected 1 result, found {len(self.results)}")
        return self.results[0]


@dataclass
class OpSpec:
    name: str
    summary: str
    operands: tuple = ()
    attrs: tuple = ()
    infer: Callable[[Sig], Any] | None = None
    reference: Callable | None = None
    result_from_type: bool = False  # the result type is an input (reshape, cast)
    num_results: int = 1
    examples: list = field(default_factory=list)  # (operand types, attrs, results) samples

    @property
    def dialect(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def mnemonic(self) -> str:
        return self.name.split(".", 1)[1]

    def attr(self, name: str) -> Attr | None:
        return next((a for a in self.attrs if a.name == name), None)

    def operand_range(self) -> tuple[int, int | None]:
        required = sum(1 for o in self.operands if not o.optional and not o.variadic)
        if any(o.variadic for o in self.operands):
            return required, None
        return required, required + sum(1 for o in self.operands if o.optional)

    # -- inference / verification on plain Python values -------------------
    def bind(self, operands: list, attrs: dict, results: list | None = None) -> Sig:
        """Check operand count and attributes; returns the Sig (defaults applied)."""
        lo, hi = self.operand_range()
        n = len(operands)
        if n < lo or (hi is not None and n > hi):
            want = str(lo) if hi == lo else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            fail(f"expects {want} operands, found {n}")
        self._check_kinds(operands)
        values = {}
        for a in self.attrs:
            if a.name in attrs:
                v = attrs[a.name]
                if a.choices and v not in a.choices:
                    fail(f"attribute '{a.name}' must be one of "
                         f"{', '.join(map(repr, a.choices))}, found {v!r}")
                values[a.name] = v
            elif a.default is REQUIRED:
                fail(f"requires attribute '{a.name}' ({a.describe()})")
            else:
                values[a.name] = a.default
        return Sig(self, list(operands), values, list(results or []))

    def _check_kinds(self, operands: list) -> None:
        """Tensors where the spec has tensor operands, ``INDEX`` where it has index ones."""
        spec_ops = [o for o in self.operands]
        pos = 0
        for o in spec_ops:
            group = operands[pos:] if o.variadic else operands[pos:pos + 1]
            for t in group:
                if (t is INDEX) != o.index:
                    fail(f"operand '{o.name}' must be "
                         f"{'index' if o.index else 'a ranked tensor'}, found {t}")
            pos = len(operands) if o.variadic else pos + 1

    def infer_results(self, sig: Sig) -> list[TensorType]:
        out = self.infer(sig) if self.infer else sig.results
        if isinstance(out, TensorType):
            out = [out]
        return list(out)

    # -- numpy reference semantics ------------------------------------------
    def evaluate(self, arrays: list, attrs: dict | None = None, results: list | None = None):
        """Run the reference semantics on numpy arrays (operand order; ``None`` for a
        left-out optional operand); returns a list of arrays."""
        present = [a if isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                   and self._index_at(i) else np.asarray(a)
                   for i, a in enumerate(x for x in arrays if x is not None)]
        types = [INDEX if not isinstance(a, np.ndarray) else TensorType(tuple(a.shape), dtype_of(a.dtype))
                 for a in present]
        sig = self.bind(types, dict(attrs or {}), results)
        if results is None:
            sig.results = self.infer_results(sig)
        out = self.reference(sig, *_by_operand(self, present))
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        return [np.asarray(o).astype(t.numpy_dtype()) for o, t in zip(outs, sig.results)]

    def _index_at(self, i: int) -> bool:
        """Whether the ``i``-th present operand falls on an ``index`` operand."""
        pos = 0
        for o in self.operands:
            if o.variadic or pos == i:
                return o.index
            pos += 1
        return False

    # -- builder --------------------------------------------------------------
    def build(self, *operands, result_type=None, loc=None, **attrs):
        """Create the op at the current insertion point with its inferred result type."""
        values = _flatten_operands(operands)
        types = [INDEX if isinstance(v.type, ir.IndexType) else TensorType.from_mlir(v.type)
                 for v in values]
        for a in attrs:
            if self.attr(a) is None:
                raise TypeError(f"{self.name} has no attribute '{a}'")
        attrs = {k: v for k, v in attrs.items() if v is not None}  # None: left out (default)
        for name, value in attrs.items():
            spec_attr = self.attr(name)
            if _kind_of_python(value, spec_attr.kinds) not in spec_attr.kinds:
                raise TypeError(f"'{self.name}' attribute '{name}' must be {spec_attr.describe()}, "
                                f"found {value!r}")
        results = None
        if result_type is not None:
            results = [result_type if isinstance(result_type, TensorType)
                       else TensorType.from_mlir(result_type)]
        try:
            sig = self.bind(types, attrs, results)
            out_types = self.infer_results(sig)
        except SpecFailure as e:
            raise TypeError(f"'{self.name}' {e}") from None
        attributes = {}
        for name, value in attrs.items():
            kind = _kind_of_python(value, self.attr(name).kinds)
            attributes[name] = python_to_attr(kind, value)
        loc = loc or (ir.Location.current if _has_current_location() else ir.Location.unknown(context()))
        op = ir.Operation.create(self.name, results=[t.to_mlir() for t in out_types],
                                 operands=values, attributes=attributes, loc=loc)
        return op.results[0] if len(op.results) == 1 else tuple(op.results)


def _has_current_location() -> bool:
    try:
        ir.Location.current
        return True
    except ValueError:
        return False


def _flatten_operands(operands):
    flat = []
    for o in operands:
        if isinstance(o, (list, tuple)):
            flat.extend(o)
        elif o is not None:
            flat.append(o)
    return flat


def _by_operand(spec: OpSpec, arrays: list) -> list:
    """Values grouped per declared operand: None for a missing optional one, a list for a
    variadic one. Required operands are always bound; the values beyond them go to the
    optional operands in order, so an optional operand may sit between required ones
    (``nn.moe_ffn(x, weights, ids, w_gate, w_up?, w_down)``)."""
    required = sum(1 for o in spec.operands if not o.optional and not o.variadic)
    spare = len(arrays) - required  # values for the optional operands
    out, pos = [], 0
    for operand in spec.operands:
        if operand.variadic:
            out.append(list(arrays[pos:]))
            pos = len(arrays)
        elif operand.optional and spare <= 0:
            out.append(None)
        elif pos < len(arrays):
            out.append(arrays[pos])
            pos += 1
            spare -= operand.optional
        else:
            out.append(None)
    return out


# ---------------------------------------------------------------------------
# The registry: one per concept (here: ops), keyed by op name.
# ---------------------------------------------------------------------------
REGISTRY: dict[str, OpSpec] = {}
DIALECTS = ("nn", "prim")


def op(name: str, summary: str, *, operands=(), attrs=(), infer=None, reference=None,
       result_from_type: bool = False, num_results: int = 1) -> OpSpec:
    """Define and register an op spec."""
    if name in REGISTRY:
        raise ValueError(f"op '{name}' is defined twice")
    ops = tuple(Operand(o) if isinstance(o, str) else o for o in operands)
    spec = OpSpec(name, summary, ops, tuple(attrs), infer, reference, result_from_type, num_results)
    REGISTRY[name] = spec
    return spec


_LOADED = False


def load_dialects() -> None:
    """Import the dialects that define the ops (once), through the ``dialects`` hook."""
    global _LOADED
    if not _LOADED:
        hooks.get("dialects")()
        _LOADED = True


def lookup(name: str) -> OpSpec | None:
    load_dialects()
    return REGISTRY.get(name)


def suggest(name: str) -> str:
    load_dialects()
    close = difflib.get_close_matches(name, REGISTRY.keys(), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def is_custom(name: str) -> bool:
    return name.split(".", 1)[0] in DIALECTS


def specs(dialect: str | None = None) -> list[OpSpec]:
    load_dialects()
    return [s for n, s in sorted(REGISTRY.items()) if dialect is None or s.dialect == dialect]


class Builders:
    """``sw.nn`` / ``sw.prim``: one typed builder function per op of a dialect."""

    def __init__(self, dialect: str):
        self._dialect = dialect

    def __getattr__(self, mnemonic: str):
        if mnemonic.startswith("_"):
            raise AttributeError(mnemonic)
        spec = lookup(f"{self._dialect}.{mnemonic}")
        if spec is None:
            raise AttributeError(f"no op '{self._dialect}.{mnemonic}'{suggest(f'{self._dialect}.{mnemonic}')}")
        return spec.build

    def __dir__(self):
        return [s.mnemonic for s in specs(self._dialect)]
