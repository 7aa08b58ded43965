"""Run the lit suite (tests/lit) so that `python -m pytest` covers it too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LIT_DIR = Path(__file__).resolve().parents[1] / "lit"


def test_lit_suite():
    workers = str(max(2, min(8, os.cpu_count() or 2)))
    # The lit package has no __main__; this is what its `lit` script runs.
    r = subprocess.run([sys.executable, "-c", "import lit.main; lit.main.main()", "-q", "-j", workers, "--order=smart", str(LIT_DIR)],
                       capture_output=True, text=True, timeout=1800)
    output = (r.stdout + r.stderr).strip()
    assert r.returncode == 0, f"lit failed (exit {r.returncode}):\n{output}"
