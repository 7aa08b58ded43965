"""Tensor-parallel specs from layer names: Megatron's layout (docs/distributed.md).

A projection into a wider space is split by output columns (column-parallel: q, k, v,
the MLP's first layer, with their biases), the projection back by input rows
(row-parallel: attention's output, the MLP's second layer; their partial sums meet in
one all-reduce), the token embedding by vocabulary rows; everything else is
replicated. Names are matched on pytree paths (``params/h_0/mlp/c_fc/kernel``) or
argument names (``w1``)::

    specs = sw.distributed.tensor_parallel(params)             # a pytree of spec tuples
    shardings = sw.distributed.tensor_parallel(params, mesh=mesh)  # NamedShardings (JAX)
    sw.distributed.shard_arguments(module, specs_list)          # nn.sharding on @main's arguments
"""

from __future__ import annotations

import re

COLUMN = r"(^|/)(c_attn|c_fc|wq|wk|wv|w1|query|key|value|gate|up|fc1)(/kernel)?$"
COLUMN_BIAS = r"(^|/)(c_attn|c_fc|bq|bk|bv|b1|query|key|value|gate|up|fc1)(/bias)?$"
ROW = r"(^|/)(c_proj|wo|w2|out|down|fc2)(/kernel)?$"
VOCAB = r"(^|/)(wte|table|embed_tokens)(/embedding)?$"


def spec_for(name: str, rank: int, axis: str = "model") -> tuple:
    """The spec of one parameter (one tuple of mesh axes per dimension)."""
    name = name.replace(".", "/")
    if rank == 2 and re.search(COLUMN, name):
        return ((), (axis,))
    if rank == 1 and re.search(COLUMN_BIAS, name) and not re.search(r"(^|/)c_proj/bias$", name):
        return ((axis,),)
    if rank == 2 and re.search(ROW, name):
        return ((axis,), ())
    if rank == 2 and re.search(VOCAB, name):
        return ((axis,), ())
    return ((),) * rank


def tensor_parallel(params, axis: str = "model", mesh=None):
    """Specs for ``params``: a list of ``(name, array)`` pairs or names with ranks
    (``[("w1", 2), ...]``) gives a list; a pytree of arrays (Flax ``variables``) gives the
    same pytree of spec tuples, or of ``NamedSharding`` over the JAX ``mesh``."""
    if isinstance(params, (list, tuple)) and params and isinstance(params[0], tuple) \
            and isinstance(params[0][0], str):
        return [spec_for(n, r if isinstance(r, int) else len(r.shape), axis) for n, r in params]
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    def one(path, leaf):
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        spec = spec_for(name, len(getattr(leaf, "shape", ())), axis)
        if mesh is None:
            return spec
        return NamedSharding(mesh, PartitionSpec(*(a[0] if len(a) == 1 else (a or None) for a in spec)))
    return jax.tree_util.tree_map_with_path(one, params)


def shard_arguments(module, specs, function: str = "main") -> None:
    """Put ``specs`` (one per argument, None to leave one out) on a function's arguments."""
    from stepwell.core import sharding as sh
    from stepwell.core.diagnostics import StepwellError
    from stepwell.core.ir import ir
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == function:
            args = op.regions[0].blocks[0].arguments
            if len(specs) > len(args):
                raise StepwellError(f"shard_arguments: {len(specs)} specs for @{function}'s "
                                    f"{len(args)} arguments")
            for i, spec in enumerate(specs):
                if spec is not None:
                    sh.set_arg_spec(op, i, sh.normalize(spec, ir.RankedTensorType(args[i].type).rank))
            return
    raise StepwellError(f"shard_arguments: no function @{function} in the module")
