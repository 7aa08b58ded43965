"""The tuning database (compiler/tuning_db.py) and its application at compile (compiler/tuning.py)."""

import json
import logging
import multiprocessing
import re
import sqlite3

import numpy as np
import pytest

import stepwell as sw
from stepwell.compiler import cache, driver, tuning, tuning_keys
from stepwell.compiler.tuning_db import TuningDB, TuningDBError, default_path

KEY = ("op1", "cpu|x+1|threads=2", "3.13")
SIG = {"kind": "matmul", "shapes": [[8, 8], [8, 8], [8, 8]]}
MATMUL = """
func.func @main(%a: tensor<128x256xf32>, %b: tensor<256x192xf32>) -> tensor<128x192xf32> {
  %0 = "nn.matmul"(%a, %b) : (tensor<128x256xf32>, tensor<256x192xf32>) -> tensor<128x192xf32>
  return %0 : tensor<128x192xf32>
}"""


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    path = tmp_path / "tuning.sqlite"
    monkeypatch.setenv("STEPWELL_TUNING_DB", str(path))
    tuning._WARNED.clear()
    return path


def test_default_path_is_in_the_cache_folder_unless_overridden(monkeypatch, tmp_path):
    monkeypatch.delenv("STEPWELL_TUNING_DB", raising=False)
    monkeypatch.setenv("STEPWELL_CACHE_DIR", str(tmp_path / "c"))
    assert default_path() == str(tmp_path / "c" / "tuning.sqlite")
    monkeypatch.setenv("STEPWELL_TUNING_DB", str(tmp_path / "x.db"))
    assert default_path() == str(tmp_path / "x.db")


def test_best_keeps_the_faster_configuration_and_stale_ones_are_replaced(db_path):
    db = TuningDB()
    assert db.set_best(*KEY, SIG, {"kind": "mmt4d", "distribution": [4, 4]}, 1.4)
    assert not db.set_best(*KEY, SIG, {"kind": "default"}, 1.0)  # slower: kept out
    assert db.best(*KEY)["config"] == {"kind": "mmt4d", "distribution": [4, 4]}
    db.mark_stale(*KEY)
    assert db.best(*KEY)["stale"] == 1
    assert db.set_best(*KEY, SIG, {"kind": "default"}, 1.0)  # over a stale entry
    assert db.best(*KEY)["config"] == {"kind": "default"} and db.best(*KEY)["stale"] == 0
    assert db.best("other", KEY[1], KEY[2]) is None


def test_export_and_import_share_entries_faster_ones_win(db_path, tmp_path):
    db = TuningDB()
    db.set_best(*KEY, SIG, {"kind": "mmt4d", "distribution": [2, 8]}, 1.3)
    db.set_best("op2", KEY[1], KEY[2], SIG, {"kind": "default"}, 1.0)
    doc = json.loads(json.dumps(db.export_json()))
    other = TuningDB(str(tmp_path / "other.sqlite"))
    other.set_best(*KEY, SIG, {"kind": "iree"}, 1.6)  # faster than the imported one
    taken, kept = other.import_json(doc)
    assert (taken, kept) == (1, 1)
    assert other.best(*KEY)["config"] == {"kind": "iree"}
    assert other.best("op2", KEY[1], KEY[2])["config"] == {"kind": "default"}
    with pytest.raises(TuningDBError, match="not a stepwell tuning export"):
        other.import_json({"entries": []}, "x.json")
    with pytest.raises(TuningDBError, match="entry 0 is malformed"):
        other.import_json({"format": "stepwell-tuning-db", "entries": [{"op_key": "a"}]}, "x.json")


def test_a_corrupt_or_foreign_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(TuningDBError, match="not a usable stepwell tuning database"):
        TuningDB(str(bad))
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(TuningDBError, match=r"not a stepwell tuning database \(tables: users\)"):
        TuningDB(str(foreign))


def _writer(path, worker, n):
    db = TuningDB(path)
    for i in range(n):
        db.record_trial(f"op{i % 5}", "t", "v", {"kind": "mmt4d", "distribution": [worker, i]}, "slower",
                        speedup=1.0)
        db.set_best(f"op{i % 5}", "t", "v", {"kind": "x"}, {"kind": "mmt4d", "distribution": [worker, i]},
                    1.0 + worker * 0.1 + i * 0.001)


def test_two_processes_tuning_into_one_database_lose_nothing(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    db = TuningDB(path)
    assert db.counts()["trials"] == 80
    for op in range(5):  # the best of each op is the fastest either process found
        best = db.best(f"op{op}", "t", "v")
        assert best["config"]["distribution"][0] == 2 and best["speedup"] == pytest.approx(
            1.2 + max(i for i in range(40) if i % 5 == op) * 0.001)


def _root_key(text):
    t = sw.targets.get("cpu")
    (root,) = [r for r in tuning_keys.roots(driver.prepare(sw.parse(text), target=t)) if r.tunable]
    return root, tuning_keys.target_key(t), tuning_keys.iree_version()


def test_compile_applies_the_database_and_the_cache_key_follows(db_path):
    root, tkey, iree = _root_key(MATMUL)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((128, 256), np.float32), rng.standard_normal((256, 192), np.float32)
    untuned = driver.compile_to(sw.parse(MATMUL), "dispatch")
    TuningDB().set_best(root.key, tkey, iree, root.signature, {
        "kind": "double_tiling", "distribution": [64, 64, 0], "parallel": [8, 32, 0],
        "reduction": [0, 0, 1]}, 1.2)
    tuned = driver.compile_to(sw.parse(MATMUL), "dispatch")
    assert "mmt4d" in untuned and "mmt4d" not in tuned  # no data tiling for this op now
    assert "mmt4d" in driver.compile_to(sw.parse(MATMUL), "dispatch", tuning="off")
    writes = cache.stats()["writes"]
    np.testing.assert_allclose(sw.compile(sw.parse(MATMUL))(a, b), a @ b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sw.compile(sw.parse(MATMUL), tuning="off")(a, b), a @ b, rtol=1e-4, atol=1e-4)
    assert cache.stats()["writes"] - writes == 2  # tuned and untuned are different entries


def test_a_config_iree_rejects_falls_back_untuned_marks_stale_and_warns_once(db_path, caplog):
    root, tkey, iree = _root_key(MATMUL)
    # vectors of 64x64 floats: IREE 3.13 rejects 16 KB vectors
    TuningDB().set_best(root.key, tkey, iree, root.signature, {
        "kind": "double_tiling", "distribution": [64, 64, 0], "parallel": [64, 64, 0],
        "reduction": [0, 0, 4]}, 1.2)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((128, 256), np.float32), rng.standard_normal((256, 192), np.float32)
    with caplog.at_level(logging.WARNING, logger="stepwell.tuning"):
        got = sw.compile(sw.parse(MATMUL), cache=False)(a, b)
        sw.compile(sw.parse(MATMUL), cache=False)
    np.testing.assert_allclose(got, a @ b, rtol=1e-4, atol=1e-4)
    assert TuningDB().best(root.key, tkey, iree)["stale"] == 1
    warnings = [r for r in caplog.records if "rejected a tuned compile" in r.getMessage()]
    assert len(warnings) == 1


def test_a_corrupt_database_compiles_untuned_with_an_error(db_path, caplog):
    db_path.write_bytes(b"garbage" * 1000)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((128, 256), np.float32), rng.standard_normal((256, 192), np.float32)
    with caplog.at_level(logging.WARNING, logger="stepwell.tuning"):
        got = sw.compile(sw.parse(MATMUL))(a, b)
    np.testing.assert_allclose(got, a @ b, rtol=1e-4, atol=1e-4)
    assert any(re.search(r"not a usable stepwell tuning database.*compiling untuned", r.getMessage())
               for r in caplog.records)
    with pytest.raises(sw.StepwellError, match="no tuning database at"):
        sw.compile(sw.parse(MATMUL), tuning=str(db_path) + ".missing")
