"""stablehlo-to-nn: raise StableHLO (as JAX emits it) into ``nn``/``prim``.

Private functions are inlined first, then every StableHLO op with a rule becomes prim
(``dot_general`` -> ``prim.contract``, ``broadcast_in_dim`` -> ``prim.broadcast``,
``reduce`` -> ``prim.reduce``, elementwise math -> ``prim.map``, ``convolution`` ->
``nn.conv2d``, embedding gathers -> ``nn.embedding``, ``constant`` -> ``arith.constant``),
and the DAGs JAX and Flax emit become ``nn`` ops: softmax, layer/RMS norm, gelu (both
forms), sigmoid, silu, relu, dot-product attention (masks, causal masks, scales, the
transposes to [batch, heads, seq, dim]), matmul, Dense and DenseGeneral (``nn.linear``)
and conv biases, also in bf16/f16; ``chlo.top_k``, ``chlo.ragged_dot`` (and their
``stablehlo.composite`` forms), ``jax.lax.ragged_dot``'s masked CPU form and MoE layers
written densely or with capacity einsums become ``nn.top_k``, ``nn.grouped_matmul``
and ``nn.moe_ffn`` (docs/moe.md). Ops without a rule stay StableHLO (IREE compiles
them), and so does the shape arithmetic of dynamic-shape ops. Before::

    %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %0 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %1 = stablehlo.maximum %arg0, %0 : tensor<4x8xf32>
    %2 = stablehlo.dot_general %1, %arg1, contracting_dims = [1] x [0] : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>

after::

    %0 = "nn.relu"(%arg0) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %1 = "nn.matmul"(%0, %arg1) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>

``stats`` says how many StableHLO ops were raised, which composites were found and
which ops were left (``stepwell-opt --stablehlo-to-nn --stats`` prints it).
"""

from __future__ import annotations

import collections

from stepwell.core.ir import context, ir, passmanager
from stepwell.core.passes_base import Pass, apply_patterns, register
from stepwell.passes.prim_simplify import erase_dead, fold_constants, fold_map_identity, fold_same_type

from stepwell.passes import _stablehlo_composites as composite_rules
from stepwell.passes import _stablehlo_dynamic as dynamic
from stepwell.passes import _stablehlo_moe as moe_rules
from stepwell.passes import _stablehlo_moe_layers as moe_layers
from stepwell.passes import _stablehlo_raise as raising
from stepwell.passes._stablehlo_match import (
    NO_MATCH, Builder, collapse_expansion, fold_bool_roundtrip, fold_bool_select, fold_identity_element,
    shuffle_as_reshape)

SOURCE_DIALECTS = ("stablehlo.", "chlo.")
KEEP = "stepwell.shape_computation"  # marks StableHLO that computes a dynamic op's shape
# nn ops that only composite rules produce (each stands for a DAG of StableHLO ops)
COMPOSITE_OPS = ("nn.attention", "nn.softmax", "nn.layer_norm", "nn.rms_norm", "nn.gelu", "nn.silu",
                 "nn.sigmoid", "nn.relu", "nn.linear", "nn.moe_ffn", "nn.grouped_matmul")


def _in_function(op) -> bool:
    parent = op.parent
    return parent is not None and parent.name == "func.func"


def _mark_shape_computations(module) -> None:
    """Mark the ops computing the shape operands of dynamic-shape StableHLO ops: they stay
    StableHLO, for the dynamic rules to read (then they are dead) or for IREE to fold."""
    from stepwell.core.verifier import walk
    work = []
    for op in walk(module.operation):
        work += [op.operands[i] for i in dynamic.SHAPE_OPERANDS.get(op.name, ()) if i < len(op.operands)]
    while work:
        owner = work.pop().owner
        if isinstance(owner, ir.Block):
            continue
        op = owner.operation
        if op.name.startswith(SOURCE_DIALECTS) and KEEP not in op.attributes:
            op.attributes[KEEP] = ir.UnitAttr.get(context())
            work += list(op.operands)


def _unmark(module) -> None:
    """Erase the marked shape computations left without users; unmark the rest."""
    from stepwell.core.verifier import walk
    marked = [op for op in walk(module.operation) if KEEP in op.attributes]
    for op in reversed(marked):  # users before producers
        if not any(list(r.uses) for r in op.results):
            op.erase()
        else:
            del op.attributes[KEEP]


def _raisable(op) -> bool:
    return KEEP not in op.attributes and raising.supported(op)


def _pattern(rule, check=None):
    """A rewrite from ``rule(op, builder) -> value | None`` (None: no match)."""
    def rewrite(op, rewriter):
        if not _in_function(op) or (check is not None and not check(op)):
            return NO_MATCH
        b = Builder()
        with rewriter.ip, op.location:
            try:
                new = rule(op, b)
            except TypeError as e:  # a spec refused the operands: take back what was built
                if not str(e).startswith(("'prim.", "'nn.")):
                    raise
                for created in reversed(b.created):
                    rewriter.erase_op(created)
                new = None
        if new is None:
            return NO_MATCH
        rewriter.replace_op(op, list(new) if isinstance(new, tuple) else [new])  # (multi-result ops)
    return rewrite


def _cleanups() -> dict:
    """The prim clean-ups every phase runs (dead ops, splat folding, broadcast chains)."""
    from stepwell.core import opspec
    patterns = collections.defaultdict(list)
    for spec in opspec.specs():
        patterns[spec.name].append(erase_dead)
        if spec.dialect == "prim":
            patterns[spec.name].append(fold_constants)
    for name in ("prim.reshape", "prim.broadcast"):  # (a square transpose keeps its type)
        patterns[name].append(fold_same_type)
    for name in ("prim.reshape", "prim.transpose", "prim.broadcast"):
        patterns[name] += [shuffle_as_reshape, collapse_expansion]
    patterns["prim.map"] += [fold_map_identity, fold_identity_element, fold_bool_select, fold_bool_roundtrip]
    return patterns


def source_counts(module) -> dict[str, int]:
    """StableHLO/CHLO ops in the function bodies, by name."""
    return {n: c for n, c in module.op_counts().items() if n.startswith(SOURCE_DIALECTS)}


def format_stats(stats: dict) -> str:
    """``raised N of M StableHLO ops (K composites: nn.softmax x2, ...); left: stablehlo.foo x3``."""
    comp = stats["composites"]
    text = f"raised {stats['raised']} of {stats['total']} StableHLO ops ({sum(comp.values())} composites"
    text += (": " + ", ".join(f"{n} x{c}" for n, c in comp.items()) if comp else "") + ")"
    left = stats["left"]
    return text + "; left: " + (", ".join(f"{n} x{c}" for n, c in left.items()) if left else "none")


@register
class StablehloToNn(Pass):
    """Raise StableHLO into nn/prim: primitives one op each, then the softmax, norm, gelu,
    silu, relu and attention DAGs JAX and Flax emit as nn ops; the rest stays StableHLO.

    ``stablehlo.maximum(%x, broadcast(0.0))`` becomes ``"nn.relu"(%x)``; a ``dot_general``
    in matmul form becomes ``"nn.matmul"``, any other one ``"prim.contract"`` with its
    einsum spec; ``jax.nn.softmax``'s reduce/exp/divide chain becomes ``"nn.softmax"``.
    """

    name = "stablehlo-to-nn"
    composites: bool = True  # recognize nn composites (softmax, norms, attention, ...)
    inline: bool = True      # inline private functions first (JAX emits calls for jnp helpers)

    def __post_init__(self):
        self.stats: dict = {}

    def run(self, module) -> None:
        if self.inline and any(n == "func.call" for n in module.op_counts()):
            passmanager.PassManager.parse("builtin.module(inline,symbol-dce)", context()).run(module.operation)
        before = source_counts(module)
        nn_before = module.op_counts()
        cleanups = _cleanups()
        _mark_shape_computations(module)
        with context():
            first = collections.defaultdict(list, {k: list(v) for k, v in cleanups.items()})
            for name, rule in {**raising.RULES, **moe_rules.RULES}.items():
                first[name].append(_pattern(rule, _raisable))
            for name, rule in dynamic.RULES.items():
                first[name].append(_pattern(rule, _raisable))
            apply_patterns(module, dict(first))
            phases = [*composite_rules.PHASES, moe_layers.PHASE] if self.composites else [composite_rules.MATMUL]
            for phase in phases:
                patterns = collections.defaultdict(list, {k: list(v) for k, v in cleanups.items()})
                for root, fns in phase.items():
                    patterns[root] += [_pattern(fn) for fn in fns]
                apply_patterns(module, dict(patterns))
        _unmark(module)
        if before.get("stablehlo.composite", 0) > module.op_counts().get("stablehlo.composite", 0):
            # a raised composite leaves its decomposition function unused
            passmanager.PassManager.parse("builtin.module(symbol-dce)", context()).run(module.operation)
        after = module.op_counts()
        left = source_counts(module)
        total = sum(before.values())
        self.stats = {
            "total": total,
            "raised": total - sum(left.values()),
            "left": dict(sorted(left.items(), key=lambda kv: (-kv[1], kv[0]))),
            "composites": {n: after.get(n, 0) - nn_before.get(n, 0) for n in COMPOSITE_OPS
                           if after.get(n, 0) > nn_before.get(n, 0)},
        }

    def format_stats(self) -> str:
        return format_stats(self.stats) if self.stats else "nothing run"
