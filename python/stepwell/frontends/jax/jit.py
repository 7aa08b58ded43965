"""``sw.jax.jit``: a drop-in for ``jax.jit`` that compiles through stepwell and IREE."""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from stepwell.core import verifier
from stepwell.core.diagnostics import Diagnostic, StepwellError, location_parts
from stepwell.frontends.jax.importer import (JaxModule, _fn_name, _import, aval_of, resolve_static, signature,
                                  to_numpy)
from stepwell.compiler.stablehlo_screen import JAX_PRIMITIVES, UnsupportedOpError


@dataclass
class _Entry:
    module: JaxModule
    exe: object          # stepwell.runtime.Executable
    arg_dtypes: tuple    # numpy dtype of each flat argument as the executable takes it
    mesh: object = None  # the jax.sharding.Mesh results are laid out over (shardings given)


def jit(fn=None, *, target="cpu", static_argnums=(), static_argnames=(), donate_argnums=(),
        donate_argnames=(), raise_ops: bool = True, flags=(), cache: bool | None = None,
        precision: str | None = None, in_shardings=None, out_shardings=None, tuning="auto",
        dynamic_batch: bool = False, dynamic_dims=None, batch_argnums=None):
    """Compile ``fn`` through stepwell, like ``jax.jit``::

        f = sw.jax.jit(model_apply, target="cpu")
        y = f(params, x)                      # same pytree of results as model_apply

    On the first call for each input signature (the argument pytree structure, each
    leaf's shape and dtype, the static arguments' values) the function is lowered by
    JAX, raised to ``nn`` (``raise_ops``, when the ``stablehlo-to-nn`` pass exists),
    compiled by IREE for ``target`` (through the on-disk cache, ``cache``) and kept;
    later calls with the same signature reuse it.

    Arguments may be numpy arrays, JAX arrays or Python scalars (converted to the
    dtype JAX traces them with). Results are JAX arrays (``jnp.asarray`` of the
    numpy results), in ``fn``'s output pytree, so the function is a drop-in.
    ``donate_argnums``/``donate_argnames`` are accepted and ignored (IREE's runtime
    copies inputs). Usable as a decorator, with or without arguments. ``precision``
    applies a precision policy to the raised module (``"bf16"``, ``"int8"``, ...:
    ``sw.compile``'s ``precision``, docs/low-precision.md). ``tuning``: the tuning
    database compiles apply (``"auto"``, ``"off"``, a path); ``f.tune(*args)`` fills it
    for this function (docs/tuning.md).

    ``in_shardings``/``out_shardings`` take JAX's shardings (``NamedSharding``, or
    ``PartitionSpec`` under ``jax.set_mesh(mesh)``), as ``jax.jit`` does: Shardy's
    propagation (in jaxlib) completes them, ``nn-partition`` splits the program over
    the mesh's devices, and one IREE module runs it on as many runtime devices
    (docs/distributed.md). Results come back laid out as JAX would lay them out;
    :meth:`JitFunction.shards` gives each device's part.

    Dynamic dimensions compile once for every size: ``dynamic_dims`` gives one
    ``jax.export`` shape spec per positional argument (``(None, "b, s")``: ``None``
    keeps an argument static; ``stepwell.frontends.jax.dims``); ``dynamic_batch=True``
    makes the leading dimension of the arguments ``batch_argnums`` dynamic (default:
    all positional arguments but the first, which holds the parameters in the
    ``fn(params, *inputs)`` convention of ``sw.jax.export``; all of them when ``fn``
    takes one). Calls with other sizes of those dimensions reuse the compiled module.

    A JAX feature stepwell cannot compile fails on the first call with a
    :class:`~stepwell.StepwellError` naming the JAX primitive, and suggesting
    ``raise_ops=False`` when raising was on.
    """
    options = dict(target=target, static_argnums=static_argnums, static_argnames=static_argnames,
                   raise_ops=raise_ops, flags=flags, cache=cache, precision=precision,
                   in_shardings=in_shardings, out_shardings=out_shardings, tuning=tuning,
                   dynamic_batch=dynamic_batch, dynamic_dims=dynamic_dims, batch_argnums=batch_argnums)
    if fn is None:
        return functools.partial(jit, donate_argnums=donate_argnums, donate_argnames=donate_argnames,
                                 **options)
    return JitFunction(fn, **options)


class JitFunction:
    """What :func:`jit` returns: call it like the wrapped function."""

    def __init__(self, fn, *, target="cpu", static_argnums=(), static_argnames=(), raise_ops=True,
                 flags=(), cache=None, precision=None, in_shardings=None, out_shardings=None,
                 tuning="auto", dynamic_batch=False, dynamic_dims=None, batch_argnums=None):
        from stepwell import targets
        self.fn = fn
        self.target = targets.get(target)
        self.static_argnums, self.static_argnames = resolve_static(fn, static_argnums, static_argnames)
        self.raise_ops = raise_ops
        self.flags = tuple(flags.split() if isinstance(flags, str) else flags)
        self.cache = cache
        self.precision = precision  # a precision policy (sw.compile's precision=)
        self.in_shardings, self.out_shardings = in_shardings, out_shardings
        self.tuning = tuning        # the tuning database compiles apply (sw.compile's tuning=)
        if dynamic_batch and dynamic_dims is not None:
            raise StepwellError("give dynamic_batch=True or dynamic_dims=, not both")
        self.dynamic_batch, self.dynamic_dims, self.batch_argnums = dynamic_batch, dynamic_dims, batch_argnums
        self._entries: dict = {}
        self._lock = threading.Lock()
        self.compiles = 0  # how many signatures were compiled (cache misses)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<stepwell.jax.jit {_fn_name(self.fn)} on {self.target.spec}>"

    def __get__(self, obj, objtype=None):  # works as a method decorator too
        return self if obj is None else functools.partial(self, obj)

    # -- the call -------------------------------------------------------------
    def _key(self, args, kwargs):
        sig = signature(args, kwargs, self.static_argnums, self.static_argnames)
        avals = [aval_of(leaf) for leaf in sig.leaves]
        if self.dynamic_batch or self.dynamic_dims is not None:
            avals = self._symbolic(args, avals)
        key = (sig.key(), tuple((tuple(map(str, a.shape)), np.dtype(a.dtype), a.weak_type) for a in avals),
               self.target.spec)
        return sig, avals, key

    def _symbolic(self, args, avals) -> list:
        """The avals with the dynamic dimensions symbolic (positional arguments come first
        among the flat leaves)."""
        from stepwell.frontends.jax.dims import symbolic_specs
        positions = [i for i in range(len(args)) if i not in self.static_argnums]
        dyn = tuple(args[i] for i in positions)
        if self.dynamic_batch:
            batched = self.batch_argnums
            if batched is None:
                batched = positions[1:] if len(positions) > 1 else positions
            batched = (batched,) if isinstance(batched, int) else tuple(batched)
            dims = tuple("b, ..." if i in batched and jax.tree.leaves(args[i]) else None for i in positions)
            dims = tuple(jax.tree.map(lambda a, d=d: d if np.ndim(a) >= 1 else None, args[i])
                         if d else None for i, d in zip(positions, dims))
        else:
            spec = self.dynamic_dims
            dims = tuple(spec[i] if i < len(spec) else None for i in positions) if isinstance(
                spec, (tuple, list)) else spec
        specs = jax.tree.leaves(symbolic_specs(dyn, dynamic_dims=dims))
        out = list(avals)
        for k, s in enumerate(specs):
            if any(not isinstance(d, (int, np.integer)) for d in s.shape):
                out[k] = aval_of(s)
        return out

    def __call__(self, *args, **kwargs):
        sig, avals, key = self._key(args, kwargs)
        entry = self._entries.get(key)
        if entry is None:
            with self._lock:
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._build(sig, avals)
                    self._entries[key] = entry
        inputs = [to_numpy(leaf, dtype) for leaf, dtype in zip(sig.leaves, entry.arg_dtypes)]
        outs = entry.exe(*inputs)
        if outs is None:
            outs = ()
        elif not isinstance(outs, tuple):
            outs = (outs,)
        leaves = [jnp.asarray(np.asarray(o).astype(a.dtype, copy=False))
                  for o, a in zip(outs, entry.module.out_avals)]
        if entry.mesh is not None:  # laid out over the mesh, as jax.jit would return them
            from jax.sharding import NamedSharding, PartitionSpec
            layout = entry.exe.function("main").layout
            leaves = [jax.device_put(leaf, NamedSharding(entry.mesh, PartitionSpec(*spec)))
                      for leaf, (_, _, spec) in zip(leaves, layout.outputs)]
        return entry.module.unflatten_results(leaves)

    def shards(self, *args, **kwargs) -> list[list[np.ndarray]]:
        """Each flat result as its per-device parts, device ``d`` being position ``d`` of
        the mesh (``mesh.devices.flat[d]`` in JAX); needs ``in_shardings``/``out_shardings``."""
        sig, avals, key = self._key(args, kwargs)
        entry = self._entries.get(key) or self._build(sig, avals)
        self._entries[key] = entry
        inputs = [to_numpy(leaf, dtype) for leaf, dtype in zip(sig.leaves, entry.arg_dtypes)]
        return entry.exe.function("main").shards(*inputs)

    def lower(self, *args, **kwargs) -> JaxModule:
        """The imported (and raised) module for these arguments, without compiling."""
        sig, avals, _ = self._key(args, kwargs)
        return _import(self.fn, sig, avals, raise_ops=self.raise_ops, shardings=self._shardings(sig, avals))

    def _shardings(self, sig, avals):
        if self.in_shardings is None and self.out_shardings is None:
            return None
        from stepwell.frontends.jax.shardy import flat_shardings
        return flat_shardings(self.fn, sig, avals, self.in_shardings, self.out_shardings)

    # keyword arguments of tune() itself; the others go to the function
    TUNE_OPTIONS = ("budget", "db", "max_candidates", "rounds", "jobs", "ray", "quiet")

    def tune(self, *args, **kwargs):
        """Tune this function for these arguments' signature on this machine (``sw.tune``;
        ``budget=`` seconds, ``db=``, ``max_candidates=``, ``rounds=``, ``jobs=``, ``ray=``,
        ``quiet=``); later calls compile with what was found. Returns the tuning report."""
        from stepwell.core import hooks
        options = {k: kwargs.pop(k) for k in self.TUNE_OPTIONS if k in kwargs}
        module = self.lower(*args, **kwargs)
        report = hooks.get("tune")(module, self.target, precision=self.precision, **options)
        self.clear_cache()  # recompile with the tuned configurations
        return report

    def clear_cache(self) -> None:
        with self._lock:
            self._entries.clear()

    def _cache_size(self) -> int:
        return len(self._entries)

    # -- compiling --------------------------------------------------------------
    def _build(self, sig, avals) -> _Entry:
        from stepwell.compiler import driver as compiler
        from stepwell.compiler.runtime import _tensor_type
        module = _import(self.fn, sig, avals, raise_ops=self.raise_ops, shardings=self._shardings(sig, avals))
        try:
            exe = compiler.compile(module, self.target, flags=self.flags, cache=self.cache,
                                   precision=self.precision, tuning=self.tuning)
        except StepwellError as e:
            raise explain(e, module, self.fn, self.raise_ops) from None
        self.compiles += 1
        declared = exe.function("main").arg_types or []
        dtypes = []
        for i, aval in enumerate(avals):
            t = _tensor_type(declared[i]) if i < len(declared) else None
            # IREE may demote (f64 -> f32): feed what the executable declares.
            dtypes.append(t.numpy_dtype() if t is not None else np.dtype(aval.dtype))
        mesh = None
        if self.in_shardings is not None or self.out_shardings is not None:
            from stepwell.frontends.jax.shardy import jax_mesh
            mesh = jax_mesh(self.in_shardings, self.out_shardings)
        return _Entry(module, exe, tuple(dtypes), mesh)


# ---------------------------------------------------------------------------
_OP_IN_MESSAGE = re.compile(r"'((?:stablehlo|chlo|nn|prim)\.\w+)'")


def primitive_of(op) -> str | None:
    """The JAX primitive an op came from, read from JAX's location name
    (``loc("jit(f)/fft"(...))``)."""
    loc = op.location
    from stepwell.core.diagnostics import _downcast
    from stepwell.core.ir import ir
    seen = 0
    while loc is not None and seen < 16:
        seen += 1
        loc = _downcast(loc)
        if isinstance(loc, ir.NameLoc):
            name = loc.name_str.split("/")[-1]
            name = re.sub(r"^jit\((.*)\)$", r"\1", name)
            return name or None
        if isinstance(loc, ir.CallSiteLoc):
            loc = loc.callee
            continue
        if isinstance(loc, ir.FusedLoc):
            locs = list(loc.locations)
            loc = locs[0] if locs else None
            continue
        return None
    return None


def _describe(op_name: str, op) -> str:
    prim = primitive_of(op) if op is not None else None
    prim = prim or JAX_PRIMITIVES.get(op_name) or op_name.split(".", 1)[-1]
    return f"JAX primitive '{prim}' ({op_name})"


def explain(error: StepwellError, module: JaxModule, fn, raise_ops: bool) -> StepwellError:
    """A compile failure restated for a JAX user: which primitive, and what to do."""
    name = _fn_name(fn)
    ops_by_name: dict = {}
    for op in verifier.walk(module.operation):
        ops_by_name.setdefault(op.name, op)
    if isinstance(error, UnsupportedOpError):
        found = [(n, ops_by_name.get(n), why) for n, _, why in error.ops]
    else:
        names = []
        for d in error.diagnostics:
            names += [n for n in _OP_IN_MESSAGE.findall(d.message) if n not in names]
        found = [(n, ops_by_name.get(n), None) for n in names]
    custom = any(n.startswith(("nn.", "prim.")) for n, _, _ in found) or any(
        " nn " in d.message or "'nn." in d.message or "'prim." in d.message for d in error.diagnostics)
    if found:
        first = found[0]
        what = _describe(first[0], first[1])
        lead = (f"sw.jax.jit({name}): {what} cannot be compiled by stepwell"
                + (f": {first[2]}" if first[2] else ""))
    else:
        located = next((d for d in error.diagnostics if d.line), None)  # e.g. compiler.locate's
        lead = f"sw.jax.jit({name}): compiling the function failed" + (
            f": {located.message}" if located else "")
    file, line, col = location_parts(first[1].location) if found and first[1] is not None else (None,) * 3
    if not found and located:
        file, line, col = located.file, located.line, located.col
    diags = [Diagnostic(lead, "error", file or module.name, line, col)]
    diags += [Diagnostic(d.message, "note" if d.severity == "error" else d.severity, d.file, d.line, d.col)
              for d in error.diagnostics]
    if raise_ops and (custom or not isinstance(error, UnsupportedOpError)):
        diags.append(Diagnostic("sw.jax.jit(..., raise_ops=False) compiles the StableHLO as JAX "
                                "emitted it, without raising it to nn", "note"))
    elif raise_ops:
        diags.append(Diagnostic("IREE cannot compile this op (raise_ops=False does not help): "
                                "run this function with jax.jit", "note"))
    else:
        diags.append(Diagnostic("IREE cannot compile this op: run this function with jax.jit", "note"))
    return StepwellError(diags)
