"""``stepwell targets``: every target with backend, driver, capabilities, options and
availability here; plain text off a terminal, a rich table on one, ``--json``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from rich.console import Console

import stepwell as sw
from stepwell.tools import cmd_targets

BIN = os.path.dirname(sys.executable)


def stepwell(*args):
    return subprocess.run([os.path.join(BIN, "stepwell"), *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def listing():
    r = stepwell("targets", "--json")
    assert r.returncode == 0, r.stderr
    return {d["name"]: d for d in json.loads(r.stdout)}


def test_json_lists_every_target(listing):
    assert list(listing) == sw.targets.names()
    for name, d in listing.items():
        t = sw.targets.get(name)
        assert (d["spec"], d["backend"], d["driver"]) == (t.spec, t.backend, t.driver)
        assert set(d["capabilities"]) == {"f16", "bf16", "f64", "i64", "i8_dot", "fused_attention",
                                          "subgroup_size", "emulated"}
        assert d["capabilities"]["emulated"] == list(t.capabilities.emulated)
        a = d["available"]
        assert set(a) == {"runs", "status", "driver_present", "device_found", "reason", "how"}
        assert a["runs"] == bool(sw.targets.available(name)) and a["reason"]
        assert a["status"] == ("runs here" if a["runs"] else "compile only")
        assert a["runs"] or a["how"], name  # what is missing comes with how to get it
        assert d["options"]["allowed"] == t.option_names()
        assert d["options"]["default"] == t.default_option


def test_json_details(listing):
    cpu = listing["cpu"]
    assert cpu["available"]["runs"] and cpu["available"]["driver_present"]
    assert cpu["options"] == {"default": None, "selected": None, "allowed": [], "refused": []}
    vk = listing["vulkan"]
    assert vk["spec"] == "vulkan:llvmpipe" and vk["options"]["default"] == "llvmpipe"
    assert vk["capabilities"]["subgroup_size"] == 8 and not vk["capabilities"]["bf16"]
    assert "--iree-vulkan-target=llvmpipe" in vk["flags"]
    assert {r["name"] for r in listing["cuda"]["options"]["refused"]} >= {"hopper", "h100"}
    if sw.targets.host_arch() != "aarch64":
        a = listing["cpu-aarch64"]["available"]
        assert not a["runs"] and a["driver_present"] and "aarch64" in a["how"]
    for gpu in ("cuda", "rocm"):
        a = listing[gpu]["available"]
        if not a["runs"]:
            assert a["driver_present"] and not a["device_found"]
            assert "no '" in a["reason"] and ("NVIDIA" in a["how"] or "ROCm" in a["how"])


def test_plain_table_off_a_terminal():
    r = stepwell("targets")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["target", "backend", "driver"]
    for col in ("f16", "bf16", "i8 dot", "subgroup", "here", "options"):
        assert col in lines[0]
    assert not any(ch in r.stdout for ch in "┏│━\x1b")  # no box drawing, no colour codes
    rows = {ln.split()[0]: ln for ln in lines[1:8]}
    assert list(rows) == [sw.targets.get(n).spec for n in sw.targets.names()]
    assert "runs here" in rows["cpu"] and "llvmpipe (default)" in rows["vulkan:llvmpipe"]
    notes = [ln for ln in lines if ": runs here" in ln or ": compile only" in ln]
    assert len(notes) == len(sw.targets.names())


def test_names_options_and_option_details():
    r = stepwell("targets", "cuda:sm_75", "vulkan", "--options", "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr  # no "compiled as" log noise
    cuda, vk = json.loads(r.stdout)
    assert cuda["spec"] == "cuda:sm_75" and cuda["options"]["selected"] == "sm_75"
    assert not cuda["capabilities"]["bf16"] and "--iree-cuda-target=sm_75" in cuda["flags"]
    details = {o["name"]: o for o in cuda["options"]["details"]}
    assert details["sm_90"]["compile_as"] == "sm_80" and details["sm_90"]["why"]
    assert details["sm_80"]["capabilities"]["bf16"] and not details["sm_75"]["capabilities"]["bf16"]
    vk_details = {o["name"]: o for o in vk["options"]["details"]}
    assert vk_details["rdna3"]["capabilities"]["subgroup_size"] == 32
    assert not vk_details["valhall"]["capabilities"]["i64"]

    r = stepwell("targets", "vulkan", "--options")
    assert r.returncode == 0
    assert "vulkan options" in r.stdout and "vp_android_baseline_2022" in r.stdout
    assert "refused: apple" in r.stdout


@pytest.mark.parametrize("name, message", [
    ("bogus", "error: unknown target 'bogus'"),
    ("cuda:hopper", "error: target 'cuda:hopper' is not supported"),
    ("vulkan:nope", "error: target 'vulkan' has no option 'nope'"),
])
def test_bad_names_are_one_error_line(name, message):
    r = stepwell("targets", name)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(message) and "Traceback" not in r.stderr


def test_rich_table_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, highlight=False)
    cmd_targets.render(cmd_targets.collect(["cpu", "cuda"], options=True), console, options=True)
    text = out.getvalue()
    assert "┏" in text and "\x1b[" in text  # a table, with colour
    assert "stepwell targets" in text and "cuda options" in text and "sm_90a" in text
    assert "cpu: runs here" in text and "cuda:sm_80: " in text


def test_listed_in_help():
    r = stepwell("--help")
    assert r.returncode == 0 and "targets" in r.stdout
