"""``stepwell compile in.mlir --target cpu -o out.vmfb`` (or ``--compile-to <stage>``).

The input may be a stepwell module (``nn``/``prim``/linalg) or StableHLO (from
``jax.export``'s ``mlir_module()`` or another framework); ``--input-type=auto`` (the
default) tells them apart. StableHLO compiled to a ``.vmfb`` goes to IREE's StableHLO
input as is (``--raise`` first raises what it can to ``nn``); ``--compile-to`` a
stepwell stage raises it first. Compiled modules come from the on-disk cache when
possible (``--no-cache``, ``STEPWELL_NO_CACHE=1``).
"""

from __future__ import annotations

import os

RAISE_PASS = "stablehlo-to-nn"


def add_parser(subparsers):
    from stepwell.compiler.stages import STAGES
    p = subparsers.add_parser(
        "compile", help="compile an MLIR or StableHLO file to a .vmfb, or print it at a stage",
        description="Lower an MLIR module down the stage ladder and compile it with IREE. "
                    "With --compile-to, print the IR at that stage instead.")
    p.add_argument("input", help="MLIR file ('-' for stdin)")
    p.add_argument("-o", "--output", help="output file (default: <input>.vmfb, or stdout for IR)")
    p.add_argument("--target", default="cpu", help="target name, e.g. cpu, cpu-generic, vulkan, cuda:sm_80")
    p.add_argument("--compile-to", choices=STAGES, default="vmfb", metavar="STAGE",
                   help=f"stop at a stage and print its IR ({', '.join(STAGES)})")
    p.add_argument("--input-type", choices=("auto", "nn", "stablehlo"), default="auto",
                   help="what the input holds: 'stablehlo' (StableHLO, compiled through IREE's "
                        "StableHLO input), 'nn' (stepwell's nn/prim/linalg levels), 'auto' "
                        "(default: 'stablehlo' when the input holds StableHLO ops); an explicit "
                        "type the input contradicts is an error")
    p.add_argument("--raise", dest="raise_ops", action="store_true",
                   help=f"raise StableHLO to nn ('{RAISE_PASS}') before compiling to a .vmfb "
                        "(always done for --compile-to nn/prim/linalg/vector)")
    p.add_argument("--precision", metavar="POLICY",
                   help="precision policy for nn-level models: bf16, f16 (compute in that type, "
                        "f32 accumulation and norms), int8, int4 (weight-only quantization) or a "
                        "combination such as bf16+int8 (docs/low-precision.md)")
    p.add_argument("--iree-flag", action="append", default=[], metavar="FLAG",
                   help="extra iree-compile flag (repeatable), e.g. --iree-flag=--iree-opt-level=O3")
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="do not read or write the on-disk compilation cache")
    p.add_argument("--tuning", default="auto", metavar="auto|off|PATH",
                   help="the tuning database to apply (default 'auto': $STEPWELL_TUNING_DB or the "
                        "cache folder's; docs/tuning.md)")
    return p


def _raise(module):
    """Run the raising pass (when installed) on a StableHLO module, in place."""
    from stepwell import passes
    from stepwell.core.pipeline import Pipeline
    if passes.get(RAISE_PASS) is not None:
        Pipeline(RAISE_PASS).run(module)


def run(args) -> int:
    from stepwell.compiler import driver as compiler, stages
    from stepwell.core.module import parse_file
    from stepwell.core.stablehlo import resolve_input_type
    from stepwell.tools._errors import write_atomic

    module = parse_file(args.input)  # (single-device Shardy annotations are dropped)
    stablehlo = resolve_input_type(module, args.input_type) == "stablehlo"
    stage_input = "stablehlo" if stablehlo else "linalg"
    if args.precision and stablehlo:  # the policies rewrite nn ops
        _raise(module)
    if args.compile_to in ("nn", "prim", "linalg", "vector"):
        if stablehlo:
            _raise(module)
        if args.precision:
            from stepwell.passes.nn_precision import apply_policy
            module = apply_policy(module, args.precision)
        write_atomic(args.output or "-", str(stages.lower(module, to=args.compile_to, target=args.target)) + "\n")
        return 0
    if stablehlo and args.raise_ops:
        _raise(module)
    if args.compile_to == "dispatch":
        text = compiler.compile_to(module, "dispatch", target=args.target, flags=args.iree_flag,
                                   stage_input=stage_input, precision=args.precision,
                                   tuning=args.tuning)
        write_atomic(args.output or "-", text)
        return 0
    exe = compiler.compile(module, target=args.target, flags=args.iree_flag, stage_input=stage_input,
                           cache=None if args.cache else False, precision=args.precision,
                           tuning=args.tuning)
    out = args.output or (os.path.splitext(os.path.basename(args.input))[0] + ".vmfb"
                          if args.input != "-" else "out.vmfb")
    exe.save(out)
    return 0
