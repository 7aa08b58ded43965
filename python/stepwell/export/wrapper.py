"""The exported module: parameters become ``util.global``s read from the archive, and a new
``@main`` takes only the inputs.

JAX's ``@main(params..., inputs...)`` is renamed to a private function; the new ``@main``
loads every parameter from its global (``#flow.parameter.named<"model"::"name">``) and
calls it. IREE inlines the call. JAX's dimension arguments (the symbolic batch) are
computed from the inputs' shapes.
"""

from __future__ import annotations

import json

from stepwell.core.diagnostics import StepwellError
from stepwell.export.manifest import BATCH, SCOPE
from stepwell.export.pytree import symbol


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


def wrap(module, n_params: int, names: list[str], n_trailing: int = 0):
    """Rename JAX's ``@main`` to a private function and add a new ``@main`` that
    loads the ``n_params`` arguments after the dimension arguments, and the last
    ``n_trailing`` (quantized weights), from ``util.global``s bound to the parameter
    archive (``names``: theirs, in that order; JAX's dimension arguments are computed
    from the inputs)."""
    from stepwell.core.ir import context, ir
    from stepwell.core.types import TensorType

    with context():
        funcs = {ir.StringAttr(op.attributes["sym_name"]).value: op
                 for op in module.body.operations if op.operation.name == "func.func"}
        taken = {ir.StringAttr(op.attributes["sym_name"]).value
                 for op in module.body.operations if "sym_name" in op.attributes}
        main = funcs.get("main")
        if main is None:
            raise StepwellError("export: the lowered module has no @main")
        ftype = ir.FunctionType(ir.TypeAttr(main.attributes["function_type"]).value)
        arg_types = [str(t) for t in ftype.inputs]
        res_types = [str(t) for t in ftype.results]
        dims = dim_vars(main)
        n_dims = len(dims)
        if len(arg_types) < n_dims + n_params + n_trailing:
            raise StepwellError(f"export: @main has {len(arg_types)} arguments, fewer than "
                                f"the {n_params} parameters")
        inner = fresh("main_exported", taken)
        main.attributes["sym_name"] = ir.StringAttr.get(inner)
        main.attributes["sym_visibility"] = ir.StringAttr.get("private")

        end = len(arg_types) - n_trailing
        param_types = arg_types[n_dims:n_dims + n_params] + arg_types[end:]
        input_types = arg_types[n_dims + n_params:end]
        symbols = [symbol(n, taken) for n in names]
        lines = [f"func.func private @{inner}({', '.join(arg_types)}) -> ({', '.join(res_types)})"]
        for sym, n, t in zip(symbols, names, param_types):
            lines.append(f"util.global private @{sym} = #flow.parameter.named<"
                         f"{json.dumps(SCOPE)}::{json.dumps(n, ensure_ascii=False)}> : {t}")
        ins = ", ".join(f"%in{i}: {t}" for i, t in enumerate(input_types))
        lines.append(f"func.func @main({ins}) -> ({', '.join(res_types)}) {{")
        call_args = []
        for k, var in enumerate(dims):
            if var != BATCH:
                raise StepwellError(f"export: the lowered function has the dimension variable "
                                    f"'{var}'; only the batch ('{BATCH}') is supported")
            src = next((i for i, t in enumerate(input_types)
                        if t.startswith("tensor<?")), None)
            if src is None:
                raise StepwellError("export: no input has a dynamic leading dimension")
            elem = TensorType.parse(arg_types[k]).dtype
            lines += [f"  %c0_{k} = arith.constant 0 : index",
                      f"  %dim_{k} = tensor.dim %in{src}, %c0_{k} : {input_types[src]}",
                      f"  %dimi_{k} = arith.index_cast %dim_{k} : index to {elem}",
                      f"  %dv{k} = tensor.from_elements %dimi_{k} : {arg_types[k]}"]
            call_args.append(f"%dv{k}")
        loads = []
        for i, (sym, t) in enumerate(zip(symbols, param_types)):
            lines.append(f"  %p{i} = util.global.load @{sym} : {t}")
            loads.append(f"%p{i}")
        call_args += loads[:n_params]
        call_args += [f"%in{i}" for i in range(len(input_types))]
        call_args += loads[n_params:]
        results = f"%r:{len(res_types)} = " if len(res_types) > 1 else ("%r = " if res_types else "")
        lines.append(f"  {results}func.call @{inner}({', '.join(call_args)}) : "
                     f"({', '.join(arg_types)}) -> ({', '.join(res_types)})")
        rets = [f"%r#{i}" for i in range(len(res_types))] if len(res_types) > 1 else (
            ["%r"] if res_types else [])
        lines.append(f"  func.return {', '.join(rets)}{' : ' if rets else ''}{', '.join(res_types)}")
        lines.append("}")
        text = "\n".join(lines)
        try:
            snippet = ir.Module.parse(text, context())
        except ir.MLIRError as e:  # a bug of ours, not the user's: say what was built
            raise StepwellError(f"export: the wrapper module does not parse: {e}") from None
        for op in list(snippet.body.operations)[1:]:  # the declaration stays behind
            module.body.append(op)
    module.param_types = [TensorType.parse(t) for t in param_types]
    module.param_symbols = symbols
    module.input_types = [TensorType.parse(t) for t in input_types]
    module.output_types = [TensorType.parse(t) for t in res_types]
    return module


def fresh(base: str, taken: set) -> str:
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name
