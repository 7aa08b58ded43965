"""A module's tuning tasks: one per distinct tunable dispatch root, each a small module of
its own.

:func:`tasks` lowers the module as ``sw.compile`` would (``compiler.driver.prepare``),
finds the dispatch roots (``compiler.tuning_keys.roots``), and for each distinct key
cuts out a *micro-module*: ``func @main`` holding the root op, the elementwise
producers IREE fuses into it (a weight's dequantization, a widening) and its
elementwise epilogue. Values made outside become the function's arguments, except
stored weights (constants and globals of at least :data:`STORED_MIN` elements), which
become IREE parameters (``#flow.parameter.named<"tune"::"p0">``): IREE packs them once at
load as it packs the real module's weights, so a trial times what the real module runs.
Small constants and zero accumulators (``tensor.empty`` + ``linalg.fill``) are copied.
The micro-module's root has the original's key (tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stepwell.compiler import tuning_keys
from stepwell.core.ir import context, func, ir
from stepwell.core.types import TensorType

__all__ = ["Task", "tasks", "extract", "STORED_MIN"]

STORED_MIN = 1024
_COPIED = ("arith.constant", "tensor.empty", "linalg.fill")
_PRODUCERS = ("linalg.generic", "util.optimization_barrier", "tensor.expand_shape",
              "tensor.collapse_shape", "tensor.cast", "linalg.transpose", "linalg.broadcast")


@dataclass
class Task:
    """One op to tune (picklable: it crosses to compile workers and Ray)."""
    key: str
    kind: str
    describe: str
    signature: dict
    flops: int
    text: str                    # the micro-module (linalg level, untuned)
    args: list                   # [(shape, dtype)] of @main's arguments
    params: list                 # [(name, shape, dtype)] of its parameters
    loops: list = field(default_factory=list)
    roles: dict = field(default_factory=dict)
    count: int = 1               # how many ops of the module share this key


def _is_elementwise(op) -> bool:
    return op.name == "linalg.generic" and "reduction" not in str(op.attributes["iterator_types"])


def _owner(value):
    owner = value.owner
    return None if isinstance(owner, ir.Block) else owner.operation


def _elements(value) -> int:
    t = TensorType.from_mlir(value.type)
    if t is None or None in t.shape:
        return 0
    n = 1
    for d in t.shape:
        n *= d
    return n


def _splat(op) -> bool:
    attr = op.attributes["value"]
    return isinstance(attr, ir.DenseElementsAttr) and attr.is_splat


def _is_stored(value) -> bool:
    """A weight the micro-module reads as a parameter: a global, a large constant, or a
    function argument every call passes a stored weight (``tuning_keys.stored``)."""
    op = _owner(value)
    if op is None:
        return tuning_keys.stored(value)
    if op.name == "util.global.load":
        return True
    return op.name == "arith.constant" and _elements(value) >= STORED_MIN and not _splat(op)


def _collect(root) -> list:
    """The ops of the micro-module, in program order (producers, root, epilogue)."""
    chosen: list = []

    def add(op):
        if not any(op == o for o in chosen):
            chosen.append(op)

    def producers(op, depth) -> bool:
        """Copy the producers of ``op``'s operands that are weight-side (computed from
        stored weights and constants only: a dequantization); True if all of them are."""
        weight_side = True
        for v in op.operands:
            p = _owner(v)
            if p is None:
                weight_side = False
                continue
            if _is_stored(v):
                continue
            if p.name in _COPIED:
                producers(p, 0)
                add(p)
            elif depth > 0 and p.name in _PRODUCERS and (p.name != "linalg.generic" or _is_elementwise(p)) \
                    and producers(p, depth - 1):
                add(p)
            else:
                weight_side = False
        return weight_side

    producers(root, 4)
    add(root)
    value = root.results[0]
    while True:  # the epilogue: the chain of single-use elementwise consumers
        uses = list(value.uses)
        if len(uses) != 1:
            break
        user = getattr(uses[0].owner, "operation", uses[0].owner)
        if not _is_elementwise(user):
            break
        producers(user, 0)
        add(user)
        value = user.results[0]
    order = [o.operation for o in root.block.operations]  # the module's order
    return sorted(chosen, key=lambda op: next(i for i, o in enumerate(order) if o == op))


def _top_level(value, block) -> bool:
    """Whether ``value`` is defined in ``block`` itself (a function-level value)."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return owner == block
    return owner.operation.block == block


def _ops_and_uses(op):
    """``op`` and its nested ops (the operands a clone must have remapped)."""
    from stepwell.core.verifier import walk
    return [op, *walk(op)]


def extract(root) -> tuple[str, list, list]:
    """(micro-module text, argument specs, parameter specs) around a root op."""
    ops = _collect(root.op)
    block = root.op.block
    for op in list(ops):  # scalars the bodies capture from the function (relu's zero)
        for inner in _ops_and_uses(op)[1:]:
            for v in inner.operands:
                p = _owner(v)
                if p is not None and p.name == "arith.constant" and _top_level(v, block) \
                        and not any(p == o for o in ops):
                    ops.append(p)
    order = [o.operation for o in block.operations]
    ops.sort(key=lambda op: next(i for i, o in enumerate(order) if o == op))
    outside: list = []       # values that become arguments or parameters, in first-use order
    for op in ops:
        for inner in _ops_and_uses(op):
            for v in inner.operands:
                p = _owner(v)
                if not _top_level(v, block) or (p is not None and any(p == o for o in ops)):
                    continue
                if not any(v == o for o in outside):
                    outside.append(v)
    stored = [v for v in outside if _is_stored(v)]
    args = [v for v in outside if not _is_stored(v)]
    last = ops[-1].results[0]
    with context(), ir.Location.unknown():
        module = ir.Module.create()
        params = []
        with ir.InsertionPoint(module.body):
            for i, v in enumerate(stored):
                name = f"p{i}"
                params.append((name, TensorType.from_mlir(v.type)))
                ir.Operation.create("util.global", attributes={
                    "sym_name": ir.StringAttr.get(name), "sym_visibility": ir.StringAttr.get("private"),
                    "type": ir.TypeAttr.get(v.type),
                    "initial_value": ir.Attribute.parse(f'#flow.parameter.named<"tune"::"{name}"> : {v.type}')})
            fn = func.FuncOp("main", ir.FunctionType.get([v.type for v in args], [last.type]))
            entry = fn.add_entry_block()
        mapping = list(zip(args, entry.arguments))
        with ir.InsertionPoint(entry):
            for (name, _), v in zip(params, stored):
                load = ir.Operation.create("util.global.load", results=[v.type], attributes={
                    "global": ir.FlatSymbolRefAttr.get(name)})
                mapping.append((v, load.results[0]))
            for op in ops:
                clone = op.clone()
                for old, new in zip(_ops_and_uses(op), _ops_and_uses(clone)):
                    for i, v in enumerate(old.operands):
                        mapped = next((n for o, n in mapping if o == v), None)
                        if mapped is not None:
                            new.operands[i] = mapped
                mapping += list(zip(op.results, clone.results))
            func.ReturnOp([next(n for o, n in mapping if o == last)])
        text = str(module)
    arg_specs = [(list(TensorType.from_mlir(v.type).shape), TensorType.from_mlir(v.type).dtype) for v in args]
    param_specs = [(name, list(t.shape), t.dtype) for name, t in params]
    return text, arg_specs, param_specs


def tasks(module, target, *, precision=None) -> tuple[list[Task], list]:
    """(tasks, untunable roots) of ``module`` (any stage ``sw.compile`` takes) on ``target``,
    tasks largest first (FLOPs x how often the op occurs)."""
    from stepwell.compiler import driver
    prepared = driver.prepare(module, "auto", precision, target)
    found: dict[str, Task] = {}
    untunable = []
    for root in tuning_keys.roots(prepared):
        if not root.tunable:
            untunable.append(root)
            continue
        if root.key in found:
            found[root.key].count += 1
            continue
        text, args, params = extract(root)
        found[root.key] = Task(root.key, root.kind, root.describe(), root.signature, root.flops, text,
                               args, params, list(root.loops), dict(root.roles))
    return sorted(found.values(), key=lambda t: -t.flops * t.count), untunable

