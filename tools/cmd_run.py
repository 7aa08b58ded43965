"""``stepwell run out.vmfb --function main --input x.npy --input 2x3xf32=1,2,3,4,5,6``.

Inputs use ``iree-run-module``'s syntax; an ``.mlir`` file is compiled first; a folder
written by ``stepwell export`` / ``sw.jax.export`` is loaded with ``sw.load``, and
``--function`` picks one of its entry points (``prefill``, ``decode``, ...; a state
result such as a KV cache is printed and saved as an array).
"""

from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "run", help="run a compiled module (.vmfb, .mlir compiled on the fly, or an export folder)",
        description="Run one function of a compiled module on the given inputs and print "
                    "(or save) its results.")
    p.add_argument("module", help=".vmfb or .mlir file, or a folder from 'stepwell export'")
    p.add_argument("--function", default=None,
                   help="entry point (default: main; an export folder lists its entry points)")
    p.add_argument("--input", action="append", default=[], metavar="SPEC",
                   help="an input: 2x3xf32=1,2,3,4,5,6 | 2x3xf32=0 (splat) | f32=1.5 | x.npy | @x.npy")
    p.add_argument("--output", metavar="OUT.npz", help="save the results to an .npz file")
    p.add_argument("--target", default=None,
                   help="target the module was compiled for (default: cpu; an export folder's "
                        "manifest names its own)")
    p.add_argument("--devices", type=int, default=None, metavar="N",
                   help="runtime devices for a module partitioned over several (default: the "
                        "driver's; N CPU devices of local-task, the first N GPUs)")
    return p


def run(args) -> int:
    import os

    from stepwell.compiler import inputs
    from stepwell.core.diagnostics import StepwellError
    from stepwell.compiler.runtime import Executable

    if args.devices is not None and args.devices < 1:
        raise StepwellError(f"--devices must be at least 1, not {args.devices}")
    if os.path.isdir(args.module):
        from stepwell.export import load
        model = load(args.module, target=args.target, devices=args.devices)
        name = args.function or ("main" if "main" in model.entries or len(model.entries) != 1
                                 else model.entry_points[0])
        if name not in model.entries:
            raise StepwellError(f"the export has no entry point '{name}' (entry points: "
                                f"{', '.join(model.entry_points)}; choose one with --function)")
        entry = model.entry(name)
        outputs = entry(*inputs.parse_inputs(args.input, [i["type"] for i in entry.inputs]))
        leaves = [leaf.numpy() if hasattr(leaf, "numpy") else leaf for leaf in _leaves(outputs)]
        print(inputs.format_outputs(tuple(leaves)))
        if args.output:
            inputs.save_outputs(args.output, tuple(leaves))
        return 0
    if not os.path.isfile(args.module):
        raise StepwellError(f"no such file: '{args.module}'")
    target = args.target or "cpu"
    if args.module.endswith(".mlir"):
        from stepwell.compiler import driver as compiler
        from stepwell.core.module import parse_file
        exe = Executable(compiler.compile_vmfb(parse_file(args.module), target=target), target,
                         devices=args.devices)
    else:
        exe = Executable.load(args.module, target=target, devices=args.devices)
    fn = exe.function(args.function or "main")
    outputs = fn(*inputs.parse_inputs(args.input, fn.arg_types))
    print(inputs.format_outputs(outputs))
    if args.output:
        inputs.save_outputs(args.output, outputs)
    return 0


def _leaves(tree) -> list:
    """The arrays of a model's output pytree (dicts in key order), flat."""
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in _leaves(tree[k])]
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [] if tree is None else [tree]
