"""The exported module: parameters become ``util.global``s read from the archive, and each
entry point is a public function taking only its inputs.

Each entry's JAX module (its ``@main(params..., inputs..., quantized params...)``, whose
dimension arguments the import already bound to the inputs' sizes) is moved into one
module, its functions renamed apart (``@<entry>__main`` and so on). One global per
parameter name (``#flow.parameter.named<"model"::"name">``) serves every entry that
reads it; the public ``@<entry>`` loads the globals it needs and calls the private
function. IREE inlines the calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from stepwell.core.diagnostics import StepwellError
from stepwell.export.manifest import SCOPE
from stepwell.export.pytree import symbol


@dataclass
class Wrapped:
    """What a module's entry points take and give, and its parameter globals."""
    input_types: dict          # entry -> [TensorType]
    output_types: dict         # entry -> [TensorType]
    param_names: list          # the archive names, in global order
    param_types: list          # TensorType of each
    param_symbols: list        # the util.global symbol of each


def wrap(module, entries) -> Wrapped:
    """Merge the entry modules into ``module`` (a fresh one) with shared parameter globals.

    ``entries``: ``(name, entry module, parameter names)`` where the entry module's
    ``@main`` takes ``len(leading)`` parameters, then its inputs, then ``len(trailing)``
    parameters: parameter names is ``(leading, trailing)``."""
    from stepwell.core.ir import context, ir
    from stepwell.core.types import TensorType

    types, order = {}, []
    lines, ins, outs = [], {}, {}
    taken = {"main"} | {n for n, _, _ in entries}
    with context():
        for name, sub, (leading, trailing) in entries:
            inner = _adopt(module, sub, name, taken)
            ftype = ir.FunctionType(ir.TypeAttr(inner.attributes["function_type"]).value)
            arg_types = [str(t) for t in ftype.inputs]
            res_types = [str(t) for t in ftype.results]
            n_in = len(arg_types) - len(leading) - len(trailing)
            if n_in < 0:
                raise StepwellError(f"export: @{name} has {len(arg_types)} arguments, fewer than "
                                    f"its {len(leading) + len(trailing)} parameters")
            params = list(zip(leading, arg_types[:len(leading)]))
            params += list(zip(trailing, arg_types[len(arg_types) - len(trailing):]))
            inputs = arg_types[len(leading):len(leading) + n_in]
            for pname, t in params:
                if pname in types and types[pname] != t:
                    raise StepwellError(f"export: parameter '{pname}' is {types[pname]} in one entry "
                                        f"point and {t} in '{name}'")
                if pname not in types:
                    types[pname] = t
                    order.append(pname)
            ins[name] = [TensorType.parse(t) for t in inputs]
            outs[name] = [TensorType.parse(t) for t in res_types]
            lines.append((name, inner, params, inputs, arg_types, res_types, len(leading)))
        symbols = {n: symbol(n, taken) for n in order}
        # declarations of the private functions, for the snippet to parse (they stay behind)
        text = [f"func.func private @{ir.StringAttr(inner.attributes['sym_name']).value}"
                f"({', '.join(arg_types)}) -> ({', '.join(res_types)})"
                for _, inner, _, _, arg_types, res_types, _ in lines]
        text += [f"util.global private @{symbols[n]} = #flow.parameter.named<"
                f"{json.dumps(SCOPE)}::{json.dumps(n, ensure_ascii=False)}> : {types[n]}" for n in order]
        for name, inner, params, inputs, arg_types, res_types, n_lead in lines:
            text += _entry_text(name, ir.StringAttr(inner.attributes["sym_name"]).value, symbols,
                                params, inputs, arg_types, res_types, n_lead)
        try:
            snippet = ir.Module.parse("\n".join(text), context())
        except ir.MLIRError as e:  # a bug of ours, not the user's: say what was built
            raise StepwellError(f"export: the wrapper module does not parse: {e}") from None
        for op in list(snippet.body.operations)[len(lines):]:
            module.body.append(op)
    return Wrapped(ins, outs, order, [TensorType.parse(types[n]) for n in order],
                   [symbols[n] for n in order])


def wrap_main(sub, names: list, name: str | None = None):
    """``(module, Wrapped)``: ``sub``'s ``@main(params..., inputs...)`` as the one entry
    point ``main`` of a fresh module, its parameters (``names``) read from the archive."""
    from stepwell.core.ir import context, ir
    from stepwell.core.module import Module
    with context(), ir.Location.unknown():
        module = Module(ir.Module.create(), name or sub.name)
    return module, wrap(module, [("main", sub, (list(names), []))])


def _adopt(module, sub, entry: str, taken: set):
    """Move ``sub``'s functions into ``module``, renamed ``<entry>__<name>`` (all private);
    returns the former ``@main``."""
    from stepwell.core.ir import ir
    ops = [op for op in sub.body.operations]
    names = {ir.StringAttr(op.attributes["sym_name"]).value for op in ops if "sym_name" in op.attributes}
    renamed = {}
    for old in sorted(names):
        new = fresh(f"{entry}__{old}", taken)
        renamed[old] = new
        ir.SymbolTable.replace_all_symbol_uses(old, new, sub.operation)
    main = None
    for op in ops:
        if "sym_name" in op.attributes:
            old = ir.StringAttr(op.attributes["sym_name"]).value
            op.attributes["sym_name"] = ir.StringAttr.get(renamed[old])
            op.attributes["sym_visibility"] = ir.StringAttr.get("private")
            if old == "main":
                main = op
        module.body.append(op)
    if main is None:
        raise StepwellError(f"export: the lowered module of '{entry}' has no @main")
    return main


def _entry_text(name, inner, symbols, params, inputs, arg_types, res_types, n_lead) -> list[str]:
    """``func.func @<name>(inputs...)`` loading the parameters and calling ``@inner``."""
    lines = [f"func.func @{name}({', '.join(f'%in{i}: {t}' for i, t in enumerate(inputs))}) "
             f"-> ({', '.join(res_types)}) {{"]
    loads = []
    for i, (pname, t) in enumerate(params):
        lines.append(f"  %p{i} = util.global.load @{symbols[pname]} : {t}")
        loads.append(f"%p{i}")
    args = loads[:n_lead] + [f"%in{i}" for i in range(len(inputs))] + loads[n_lead:]
    results = f"%r:{len(res_types)} = " if len(res_types) > 1 else ("%r = " if res_types else "")
    lines.append(f"  {results}func.call @{inner}({', '.join(args)}) : "
                 f"({', '.join(arg_types)}) -> ({', '.join(res_types)})")
    rets = [f"%r#{i}" for i in range(len(res_types))] if len(res_types) > 1 else (
        ["%r"] if res_types else [])
    lines.append(f"  func.return {', '.join(rets)}{' : ' if rets else ''}{', '.join(res_types)}")
    lines.append("}")
    return lines


def fresh(base: str, taken: set) -> str:
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name
