"""JAX shardings -> stepwell's (docs/distributed.md): Shardy's propagation, then ``nn.sharding``.

``jax.jit(fn, in_shardings=..., out_shardings=...)`` lowers to the *global* program with
Shardy annotations (``sdy.mesh``, ``sdy.sharding`` on arguments and results,
``sdy.sharding_constraint`` for ``with_sharding_constraint``). IREE's MLIR cannot even
parse ``sdy``, so the module goes through jaxlib's own MLIR first:

1. ``inline``, then Shardy's ``sdy-propagation-pipeline``: every argument and result
   gets a sharding (JAX leaves some to propagation), constraints become ``sdy.reshard``.
2. The mesh becomes ``nn.mesh``, argument and result shardings ``nn.sharding``, each
   ``sdy.reshard`` an ``nn.reshard``; the other ``sdy`` annotations are dropped (the ops
   between get their layouts from ``nn-partition``'s rules).
3. The text is parsed by stepwell, raised to ``nn``, and ``nn-partition`` makes the
   module over the mesh's devices (``sw.compile`` does it for any module with a mesh).

Device ``d`` of the module is position ``d`` of the mesh (row-major), the device
``mesh.devices.flat[d]`` holds in JAX. Not supported (each a clear error): ``shard_map``
(``sdy.manual_computation``), sub-axes (``"x":(1)2``), meshes with explicit device ids.
"""

from __future__ import annotations

import re

from stepwell.core.diagnostics import StepwellError

_PIPELINE = "builtin.module(inline,sdy-propagation-pipeline,symbol-dce)"
_DIM = re.compile(r"\{([^{}]*)\}")


def spec_text(sharding: str) -> str:
    """``#sdy.sharding<@mesh, [{"data"}, {}]>`` (or ``<@mesh, [...]>``) as an nn.sharding
    attribute's text, ``["data", unit]``."""
    body = sharding[sharding.index("[") + 1:]
    body = body[:_closing(body)]
    entries = []
    for dim in _DIM.findall(body):
        if re.search(r'":\(', dim):
            raise StepwellError(f"Shardy sub-axes are not supported by stepwell's partitioner: {sharding}")
        names = re.findall(r'"([^"]+)"', dim)
        entries.append("unit" if not names else f'"{names[0]}"' if len(names) == 1
                       else "[" + ", ".join(f'"{n}"' for n in names) + "]")
    return "[" + ", ".join(entries) + "]"


def _closing(text: str) -> int:
    depth = 1
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth == 0:
            return i
    raise StepwellError(f"cannot read the Shardy sharding '[{text}'")


def mesh_text(mesh_op: str) -> str:
    """``sdy.mesh @mesh = <["data"=2, "model"=2]>`` as an nn.mesh attribute's text."""
    if "device_ids" in mesh_op:
        raise StepwellError("a mesh with explicit device ids (not jax.devices() order) is not "
                            f"supported by stepwell's partitioner: {mesh_op.strip()}")
    axes = re.findall(r'"(\w+)"=(\d+)', mesh_op.split("{", 1)[0])
    if not axes:
        raise StepwellError(f"cannot read the Shardy mesh: {mesh_op.strip()}")
    return ("{axes = [" + ", ".join(f'"{a}"' for a, _ in axes) + "], shape = array<i64: "
            + ", ".join(n for _, n in axes) + ">}")


def to_nn(text: str) -> str:
    """JAX's sharded StableHLO as text stepwell parses: ``nn.mesh``/``nn.sharding`` instead
    of Shardy's annotations, after Shardy's propagation."""
    from jax._src.interpreters import mlir as jax_mlir
    from jax.extend.mlir import ir as jir
    from jax.extend.mlir import passmanager

    from stepwell.core.stablehlo import strip_shardy
    from stepwell.core.verifier import walk

    ctx = jax_mlir.make_ir_context()
    ctx.allow_unregistered_dialects = True
    module = jir.Module.parse(text, context=ctx)
    with ctx, jir.Location.unknown():
        try:
            passmanager.PassManager.parse(_PIPELINE).run(module.operation)
        except Exception as e:  # noqa: BLE001  (jaxlib's MLIRError)
            raise StepwellError(f"Shardy's propagation failed: {str(e).strip().splitlines()[0]}") from None
        meshes = [op.operation for op in module.body.operations if op.operation.name == "sdy.mesh"]
        if not meshes:
            return text
        if len(meshes) > 1:
            raise StepwellError("the function uses several meshes: stepwell partitions over one")
        manual = [op.name for op in walk(module.operation) if op.name == "sdy.manual_computation"]
        if manual:
            raise StepwellError("shard_map (sdy.manual_computation) is not supported by stepwell's "
                                "partitioner: write the function with in/out shardings instead")
        module.operation.attributes["nn.mesh"] = jir.Attribute.parse(mesh_text(str(meshes[0])))
        for op in list(walk(module.operation)):
            if op.name in ("sdy.reshard", "sdy.sharding_constraint"):
                spec = spec_text(str(op.attributes["sharding"]))
                with jir.InsertionPoint(op), op.location:
                    new = jir.Operation.create("nn.reshard", results=[op.results[0].type],
                                               operands=[op.operands[0]],
                                               attributes={"nn.sharding": jir.Attribute.parse(spec)})
                op.results[0].replace_all_uses_with(new.results[0])
                op.erase()
            elif op.name == "sdy.constant":
                with jir.InsertionPoint(op), op.location:
                    new = jir.Operation.create("stablehlo.constant", results=[op.results[0].type],
                                               attributes={"value": op.attributes["value"]})
                op.results[0].replace_all_uses_with(new.results[0])
                op.erase()
            elif op.name == "func.func":
                for key in ("arg_attrs", "res_attrs"):
                    if key in op.attributes:
                        op.attributes[key] = _converted(jir, op.attributes[key])
        strip_shardy(module, jir)
    return module.operation.get_asm(enable_debug_info=True)


def _converted(jir, attr):
    """Argument or result attribute dictionaries with ``sdy.sharding`` as ``nn.sharding``."""
    out = []
    for d in jir.ArrayAttr(attr):
        entries = {n.name: n.attr for n in jir.DictAttr(d)}
        if "sdy.sharding" in entries:
            entries["nn.sharding"] = jir.Attribute.parse(spec_text(str(entries.pop("sdy.sharding"))))
        out.append(jir.DictAttr.get(entries))
    return jir.ArrayAttr.get(out)


def _is_leaf(x) -> bool:
    from jax.sharding import PartitionSpec, Sharding
    return x is None or isinstance(x, (PartitionSpec, Sharding))


def flat_shardings(fn, sig, avals, in_shardings, out_shardings):
    """``(in, out)``: JAX's ``in_shardings`` (one per positional argument, a pytree prefix,
    or one for all) and ``out_shardings`` (a prefix of the result) as one sharding (or
    None: left to propagation) per flat argument and per flat result."""
    import jax
    dyn_args, dyn_kwargs = jax.tree.unflatten(sig.in_tree, list(sig.leaves))
    if in_shardings is None or _is_leaf(in_shardings):
        in_shardings = (in_shardings,) * len(dyn_args)
    if len(in_shardings) != len(dyn_args):
        raise StepwellError(f"in_shardings has {len(in_shardings)} entries for {len(dyn_args)} "
                            "positional arguments")
    try:
        full = jax.tree.broadcast(tuple(in_shardings), tuple(dyn_args), is_leaf=_is_leaf)
    except ValueError as e:
        raise StepwellError(f"in_shardings does not match the arguments: {e}") from None
    flat_in = jax.tree.leaves(full, is_leaf=_is_leaf) + [None] * len(jax.tree.leaves(dyn_kwargs))
    specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals]
    out = jax.eval_shape(lambda *flat: fn(*sig.rebuild(flat)[0], **sig.rebuild(flat)[1]), *specs)
    if out_shardings is None or _is_leaf(out_shardings):
        flat_out = [out_shardings] * len(jax.tree.leaves(out))
    else:
        try:
            flat_out = jax.tree.leaves(jax.tree.broadcast(out_shardings, out, is_leaf=_is_leaf),
                                       is_leaf=_is_leaf)
        except ValueError as e:
            raise StepwellError(f"out_shardings does not match the results: {e}") from None
    return flat_in, flat_out


def jax_mesh(*shardings):
    """The concrete ``jax.sharding.Mesh`` of the first ``NamedSharding`` given, else the
    one set with ``jax.set_mesh`` (None if there is none)."""
    import jax
    for s in shardings:
        for leaf in jax.tree.leaves(s, is_leaf=_is_leaf):
            if isinstance(leaf, jax.sharding.NamedSharding):
                return leaf.mesh
    try:
        mesh = jax.sharding.get_mesh()
    except Exception:  # noqa: BLE001
        return None
    return None if mesh is None or getattr(mesh, "empty", True) else mesh
