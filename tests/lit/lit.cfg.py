# The lit suite: one FileCheck test per pass (tests/lit/<pass-name>.mlir), the
# round-trip and invalid-IR tests, and the stepwell-opt CLI tests (opt-*.mlir).
#
# Runs as plain `lit tests/lit` (or `python -m lit tests/lit`), from pytest
# (tests/python/test_lit.py) and from CMake (`cmake --build build --target check-lit`,
# whose generated lit.site.cfg.py sets stepwell_obj_root and then loads this file).
# Tools come from the bin folder of the Python running lit (the venv's).

import os
import shlex
import shutil
import sys
import tempfile

import lit.formats

config.name = "stepwell"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.excludes = ["Inputs", "Output"]
config.test_source_root = os.path.dirname(os.path.abspath(__file__))
# Output/ goes outside the checkout: CMake's build folder, STEPWELL_LIT_OUTPUT, or a
# fresh temp folder (never tests/lit/Output, which parallel runs would share).
obj_root = getattr(config, "stepwell_obj_root", None) or os.environ.get("STEPWELL_LIT_OUTPUT")
config.test_exec_root = obj_root or tempfile.mkdtemp(prefix="stepwell-lit-")

# Not resolved through symlinks: a venv's python is a link to the base interpreter.
python = getattr(config, "python_executable", None) or sys.executable
bin_dir = os.path.dirname(python)


def tool(name, module=None):
    """The installed script `name` next to python, else on PATH, else `python -m module`."""
    path = shutil.which(name, path=bin_dir) or shutil.which(name)
    if path:
        return shlex.quote(path)
    if module:
        return f"{shlex.quote(python)} -m {module}"
    lit_config.fatal(f"cannot find '{name}': install the test extra (pip install -e '.[test]')")


# Substitutions are regexes applied in order, before %s/%t; the guards keep
# `stepwell` from matching inside `stepwell-opt` or inside a path.
word = r"(?<![\w/.-])"
end = r"(?![\w-])"
config.substitutions.append((word + "FileCheck" + end, tool("filecheck")))
config.substitutions.append((word + "stepwell-opt" + end, tool("stepwell-opt", "stepwell.tools.opt")))
config.substitutions.append((word + "stepwell" + end, tool("stepwell", "stepwell.tools.main")))
config.substitutions.append(("%python", shlex.quote(python)))
# `not` is lit's builtin (internal shell): `not stepwell-opt bad.mlir` passes on exit 1.

config.environment["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
for var in ("HOME", "TMPDIR", "PYTHONPATH", "LD_LIBRARY_PATH", "STEPWELL_REPRO_DIR",
            "STEPWELL_CACHE_DIR", "STEPWELL_NO_CACHE", "XDG_CACHE_HOME"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
