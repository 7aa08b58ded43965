"""Composite rule of ``stablehlo-to-nn`` for attention: softmax(scale * q.k, masked) . v,
as JAX and Flax write it, becomes transposes around ``nn.attention``."""

from __future__ import annotations

import math

from stepwell.dialects.prim import parse_contract_spec
from stepwell.core.types import is_float
from stepwell.passes._stablehlo_match import is_float_value
from stepwell.passes._stablehlo_match import (
    attr, expansion, nonunit,
    producer, shape, splat, strip, ttype)


# -- attention ------------------------------------------------------------------------------


def _big_negative(c) -> bool:
    return c is not None and float(c) <= -1e30


def _peel_scale(value, strip_first: bool):
    """``(inner, factor)`` when ``value`` is ``inner * c`` or ``inner / c`` for a splat c."""
    v = strip(value) if strip_first else value
    op = producer(v, "prim.map")
    if op is None or attr(op, "fn") not in ("mul", "div"):
        return value, 1.0
    a, c = op.operands
    ca, cc = splat(a), splat(c)
    if cc is not None and cc != 0:
        return a, (float(cc) if attr(op, "fn") == "mul" else 1 / float(cc))
    if ca is not None and attr(op, "fn") == "mul":
        return c, float(ca)
    return value, 1.0


def _group_sizes(b, sizes, nb):
    """[B, H] for the batch letters ``nb`` (B folds all but the last one)."""
    if not nb:
        return [1, 1]
    return [b.mul(*(sizes[c] for c in nb[:-1])), sizes[nb[-1]]]


def _letter_dims(b, *pairs) -> dict:
    """letter -> its size (an int, or an index value where dynamic) over (letters, value) pairs."""
    out = {}
    for letters, value in pairs:  # a static size wins over a dynamic one
        for i, c in enumerate(letters):
            if not isinstance(out.get(c), int):
                out[c] = shape(value)[i] if shape(value)[i] is not None else out.get(c) or b.dim(value, i)
    return out


def _bhsd_ok(letters: str, order: list, sizes: dict) -> bool:
    """The letters outside ``order`` are all size 1 (:func:`_to_bhsd` can drop them)."""
    return all(sizes[c] == 1 for c in letters if c not in order)


def _to_bhsd(b, value, letters: str, order: list, sizes: dict, nb: list):
    """``value`` (einsum ``letters``) as [B, H, S, D] from its letters ``order`` =
    batch..., seq, dim (None entries are size 1); unit letters are dropped."""
    present = [c for c in order if c is not None]
    rest = [c for c in letters if c not in present]
    y = b.transpose(value, [letters.index(c) for c in present + rest])
    seq, dim = order[len(nb)], order[len(nb) + 1]
    return b.reshape(y, _group_sizes(b, sizes, nb) + [sizes.get(seq, 1), sizes.get(dim, 1)])


def _iota_dim(value):
    """The dim of ``value`` it counts along when it is a (broadcast) ``prim.iota``, else None."""
    src, pos = expansion(value)
    iota = producer(src, "prim.iota")
    n = nonunit(shape(src))
    if iota is None or attr(iota, "dim") not in n:
        return None
    return pos[n.index(attr(iota, "dim"))]


def _causal(src, src_letters, sq, ks) -> bool:
    """``src`` is ``iota(query axis) >= iota(key axis)`` (iotas of any rank, broadcast)."""
    op = producer(src, "prim.map")
    if op is None or attr(op, "fn") not in ("ge", "le") or sq is None:
        return False
    dims = [_iota_dim(v) for v in op.operands]
    n = nonunit(shape(src))
    if any(d is None or d not in n for d in dims):
        return False
    first, second = (src_letters[n.index(d)] for d in dims)
    return (first, second) == ((sq, ks) if attr(op, "fn") == "ge" else (ks, sq))


def _mask_source(mask, x_shape, s_letter_of_x: dict, nb):
    """``(src, letters)``: the mask before its broadcasts and the scores letter of each of
    its non-unit dims (the whole mask when the broadcast drops folded batch letters)."""
    src, pos = expansion(mask)
    letters = [s_letter_of_x[p] for p in pos]
    if len(nb) > 2 and not all(c in letters for c in nb[:-1]):
        src, letters = mask, [s_letter_of_x[p] for p in nonunit(x_shape)]
    return src, letters


def _mask(b, src, letters, nb, sq, ks, sizes):
    """The mask source as [B|1, H|1, Sq|1, Sk|1] (nn.attention broadcasts it)."""
    slots = ([nb[:-1]] if len(nb) >= 2 else [[]]) + [[nb[-1]] if nb else [], [sq] if sq else [], [ks]]
    order = [c for slot in slots for c in slot if c in letters]
    y = b.transpose(b.squeeze(src), [letters.index(c) for c in order])
    return b.reshape(y, [b.mul(*(sizes[c] for c in slot if c in letters)) for slot in slots])


def _softmax_of(value):
    """The nn.softmax that ``value`` is (up to unit dims and one convert), else None."""
    v = strip(value)
    cast = producer(v, "prim.cast")
    return producer(strip(cast.operands[0]) if cast is not None else v, "nn.softmax")


def _scores(x):
    """``(mask, invert, scores)`` for the softmax input ``x``: a select against a very
    negative constant is a mask."""
    sel = producer(x, "prim.map")
    if sel is None or attr(sel, "fn") != "select":
        return None, False, x
    cond, t, f = sel.operands
    if _big_negative(splat(f)):
        return cond, False, t
    if _big_negative(splat(t)):
        return cond, True, f
    return None, False, None


# softmax(scale * q.k (masked)) . v contractions -> transposes + nn.attention + transposes.
def attention(op, b):
    l2, r2, o2 = parse_contract_spec(attr(op, "spec"))
    p_side = next((i for i in (0, 1) if _softmax_of(op.operands[i])), None)
    if p_side is None:
        return None
    sm = _softmax_of(op.operands[p_side])
    x = sm.operands[0]
    xs = shape(x)
    axis = attr(sm, "axis") % len(xs)
    mask, invert, scores = _scores(x)
    if scores is None or xs[axis] == 1:
        return None
    scores, scale = _peel_scale(scores, strip_first=True)
    c1 = producer(strip(scores), "prim.contract")
    if c1 is None:
        return None
    l1, r1, o1 = parse_contract_spec(attr(c1, "spec"))
    sizes1 = dict(zip(l1, shape(c1.operands[0]))) | dict(zip(r1, shape(c1.operands[1])))
    n_s, n_x = nonunit(shape(c1.results[0])), nonunit(xs)
    if len(n_s) != len(n_x):
        return None
    s_letter_of_x = {n_x[i]: o1[n_s[i]] for i in range(len(n_x))}
    ks = s_letter_of_x[axis]
    contracted = [c for c in l1 if c in r1 and c not in o1]
    if len(contracted) != 1 or (ks in l1) == (ks in r1):
        return None
    d = contracted[0]
    q_side = 0 if ks in r1 else 1
    q_l, k_l = (l1, r1) if q_side == 0 else (r1, l1)
    batch = [c for c in o1 if c in l1 and c in r1]
    nb = [c for c in batch if sizes1[c] != 1]
    qfree = [c for c in o1 if c in q_l and c not in k_l and sizes1[c] != 1]
    kfree = [c for c in o1 if c in k_l and c not in q_l and sizes1[c] != 1]
    if kfree != [ks] or len(qfree) > 1:
        return None
    sq = qfree[0] if qfree else None
    # the P.V contraction: P's non-unit letters are the scores' non-unit letters in order
    p_l, v_l = (l2, r2) if p_side == 0 else (r2, l2)
    n_p = nonunit(shape(op.operands[p_side]))
    if len(n_p) != len(n_x):
        return None
    p_of = {o1[n_s[i]]: p_l[n_p[i]] for i in range(len(n_p))}
    sizes2 = dict(zip(l2, shape(op.operands[0]))) | dict(zip(r2, shape(op.operands[1])))
    if [c for c in p_l if c in v_l and c not in o2] != [p_of[ks]]:
        return None
    if any(p_of[c] not in v_l or p_of[c] not in o2 for c in nb):
        return None
    if sq is not None and (p_of[sq] not in o2 or p_of[sq] in v_l):
        return None
    vfree = [c for c in o2 if c in v_l and c not in p_l and sizes2[c] != 1]
    if len(vfree) > 1:
        return None
    dv = vfree[0] if vfree else None
    # one element type for q, k, v and the result (the scores may be wider: bf16 -> f32)
    dtypes = {ttype(v).dtype for v in (*c1.operands, op.operands[1 - p_side], op.results[0])}
    if len(dtypes) != 1 or not is_float(dtypes.pop()) or not is_float_value(c1.results[0]):
        return None
    qv, kv, vv = c1.operands[q_side], c1.operands[1 - q_side], op.operands[1 - p_side]
    qv, fq = _peel_scale(qv, strip_first=False)
    kv, fk = _peel_scale(kv, strip_first=False)
    scale *= fq * fk
    out2 = shape(op.results[0])
    canon = [p_of[c] for c in nb] + ([p_of[sq]] if sq else []) + ([dv] if dv else [])
    if sorted(c for c in o2 if sizes2[c] != 1) != sorted(canon):
        return None
    causal, src, letters = False, None, None
    if mask is not None:
        src, letters = _mask_source(mask, xs, s_letter_of_x, nb)
        causal = _causal(src, letters, sq, ks)
        if causal and invert:
            return None
    v_order = [p_of[c] for c in nb] + [p_of[ks], dv]
    if not (_bhsd_ok(q_l, nb + [sq, d], sizes1) and _bhsd_ok(k_l, nb + [ks, d], sizes1)
            and _bhsd_ok(v_l, v_order, sizes2)):
        return None
    # build (sizes as ints, or index values where dynamic)
    sizes1 = _letter_dims(b, (l1, c1.operands[0]), (r1, c1.operands[1]))
    # (P's sizes from the scores' letters: a tensor.dim of P would keep the softmax alive)
    p_static = {c: d for c, d in zip(p_l, shape(op.operands[p_side])) if d is not None}
    sizes2 = p_static | {p_of[c]: sizes1[c] for c in p_of} | {
        c: d for c, d in _letter_dims(b, (v_l, vv)).items() if c not in p_of.values()}
    q4 = _to_bhsd(b, qv, q_l, nb + [sq, d], sizes1, nb)
    k4 = _to_bhsd(b, kv, k_l, nb + [ks, d], sizes1, nb)
    v4 = _to_bhsd(b, vv, v_l, v_order, sizes2, [p_of[c] for c in nb])
    attrs = {"causal": True} if causal else {}
    if not isinstance(sizes1[d], int) or not math.isclose(scale, 1 / math.sqrt(sizes1[d]), rel_tol=1e-6):
        attrs["scale"] = scale
    operands = [q4, k4, v4]
    if mask is not None and not causal:
        m = _mask(b, src, letters, nb, sq, ks, sizes1)
        operands.append(b.map("not", m) if invert else m)
    y = b.nn("attention", *operands, **attrs)
    y = b.reshape(y, [sizes2[c] for c in canon])
    target = [c for c in o2 if sizes2[c] != 1]
    y = b.transpose(y, [canon.index(c) for c in target])
    return b.reshape(y, [d if d is not None else sizes2[c] for c, d in zip(o2, out2)])
