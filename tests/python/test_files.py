"""stepwell.files.atomic_file: the one atomic writer (vmfb, cache, reports, CLI outputs,
checkpoints, saved inputs/outputs)."""

from __future__ import annotations

import os

import pytest

from stepwell.core.files import atomic_file


def test_replaces_whole_and_keeps_the_old_files_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    with atomic_file(path) as f:
        f.write(b"new")
        assert path.read_text() == "old"  # readers see the old file until the rename
    assert path.read_text() == "new"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["out.txt"]


def test_new_file_gets_the_umask_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "new.bin") as f:
            f.write(b"x")
    finally:
        os.umask(umask)
    assert os.stat(tmp_path / "new.bin").st_mode & 0o777 == 0o644


def test_failure_leaves_no_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as f:
            f.write(b"partial")
            raise RuntimeError("writer failed")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "never.txt") as f:
            raise RuntimeError("writer failed")
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]
