"""JAX -> stepwell: lower a function with JAX, parse its StableHLO, raise it to ``nn``."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import jax
import numpy as np

from stepwell.core import stablehlo
from stepwell.core import verifier
from stepwell.core.diagnostics import Diagnostic, StepwellError
from stepwell.core.module import Module, parse

RAISE_PASS = "stablehlo-to-nn"


class JaxModule(Module):
    """A :class:`~stepwell.Module` imported from a JAX function, plus what is needed to
    call it like the function: the argument and result pytree structures.

    ``in_tree``/``out_tree``: ``jax.tree_util.PyTreeDef`` of ``(args, kwargs)`` (static
    arguments left out) and of the result; ``in_avals``/``out_avals``: the
    ``ShapedArray`` of each flattened argument and result (the order of @main's
    arguments and results); ``raised``: whether ``stablehlo-to-nn`` ran on it, and
    ``raise_report`` what it raised.
    """

    def __init__(self, mlir_module, name: str = "-", *, in_tree=None, out_tree=None,
                 in_avals=(), out_avals=(), raised: bool = False):
        super().__init__(mlir_module, name)
        self.in_tree = in_tree
        self.out_tree = out_tree
        self.in_avals = tuple(in_avals)
        self.out_avals = tuple(out_avals)
        self.raised = raised
        self.raise_report = None  # stepwell.raising.Report once raised

    def clone(self) -> "JaxModule":
        copy = super().clone()
        out = JaxModule(copy.mlir, self.name, in_tree=self.in_tree, out_tree=self.out_tree,
                        in_avals=self.in_avals, out_avals=self.out_avals, raised=self.raised)
        out.raise_report = self.raise_report
        return out

    def flatten_args(self, *args, **kwargs) -> list:
        """The arguments (without static ones) as @main's flat list of leaves."""
        leaves, tree = jax.tree.flatten((args, kwargs))
        if tree != self.in_tree:
            raise StepwellError(f"arguments do not match the imported function's structure: "
                                f"got {tree}, imported with {self.in_tree}")
        return leaves

    def unflatten_results(self, leaves):
        return jax.tree.unflatten(self.out_tree, list(leaves))


# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Signature:
    """How a call's arguments split into traced leaves and static values."""
    leaves: tuple          # the traced (array) arguments, flattened
    in_tree: object        # PyTreeDef of (dynamic args, dynamic kwargs)
    static_args: tuple     # ((position, value), ...)
    static_kwargs: tuple   # ((name, value), ...)
    n_args: int

    def key(self) -> tuple:
        return (self.in_tree, self.static_args, self.static_kwargs, self.n_args)

    def rebuild(self, flat):
        """The full ``(args, kwargs)`` of the function from flat traced leaves."""
        dyn_args, dyn_kwargs = jax.tree.unflatten(self.in_tree, list(flat))
        args, it, statics = [], iter(dyn_args), dict(self.static_args)
        for i in range(self.n_args):
            args.append(statics[i] if i in statics else next(it))
        return args, {**dyn_kwargs, **dict(self.static_kwargs)}


def _normalize_argnums(argnums, n: int) -> tuple[int, ...]:
    if argnums is None:
        return ()
    if isinstance(argnums, int):
        argnums = (argnums,)
    out = []
    for i in argnums:
        j = i + n if i < 0 else i
        if 0 <= j < n:
            out.append(j)
    return tuple(sorted(set(out)))


def resolve_static(fn, static_argnums=(), static_argnames=()) -> tuple[tuple, tuple]:
    """Like ``jax.jit``: a static parameter may be named by position or by name, and
    is static however it is passed."""
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums or ())
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames or ())
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return nums, names
    positional = [p.name for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    nums = tuple(sorted(set(nums) | {positional.index(n) for n in names if n in positional}))
    names = tuple(dict.fromkeys(names + tuple(positional[i] for i in nums
                                              if 0 <= i < len(positional))))
    return nums, names


def signature(args, kwargs, static_argnums=(), static_argnames=()) -> Signature:
    statics = _normalize_argnums(static_argnums, len(args))
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames or ())
    static_args = tuple((i, args[i]) for i in statics)
    static_kwargs = tuple(sorted((k, v) for k, v in kwargs.items() if k in names))
    for where, value in [*static_args, *static_kwargs]:
        try:
            hash(value)
        except TypeError:
            raise StepwellError(f"static argument {where!r} must be hashable, got "
                                f"{type(value).__name__}") from None
    dyn_args = tuple(a for i, a in enumerate(args) if i not in statics)
    dyn_kwargs = {k: v for k, v in kwargs.items() if k not in names}
    leaves, tree = jax.tree.flatten((dyn_args, dyn_kwargs))
    return Signature(tuple(leaves), tree, static_args, static_kwargs, len(args))


def aval_of(leaf):
    """The ``ShapedArray`` JAX traces a leaf as (arrays, scalars, ShapeDtypeStruct)."""
    try:
        return jax.typeof(leaf)
    except TypeError:
        raise StepwellError(f"an argument of type {type(leaf).__name__} is not an array: "
                            "pass arrays (or mark it static with static_argnums)") from None


# ---------------------------------------------------------------------------
def lower_to_text(fn, sig: Signature, avals, shardings=None):
    """StableHLO text (with JAX's source locations) of ``fn`` at ``avals``, the result
    tree and avals, and JAX's ``Lowered``. ``shardings``: ``(in, out)``, one JAX
    sharding (or None) per flat argument and per flat result (``frontends/jax/shardy.py``)."""
    captured = {}

    def flat_fn(*flat):
        args, kwargs = sig.rebuild(flat)
        out = fn(*args, **kwargs)
        leaves, captured["tree"] = jax.tree.flatten(out)
        return leaves

    # The module is named after the function (@jit_<name>), as jax.jit(fn) would name it.
    flat_fn.__name__ = flat_fn.__qualname__ = re.sub(r"\W", "_", _fn_name(fn))
    specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in avals]
    jit_kwargs = {} if shardings is None else {"in_shardings": list(shardings[0]),
                                               "out_shardings": list(shardings[1])}
    lowered = jax.jit(flat_fn, keep_unused=True, **jit_kwargs).lower(*specs)
    out_avals = [jax.ShapeDtypeStruct(o.shape, o.dtype) for o in jax.tree.leaves(lowered.out_info)]
    return lowered.as_text(debug_info=True), captured["tree"], out_avals, lowered


def _fn_name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def import_function(fn, *example_args, raise_ops: bool = True, static_argnums=(), static_argnames=(),
                    name: str | None = None, input_names=None, **example_kwargs) -> JaxModule:
    """Lower ``fn`` at ``example_args`` (arrays, scalars or ``jax.ShapeDtypeStruct``,
    any pytree) with JAX and return it as a stepwell module.

    The StableHLO comes with JAX's locations (the Python lines of ``fn``); single-device
    Shardy annotations are removed. ``raise_ops=True`` runs the ``stablehlo-to-nn``
    pass when it is available (it raises what it recognizes to ``nn``/``prim`` and
    leaves the rest as StableHLO); ``raise_ops=False`` keeps plain StableHLO.
    """
    static_argnums, static_argnames = resolve_static(fn, static_argnums, static_argnames)
    sig = signature(example_args, example_kwargs, static_argnums, static_argnames)
    avals = [aval_of(leaf) for leaf in sig.leaves]
    return _import(fn, sig, avals, raise_ops=raise_ops, name=name, input_names=input_names)


def _import(fn, sig: Signature, avals, *, raise_ops: bool, name: str | None = None,
            shardings=None, input_names=None) -> JaxModule:
    text, out_tree, out_avals, lowered = lower_to_text(fn, sig, avals, shardings)
    if shardings is not None:  # Shardy's annotations as nn.mesh/nn.sharding
        from stepwell.frontends.jax.shardy import to_nn
        text = to_nn(text)
    display = name or f"<jax:{_fn_name(fn)}>"
    try:
        module = parse(text, name=display)  # (single-device Shardy annotations are dropped)
    except StepwellError as e:
        if "sdy." in text and "sdy" in str(e):
            raise StepwellError(f"'{_fn_name(fn)}' lowers to Shardy (sdy) ops that IREE rejects: "
                                "import it for one device, without shard_map") from None
        # A StableHLO printed by a newer JAX than IREE's parser knows: the generic
        # form is the most portable spelling.
        generic = lowered.compiler_ir("stablehlo").operation.get_asm(
            print_generic_op_form=True, enable_debug_info=True)
        module = parse(generic, name=display)
    if "nn.mesh" not in module.operation.attributes:
        _check_single_device(module)
    stablehlo.strip_shardy(module)
    from stepwell.frontends.jax.dims import bind_dimension_args
    bind_dimension_args(module, avals, input_names)
    leftover = sorted({op.name for op in verifier.walk(module.operation) if op.name.startswith("sdy.")})
    if leftover:
        raise StepwellError(f"'{_fn_name(fn)}' lowers to Shardy ops ({', '.join(leftover)}) that "
                            "IREE rejects: import it for one device, without shard_map")
    jm = JaxModule(module.mlir, display, in_tree=sig.in_tree, out_tree=out_tree,
                   in_avals=avals, out_avals=out_avals)
    if raise_ops:
        raise_stablehlo(jm)
    return jm


def _check_single_device(module: Module) -> None:
    attrs = module.operation.attributes
    for key in ("mhlo.num_partitions", "mhlo.num_replicas"):
        if key in attrs:
            m = re.match(r"\s*(\d+)", str(attrs[key]))
            if m and int(m[1]) > 1:
                raise StepwellError(f"the function is lowered for {m[1]} devices ({key}): stepwell "
                                    "compiles single-device programs")


def raise_available() -> bool:
    from stepwell import passes
    return passes.get(RAISE_PASS) is not None


def raise_stablehlo(module: JaxModule) -> bool:
    """Run ``stablehlo-to-nn`` on ``module`` in place (a StepwellError if the pass is
    missing); returns True.
    What it raised is kept in ``module.raise_report`` (``stepwell.raising.Report``)."""
    if not raise_available():  # it ships with stepwell: a broken install, said so
        raise StepwellError(f"raise_ops=True needs the '{RAISE_PASS}' pass, which is not "
                            "registered (reinstall stepwell); raise_ops=False compiles the "
                            "StableHLO as it is")
    try:
        from stepwell.frontends.jax import raising
        module.raise_report = raising.raise_stablehlo(module)
    except StepwellError as e:
        raise type(e)(e.diagnostics + [Diagnostic(
            "raising StableHLO to nn failed; sw.jax.import_function(..., raise_ops=False) / "
            "sw.jax.jit(..., raise_ops=False) compiles the StableHLO directly", "note")]) from None
    module.raised = True
    return True


def to_numpy(leaf, dtype) -> np.ndarray:
    """A call argument as the numpy array the compiled function takes."""
    a = np.asarray(leaf)
    return a if a.dtype == dtype else a.astype(dtype)
