"""``--check-numerics``: evaluate a module after every pass and name the first pass
that changed its results. A compiler that checks its own lowerings::

    sw.Pipeline("nn-to-prim,prim-to-linalg", check_numerics=True).run(m)
    stepwell-opt --check-numerics --to-linalg model.mlir

Before the first pass, the module's ``@main`` (or, without one, each public
function) is run on seeded random inputs (or the ``inputs`` given); that is the
reference. After each pass that changed the IR it runs again on the same inputs:

* with the ops' numpy reference semantics (``stepwell.interpreter``) while the body
  holds only ``nn``/``prim`` ops, ``arith.constant`` and calls: no compiling;
* otherwise by compiling it with IREE (``sw.compile``: remaining ``nn``/``prim`` ops
  are lowered first, StableHLO goes to IREE's StableHLO input; through the compile
  cache) and running it on ``target`` (the host CPU by default).

A state that can be neither interpreted nor compiled (e.g. the ``vector`` stage) is
skipped and shown as such in the report, and named again in its last line
(:func:`summary`: ``N checked, K skipped (not checked: ...)``). The first pass whose results differ from
the reference by more than the tolerance raises :class:`NumericsError`:
``numerics changed after pass 'X': max abs error 2 at output 0 of @main``.

Tolerance: :func:`stepwell.testing.tolerance` of the result's dtype times
``TOLERANCE_FACTOR`` (10): passes may reassociate sums and IREE's ``exp``/``erf``
differ from numpy's in the last bits. Integers and booleans must match exactly.
Inputs: floats are standard normal, integers uniform in ``[0, 4)`` (valid indices for
any table of 4+ rows), booleans uniform; dynamic dimensions need explicit ``inputs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stepwell.core import opspec
from stepwell.core.diagnostics import Diagnostic, StepwellError
from stepwell.core.ir import ir

__all__ = ["NumericsChecker", "NumericsError", "random_inputs", "TOLERANCE_FACTOR"]

TOLERANCE_FACTOR = 10.0
_INTERPRETED = ("arith.constant", "func.call", "func.return")


class NumericsError(StepwellError):
    """A pass changed the module's results beyond tolerance."""


@dataclass
class Check:
    """One line of the report: what evaluating the module after ``step`` gave."""
    step: str
    how: str                     # "interpreter" | "iree" | "unchanged" | "skipped"
    max_error: float | None = None
    note: str = ""

    def __str__(self) -> str:
        if self.how == "skipped":
            return f"check-numerics: after '{self.step}': skipped ({self.note})"
        if self.how == "unchanged":
            return f"check-numerics: after '{self.step}': IR unchanged"
        err = "" if self.max_error is None else f", max abs error {self.max_error:.3g}"
        return f"check-numerics: after '{self.step}': ok ({self.how}{err})"


def summary(report: list) -> str:
    """The report's last line: how many states were compared, and which were skipped
    (a skipped state was not checked: it must not read as a pass)."""
    checked = [c for c in report if c.how in ("interpreter", "iree")]
    skipped = [c.step for c in report if c.how == "skipped"]
    line = f"check-numerics: summary: {len(checked)} checked, {len(skipped)} skipped"
    return line + (f" (not checked: {', '.join(skipped)})" if skipped else "")


def _functions(module) -> list:
    out = []
    for op in module.body.operations:
        if op.operation.name != "func.func" or len(op.regions[0].blocks) == 0:
            continue
        vis = op.attributes["sym_visibility"] if "sym_visibility" in op.attributes else None
        if vis is not None and ir.StringAttr(vis).value != "public":
            continue
        out.append(op)
    names = [ir.StringAttr(f.attributes["sym_name"]).value for f in out]
    if "main" in names:
        return [out[names.index("main")]]
    return out


def _value(t, rng: np.random.Generator, where: str):
    from stepwell.core.types import TensorType, numpy_dtype
    if isinstance(t, ir.RankedTensorType):
        tt = TensorType.from_mlir(t)
        if tt is None or any(d is None for d in tt.shape):
            raise StepwellError(f"--check-numerics: {where} has type {t} with dynamic dimensions: "
                                "give the inputs explicitly (Pipeline(..., inputs=[...]))")
        shape, dtype = tt.shape, tt.numpy_dtype()
    else:
        try:
            dtype, shape = numpy_dtype(str(t)), ()
        except (KeyError, ValueError):
            raise StepwellError(f"--check-numerics: {where} has type {t}, which cannot be "
                                "generated: give the inputs explicitly") from None
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 4, size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)


def random_inputs(module, seed: int = 0) -> dict[str, list]:
    """Seeded random inputs for each checked function: ``{name: [arrays]}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in _functions(module):
        name = ir.StringAttr(f.attributes["sym_name"]).value
        ftype = ir.FunctionType(ir.TypeAttr(f.attributes["function_type"]).value)
        out[name] = [_value(t, rng, f"argument {i} of @{name}") for i, t in enumerate(ftype.inputs)]
    return out


def _interpretable(module) -> bool:
    from stepwell.numerics.interpreter import SCALAR_OPS
    for f in module.body.operations:
        if f.operation.name != "func.func":
            continue
        for block in f.regions[0].blocks:
            for op in block.operations:
                name = op.operation.name
                if not (opspec.is_custom(name) or name in _INTERPRETED or name in SCALAR_OPS):
                    return False
    return True


class NumericsChecker:
    """Evaluates a module before and after each pass (see the module docstring)."""

    def __init__(self, inputs=None, *, seed: int = 0, target="cpu", rtol=None, atol=None):
        self.inputs = inputs
        self._given = inputs is not None
        self._name: str | None = None
        self.seed = seed
        self.target = target
        self.rtol, self.atol = rtol, atol
        self.report: list[Check] = []
        self._reference: dict | None = None
        self._reference_step = "input"
        self._last_text: str | None = None

    # -- evaluation -------------------------------------------------------------
    def _inputs_for(self, module) -> dict[str, list]:
        if self.inputs is None:
            self.inputs = random_inputs(module, self.seed)
        elif not isinstance(self.inputs, dict):
            names = [ir.StringAttr(f.attributes["sym_name"]).value for f in _functions(module)]
            if not names:
                raise StepwellError("--check-numerics: the module has no public function to run")
            self.inputs = {names[0]: list(self.inputs)}
        return self.inputs

    def evaluate(self, module) -> tuple[dict | None, str, str]:
        """``({function: [outputs]}, how, note)``; outputs None when it cannot run."""
        inputs = self._inputs_for(module)
        if _interpretable(module):
            from stepwell.numerics import interpreter
            try:
                return ({name: [np.asarray(o) for o in interpreter.run(module, *args, function=name)]
                         for name, args in inputs.items()}, "interpreter", "")
            except StepwellError as e:
                return None, "skipped", f"interpreter: {e.diagnostics[0].message}"
        from stepwell.compiler import driver as compiler
        try:
            exe = compiler.compile(module, self.target)
        except StepwellError as e:
            return None, "skipped", f"cannot compile it: {e.diagnostics[0].message}"
        outs = {}
        for name, args in inputs.items():
            res = exe.function(name)(*args)
            res = () if res is None else res if isinstance(res, tuple) else (res,)
            outs[name] = [np.asarray(r) for r in res]
        return outs, "iree", ""

    # -- the pipeline hooks -------------------------------------------------------
    def start(self, module) -> None:
        self._name = getattr(module, "name", None)
        self._last_text = module.print()
        outs, how, note = self.evaluate(module)
        self.report.append(Check("input", how, None, note))
        self._reference = outs

    def after(self, step: str, module) -> None:
        text = module.print()
        if text == self._last_text:
            self.report.append(Check(step, "unchanged"))
            return
        self._last_text = text
        outs, how, note = self.evaluate(module)
        if outs is None:
            self.report.append(Check(step, how, None, note))
            return
        if self._reference is None:
            self._reference, self._reference_step = outs, step
            self.report.append(Check(step, how, 0.0, "reference"))
            return
        worst = self._compare(step, outs)
        self.report.append(Check(step, how, worst))

    def _compare(self, step: str, outs: dict) -> float:
        from stepwell.numerics.testing import tolerance
        worst = 0.0
        for name, want_list in self._reference.items():
            got_list = outs.get(name, [])
            if len(got_list) != len(want_list):
                self._fail(step, f"@{name} returns {len(got_list)} results, "
                                 f"{len(want_list)} before")
            for i, (got, want) in enumerate(zip(got_list, want_list)):
                where = f"output {i} of @{name}"
                if got.shape != want.shape:
                    self._fail(step, f"shape {got.shape} instead of {want.shape} at {where}")
                if want.dtype.kind in "biu" or want.dtype == np.bool_:
                    bad = got.astype(np.int64) != want.astype(np.int64)
                    if bad.any():
                        idx = tuple(int(j) for j in np.argwhere(bad)[0])
                        err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
                        self._fail(step, f"max abs error {err:.3g} at {where} (first at index "
                                         f"{list(idx)}: {got[idx]} instead of {want[idx]}; "
                                         "integers must match exactly)")
                    continue
                r, a = tolerance(want.dtype)
                r = self.rtol if self.rtol is not None else r * TOLERANCE_FACTOR
                a = self.atol if self.atol is not None else a * TOLERANCE_FACTOR
                g, w = got.astype(np.float64), want.astype(np.float64)
                nan_mismatch = np.isnan(g) != np.isnan(w)
                diff = np.where(np.isnan(g) | np.isnan(w), 0.0, np.abs(g - w))
                diff = np.where(np.isinf(g) & np.isinf(w) & (g == w), 0.0, diff)
                bad = nan_mismatch | (diff > a + r * np.abs(np.nan_to_num(w)))
                err = float(np.max(diff)) if diff.size else 0.0
                if bad.any():
                    idx = tuple(int(j) for j in np.argwhere(bad)[0])
                    self._fail(step, f"max abs error {err:.3g} at {where} (first at index "
                                     f"{list(idx)}: {got[idx]} instead of {want[idx]}; "
                                     f"rtol={r:g}, atol={a:g})")
                worst = max(worst, err)
        return worst

    def _fail(self, step: str, message: str):
        diags = [Diagnostic(f"numerics changed after pass '{step}': {message}", "error", self._name),
                 Diagnostic("inputs: as given" if self._given else
                            f"inputs: seeded random (seed {self.seed})", "note")]
        if self._reference_step != "input":
            diags.append(Diagnostic(f"reference: the module after '{self._reference_step}' "
                                    "(the input could not be evaluated)", "note"))
        raise NumericsError(diags)
