"""``prim-to-linalg{attention=true}``: keep softmax(Q K^T * scale) V whole.

Matches the chain ``nn-to-prim`` emits for ``nn.attention``, rooted at the second
contraction::

    s = contract(q, k)                       "..qd,..kd->..qk"
    s = map mul(s, splat scale)              (optional, either operand order)
    s = map select(keep, s, splat lowest)    (optional: a causal or user mask)
    e = map exp(map add(s, broadcast(map neg(reduce max(s, last axis)))))
    p = map div(e, broadcast(reduce sum(e, last axis)))
    o = contract(p, v)                       "..qk,..kd->..qd"

and replaces it with one ``iree_linalg_ext.attention`` (maps as properties, an identity
score region, the mask as an additive float operand). Chains that differ in any way,
or have dynamic sizes, are left alone for the op-by-op lowering.
"""

from __future__ import annotations

import numpy as np

from stepwell.dialects.prim import parse_contract_spec
from stepwell.core.ir import ir
from stepwell.passes._linalg_text import amap, float_literal, function_text, splice
from stepwell.core.passes_base import splat_value as _splat
from stepwell.core.types import TensorType, is_float, numpy_dtype
from stepwell.core.verifier import walk


def _def(value, name: str, **attrs):
    """The op named ``name`` defining ``value`` whose string attrs equal ``attrs``, else None."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    op = owner.operation
    if op.name != name:
        return None
    for key, want in attrs.items():
        if key not in op.attributes or ir.StringAttr(op.attributes[key]).value != want:
            return None
    return op


def _ints(op, name):
    return [int(v) for v in ir.DenseI64ArrayAttr(op.attributes[name])]


def _row_stat(value, source, kind: str, negated: bool = False) -> list | None:
    """``broadcast([neg] reduce kind(source, last axis))`` back to source's shape: its ops,
    else None."""
    bcast = _def(value, "prim.broadcast")
    if bcast is None:
        return None
    neg = _def(bcast.operands[0], "prim.map", fn="neg") if negated else None
    if negated and neg is None:
        return None
    red = _def((neg or bcast).operands[0], "prim.reduce", kind=kind)
    rank = TensorType.from_mlir(source.type).rank
    if (red is None or red.operands[0] != source or [a % rank for a in _ints(red, "axes")] != [rank - 1]
            or _ints(bcast, "dims") != list(range(rank - 1))):
        return None
    return [bcast, *([neg] if neg else []), red]


def match(root):
    """(q, k, v, mask, scale, maps, chain ops) for an attention chain ending at ``root``."""
    div = _def(root.operands[0], "prim.map", fn="div")
    if div is None:
        return None
    exp = _def(div.operands[0], "prim.map", fn="exp")
    sums = exp and _row_stat(div.operands[1], exp.results[0], "sum")
    shift = exp and _def(exp.operands[0], "prim.map", fn="add")  # scores + (-max), nn-to-prim's softmax
    if not sums or shift is None:
        return None
    scores = shift.operands[0]
    maxes = _row_stat(shift.operands[1], scores, "max", negated=True)
    if not maxes:
        return None
    chain = [div, *sums, exp, shift, *maxes]
    mask = None
    select = _def(scores, "prim.map", fn="select")
    if select is not None:
        lowest = _splat(select.operands[2])
        dtype = numpy_dtype(TensorType.from_mlir(scores.type).dtype)
        if lowest is None or lowest > 0.5 * float(np.finfo(dtype).min):  # a "-inf" it is not
            return None
        mask, scores = (select.operands[0], lowest), select.operands[1]
        chain.append(select)
    scale = 1.0
    mul = _def(scores, "prim.map", fn="mul")
    if mul is not None:
        for i in (0, 1):
            if _def(mul.operands[i], "prim.contract") is not None and _splat(mul.operands[1 - i]) is not None:
                scale, scores = _splat(mul.operands[1 - i]), mul.operands[i]
                chain.append(mul)
                break
    qk = _def(scores, "prim.contract")
    if qk is None:
        return None
    chain.append(qk)
    maps = _maps(ir.StringAttr(qk.attributes["spec"]).value, ir.StringAttr(root.attributes["spec"]).value)
    if maps is None:
        return None
    q, k, v = qk.operands[0], qk.operands[1], root.operands[1]
    if not all(is_float(TensorType.from_mlir(x.type).dtype) for x in (q, k, v, root.results[0])):
        return None
    return q, k, v, mask, scale, maps, chain


def _maps(qk_spec: str, pv_spec: str):
    """Indexing maps (q, k, v, scale, mask, out) over (batch.., m.., k1.., k2, n..), else None."""
    qs, ks, ss = parse_contract_spec(qk_spec)
    ps, vs, os_ = parse_contract_spec(pv_spec)
    if len(ps) != len(ss):
        return None
    fresh = iter(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in qs + ks + ss)
    rename = dict(zip(ps, ss))
    for c in vs + os_:
        if c not in rename:
            rename[c] = next(fresh)
    vs, os_ = "".join(rename[c] for c in vs), "".join(rename[c] for c in os_)
    k2 = ss[-1]
    k1 = [c for c in qs if c in ks and c not in ss]
    batch = [c for c in os_ if c in qs and c in ks and c in vs]
    m = [c for c in os_ if c in qs and c not in ks]
    n = [c for c in os_ if c in vs and c not in qs + ks]
    summed = (set(ss) | set(vs)) - set(os_)
    if (not k1 or not m or not n or k2 in qs or k2 not in ks or summed != {k2}
            or sorted(ss) != sorted(batch + m + [k2]) or sorted(os_) != sorted(batch + m + n)
            or sorted(qs) != sorted(batch + m + k1) or sorted(ks) != sorted(batch + [k2] + k1)
            or sorted(vs) != sorted(batch + [k2] + n)):
        return None
    loops = batch + m + k1 + [k2] + n
    q, k, v, mask, out = (amap(len(loops), [loops.index(c) for c in s]) for s in (qs, ks, vs, ss, os_))
    return [q, k, v, amap(len(loops), []), mask, out]


def _attention_text(q, k, v, mask, scale, maps, scores: TensorType, out: TensorType) -> str:
    types = [TensorType.from_mlir(x.type) for x in (q, k, v)] + (
        [TensorType.from_mlir(mask[0].type)] if mask is not None else [])

    def emit(e, args):
        init = e(f"tensor.empty() : {out}")
        s = e(f"arith.constant {float_literal(scale, 'f32')} : f32")
        ins, tys, used = args[:3] + [s], [str(t) for t in types[:3]] + ["f32"], maps[:4] + maps[5:]
        if mask is not None:
            # additive: 0 where kept, a large negative elsewhere; a quarter of the range
            # so that IREE's log2(e) rescaling stays finite (a fully masked row then
            # averages v uniformly, as the select did, instead of giving NaN)
            dt = scores.dtype
            low = max(mask[1], float(np.finfo(numpy_dtype(dt)).min) / 4)
            additive = e.elementwise([(args[3], types[3])], scores, lambda b, xs: b(
                f"arith.select {xs[0]}, {b.const(0, dt)}, {b.const(low, dt)} : {dt}"))
            ins, tys, used = ins + [additive], tys + [str(scores)], maps
        return e(f"iree_linalg_ext.attention <{{indexing_maps = [{', '.join(used)}]}}> "
                 f"ins({', '.join(ins)} : {', '.join(tys)}) outs({init} : {out}) {{\n"
                 f"^bb0(%score: f32):\n  iree_linalg_ext.yield %score : f32\n}} -> {out}")

    return function_text(types, [out], emit)


def raise_attention(module) -> int:
    """Replace every matching chain by ``iree_linalg_ext.attention``; returns how many."""
    count = 0
    for root in [op for op in walk(module.operation) if op.name == "prim.contract"]:
        found = match(root)
        if found is None:
            continue
        q, k, v, mask, scale, maps, chain = found
        out = TensorType.from_mlir(root.results[0].type)
        if None in out.shape:
            continue  # dynamic sizes: left to the op-by-op lowering
        scores = TensorType.from_mlir(chain[0].results[0].type)  # the softmax probabilities
        operands = [q, k, v] + ([mask[0]] if mask is not None else [])
        splice(root, _attention_text(q, k, v, mask, scale, maps, scores, out), operands)
        consts = [c for op in chain for c in (x.owner for x in op.operands)
                  if not isinstance(c, ir.Block) and c.operation.name == "arith.constant"]
        for op in chain + consts:  # the softmax chain, now dead (unless used elsewhere)
            op = op.operation
            if all(not list(r.uses) for r in op.results):
                op.erase()
        count += 1
    return count
