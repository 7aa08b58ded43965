"""The expansion step of ``nn-partition``: one function over N devices.

Input: a function whose values are all annotated (the propagation step). Output: the
function with every argument and result split into N local shards (argument ``i`` of
device ``d`` is argument ``i * N + d``, placed by ``iree.abi.affinity =
#hal.device.promise<@dD>``), runs of device-independent ops outlined into private
SPMD functions at local shapes (called once per device), and each ``nn.reshard``
written as transfers plus adds, concats or slices. The new function's
``iree.reflection`` carries ``stepwell.sharding``: the mesh and each input's and
output's global type and spec, as JSON, which the runtime reads to split and join.
"""

from __future__ import annotations

import json

from stepwell.core import sharding as sh
from stepwell.core.ir import arith, ir, tensor
from stepwell.core.opspec import lookup
from stepwell.core.types import TensorType
from stepwell.dialects.prim_builder import PrimBuilder

REFLECTION_KEY = "stepwell.sharding"


def device_symbol(d: int) -> str:
    return f"d{d}"


def _affinity(d: int):
    return ir.Attribute.parse(f"#hal.device.promise<@{device_symbol(d)}>")


def _spec(value):
    """(spec, unreduced axes) of an annotated value; None for a non-tensor."""
    t = TensorType.from_mlir(value.type)
    if t is None:
        return None, ()
    attr = sh.value_spec_attr(value)
    spec = sh.spec_from_attr(attr) if attr is not None else sh.replicated(t.rank)
    owner = value.owner
    unreduced = ()
    if not isinstance(owner, ir.Block) and sh.UNREDUCED in owner.operation.attributes:
        unreduced = sh.axes_from_attr(owner.operation.attributes[sh.UNREDUCED])
    return spec, unreduced


def _add(a, b):
    """a + b on tensors (arith: IREE takes it as it is, nothing to lower)."""
    float_ = isinstance(ir.RankedTensorType(a.type).element_type, (ir.F16Type, ir.F32Type, ir.F64Type,
                                                                      ir.BF16Type))
    return (arith.AddFOp if float_ else arith.AddIOp)(a, b).result


def uses(op) -> list:
    """The values ``op`` reads: its operands, then values from outside that its regions
    read (a ``stablehlo.while`` body may use them directly)."""
    out = list(op.operands)
    inner = set()
    for region in op.regions:
        for block in region.blocks:
            inner.update(block.arguments)
            for nested in _walk(block):
                inner.update(nested.results)
    for region in op.regions:
        for block in region.blocks:
            for nested in _walk(block):
                out += [v for v in nested.operands if v not in inner and v not in out]
    return out


def _walk(block):
    for op in block.operations:
        op = op.operation
        yield op
        for region in op.regions:
            for inner in region.blocks:
                yield from _walk(inner)


def clone_into(op, mapping: dict):
    """``op`` cloned at the current insertion point with its operands, and the outside
    values its regions read, replaced through ``mapping``; its results are mapped."""
    new = op.clone()
    for i, v in enumerate(op.operands):
        new.operands[i] = mapping[v]
    for region in new.regions:
        for block in region.blocks:
            for nested in _walk(block):
                for i, v in enumerate(nested.operands):
                    if v in mapping:
                        nested.operands[i] = mapping[v]
    mapping.update(zip(op.results, new.results))
    return new


def _is_collective(op) -> bool:
    """Ops emitted per device in the outer function, not in an SPMD body."""
    return op.name in ("nn.reshard", "func.return")


def _vocab_sharded(op) -> bool:
    """An embedding of a table split by rows: its first row differs per device."""
    return op.name == "nn.embedding" and bool(_spec(op.operands[0])[0][0])


class _Expander:
    def __init__(self, module, fn, mesh, barrier: bool):
        self.module, self.fn, self.mesh, self.barrier = module, fn, mesh, barrier
        self.n = mesh.size
        self.name = ir.StringAttr(fn.attributes["sym_name"]).value
        self.vals = {}        # original value -> its N per-device values
        self.bodies = 0
        self.barriers = {}    # per-device value -> its barrier

    def local_type(self, value):
        t = TensorType.from_mlir(value.type)
        if t is None:
            return value.type
        spec, _ = _spec(value)
        return t.with_shape(sh.local_shape(t.shape, spec, self.mesh)).to_mlir()

    # -- the new function ---------------------------------------------------------------
    def run(self) -> None:
        fn, n = self.fn, self.n
        block = fn.regions[0].blocks[0]
        ret = block.operations[len(block.operations) - 1].operation
        args, results = list(block.arguments), list(ret.operands)
        in_types = [self.local_type(a) for a in args for _ in range(n)]
        out_types = [self.local_type(r) for r in results for _ in range(n)]
        meta = {"mesh": {"axes": list(self.mesh.axes), "shape": list(self.mesh.shape)},
                "inputs": [self.io(a, sh.arg_spec(fn, i)) for i, a in enumerate(args)],
                "outputs": [self.io(r, sh.result_spec(fn, i)) for i, r in enumerate(results)]}
        loc = fn.location
        with ir.InsertionPoint(fn), loc:
            new = ir.Operation.create("func.func", regions=1, attributes={
                "sym_name": ir.StringAttr.get(self.name + "__spmd_tmp"),
                "function_type": ir.TypeAttr.get(ir.FunctionType.get(in_types, out_types)),
                "arg_attrs": ir.ArrayAttr.get([self.placed(i % n) for i in range(len(in_types))]),
                "res_attrs": ir.ArrayAttr.get([self.placed(i % n) for i in range(len(out_types))]),
                "iree.reflection": ir.DictAttr.get(
                    {REFLECTION_KEY: ir.StringAttr.get(json.dumps(meta, separators=(",", ":")))})})
            entry = new.regions[0].blocks.append(*in_types, arg_locs=[a.location for a in args
                                                                     for _ in range(n)])
        for i, a in enumerate(args):
            self.vals[a] = [entry.arguments[i * n + d] for d in range(n)]
        self.entry = entry
        run = []
        for op in list(block.operations):
            op = op.operation
            if _is_collective(op):
                self.outline(run)
                run = []
                self.collective(op)
            else:
                run.append(op)
        self.outline(run)
        fn.erase()
        new.attributes["sym_name"] = ir.StringAttr.get(self.name)

    def placed(self, d: int):
        return ir.DictAttr.get({"iree.abi.affinity": _affinity(d)})

    def io(self, value, attr) -> dict:
        spec, _ = _spec(value)
        if attr is not None:
            spec = sh.spec_from_attr(attr)
        return {"type": str(value.type), "spec": None if spec is None else [list(a) for a in spec]}

    # -- SPMD bodies --------------------------------------------------------------------------
    def outline(self, ops) -> None:
        """A run of device-independent ops as one private function, called per device."""
        if not ops:
            return
        inside = {op for op in ops}
        defined = {r for op in ops for r in op.results}
        inputs = []
        for op in ops:
            for v in uses(op):
                if v not in defined and v not in inputs:
                    inputs.append(v)
        outputs = [r for op in ops for r in op.results
                   if any(u.owner.operation not in inside for u in r.uses)]
        if not outputs:
            return
        name = f"{self.name}_spmd_{self.bodies}"
        self.bodies += 1
        firsts = [op for op in ops if _vocab_sharded(op)]  # one device-dependent input each
        in_types = [self.local_type(v) for v in inputs] + [
            ir.RankedTensorType.get([], ir.RankedTensorType(op.operands[1].type).element_type)
            for op in firsts]
        out_types = [self.local_type(v) for v in outputs]
        with ir.InsertionPoint(self.entry.owner), ops[0].location:
            body = ir.Operation.create("func.func", regions=1, attributes={
                "sym_name": ir.StringAttr.get(name),
                "sym_visibility": ir.StringAttr.get("private"),
                "function_type": ir.TypeAttr.get(ir.FunctionType.get(in_types, out_types))})
            block = body.regions[0].blocks.append(*in_types)
        mapping = dict(zip(inputs, block.arguments))
        first_arg = dict(zip(firsts, list(block.arguments)[len(inputs):]))
        with ir.InsertionPoint(block):
            for op in ops:
                if op in first_arg:
                    with op.location:
                        mapping[op.results[0]] = self.vocab_lookup(op, mapping, first_arg[op])
                    continue
                new = clone_into(op, mapping)
                for old, res in zip(op.results, new.results):
                    res.set_type(self.local_type(old))
                for key in (sh.SHARDING, sh.UNREDUCED):
                    if key in new.attributes:
                        del new.attributes[key]
            with ops[-1].location:
                ir.Operation.create("func.return", operands=[mapping[v] for v in outputs])
        with ir.InsertionPoint(self.entry):
            for d in range(self.n):
                with ops[0].location:
                    extra = [self.first_row(op, t, d) for op, t in zip(firsts, in_types[len(inputs):])]
                    call = ir.Operation.create(
                        "func.call", results=out_types,
                        operands=[self.vals[v][d] for v in inputs] + extra,
                        attributes={"callee": ir.FlatSymbolRefAttr.get(name)})
                for v, r in zip(outputs, call.results):
                    self.vals.setdefault(v, [None] * self.n)[d] = r

    def first_row(self, op, t, d: int):
        """The first table row device ``d`` holds, as a scalar tensor constant."""
        spec, _ = _spec(op.operands[0])
        rows = TensorType.from_mlir(self.local_type(op.operands[0])).shape[0]
        value = ir.IntegerAttr.get(t.element_type, self.mesh.block(d, spec[0]) * rows)
        return ir.Operation.create("arith.constant", results=[t], attributes={
            "value": ir.DenseElementsAttr.get_splat(t, value)}).results[0]

    def vocab_lookup(self, op, mapping, first):
        """table[ids] on a device holding rows [first, first + rows): zeros for the ids it
        does not hold (the reshard that follows sums the devices' results)."""
        table, ids = mapping[op.operands[0]], mapping[op.operands[1]]
        vocab = TensorType.from_mlir(op.operands[0].type).shape[0]
        rows = TensorType.from_mlir(table.type).shape[0]
        b = PrimBuilder()
        nn = lambda name, *xs: lookup(f"nn.{name}").build(*xs)  # noqa: E731
        it = TensorType.from_mlir(ids.type)
        clamped = nn("minimum", nn("maximum", ids, b.like(0, ids)), b.like(vocab - 1, ids))
        local = nn("sub", clamped, b.broadcast(first, [], it.shape))
        mine = b.map("and", b.map("ge", local, b.like(0, ids)), b.map("lt", local, b.like(rows, ids)))
        row = nn("minimum", nn("maximum", local, b.like(0, ids)), b.like(rows - 1, ids))
        y = nn("embedding", table, row)
        yt = TensorType.from_mlir(y.type)
        keep = b.broadcast(mine, list(range(yt.rank - 1)), yt.shape)
        return b.map("select", keep, y, b.splat(0.0, yt))

    # -- ops emitted per device ----------------------------------------------------------
    def collective(self, op) -> None:
        with ir.InsertionPoint(self.entry), op.location:
            if op.name == "func.return":
                ir.Operation.create("func.return", operands=[
                    v for r in op.operands for v in self.vals[r]])
            elif op.name == "nn.reshard":
                src = op.operands[0]
                spec, unreduced = _spec(src)
                self.vals[op.results[0]] = self.move(self.vals[src], spec, unreduced,
                                                     _spec(op.results[0])[0])

    def move(self, vals, spec, unreduced, want):
        """Per-device values laid out as ``spec`` (partial over ``unreduced``) moved to ``want``."""
        if spec is None:
            return vals
        spec = list(spec)
        if unreduced:
            vals = self.all_reduce(vals, unreduced)
        for dim, (have, need) in enumerate(zip(spec, want)):
            if have and tuple(need[:len(have)]) != tuple(have):
                vals = self.all_gather(vals, dim, have)
                spec[dim] = ()
        for dim, (have, need) in enumerate(zip(spec, want)):
            if tuple(need) != tuple(have):
                vals = [self.slice(v, dim, need[len(have):], d) for d, v in enumerate(vals)]
        return vals

    def own(self, value):
        """A device's own part, behind a barrier (its producer is not fused with the sum)."""
        if not self.barrier:
            return value
        if value not in self.barriers:
            self.barriers[value] = ir.Operation.create(
                "util.optimization_barrier", results=[value.type], operands=[value]).results[0]
        return self.barriers[value]

    def transfer(self, value, d: int):
        return ir.Operation.create("flow.tensor.transfer", results=[value.type], operands=[value],
                                   attributes={"target": _affinity(d)}).results[0]

    def all_reduce(self, vals, axes):
        """Every device sums the parts of its group, in the same order (equal results)."""
        own = [self.own(v) for v in vals]
        out = []
        for d in range(self.n):
            acc = None
            for e in self.mesh.group(d, axes):
                part = own[d] if e == d else self.transfer(own[e], d)
                acc = part if acc is None else _add(acc, part)
            out.append(acc)
        return out

    def all_gather(self, vals, dim, axes):
        own = [self.own(v) for v in vals]
        out = []
        for d in range(self.n):
            parts = [own[d] if e == d else self.transfer(own[e], d) for e in self.mesh.group(d, axes)]
            shape = list(TensorType.from_mlir(parts[0].type).shape)
            shape[dim] *= len(parts)
            rt = ir.RankedTensorType.get(shape, ir.RankedTensorType(parts[0].type).element_type)
            out.append(tensor.ConcatOp(rt, dim, parts).result)
        return out

    def slice(self, value, dim, axes, d):
        t = TensorType.from_mlir(value.type)
        k = t.shape[dim] // self.mesh.parts(axes)
        b = self.mesh.block(d, axes)
        start, limit = [0] * t.rank, list(t.shape)  # offsets and sizes
        start[dim], limit[dim] = b * k, k
        rt = t.with_shape(limit).to_mlir()
        return tensor.ExtractSliceOp(rt, value, [], [], [], start, limit, [1] * t.rank).result


def expand(module, fn, mesh, *, barrier: bool = True) -> None:
    _Expander(module, fn, mesh, barrier).run()
