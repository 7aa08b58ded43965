"""``stepwell targets [NAME...] [--options] [--json]``: every target and what runs here.

One row per target table entry (``stepwell.targets``): the IREE backend, the runtime
driver, the capabilities passes and tests query (f16, bf16, f64, i64, int8 dot
products, fused attention, subgroup size; ``emulated`` where a type compiles and runs
without hardware support, as bf16 on a CPU without avx512_bf16), the allowed ``:options`` with the default,
and whether the target's code can run on this machine: the runtime driver present, a
device found, or compile only, with the reason and how to get it. A name with an
option (``cuda:sm_75``) shows that option's capabilities; ``--options`` lists every
option of the chosen targets. A rich table in a terminal, plain text otherwise;
``--json`` for scripts.
"""

from __future__ import annotations

import json
import os
import sys

CAPABILITIES = (("f16", "f16"), ("bf16", "bf16"), ("f64", "f64"), ("i64", "i64"),
                ("i8_dot", "i8 dot"), ("fused_attention", "fused attn"))


def add_parser(subparsers):
    p = subparsers.add_parser(
        "targets", help="list the compilation targets and what can run on this machine",
        description="List every target: IREE backend, runtime driver, capabilities, options "
                    "(allowed and default) and whether it runs here (driver present, device "
                    "found) or is compile only, with the reason and how to get it.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="targets to show, with an option if wanted (cpu, vulkan, cuda:sm_75); "
                        "default: all")
    p.add_argument("--options", action="store_true",
                   help="also list every option of the shown targets with its capabilities")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


# ---------------------------------------------------------------------------
def _caps(caps) -> dict:
    return {"f16": caps.f16, "bf16": caps.bf16, "f64": caps.f64, "i64": caps.i64,
            "i8_dot": caps.i8_dot, "fused_attention": caps.fused_attention,
            "subgroup_size": caps.subgroup_size, "emulated": list(caps.emulated)}


def availability(t) -> dict:
    """Whether ``t`` runs here: driver present, device found, and the reason/fix if not."""
    from stepwell import targets
    from stepwell.compiler.runtime import _FIXES

    try:
        import iree.runtime as rt
        drivers = set(rt.query_available_drivers())
    except Exception:  # noqa: BLE001  (no runtime at all: nothing runs)
        drivers = set()
    present = t.driver in drivers
    av = targets.available(t)
    here = targets.host_arch()
    cross = t.arch is not None and t.arch != here
    device = bool(av) or (cross and present and bool(targets.available("cpu")))
    if av:
        how = ""
    elif cross:
        how = f"run the .vmfb on {t.arch} hardware"
    elif not present:
        how = f"an IREE runtime with the '{t.driver}' driver (pip install iree-base-runtime)"
    else:
        how = _FIXES.get(t.driver, "")
    reason = av.reason
    if t.driver == "vulkan" and os.environ.get("VK_ICD_FILENAMES"):
        reason += f" (VK_ICD_FILENAMES={os.environ['VK_ICD_FILENAMES']})"
    return {"runs": bool(av), "status": "runs here" if av else "compile only",
            "driver_present": present, "device_found": device, "reason": reason, "how": how}


def describe(t, *, options: bool = False) -> dict:
    """One resolved target as a JSON-able dict."""
    from stepwell import targets
    entry = targets.REGISTRY[t.name]
    doc = {
        "name": t.name, "spec": t.spec, "description": t.description,
        "backend": t.backend, "driver": t.driver, "arch": t.arch, "flags": list(t.flags),
        "capabilities": _caps(t.capabilities),
        "options": {
            "default": entry.default_option, "selected": t.option,
            "allowed": entry.option_names(),
            "refused": [{"name": n, "why": why} for n, why in entry.rejected],
        },
        "available": availability(t),
    }
    if options:
        doc["options"]["details"] = [
            {"name": o.name, "compile_as": o.compile_as or o.name,
             "capabilities": _caps(o.capabilities or entry.capabilities), "why": o.why}
            for o in entry.options]
    return doc


def collect(names, *, options: bool = False) -> list[dict]:
    from stepwell import targets
    chosen = [targets.get(n) for n in names] if names else targets.all_targets()
    return [describe(t, options=options) for t in chosen]


# ---------------------------------------------------------------------------
def _mark(value, rich: bool, emulated: bool = False) -> str:
    if value is None:
        return "-"
    if value and emulated:  # compiles and runs, without hardware support
        return "[yellow]emulated[/yellow]" if rich else "emulated"
    if rich:
        return "[green]yes[/green]" if value else "[red]no[/red]"
    return "yes" if value else "no"


def _options_cell(doc: dict) -> str:
    o = doc["options"]
    if not o["allowed"]:
        return "-"
    rest = [n for n in o["allowed"] if n not in (o["default"], o["selected"])]
    head = (f"{o['selected']} (default {o['default']})" if o["selected"] != o["default"]
            else f"{o['default']} (default)")
    return head + (", " + ", ".join(rest) if rest else "")


HEAD = ["target", "backend", "driver", *(label for _, label in CAPABILITIES), "subgroup",
        "here", "options"]


def rows(docs: list[dict], rich: bool = False) -> list[list[str]]:
    out = []
    for d in docs:
        c = d["capabilities"]
        here = d["available"]["status"]
        if rich:
            here = f"[green]{here}[/green]" if d["available"]["runs"] else f"[yellow]{here}[/yellow]"
        out.append([d["spec"], d["backend"], d["driver"],
                    *(_mark(c[key], rich, key in c["emulated"]) for key, _ in CAPABILITIES),
                    str(c["subgroup_size"] or "-"), here, _options_cell(d)])
    return out


def option_rows(doc: dict) -> list[list[str]]:
    out = []
    for o in doc["options"].get("details", []):
        c = o["capabilities"]
        name = o["name"] + (" (default)" if o["name"] == doc["options"]["default"] else "")
        compiled = o["compile_as"] if o["compile_as"] != o["name"] else ""
        out.append([name, compiled, *(_mark(c[k], False, k in c["emulated"]) for k, _ in CAPABILITIES),
                    str(c["subgroup_size"] or "-")])
    return out


OPTION_HEAD = ["option", "compiled as", *(label for _, label in CAPABILITIES), "subgroup"]


def notes(docs: list[dict]) -> list[str]:
    lines = []
    for d in docs:
        a = d["available"]
        what = ("runs here" if a["runs"] else
                "compile only (" + ("no runtime driver" if not a["driver_present"] else
                                    "driver present, no device" if not a["device_found"] else
                                    f"{d['arch']} code") + ")")
        line = f"{d['spec']}: {what}: {a['reason']}"
        if a["how"] and a["how"] not in a["reason"]:
            line += f"; to run it: {a['how']}"
        lines.append(line)
    return lines


def _plain_table(head, body) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(head), *(fmt(r) for r in body)]


def plain(docs: list[dict], options: bool = False) -> str:
    lines = _plain_table(HEAD, rows(docs))
    if options:
        for d in docs:
            if d["options"].get("details"):
                lines += ["", f"{d['name']} options ({d['description']}):"]
                lines += ["  " + ln for ln in _plain_table(OPTION_HEAD, option_rows(d))]
                lines += [f"  refused: {r['name']}: {r['why']}" for r in d["options"]["refused"]]
    lines += ["", *notes(docs)]
    return "\n".join(lines) + "\n"


def render(docs: list[dict], console, options: bool = False) -> None:
    """A rich table in a terminal, plain aligned text otherwise."""
    if not console.is_terminal:
        out = console.file if console.file is not None else sys.stdout
        out.write(plain(docs, options))
        return
    from rich.table import Table
    table = Table(title="stepwell targets", title_justify="left")
    for i, h in enumerate(HEAD):
        table.add_column(h, no_wrap=i < len(HEAD) - 1, overflow="fold",
                         justify="center" if 3 <= i < 3 + len(CAPABILITIES) + 1 else "left")
    for r in rows(docs, rich=True):
        table.add_row(*r)
    console.print(table)
    if options:
        for d in docs:
            if d["options"].get("details"):
                t = Table(title=f"{d['name']} options: {d['description']}", title_justify="left")
                for h in OPTION_HEAD:
                    t.add_column(h)
                for r in option_rows(d):
                    t.add_row(*r)
                console.print(t)
                for r in d["options"]["refused"]:
                    console.print(f"refused: {r['name']}: {r['why']}")
    for line in notes(docs):
        console.print(line, highlight=False, markup=False)


def run(args) -> int:
    docs = collect(args.names, options=args.options)
    if args.json:
        sys.stdout.write(json.dumps(docs, indent=2) + "\n")
        return 0
    from rich.console import Console
    render(docs, Console(highlight=False), options=args.options)
    return 0
