"""``stepwell export examples/gpt2.py:factory --target cpu -o out/`` exports a JAX model.

``FILE.py:NAME`` (or ``package.module:NAME``) names a *factory*: a function that
returns ``(fn, params, example_args)``, where ``fn(params, *example_args)`` is the
model (e.g. ``model.apply``), ``params`` its weights (any pytree of arrays) and
``example_args`` a tuple of example inputs (arrays or ``jax.ShapeDtypeStruct``).
``--arg key=value`` passes keyword arguments to the factory (values are read as
JSON when they parse, else as strings). The folder written is what ``sw.load`` and
``stepwell run <folder>`` take. ``--quantize int8|int4`` stores the linear layers'
weights quantized (``--group-size``, ``--asymmetric``: docs/low-precision.md).
``--dynamic-dims 'b, s' --dynamic-dims b`` names dynamic dimensions per argument.

A factory may also return ``(fns, params, example_args, export_options)``: a dict of
entry points, a dict of their example arguments, and ``sw.jax.export`` keyword
arguments (``dynamic_dims``, ``state``, ``dim_limits``, ``metadata``): a decoder with a
KV cache (``examples/gpt2.py:decoder``; docs/llm.md).
"""

from __future__ import annotations

import json
import os


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="export a JAX model (FILE.py:factory) as a folder: .vmfb + weights + manifest",
        description="Export the JAX model returned by a factory function as a deployable folder "
                    "(model.vmfb, params.irpa, manifest.json). The factory returns "
                    "(fn, params, example_args) with fn(params, *example_args).")
    p.add_argument("factory", metavar="FILE.py:FACTORY",
                   help="the factory: a Python file (or module) and a function name "
                        "(default name: factory)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder to write")
    p.add_argument("--target", default="cpu", help="target name, e.g. cpu, cpu-generic, vulkan, cuda:sm_80")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="make the leading dimension of every input symbolic (any batch size runs)")
    p.add_argument("--dynamic-dims", action="append", default=[], metavar="SPEC",
                   help="one per argument, in order: a jax.export shape spec such as 'b, s' "
                        "(named dims are dynamic; '_' keeps one static) or '-' for a static argument")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the factory (repeatable), e.g. --arg config=tiny")
    p.add_argument("--no-raise", dest="raise_ops", action="store_false", default=None,
                   help="compile the StableHLO as JAX emitted it (do not raise it to nn)")
    p.add_argument("--iree-flag", action="append", default=[], metavar="FLAG",
                   help="extra iree-compile flag (repeatable)")
    p.add_argument("--quantize", choices=("int8", "int4"), default=None,
                   help="store the weights of linear layers as int8 or int4 (weight-only, "
                        "per-group f32 scales); other parameters stay float")
    p.add_argument("--group-size", type=int, default=128, metavar="N",
                   help="with --quantize: weights per scale along the input axis (0: one per "
                        "output channel; default 128)")
    p.add_argument("--asymmetric", action="store_true",
                   help="with --quantize: zero points as well as scales (the range min..max)")
    p.add_argument("--tuning", default="auto", metavar="auto|off|PATH",
                   help="the tuning database to apply (default 'auto'; docs/tuning.md)")
    return p


def factory_kwargs(items) -> dict:
    from stepwell.core.diagnostics import StepwellError
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise StepwellError(f"--arg '{item}' is not KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def load_factory(spec: str):
    """The function named by ``FILE.py:NAME`` / ``package.module:NAME``."""
    import importlib
    import importlib.util
    import sys

    from stepwell.core.diagnostics import StepwellError
    target, sep, name = spec.rpartition(":")
    if not sep or not target or os.sep in name or name.endswith(".py"):
        target, name = spec, "factory"
    if target.endswith(".py") or os.path.sep in target:
        if not os.path.isfile(target):
            raise StepwellError(f"no such file: '{target}'")
        folder = os.path.dirname(os.path.abspath(target))
        mod_name = "_stepwell_export_" + os.path.splitext(os.path.basename(target))[0]
        module_spec = importlib.util.spec_from_file_location(mod_name, target)
        module = importlib.util.module_from_spec(module_spec)
        sys.path.insert(0, folder)  # the file's siblings import as in `python FILE.py`
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            raise StepwellError(f"importing '{target}' failed: {type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise StepwellError(f"cannot import module '{target}': {e}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise StepwellError(f"'{target}' has no function '{name}' (expected FILE.py:FACTORY)")
    return fn


def run(args) -> int:
    from stepwell.core.diagnostics import StepwellError
    from stepwell.export import export

    factory = load_factory(args.factory)
    made = factory(**factory_kwargs(args.arg))
    if not isinstance(made, (tuple, list)) or len(made) not in (3, 4):
        raise StepwellError(f"the factory '{args.factory}' must return (fn, params, example_args) "
                            f"or (fns, params, example_args, export_options), got {type(made).__name__}")
    fn, params, example_args, *rest = made
    options = dict(rest[0]) if rest and isinstance(rest[0], dict) else {}
    if isinstance(fn, dict):  # several entry points: one dict of example arguments
        example_args = (example_args,)
    elif not isinstance(example_args, (tuple, list)):
        example_args = (example_args,)
    if args.dynamic_dims:
        options["dynamic_dims"] = tuple(None if d in ("", "-", "none") else d for d in args.dynamic_dims)
    if args.dynamic_batch:
        options.pop("dynamic_dims", None)
    manifest = export(fn, params, *example_args, path=args.output, target=args.target,
                      dynamic_batch=args.dynamic_batch, raise_ops=args.raise_ops,
                      flags=args.iree_flag, quantize=args.quantize, group_size=args.group_size,
                      symmetric=not args.asymmetric, tuning=args.tuning, **options)
    files = ", ".join(f"{name} {_size(f['bytes'])}" for name, f in manifest["files"].items())
    quant = manifest.get("quantization")
    how = ""
    if quant is not None:
        how = (f", {len(quant['weights'])} weights as {quant['mode']}"
               + (f", {len(quant['kept_float'])} linear weights kept float" if quant["kept_float"] else ""))
    print(f"exported {manifest['name']} for {manifest['target']} to {args.output}: {files}; "
          f"{len(manifest['parameters'])} parameters ({_size(manifest['parameter_bytes'])}){how}")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
