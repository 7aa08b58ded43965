"""What ``stepwell tune`` takes besides MLIR: an export factory (``FILE.py:FACTORY``).

The factory returns ``(fn, params, example_args)`` as for ``stepwell export``; the
module tuned is the one ``sw.jax.export`` compiles: the function raised to ``nn`` with
its weights as IREE parameters (globals), so the ops' keys (stored weights) are the
export's. Quantized exports (``--quantize``) are not covered: tune the float model.
"""

from __future__ import annotations

__all__ = ["factory_module"]


def factory_module(fn, params, example_args):
    """The module ``sw.jax.export(fn, params, *example_args)`` would compile (raised when
    the raising pass is installed and succeeds, else as JAX emitted it)."""
    import jax

    from stepwell.core.diagnostics import StepwellError
    from stepwell.export.pytree import path_name
    from stepwell.export.wrapper import wrap_main
    from stepwell.frontends.jax import importer as jimport

    if not isinstance(example_args, (tuple, list)):
        example_args = (example_args,)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    names = [path_name(p) for p, _ in flat]
    specs = jax.tree.unflatten(jax.tree.structure(params),
                               [jax.ShapeDtypeStruct(jimport.aval_of(x).shape, jimport.aval_of(x).dtype)
                                for _, x in flat])
    args = jax.tree.map(lambda x: jax.ShapeDtypeStruct(jimport.aval_of(x).shape, jimport.aval_of(x).dtype),
                        tuple(example_args))
    module = jimport.import_function(fn, specs, *args, raise_ops=False, name="<tune:factory>")
    if jimport.raise_available():
        raised = module.clone()
        try:
            jimport.raise_stablehlo(raised)
            module = raised
        except StepwellError:
            pass  # the export falls back to the StableHLO as JAX emitted it, and so do we
    return wrap_main(module, names)[0]  # sw.jax.export's one entry point
