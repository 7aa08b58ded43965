"""``stepwell compile in.mlir --target cpu -o out.vmfb`` (or ``--compile-to <stage>``)."""

from __future__ import annotations

import os


def add_parser(subparsers):
    from stepwell.stages import STAGES
    p = subparsers.add_parser(
        "compile", help="compile an MLIR file to a .vmfb, or print it at a stage",
        description="Lower an MLIR module down the stage ladder and compile it with IREE. "
                    "With --compile-to, print the IR at that stage instead.")
    p.add_argument("input", help="MLIR file ('-' for stdin)")
    p.add_argument("-o", "--output", help="output file (default: <input>.vmfb, or stdout for IR)")
    p.add_argument("--target", default="cpu", help="target name, e.g. cpu, cpu-generic, vulkan, cuda:sm_80")
    p.add_argument("--compile-to", choices=STAGES, default="vmfb", metavar="STAGE",
                   help=f"stop at a stage and print its IR ({', '.join(STAGES)})")
    p.add_argument("--iree-flag", action="append", default=[], metavar="FLAG",
                   help="extra iree-compile flag (repeatable), e.g. --iree-flag=--iree-opt-level=O3")
    return p


def run(args) -> int:
    from stepwell import compiler, stages
    from stepwell.module import parse_file
    from stepwell.tools._errors import write_atomic

    module = parse_file(args.input)
    if args.compile_to in ("nn", "prim", "linalg", "vector"):
        write_atomic(args.output or "-", str(stages.lower(module, to=args.compile_to)) + "\n")
        return 0
    if args.compile_to == "dispatch":
        text = compiler.compile_to(module, "dispatch", target=args.target, flags=args.iree_flag)
        write_atomic(args.output or "-", text)
        return 0
    exe = compiler.compile(module, target=args.target, flags=args.iree_flag)
    out = args.output or (os.path.splitext(os.path.basename(args.input))[0] + ".vmfb"
                          if args.input != "-" else "out.vmfb")
    exe.save(out)
    return 0
