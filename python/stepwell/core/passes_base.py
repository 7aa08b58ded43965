"""The pass framework: a pass is a small dataclass with a kebab-case name.

Options are dataclass fields and double as textual options
(``prim-to-linalg{fuse=false}``). Passes register themselves with :func:`register`
in ``passes/<name>.py``; ``stepwell.passes`` imports them lazily by name.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import ClassVar

from stepwell.core.diagnostics import PassError, at
from stepwell.core.ir import context, ir, rewrite

PASSES: dict[str, type["Pass"]] = {}


@dataclasses.dataclass
class Pass:
    """Base class: subclasses set ``name`` and implement :meth:`run`."""

    name: ClassVar[str] = ""

    def run(self, module) -> None:  # module: stepwell.module.Module
        raise NotImplementedError(f"pass '{self.name}' does not implement run()")

    @classmethod
    def summary(cls) -> str:
        """The docstring's first paragraph on one line."""
        return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))

    @classmethod
    def from_options(cls, options: dict[str, str]) -> "Pass":
        """Instantiate from textual options, converting by each field's type."""
        fields = {f.name.replace("_", "-"): f for f in cls.option_fields()}
        kwargs = {}
        for key, text in options.items():
            f = fields.get(key) or fields.get(key.replace("_", "-"))
            if f is None:
                known = ", ".join(fields) or "none"
                raise ValueError(f"pass '{cls.name}' has no option '{key}' (options: {known})")
            kwargs[f.name] = _convert(text, f, cls.name)
        return cls(**kwargs)

    def __str__(self) -> str:
        opts = []
        for f in self.option_fields():
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if value != default:
                opts.append(f"{f.name.replace('_', '-')}={_format(value)}")
        return self.name + ("{" + " ".join(opts) + "}" if opts else "")


def _convert(text: str, f: dataclasses.Field, pass_name: str):
    ftype = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if ftype == "bool":
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if ftype == "int":
            return int(text)
        if ftype == "float":
            return float(text)
        if ftype.startswith("tuple") or ftype.startswith("list"):
            items = [t for t in text.replace(",", " ").split() if t]
            return tuple(int(t) if t.lstrip("-").isdigit() else t for t in items)
        return text
    except ValueError:
        raise ValueError(f"pass '{pass_name}' option '{f.name}' expects {ftype}, "
                         f"found '{text}'") from None


def _format(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def register(cls: type[Pass]) -> type[Pass]:
    """Class decorator: add a pass to the registry under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no pass name")
    # A subclass of the Pass dataclass "is" a dataclass already, but its own
    # annotated options only become fields when it is decorated itself.
    PASSES[cls.name] = cls if "__dataclass_fields__" in cls.__dict__ else dataclasses.dataclass(cls)
    return PASSES[cls.name]


def suggest(name: str, names) -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


NO_MATCH = True  # what a pattern function returns when it does not apply


def producer(value, name: str):
    """The op named ``name`` that defines ``value``, else None."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    owner = owner.operation
    return owner if owner.name == name else None


def splat_value(value):
    """The scalar of a splat ``arith.constant`` defining ``value``, else None."""
    const = producer(value, "arith.constant")
    if const is None:
        return None
    attr = const.attributes["value"]
    if not isinstance(attr, ir.DenseElementsAttr) or not attr.is_splat:
        return None
    scalar = attr.get_splat_value()
    return scalar.value if isinstance(scalar, (ir.FloatAttr, ir.IntegerAttr)) else None


def index_constant(value):
    """The int of an ``arith.constant`` of index type defining ``value``, else None."""
    const = producer(value, "arith.constant")
    if const is None or not isinstance(value.type, ir.IndexType):
        return None
    return ir.IntegerAttr(const.attributes["value"]).value


def reshape_chain_rule(name: str):
    """The pattern ``reshape(reshape(x)) -> reshape(x)`` (``x`` itself when the types
    match) for the reshape op ``name`` (``nn.reshape``, ``prim.reshape``)."""
    def fold(op, rewriter):
        inner = producer(op.operands[0], name)
        if inner is None:
            return NO_MATCH
        dynamic = str(op.results[0].type).count("?")
        if len(op.operands) == 1 and len(inner.operands) > 1 and dynamic > 1:
            return NO_MATCH  # (the inner's sizes are what tells the dynamic dims apart)
        source = inner.operands[0]
        if source.type == op.results[0].type:
            rewriter.replace_op(op, [source])
        else:
            with rewriter.ip, op.location:  # (the outer reshape's sizes describe the result)
                new = ir.Operation.create(name, results=[op.results[0].type],
                                          operands=[source] + list(op.operands)[1:])
            rewriter.replace_op(op, new)
        if not list(inner.results[0].uses):
            rewriter.erase_op(inner)
        return None
    fold.__name__ = f"fold_{name.replace('.', '_')}_chain"
    return fold


def apply_patterns(module, patterns: dict) -> None:
    """Apply ``{root op name: fn(op, rewriter)}`` greedily (with folding) to a module.

    Each ``fn`` returns a truthy value when it does not match, like the bindings'
    ``RewritePatternSet`` expects.
    """
    errors: list[BaseException] = []

    def guard(fn):
        def run(op, rewriter):
            if errors:
                return True
            try:
                return fn(op, rewriter)
            except BaseException as e:  # surfaced after the driver returns
                errors.append(e)
                return True
        return run

    patterns_set = rewrite.RewritePatternSet(context())
    for root, fns in patterns.items():
        for fn in fns if isinstance(fns, (list, tuple)) else [fns]:
            patterns_set.add(root, guard(fn))
    rewrite.apply_patterns_and_fold_greedily(module.mlir, patterns_set.freeze())
    if errors:
        raise errors[0]


def fail_at(op, message: str) -> PassError:
    """A PassError located at ``op``."""
    return PassError([at(op.location, message)])
