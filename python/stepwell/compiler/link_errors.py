"""Link failures of IREE's CPU backend, reported with their cause and the op behind it.

When the code of a dispatch calls a function the embedded linker cannot resolve,
``iree-compile`` prints the linker's own line first::

    iree-lld: error: undefined symbol: __truncsfbf2
    >>>               /tmp/main_dispatch_0-81cf85.o:(main_dispatch_0_elementwise_4_i32xbf16)
    -:0:0: error: failed to link executable and generate target dylib (check above ...)

and its error sits at the executable, which is often the module (``file:0:0``). This
module keeps the linker's line and names the op that needs the symbol, at that op's
location: for the runtime-library conversions LLVM calls on CPUs without the
instructions (``__truncsfbf2``: to bf16; ``__truncsfhf2``/``__extendhfsf2``: f16),
the first op converting to or from that type.
"""

from __future__ import annotations

import re

from stepwell.core import verifier
from stepwell.core.diagnostics import Diagnostic, at

_LLD = re.compile(r"^(?:iree-)?lld: error: (?P<msg>.*)$")
_UNDEFINED = re.compile(r"undefined symbol: (?P<sym>\S+)")
_DISPATCH = re.compile(r"\.o:\((?P<fn>\w+)\)")

# libcall -> (element type, direction): which conversion LLVM lowered to that call
LIBCALLS = {
    "__truncsfbf2": ("bf16", "to"), "__truncdfbf2": ("bf16", "to"), "__extendbfsf2": ("bf16", "from"),
    "__truncsfhf2": ("f16", "to"), "__truncdfhf2": ("f16", "to"), "__extendhfsf2": ("f16", "from"),
    "__gnu_f2h_ieee": ("f16", "to"), "__gnu_h2f_ieee": ("f16", "from"),
}
_CONVERSIONS = ("arith.sitofp", "arith.uitofp", "arith.truncf", "arith.extf", "arith.fptosi",
                "arith.fptoui", "stablehlo.convert", "tosa.cast")


def linker_errors(stderr: str) -> list[str]:
    """The linker's ``error:`` lines, each with the dispatch that referenced it."""
    out = []
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        m = _LLD.match(line.strip())
        if not m:
            continue
        where = next((d["fn"] for ln in lines[i + 1:i + 4] for d in [_DISPATCH.search(ln)] if d), None)
        out.append(f"iree-lld: error: {m['msg']}" + (f" (referenced by dispatch {where})" if where else ""))
    return out


def _element(t) -> str:
    s = str(t)
    return s.rsplit("x", 1)[-1].rstrip(">") if s.startswith(("tensor<", "vector<")) else s


def culprit(module, symbol: str):
    """The first op of ``module`` whose conversion LLVM turns into a call of ``symbol``."""
    kind = LIBCALLS.get(symbol)
    if kind is None or module is None:
        return None
    dtype, direction = kind
    found = []
    for op in verifier.walk(module.operation):
        if op.name not in _CONVERSIONS or not op.operands or not op.results:
            continue
        src, dst = _element(op.operands[0].type), _element(op.results[0].type)
        if (dst if direction == "to" else src) == dtype and src != dst:
            found.append((not (src if direction == "to" else dst).startswith("i"), op))
    # an int <-> low float conversion first: LLVM has no instruction-free lowering for it
    return min(found, key=lambda f: f[0])[1] if found else None


def link_diagnostics(stderr: str, name: str, target, module=None) -> list[Diagnostic]:
    """The link failure as one located error naming the op and keeping the linker's
    cause; empty when ``stderr`` holds no linker error."""
    causes = linker_errors(stderr)
    if not causes:
        return []
    symbol = next((m["sym"] for c in causes for m in [_UNDEFINED.search(c)] if m), None)
    op = culprit(module, symbol) if symbol else None
    what = f"cannot link the code for target '{target.spec}'"
    if op is not None:
        parent = op.parent
        inside = f" (in '{parent.name}')" if parent is not None and parent.name not in (
            "func.func", "builtin.module") else ""
        what = f"'{op.name}'{inside} " + what
        how = (f": LLVM calls the runtime function {symbol} for it on this CPU, which IREE "
               f"does not provide")
        diag = at(op.location, f"iree-compile: {what}{how}: {causes[0]}", display_name=name)
    else:
        diag = Diagnostic(f"iree-compile: {what}: {causes[0]}", "error", name)
    return [diag, *(Diagnostic(c, "note", name) for c in causes[1:3])]
