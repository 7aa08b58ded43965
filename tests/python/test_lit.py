"""Run the lit suite (tests/lit) so that `python -m pytest` covers it too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

LIT_DIR = Path(__file__).resolve().parents[1] / "lit"


def test_lit_suite(tmp_path):
    workers = str(max(2, min(8, os.cpu_count() or 2)))
    # The lit package has no __main__; this is what its `lit` script runs. Its Output/
    # goes to tmp_path (lit.cfg.py), never into the checkout.
    env = {**os.environ, "STEPWELL_LIT_OUTPUT": str(tmp_path)}
    started = time.time() - 1
    r = subprocess.run([sys.executable, "-c", "import lit.main; lit.main.main()", "-q", "-j", workers, str(LIT_DIR)],
                       capture_output=True, text=True, timeout=1800, env=env)
    output = (r.stdout + r.stderr).strip()
    assert r.returncode == 0, f"lit failed (exit {r.returncode}):\n{output}"
    written = [p for p in LIT_DIR.rglob("*") if p.stat().st_mtime >= started and p.suffix != ".mlir"]
    assert not written, f"lit wrote into the checkout: {written[:5]}"
    assert any(tmp_path.iterdir()), "lit wrote nothing to STEPWELL_LIT_OUTPUT"
