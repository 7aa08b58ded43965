"""Run every command and Python block of docs/tutorial.md, in order, so it cannot rot.

In a ```console block, ``$ cmd`` runs ``cmd``; the lines after it must each appear in
its stdout. A ``! text`` line means the command must fail (exit 1) with ``text`` in
its stderr. ```python blocks run in one shared namespace.
"""

import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
TUTORIAL = os.path.join(ROOT, "docs", "tutorial.md")


def blocks():
    text = open(TUTORIAL).read()
    return re.findall(r"```(console|python)\n(.*?)```", text, re.S)


def commands(block: str):
    """(command, expected stdout lines, expected stderr text or None)."""
    out = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out.append([line[2:], [], None])
        elif line.startswith("! "):
            out[-1][2] = line[2:]
        elif line.strip():
            out[-1][1].append(line.strip())
    return out


def test_tutorial_runs(tmp_path):
    shutil.copytree(os.path.join(ROOT, "examples"), tmp_path / "examples")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    namespace = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert blocks(), "no blocks found in the tutorial"
        for kind, body in blocks():
            if kind == "python":
                exec(compile(body, TUTORIAL, "exec"), namespace)
                continue
            for cmd, expected, error in commands(body):
                r = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, timeout=600)
                if error is not None:
                    assert r.returncode == 1, f"{cmd}: expected failure, got {r.returncode}"
                    assert error in r.stderr, f"{cmd}: stderr was {r.stderr!r}"
                    assert "Traceback" not in r.stderr
                    continue
                assert r.returncode == 0, f"{cmd} failed:\n{r.stderr}"
                for line in expected:
                    assert line in r.stdout, f"{cmd}: {line!r} not in output:\n{r.stdout[:2000]}"
    finally:
        os.chdir(cwd)
