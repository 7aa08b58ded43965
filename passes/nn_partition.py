"""nn-partition: SPMD partitioning of an ``nn`` module over its ``nn.mesh`` (docs/distributed.md).

Two steps. **Propagation** gives every value a sharding: function arguments keep
theirs (replicated when they have none), each op's rule (``_partition_rules.py``)
derives its result's from its operands' (column-parallel linear: ``w`` split by
output columns; row-parallel: a contraction over a split dimension is a partial sum,
``nn.unreduced``; attention by heads; norms over whole dimensions; embedding by
vocabulary or width), and an ``nn.reshard`` goes wherever an operand's sharding
differs from what its user needs. A row-parallel linear's bias is added after the
sum. **Expansion** (``_partition_expand.py``) rewrites each public function into
one over ``N`` devices: every argument and result becomes ``N`` local shards, each
run of ops between reshards becomes one private SPMD function at local shapes
called once per device (one executable per local shape, whatever ``N``), and each
reshard becomes ``flow.tensor.transfer`` plus adds (all-reduce), concats
(all-gather) or slices. Collectives are symmetric: every device of a group sums (or
concatenates) all parts in the same order, so replicas are equal bit for bit and each
device's own part has several users (its sum and the transfers out): IREE cannot fuse
the sum into the producer, the trap of a reduce-to-one-device where device 0's matmul
waits for the others (``stepwell.distributed.schedule`` checks the stream IR).
Before::

    module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}} {
      func.func @main(%x: tensor<4x8xf32>, %w1: tensor<8x16xf32> {nn.sharding = [unit, "model"]},
                      %w2: tensor<16x8xf32> {nn.sharding = ["model", unit]}) -> tensor<4x8xf32> {
        %h = "nn.linear"(%x, %w1) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
        %y = "nn.linear"(%h, %w2) : (tensor<4x16xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
        return %y : tensor<4x8xf32>

after propagation (``nn-partition{expand=false}``)::

        %h = "nn.linear"(%x, %w1) {nn.sharding = [unit, "model"]} : ... -> tensor<4x16xf32>
        %y = "nn.linear"(%h, %w2) {nn.sharding = [unit, unit], nn.unreduced = ["model"]} : ...
        %r = "nn.reshard"(%y) {nn.sharding = [unit, unit]} : (tensor<4x8xf32>) -> tensor<4x8xf32>
        return %r : tensor<4x8xf32>

after expansion::

      func.func private @main_spmd_0(%x: tensor<4x8xf32>, %w1: tensor<8x8xf32>, %w2: tensor<8x8xf32>)
          -> tensor<4x8xf32>                        // both linears at local shapes
      func.func @main(%x0: tensor<4x8xf32> {iree.abi.affinity = #hal.device.promise<@d0>},
                      %x1: tensor<4x8xf32> {iree.abi.affinity = #hal.device.promise<@d1>}, ...)
        %p0 = call @main_spmd_0(%x0, %w1_0, %w2_0)     // device 0's part
        %p1 = call @main_spmd_0(%x1, %w1_1, %w2_1)     // device 1's part
        %t10 = flow.tensor.transfer %p1 : tensor<4x8xf32> to #hal.device.promise<@d0>
        %s0 = arith.addf %p0, %t10 : tensor<4x8xf32>   // p0 + p1 on d0
        %t01 = flow.tensor.transfer %p0 : tensor<4x8xf32> to #hal.device.promise<@d1>
        %s1 = arith.addf %t01, %p1 : tensor<4x8xf32>   // p0 + p1 on d1
        return %s0, %s1 : tensor<4x8xf32>, tensor<4x8xf32>
"""

from __future__ import annotations

from stepwell.core import sharding as sh
from stepwell.core.diagnostics import PassError, at
from stepwell.core.ir import context, ir
from stepwell.core.opspec import lookup
from stepwell.core.passes_base import Pass, register
from stepwell.core.types import TensorType
from stepwell.passes import _partition_rules as rules


@register
class NnPartition(Pass):
    """Propagate shardings over the module's nn.mesh and expand every op to per-device ops at local shapes."""

    name = "nn-partition"
    expand: bool = True   # false: stop after propagation (every value annotated, reshards inserted)
    barrier: bool = False  # true: an optimization_barrier on each device's part before a collective
                           # (the host then waits for every device's compute before transferring)

    def run(self, module) -> None:
        with context(), ir.Location.unknown():
            self._run(module)

    def _run(self, module) -> None:
        op = module.operation
        if sh.PARTITIONED in op.attributes:
            return
        try:
            mesh = sh.mesh_of(op)
        except sh.ShardingError as e:
            raise PassError([at(op.location, str(e), display_name=module.name)]) from None
        if mesh is None:
            return
        funcs = [f.operation for f in module.body.operations if f.operation.name == "func.func"
                 and f.operation.regions[0].blocks and _is_public(f.operation)]
        for fn in funcs:
            propagate(fn, mesh, module.name)
        if self.expand:
            from stepwell.passes._partition_expand import expand
            for fn in funcs:
                expand(module, fn, mesh, barrier=self.barrier)
            op.attributes[sh.PARTITIONED] = ir.UnitAttr.get()


def _is_public(fn) -> bool:
    vis = fn.attributes["sym_visibility"] if "sym_visibility" in fn.attributes else None
    return vis is None or ir.StringAttr(vis).value == "public"


# -- propagation ------------------------------------------------------------------------
class _Propagation:
    def __init__(self, fn, mesh, name):
        self.fn, self.mesh, self.name = fn, mesh, name
        self.state = {}      # value -> (spec or None, unreduced axes)
        self.reshards = {}   # (value, spec) -> the nn.reshard result already made
        self.free = set()    # arguments without a spec, not used yet: their first user picks it

    def reshard(self, value, spec, before):
        """``value`` moved to ``spec`` (an nn.reshard before ``before``, made once)."""
        key = (value, spec)
        if key not in self.reshards:
            with ir.InsertionPoint(before), before.location:
                op = ir.Operation.create("nn.reshard", results=[value.type], operands=[value],
                                         attributes={sh.SHARDING: sh.spec_to_attr(spec)})
            self.reshards[key] = op.results[0]
            self.state[op.results[0]] = (spec, ())
        return self.reshards[key]

    def need(self, op, index, spec) -> None:
        """Operand ``index`` of ``op`` must be fully reduced and laid out as ``spec``."""
        value = op.operands[index]
        if value in self.free:  # an argument without a spec: laid out as its first user needs
            self.free.discard(value)
            self.state[value] = (spec, ())
            sh.set_arg_spec(self.fn, value.arg_number, spec)
        if self.state.get(value, (spec, ())) != (spec, ()):
            op.operands[index] = self.reshard(value, spec, op)

    def annotate(self, op, spec, unreduced=()) -> None:
        op.attributes[sh.SHARDING] = sh.spec_to_attr(spec)
        if unreduced:
            op.attributes[sh.UNREDUCED] = sh.axes_to_attr(unreduced)
        elif sh.UNREDUCED in op.attributes:
            del op.attributes[sh.UNREDUCED]
        self.state[op.results[0]] = (spec, tuple(unreduced))

    def run(self) -> None:
        fn = self.fn
        block = fn.regions[0].blocks[0]
        for i, arg in enumerate(block.arguments):
            t = TensorType.from_mlir(arg.type)
            attr = sh.arg_spec(fn, i)
            spec = None if t is None else (sh.spec_from_attr(attr) if attr is not None
                                           else sh.replicated(t.rank))
            self.state[arg] = (spec, ())
            if t is not None:
                sh.set_arg_spec(fn, i, spec)
                if attr is None:
                    self.free.add(arg)
        for op in list(block.operations):
            op = op.operation
            used = list(op.operands)
            if op.name == "func.return":
                self.returns(op)
            elif op.name == "func.call":
                raise PassError([at(op.location, "nn-partition cannot partition across calls: "
                                    "inline the callee first (the 'inline' pass)", display_name=self.name)])
            else:
                self.visit(op)
            self.free.difference_update(used)

    def returns(self, op) -> None:
        for i, value in enumerate(op.operands):
            spec, unreduced = self.state.get(value, (None, ()))
            if spec is None:
                continue
            attr = sh.result_spec(self.fn, i)
            want = sh.spec_from_attr(attr) if attr is not None else spec
            self.need(op, i, want)
            sh.set_result_spec(self.fn, i, want)

    def visit(self, op) -> None:
        user = None
        if sh.SHARDING in op.attributes and op.name != "nn.reshard":
            user = sh.spec_from_attr(op.attributes[sh.SHARDING])  # a constraint (sw.shard)
        types = [TensorType.from_mlir(v.type) for v in op.operands]
        specs = [self.state.get(v, (None, ()))[0] for v in op.operands]
        plan = rules.plan(op, specs, types, self.mesh)
        for i, spec in enumerate(plan.operands):
            if spec is not None:
                self.need(op, i, spec)
        if len(op.results) != 1 or plan.results[0] is None:
            for r, spec in zip(op.results, plan.results):
                self.state[r] = (spec, ())
            return
        result = op.results[0]
        if plan.unreduced and op.name == "nn.linear" and len(op.operands) == 3:
            result = self.bias_after_sum(op, plan)
        else:
            self.annotate(op, plan.results[0], plan.unreduced)
        if user is not None and self.state[result] != (user, ()):
            moved = self.reshard(result, user, _next(result))
            result.replace_all_uses_except(moved, moved.owner.operation)

    def bias_after_sum(self, op, plan):
        """A row-parallel linear with a bias: the bias is added once, after the sum."""
        x, w, b = op.operands
        spec = plan.results[0]
        out_t = op.results[0].type
        with ir.InsertionPoint(op), op.location:
            partial = ir.Operation.create("nn.linear", results=[out_t], operands=[x, w])
        self.annotate(partial, spec, plan.unreduced)
        summed = self.reshard(partial.results[0], spec, op)
        with ir.InsertionPoint(op), op.location:
            bias = b
            want = TensorType.from_mlir(out_t).dtype
            if TensorType.from_mlir(b.type).dtype != want:  # (a wider result than the bias)
                bias = lookup("nn.cast").build(b, result_type=TensorType.from_mlir(b.type).with_dtype(want))
                self.annotate(bias.owner.operation, self.state[b][0])
            add = lookup("nn.add").build(summed, bias)
        add_op = add.owner.operation
        self.need(add_op, 1, (spec[-1],))
        self.annotate(add_op, spec)
        op.results[0].replace_all_uses_with(add)
        op.erase()
        return add


def _next(value):
    """The op after the one defining ``value`` (where a reshard of it goes)."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return owner.operations[0]
    owner = owner.operation
    ops = [o.operation for o in owner.block.operations]
    return ops[ops.index(owner) + 1]


def propagate(fn, mesh, name: str = "-") -> None:
    """Annotate every value of ``fn`` and insert the reshards (in place)."""
    _Propagation(fn, mesh, name).run()
