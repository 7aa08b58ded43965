"""``stepwell run out.vmfb --function main --input x.npy --input 2x3xf32=1,2,3,4,5,6``.

Inputs use ``iree-run-module``'s syntax; an ``.mlir`` file is compiled first.
"""

from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "run", help="run a compiled module (.vmfb, or .mlir compiled on the fly)",
        description="Run one function of a compiled module on the given inputs and print "
                    "(or save) its results.")
    p.add_argument("module", help=".vmfb or .mlir file")
    p.add_argument("--function", default="main", help="entry point (default: main)")
    p.add_argument("--input", action="append", default=[], metavar="SPEC",
                   help="an input: 2x3xf32=1,2,3,4,5,6 | 2x3xf32=0 (splat) | f32=1.5 | x.npy | @x.npy")
    p.add_argument("--output", metavar="OUT.npz", help="save the results to an .npz file")
    p.add_argument("--target", default="cpu", help="target the module was compiled for (default: cpu)")
    return p


def run(args) -> int:
    import os

    from stepwell import inputs
    from stepwell.diagnostics import StepwellError
    from stepwell.runtime import Executable

    if not os.path.isfile(args.module):
        raise StepwellError(f"no such file: '{args.module}'")
    if args.module.endswith(".mlir"):
        from stepwell import compiler
        from stepwell.module import parse_file
        exe = compiler.compile(parse_file(args.module), target=args.target)
    else:
        exe = Executable.load(args.module, target=args.target)
    fn = exe.function(args.function)
    outputs = fn(*inputs.parse_inputs(args.input, fn.arg_types))
    print(inputs.format_outputs(outputs))
    if args.output:
        inputs.save_outputs(args.output, outputs)
    return 0
