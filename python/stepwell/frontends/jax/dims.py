"""Symbolic (dynamic) dimensions of a JAX function's inputs, and binding them at run time.

``dynamic_batch=True`` makes the leading dimension of every input of rank >= 1 the
symbol ``b``; ``dynamic_dims`` names dimensions with ``jax.export`` shape specs, one
per top-level argument (a pytree prefix of the arguments)::

    sw.jax.jit(fn, dynamic_dims=("b, s", "b"))           # ids [b, s], lengths [b]
    sw.jax.export(fn, params, ids, lengths, dynamic_dims=("b, s", "b"), path=...)

``_`` keeps a dimension static, ``...`` keeps the rest; one name means one size
everywhere it appears. Arguments that already are ``jax.ShapeDtypeStruct`` with
symbolic shapes (``jax.export.symbolic_shape("b, s")``) are taken as they are.

JAX lowers such a function with one leading ``tensor<i32>`` argument per symbol
(``{jax.global_constant = "b"}``). :func:`bind_dimension_args` rewrites ``@main`` so
that it takes the inputs only: each symbol is read from the first input dimension that
holds it (``tensor.dim``), and every other dimension with the same name is checked
against it at run time (``cf.assert``: "input 'lengths' dimension 0 (b) differs from
input 'ids' dimension 0").
"""

from __future__ import annotations

import json
import re

import numpy as np

from stepwell.core.diagnostics import StepwellError

BATCH = "b"   # the symbol of dynamic_batch=True


def is_symbolic(d) -> bool:
    return not isinstance(d, (int, np.integer))


def symbolic_specs(example_args, *, dynamic_batch: bool = False, dynamic_dims=None,
                   names=None, limits=None) -> tuple:
    """``example_args`` with their dynamic dimensions symbolic (``jax.ShapeDtypeStruct``
    leaves), sharing one scope so that equal names are one symbol. ``names``: the
    flat inputs' names, for messages; ``limits``: ``{symbol: max size}``, given to JAX
    as constraints (``"s <= 1024"``: the function may then slice or pad to that size)."""
    import jax
    from jax import export

    if dynamic_batch and dynamic_dims is not None:
        raise StepwellError("give dynamic_batch=True or dynamic_dims=, not both "
                            "(dynamic_dims can name the batch: \"b, ...\")")
    leaves, tree = jax.tree.flatten(example_args)
    if dynamic_batch:
        ranked = [leaf for leaf in leaves if np.ndim(leaf) >= 1]
        if not ranked:
            raise StepwellError("dynamic_batch=True: no input has a leading (batch) dimension "
                                "to make dynamic")
        sizes = {tuple(np.shape(leaf))[0] for leaf in ranked}
        if len(sizes) > 1:
            raise StepwellError(f"dynamic_batch=True: the example inputs' leading dimensions differ "
                                f"({sorted(sizes)}); they must all be the batch")
        dynamic_dims = jax.tree.unflatten(tree, [f"{BATCH}, ..." if np.ndim(leaf) >= 1 else None
                                                 for leaf in leaves])
    if dynamic_dims is None:
        return example_args
    if isinstance(dynamic_dims, str) and len(example_args) == 1:
        dynamic_dims = (dynamic_dims,)
    if isinstance(dynamic_dims, list):
        dynamic_dims = tuple(dynamic_dims)
    if isinstance(dynamic_dims, tuple) and len(dynamic_dims) != len(example_args):
        raise StepwellError(f"dynamic_dims has {len(dynamic_dims)} entries for {len(example_args)} "
                            "arguments: give one shape spec (or None) per argument")
    used = " ".join(str(x) for x in jax.tree.leaves(dynamic_dims))
    constraints = [f"{k} <= {v}" for k, v in (limits or {}).items()
                   if re.search(rf"\b{re.escape(k)}\b", used)]
    try:
        specs = export.symbolic_args_specs(tuple(example_args), dynamic_dims, constraints=constraints)
    except (ValueError, TypeError) as e:
        raise StepwellError(f"dynamic_dims {dynamic_dims!r}: {e}".split("\n")[0]) from None
    for i, (leaf, spec) in enumerate(zip(leaves, jax.tree.leaves(specs))):
        want = tuple(np.shape(leaf))
        where = f"input '{names[i]}'" if names and i < len(names) else f"input {i}"
        if len(spec.shape) != len(want):
            raise StepwellError(f"dynamic_dims: the spec of {where} has {len(spec.shape)} "
                                f"dimensions, the input has {len(want)} ({list(want)})")
        for d, w in zip(spec.shape, want):
            if not is_symbolic(d) and int(d) != w:
                raise StepwellError(f"dynamic_dims: {where} has shape {list(want)}, its spec "
                                    f"says {[str(x) for x in spec.shape]}")
    return specs


def symbols_of(avals) -> list[list]:
    """Each flat input's dims: an int, or the symbol's text (``"b"``, ``"2*s"``)."""
    return [[str(d) if is_symbolic(d) else int(d) for d in a.shape] for a in avals]


def dim_vars(main) -> list[str]:
    """JAX's dimension variables: the leading ``jax.global_constant`` arguments of ``main``."""
    from stepwell.core.ir import ir
    out = []
    arg_attrs = list(ir.ArrayAttr(main.attributes["arg_attrs"])) if "arg_attrs" in main.attributes else []
    for attrs in arg_attrs:
        d = ir.DictAttr(attrs) if attrs is not None else None
        if d is not None and "jax.global_constant" in d:
            out.append(ir.StringAttr(d["jax.global_constant"]).value)
        else:
            break
    return out


def bind_dimension_args(module, avals, names=None) -> None:
    """Rewrite ``@main(dims..., inputs...)`` into ``@main(inputs...)`` computing each
    dimension variable from an input's ``tensor.dim`` and checking the other inputs'
    dimensions of the same name at run time (``avals``: the inputs' symbolic shapes)."""
    from stepwell.core.ir import context, ir
    from stepwell.core.types import TensorType

    body = module.mlir.body if hasattr(module, "mlir") else module.body
    funcs = {ir.StringAttr(op.attributes["sym_name"]).value: op
             for op in body.operations if op.operation.name == "func.func"}
    main = funcs.get("main")
    if main is None:
        return
    dims = dim_vars(main)
    if not dims:
        return
    with context():
        ftype = ir.FunctionType(ir.TypeAttr(main.attributes["function_type"]).value)
        arg_types = [str(t) for t in ftype.inputs]
        res_types = [str(t) for t in ftype.results]
        inputs = arg_types[len(dims):]
        shapes = symbols_of(avals)
        names = list(names) if names else [f"input{i}" for i in range(len(inputs))]
        where = {}  # symbol -> every (input, axis) holding it
        for k, shape in enumerate(shapes):
            for a, d in enumerate(shape):
                if isinstance(d, str):
                    where.setdefault(d, []).append((k, a))
        taken = {ir.StringAttr(op.attributes["sym_name"]).value for op in body.operations
                 if "sym_name" in op.attributes}
        inner = _fresh("main_dims", taken)
        main.attributes["sym_name"] = ir.StringAttr.get(inner)
        main.attributes["sym_visibility"] = ir.StringAttr.get("private")
        lines = [f"func.func private @{inner}({', '.join(arg_types)}) -> ({', '.join(res_types)})",
                 f"func.func @main({', '.join(f'%in{i}: {t}' for i, t in enumerate(inputs))}) "
                 f"-> ({', '.join(res_types)}) {{"]
        values, n = {}, [0]

        def dim(k, a):
            key = (k, a)
            if key not in values:
                i = n[0] = n[0] + 1
                lines.append(f"  %c{i} = arith.constant {a} : index")
                lines.append(f"  %d{i} = tensor.dim %in{k}, %c{i} : {inputs[k]}")
                values[key] = f"%d{i}"
            return values[key]

        call = []
        for j, var in enumerate(dims):
            if var not in where:
                raise StepwellError(f"the dimension variable '{var}' is not a whole dimension of any "
                                    "input (only expressions of it are): name it in an input's spec")
            (k0, a0), *others = where[var]
            first = dim(k0, a0)
            for k, a in others:
                i = n[0] = n[0] + 1
                lines.append(f"  %eq{i} = arith.cmpi eq, {dim(k, a)}, {first} : index")
                msg = (f"input '{names[k]}' dimension {a} ({var}) differs from input "
                       f"'{names[k0]}' dimension {a0}")
                lines.append(f"  cf.assert %eq{i}, {json.dumps(msg)}")
            elem = TensorType.parse(arg_types[j]).dtype
            lines += [f"  %dv{j}i = arith.index_cast {first} : index to {elem}",
                      f"  %dv{j} = tensor.from_elements %dv{j}i : {arg_types[j]}"]
            call.append(f"%dv{j}")
        call += [f"%in{i}" for i in range(len(inputs))]
        results = f"%r:{len(res_types)} = " if len(res_types) > 1 else ("%r = " if res_types else "")
        lines.append(f"  {results}func.call @{inner}({', '.join(call)}) : ({', '.join(arg_types)}) "
                     f"-> ({', '.join(res_types)})")
        rets = [f"%r#{i}" for i in range(len(res_types))] if len(res_types) > 1 else (
            ["%r"] if res_types else [])
        lines.append(f"  func.return {', '.join(rets)}{' : ' if rets else ''}{', '.join(res_types)}")
        lines.append("}")
        snippet = ir.Module.parse("\n".join(lines), context())
        for op in list(snippet.body.operations)[1:]:  # the declaration stays behind
            body.append(op)


def _fresh(base: str, taken: set) -> str:
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name
