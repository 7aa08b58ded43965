"""Meshes and partition specs, written as builtin MLIR attributes (docs/distributed.md).

The pip MLIR bindings cannot register attributes, so shardings are builtin ones::

    module attributes {nn.mesh = {axes = ["data", "model"], shape = array<i64: 2, 2>}} {
      func.func @main(%x: tensor<8x16xf32> {nn.sharding = ["data", unit]},
                      %w: tensor<16x64xf32> {nn.sharding = [unit, "model"]})
          -> (tensor<8x64xf32> {nn.sharding = ["data", "model"]}) {
        %0 = "nn.linear"(%x, %w) {nn.sharding = ["data", "model"]} : ...

``nn.mesh`` (on the module) names the axes, major to minor, and their sizes; device
``d`` of the ``prod(shape)`` devices has the row-major coordinates of ``d``.
``nn.sharding`` is a partition spec spelled like JAX's ``PartitionSpec``: one entry
per dimension, a mesh axis name (``"model"``), a tuple of names (``["data",
"model"]``, major to minor), or ``unit`` (None: replicated; ``[]`` means the same).
It sits on a function argument or result (in its attribute dictionary) or on an op
with one result. ``nn.unreduced = ["model"]`` marks a result that is a partial sum
over those axes (written by ``nn-partition``'s propagation).

In Python a spec is a tuple with one tuple of axis names per dimension (``()``:
replicated); :func:`normalize` accepts JAX's spelling (``P("data", None)``).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from stepwell.core.ir import context, ir

MESH = "nn.mesh"
SHARDING = "nn.sharding"
UNREDUCED = "nn.unreduced"
PARTITIONED = "nn.partitioned"  # unit attribute: the module was expanded per device

Spec = tuple  # tuple[tuple[str, ...], ...]: the mesh axes of each dimension


class ShardingError(ValueError):
    """A malformed mesh or spec, or one that does not fit its value."""


@dataclass(frozen=True)
class Mesh:
    """Named axes (major to minor) and their sizes; ``size`` devices, row-major."""
    axes: tuple
    shape: tuple

    def __post_init__(self):
        if len(self.axes) != len(self.shape) or not self.axes:
            raise ShardingError(f"a mesh needs as many sizes as axes, found axes {list(self.axes)} "
                                f"and sizes {list(self.shape)}")
        if len(set(self.axes)) != len(self.axes):
            raise ShardingError(f"mesh axis names must differ, found {list(self.axes)}")
        for a, n in zip(self.axes, self.shape):
            if not isinstance(a, str) or not a:
                raise ShardingError(f"mesh axis names must be non-empty strings, found {a!r}")
            if not isinstance(n, int) or n < 1:
                raise ShardingError(f"mesh axis '{a}' must have a positive size, found {n!r}")

    @classmethod
    def of(cls, mesh) -> "Mesh":
        """A :class:`Mesh` from one, a ``{"axis": size}`` dict (in order), ``[(axis,
        size), ...]``, or a ``jax.sharding.Mesh`` (its axis names and shape)."""
        if isinstance(mesh, Mesh):
            return mesh
        if hasattr(mesh, "axis_names") and hasattr(mesh, "devices"):
            return cls(tuple(mesh.axis_names), tuple(int(n) for n in mesh.devices.shape))
        items = list(mesh.items()) if isinstance(mesh, dict) else list(mesh)
        try:
            return cls(tuple(a for a, _ in items), tuple(operator.index(n) for _, n in items))
        except (TypeError, ValueError) as e:
            raise ShardingError(f"a mesh is {{axis: size, ...}}, not {mesh!r} ({e})") from None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def axis_size(self, axis: str) -> int:
        return self.shape[self.axes.index(axis)]

    def coords(self, device: int) -> dict:
        """``{axis: coordinate}`` of a device (row-major over the axes)."""
        out = {}
        for a, n in zip(reversed(self.axes), reversed(self.shape)):
            out[a] = device % n
            device //= n
        return {a: out[a] for a in self.axes}

    def device(self, coords: dict) -> int:
        d = 0
        for a, n in zip(self.axes, self.shape):
            d = d * n + coords[a]
        return d

    def group(self, device: int, axes) -> list[int]:
        """The devices that differ from ``device`` only along ``axes``, in order of
        their linear index over ``axes`` (major to minor)."""
        c = self.coords(device)
        out = []
        for i in range(math.prod(self.axis_size(a) for a in axes)):
            cc = dict(c)
            for a in reversed(axes):
                cc[a] = i % self.axis_size(a)
                i //= self.axis_size(a)
            out.append(self.device(cc))
        return out

    def block(self, device: int, axes) -> int:
        """Which block (of ``prod(sizes of axes)``) of a dimension sharded over ``axes``
        the device holds."""
        c, i = self.coords(device), 0
        for a in axes:
            i = i * self.axis_size(a) + c[a]
        return i

    def parts(self, axes) -> int:
        return math.prod(self.axis_size(a) for a in axes)

    def to_attr(self) -> ir.Attribute:
        ctx = context()
        return ir.DictAttr.get({
            "axes": ir.ArrayAttr.get([ir.StringAttr.get(a, ctx) for a in self.axes], ctx),
            "shape": ir.DenseI64ArrayAttr.get(list(self.shape), ctx)}, ctx)

    @classmethod
    def from_attr(cls, attr) -> "Mesh":
        form = 'nn.mesh must be {axes = ["a", ...], shape = array<i64: n, ...>}'
        if not isinstance(attr, ir.DictAttr) or "axes" not in attr or "shape" not in attr:
            raise ShardingError(f"{form}, found {attr}")
        axes, shape = attr["axes"], attr["shape"]
        if not isinstance(axes, ir.ArrayAttr) or not all(isinstance(a, ir.StringAttr) for a in axes) \
                or not isinstance(shape, ir.DenseI64ArrayAttr):
            raise ShardingError(f"{form}, found {attr}")
        return cls(tuple(ir.StringAttr(a).value for a in axes), tuple(int(n) for n in shape))

    def __str__(self) -> str:
        return "{" + ", ".join(f"{a}={n}" for a, n in zip(self.axes, self.shape)) + "}"


# -- specs ---------------------------------------------------------------------------------
def normalize(spec, rank: int | None = None) -> Spec:
    """A spec from JAX's spelling: per dimension None, an axis name or a tuple of them
    (a ``PartitionSpec`` may be shorter than the rank: the rest is replicated)."""
    if spec is None:
        spec = ()
    if isinstance(spec, str):
        raise ShardingError(f"a spec has one entry per dimension, e.g. P({spec!r}, None), "
                            f"not the string {spec!r}")
    dims = []
    for entry in spec:
        if entry is None:
            dims.append(())
        elif isinstance(entry, str):
            dims.append((entry,))
        elif isinstance(entry, (tuple, list)) and all(isinstance(a, str) for a in entry):
            dims.append(tuple(entry))
        else:
            raise ShardingError(f"a spec entry is an axis name, a tuple of names or None, "
                                f"found {entry!r}")
    if rank is not None:
        if len(dims) > rank:
            raise ShardingError(f"spec {show(tuple(dims))} has {len(dims)} entries for a "
                                f"value of rank {rank}")
        dims += [()] * (rank - len(dims))
    return tuple(dims)


def replicated(rank: int) -> Spec:
    return ((),) * rank


def show(spec: Spec) -> str:
    """JAX's spelling: ``P('data', None)``."""
    def entry(axes):
        if not axes:
            return "None"
        return repr(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(repr, axes)) + ")"
    return "P(" + ", ".join(entry(a) for a in spec) + ")"


def spec_to_attr(spec: Spec) -> ir.Attribute:
    ctx = context()

    def entry(axes):
        if not axes:
            return ir.UnitAttr.get(ctx)
        if len(axes) == 1:
            return ir.StringAttr.get(axes[0], ctx)
        return ir.ArrayAttr.get([ir.StringAttr.get(a, ctx) for a in axes], ctx)
    return ir.ArrayAttr.get([entry(a) for a in spec], ctx)


def spec_from_attr(attr) -> Spec:
    form = ('nn.sharding must be an array with one entry per dimension: "axis", '
            '["axis", ...] or unit')
    if not isinstance(attr, ir.ArrayAttr):
        raise ShardingError(f"{form}, found {attr}")
    dims = []
    for e in attr:
        if isinstance(e, ir.UnitAttr):
            dims.append(())
        elif isinstance(e, ir.StringAttr):
            dims.append((ir.StringAttr(e).value,))
        elif isinstance(e, ir.ArrayAttr) and all(isinstance(a, ir.StringAttr) for a in e):
            dims.append(tuple(ir.StringAttr(a).value for a in e))
        else:
            raise ShardingError(f"{form}, found {attr}")
    return tuple(dims)


def axes_to_attr(axes) -> ir.Attribute:
    return ir.ArrayAttr.get([ir.StringAttr.get(a, context()) for a in axes], context())


def axes_from_attr(attr) -> tuple:
    return tuple(ir.StringAttr(a).value for a in ir.ArrayAttr(attr))


def check(spec: Spec, shape, mesh: Mesh | None) -> None:
    """Raise :class:`ShardingError` when ``spec`` does not fit ``shape`` on ``mesh``."""
    if len(spec) != len(shape):
        raise ShardingError(f"spec {show(spec)} has {len(spec)} entries for a value of rank "
                            f"{len(shape)}")
    used = [a for axes in spec for a in axes]
    dup = sorted({a for a in used if used.count(a) > 1})
    if dup:
        raise ShardingError(f"spec {show(spec)} uses mesh axis '{dup[0]}' twice")
    if mesh is None:  # (checked against the mesh once there is one: sw.compile(mesh=...))
        return
    for a in used:
        if a not in mesh.axes:
            import difflib
            close = difflib.get_close_matches(a, mesh.axes, n=1, cutoff=0.5)
            raise ShardingError(f"spec {show(spec)} names axis '{a}', which mesh {mesh} does "
                                f"not have" + (f"; did you mean '{close[0]}'?" if close else ""))
    for i, (axes, n) in enumerate(zip(spec, shape)):
        parts = mesh.parts(axes)
        if axes and (n is None or n % parts):
            raise ShardingError(f"spec {show(spec)} splits dimension {i} (size {n}) into "
                                f"{parts} parts over {'x'.join(axes)}: {parts} does not divide {n}")


def local_shape(shape, spec: Spec, mesh: Mesh) -> tuple:
    return tuple(n // mesh.parts(axes) for n, axes in zip(shape, spec))


def shard_index(shape, spec: Spec, mesh: Mesh, device: int) -> tuple:
    """The slices of a global array that ``device`` holds."""
    out = []
    for n, axes in zip(shape, spec):
        k = n // mesh.parts(axes)
        b = mesh.block(device, axes)
        out.append(slice(b * k, (b + 1) * k))
    return tuple(out)


# -- where specs live in the IR --------------------------------------------------------------
def mesh_of(module_op) -> Mesh | None:
    attrs = module_op.attributes
    return Mesh.from_attr(attrs[MESH]) if MESH in attrs else None


def set_mesh(module_op, mesh) -> None:
    module_op.attributes[MESH] = Mesh.of(mesh).to_attr()


def _arg_dicts(func_op, key: str, count: int) -> list[dict]:
    attrs = func_op.attributes
    if key not in attrs:
        return [{} for _ in range(count)]
    return [{n.name: n.attr for n in ir.DictAttr(d)} for d in ir.ArrayAttr(attrs[key])]


def _set_arg_attr(func_op, key: str, count: int, index: int, name: str, value) -> None:
    dicts = _arg_dicts(func_op, key, count)
    if value is None:
        dicts[index].pop(name, None)
    else:
        dicts[index][name] = value
    ctx = context()
    func_op.attributes[key] = ir.ArrayAttr.get([ir.DictAttr.get(d, ctx) for d in dicts], ctx)


def arg_spec(func_op, index: int):
    """The spec attribute of a function argument (or None)."""
    n = len(func_op.regions[0].blocks[0].arguments)
    return _arg_dicts(func_op, "arg_attrs", n)[index].get(SHARDING)


def result_spec(func_op, index: int):
    n = len(ir.FunctionType(ir.TypeAttr(func_op.attributes["function_type"]).value).results)
    return _arg_dicts(func_op, "res_attrs", n)[index].get(SHARDING)


def set_arg_spec(func_op, index: int, spec: Spec | None) -> None:
    n = len(func_op.regions[0].blocks[0].arguments)
    _set_arg_attr(func_op, "arg_attrs", n, index, SHARDING,
                  None if spec is None else spec_to_attr(spec))


def set_result_spec(func_op, index: int, spec: Spec | None) -> None:
    n = len(ir.FunctionType(ir.TypeAttr(func_op.attributes["function_type"]).value).results)
    _set_arg_attr(func_op, "res_attrs", n, index, SHARDING,
                  None if spec is None else spec_to_attr(spec))


def value_spec_attr(value):
    """The spec attribute a value carries (function argument or op result), or None."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return arg_spec(owner.owner, value.arg_number)
    op = owner.operation
    return op.attributes[SHARDING] if SHARDING in op.attributes else None


def annotate(value, spec) -> None:
    """Put ``spec`` (JAX spelling accepted) on ``value``: the argument's attribute
    dictionary, or its defining op (which must have one result)."""
    shape = ir.RankedTensorType(value.type).shape
    spec = normalize(spec, len(shape))
    owner = value.owner
    if isinstance(owner, ir.Block):
        set_arg_spec(owner.owner, value.arg_number, spec)
        return
    op = owner.operation
    if len(op.results) != 1:
        raise ShardingError(f"cannot annotate a result of '{op.name}', which has "
                            f"{len(op.results)} results")
    op.attributes[SHARDING] = spec_to_attr(spec)


# -- verification ------------------------------------------------------------------------
def diagnose(module_op, display_name: str | None = None) -> list:
    """Located diagnostics for every malformed mesh or spec in the module."""
    from stepwell.core.diagnostics import at
    diags = []
    try:
        mesh = mesh_of(module_op)
    except ShardingError as e:
        return [at(module_op.location, str(e), display_name=display_name)]

    def check_attr(attr, type_, loc, what):
        try:
            t = ir.RankedTensorType(type_)
        except ValueError:
            diags.append(at(loc, f"{what}: {SHARDING} needs a ranked tensor, found {type_}",
                            display_name=display_name))
            return
        try:
            check(spec_from_attr(attr), [None if t.is_dynamic_dim(i) else t.shape[i]
                                         for i in range(t.rank)], mesh)
        except ShardingError as e:
            diags.append(at(loc, f"{what}: {e}", display_name=display_name))

    def walk(op):
        for region in op.regions:
            for block in region.blocks:
                for inner in block.operations:
                    inner = inner.operation
                    visit(inner)
                    walk(inner)

    def visit(op):
        attrs = op.attributes
        if op.name == "func.func" and op.regions and op.regions[0].blocks:
            args = op.regions[0].blocks[0].arguments
            for i, d in enumerate(_arg_dicts(op, "arg_attrs", len(args))):
                if SHARDING in d:
                    check_attr(d[SHARDING], args[i].type, args[i].location, f"argument #{i}")
            results = ir.FunctionType(ir.TypeAttr(attrs["function_type"]).value).results
            for i, d in enumerate(_arg_dicts(op, "res_attrs", len(results))):
                if SHARDING in d:
                    check_attr(d[SHARDING], results[i], op.location, f"result #{i}")
        if SHARDING in attrs:
            if len(op.results) != 1:
                diags.append(at(op.location, f"'{op.name}' {SHARDING} needs an op with one "
                                f"result, found {len(op.results)}", display_name=display_name))
            else:
                check_attr(attrs[SHARDING], op.results[0].type, op.location, f"'{op.name}'")
        if UNREDUCED in attrs:
            try:
                axes = axes_from_attr(attrs[UNREDUCED])
            except (ValueError, TypeError):
                axes = None
            if axes is None:
                diags.append(at(op.location, f"'{op.name}' {UNREDUCED} must be an array of "
                                f"mesh axis names, found {attrs[UNREDUCED]}", display_name=display_name))
            elif any(mesh is None or a not in mesh.axes for a in axes):
                bad = next(a for a in axes if mesh is None or a not in mesh.axes)
                why = "but the module has no mesh" if mesh is None else f"which mesh {mesh} does not have"
                diags.append(at(op.location, f"'{op.name}' {UNREDUCED} names axis '{bad}', {why}",
                                display_name=display_name))
    walk(module_op)
    return diags


def has_shardings(module_op) -> bool:
    """Whether the module holds a mesh (quick test before :func:`diagnose`)."""
    return MESH in module_op.attributes
