"""``stepwell version``: the stepwell, MLIR/IREE, JAX and numpy versions in use."""

from __future__ import annotations


def add_parser(subparsers):
    return subparsers.add_parser("version", help="print the versions of stepwell and its toolchain",
                                 description="Print the versions of stepwell, MLIR/IREE, JAX and numpy in use.")


def run(args) -> int:
    from importlib import metadata

    from stepwell.core.version import __version__
    print(f"stepwell {__version__}")
    for dist in ("iree-base-compiler", "iree-base-runtime", "jax", "numpy"):
        try:
            print(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            print(f"{dist} (not installed)")
    return 0
