"""Composite MoE rules of ``stablehlo-to-nn``: whole layers written with dense algebra,
as ``nn.moe_ffn`` and ``nn.grouped_matmul`` (docs/moe.md).

* the **dense** MoE layer (every expert on every token, MaxText's dense path):
  ``einsum("ted,te->td", FFN(x) per expert, combine)`` where the combine weights
  [T, E] come from the routing weights and ids (a one-hot sum, or the scatter of
  ``jnp.zeros(...).at[rows, ids].set(w)`` on top-k ids) -> ``nn.moe_ffn`` dropless;
* the **capacity** layer (Switch/MaxText ``capacity_factor > 0``): tokens dispatched
  into [E, C, D] by a one-hot einsum, the experts as batched matmuls, a combine
  einsum -> ``nn.moe_ffn {capacity = C, priority = token|choice}``;
* ``jax.lax.ragged_dot`` as JAX lowers it on CPU (every group masked, summed)
  -> ``nn.grouped_matmul``.

The expert path (the weights, the activation, the layouts) is matched structurally.
The routing tensors (combine, dispatch, masks) are small functions of the routing
weights and ids whose spelling varies with how the layer is written; they are
matched by what they compute: their prim subgraph, evaluated with the ops' numpy
references on probing inputs (random and skewed routings), must equal the one-hot
semantics of the op it becomes, in every entry.
"""

from __future__ import annotations

import numpy as np

from stepwell.core import opspec
from stepwell.core.constants import constant_value
from stepwell.dialects.nn_moe import keep_mask
from stepwell.dialects.prim import parse_contract_spec
from stepwell.passes._stablehlo_match import attr, is_unit_shuffle, nonunit, producer, shape, splat, ttype

ACTIVATIONS = {"nn.silu": "silu", "nn.relu": "relu"}


# -- evaluating routing subgraphs ---------------------------------------------------------------


def subgraph(value, limit: int = 80):
    """(ops in order, leaves): the prim ops and constants computing ``value`` from its
    leaves (values anything else makes: arguments, nn ops); None when too large."""
    ops, leaves, seen = [], [], []

    def visit(v) -> bool:
        if any(v == s for s in seen):
            return True
        seen.append(v)
        op = producer(v)
        if op is None or not (op.name.startswith("prim.") or op.name == "arith.constant"):
            leaves.append(v)
            return True
        if not all(visit(o) for o in op.operands) or len(ops) >= limit:
            return False
        ops.append(op)
        return True
    return (ops, leaves) if visit(value) else None


def evaluate(ops, env: dict):
    """Run ``ops`` (from :func:`subgraph`) with the references; ``env``: leaf -> array."""
    values = list(env.items())

    def get(v):
        return next(a for k, a in values if k == v)
    for op in ops:
        if op.name == "arith.constant":
            out = [constant_value(op.attributes["value"], op.results[0].type)]
        else:
            spec = opspec.lookup(op.name)
            attrs = {n: opspec.attr_to_python(op.attributes[n])[1] for n in op.attributes if "." not in n}
            out = spec.evaluate([get(o) for o in op.operands], attrs, [ttype(r) for r in op.results])
        values += list(zip(op.results, out))
    return get(ops[-1].results[0]) if ops else None


def _probes(t: int, k: int, e: int):
    """(weights, ids) routings to test a routing subgraph with: random distinct ids per
    token, every token's first choice on expert 0 (overflowing capacities), and ids
    repeated within a token or out of [0, E) (which nn.moe_ffn sums and drops)."""
    rng = np.random.default_rng(0)
    for kind in ("random", "skew", "random", "odd"):
        ids = np.stack([rng.permutation(e)[:k] for _ in range(t)])
        if kind == "skew":
            ids = np.stack([np.concatenate([[0], rng.permutation(np.arange(1, e))[:k - 1]]) for _ in range(t)])
        elif kind == "odd":
            ids[::2, -1] = ids[::2, 0]
            ids[1::3, 0] = rng.choice([-1, e, e + 3], len(ids[1::3]))
        yield rng.uniform(0.1, 1.0, (t, k)).astype(np.float32), ids.astype(np.int32)


def _routing_leaves(values, t: int, k: int):
    """(ops per value, weights leaf, ids leaf): the [T, k] float and integer leaves of
    the routing subgraphs of ``values`` (the weights may be absent), else None."""
    graphs = [subgraph(v) for v in values]
    if None in graphs:
        return None
    leaves = []
    for _, ls in graphs:
        leaves += [v for v in ls if not any(v == u for u in leaves)]
    floats = [v for v in leaves if ttype(v).dtype.startswith(("f", "bf"))]
    ints = [v for v in leaves if ttype(v).dtype in ("i32", "i64")]
    if len(ints) != 1 or len(floats) > 1 or len(floats) + len(ints) != len(leaves):
        return None
    if any(shape(v) != (t, k) for v in leaves):
        return None
    return [g[0] for g in graphs], (floats[0] if floats else None), ints[0]


def _onehot_sum(w, ids, e: int, c: int = 0, priority: str = "token"):
    """[T, E] (c = 0) or [T, E, C]: sum over j of w[t, j] at (ids[t, j], position) for
    the kept assignments."""
    t, k = ids.shape
    keep = keep_mask(ids, e, c, priority)
    out = np.zeros((t, e) + ((c,) if c else ()))
    order = ids if priority == "token" else ids.T
    flat, seen = np.zeros(order.size, int), np.zeros(e, int)
    for n, ex in enumerate(order.reshape(-1)):
        if 0 <= ex < e:  # (ids out of range are dropped: they take no position)
            flat[n] = seen[ex]
            seen[ex] += 1
    pos = flat.reshape(order.shape) if priority == "token" else flat.reshape(order.shape).T
    for ti in range(t):
        for j in range(k):
            if keep[ti, j]:
                out[(ti, ids[ti, j]) + ((pos[ti, j],) if c else ())] += w[ti, j]
    return out


# -- the expert path --------------------------------------------------------------------------


def untranspose(v, names):
    """``v`` before prim.transposes (and reshapes that only move one size-1 dim, as a
    transpose of a unit dim becomes), with the axis names carried back."""
    while (op := producer(v, "prim.transpose", "prim.reshape")) is not None:
        src, dst = shape(op.operands[0]), shape(v)
        if op.name == "prim.transpose":
            before = [None] * len(names)
            for i, p in enumerate(attr(op, "permutation")):
                before[p] = names[i]
        elif is_unit_shuffle(op) and len(src) == len(dst) and src.count(1) <= 1:
            before = [None] * len(src)
            for i, j in zip(nonunit(src), nonunit(dst)):
                before[i] = names[j]
            if 1 in src:
                before[src.index(1)] = names[dst.index(1)]
        else:
            break
        v, names = op.operands[0], tuple(before)
    return v, tuple(names)


def _operands_named(op, out_names, summed_name: str):
    """Each operand of a contraction (prim.contract, nn.matmul) with its axis names:
    result letters take ``out_names``, the one summed letter ``summed_name``."""
    a, b = op.operands
    if op.name == "nn.matmul":
        if ttype(a).rank != len(out_names) or ttype(b).rank != len(out_names) or len(out_names) != 3:
            return None
        return [(a, (out_names[0], out_names[1], summed_name)), (b, (out_names[0], summed_name, out_names[2]))]
    if op.name != "prim.contract":
        return None
    lhs, rhs, out = parse_contract_spec(attr(op, "spec"))
    summed = [c for c in lhs if c not in out]
    if len(summed) != 1:
        return None
    name = dict(zip(out, out_names)) | {summed[0]: summed_name}
    return [(a, tuple(name[c] for c in lhs)), (b, tuple(name[c] for c in rhs))]


def _split(pairs, weight_names: set):
    """(weight, other) among two named operands: the weight has exactly ``weight_names``."""
    w = [p for p in pairs if set(p[1]) == weight_names]
    rest = [p for p in pairs if set(p[1]) != weight_names]
    return (w[0], rest[0]) if len(w) == 1 and len(rest) == 1 else (None, None)


def _projection(value, names):
    """(rows, weight) of ``value`` = rows @ w_e (named pairs), summing axis 'd'."""
    value, names = untranspose(value, names)
    op = producer(value, "prim.contract", "nn.matmul")
    if op is None or "e" not in names or "h" not in names:
        return None
    pairs = _operands_named(op, names, "d")
    if pairs is None:
        return None
    w, rows = _split(pairs, {"e", "d", "h"})
    return None if w is None else (untranspose(*rows), w)


def _activation(op):
    if op is None:
        return None
    if op.name in ACTIVATIONS:
        return ACTIVATIONS[op.name]
    if op.name == "nn.gelu":
        return "gelu_tanh" if attr(op, "approximate") in (None, True) else "gelu"
    return None


def expert_path(y, names):
    """The expert FFN computing ``y`` (axes named e, d and the row axes): a dict with
    the rows (value, names), w_gate, w_up (None), w_down as (value, names) and the
    activation, else None."""
    y, names = untranspose(y, names)
    op = producer(y, "prim.contract", "nn.matmul")
    pairs = None if op is None else _operands_named(op, names, "h")
    if pairs is None:
        return None
    wd, hidden = _split(pairs, {"e", "h", "d"})
    if wd is None:
        return None
    h, hnames = untranspose(*hidden)
    up = None
    mul = producer(h, "prim.map")
    if mul is not None and attr(mul, "fn") == "mul":
        sides = [untranspose(v, hnames) for v in mul.operands]
        acts = [s for s in sides if _activation(producer(s[0])) is not None]
        if len(acts) != 1:
            return None
        act_side = acts[0]
        up = _projection(*[s for s in sides if s is not act_side][0])
        h, hnames = act_side
    act = producer(h)
    kind = _activation(act)
    gate = None if kind is None else _projection(act.operands[0], hnames)
    if gate is None or (up is not None and not (up[0][0] == gate[0][0] and up[0][1] == gate[0][1])):
        return None
    return {"rows": gate[0], "w_gate": gate[1], "w_up": None if up is None else up[1], "w_down": wd,
            "activation": kind}


def canonical(b, pair, order):
    """A named value transposed into the axis ``order``."""
    value, names = pair
    return b.transpose(value, [names.index(n) for n in order])


def _moe(b, path, x, weights, ids, capacity: int = 0, priority: str = "token"):
    """nn.moe_ffn of a matched expert path."""
    experts = [canonical(b, path["w_gate"], ("e", "d", "h"))]
    if path["w_up"] is not None:
        experts.append(canonical(b, path["w_up"], ("e", "d", "h")))
    experts.append(canonical(b, path["w_down"], ("e", "h", "d")))
    attrs = {"activation": path["activation"]}
    if capacity:
        attrs.update(capacity=capacity, priority=priority)
    return b.nn("moe_ffn", x, weights, ids, *experts, **attrs)


def _roots(op, summed_names):
    """Namings of a combine contraction -> [T, D]: ((expert outputs, names), (combine
    weights, names)), its summed letters named by each order of ``summed_names``."""
    import itertools
    if op.name == "nn.matmul":  # [T, E*C] x [E*C, D], each a reshape of the 3-D tensor
        a, b = (producer(v, "prim.reshape") for v in op.operands)
        if a is None or b is None or len(summed_names) != 2:
            return
        comb, ffn = a.operands[0], b.operands[0]
        if len(shape(comb)) != 3 or len(shape(ffn)) != 3 or shape(comb)[1:] != shape(ffn)[:2]:
            return
        for p, q in itertools.permutations(summed_names):
            yield (ffn, (p, q, "d")), (comb, ("t", p, q))
        return
    if op.name != "prim.contract" or ttype(op.results[0]).rank != 2:
        return
    lhs, rhs, out = parse_contract_spec(attr(op, "spec"))
    summed = [c for c in lhs if c not in out]
    if len(summed) != len(summed_names):
        return
    for (f, fl), (c, cl) in (((op.operands[0], lhs), (op.operands[1], rhs)), ((op.operands[1], rhs), (op.operands[0], lhs))):
        d = [x for x in out if x in fl and x not in cl]
        t = [x for x in out if x in cl]
        if len(d) != 1 or len(t) != 1 or out != t[0] + d[0]:
            continue
        for order in itertools.permutations(summed_names):
            names = {t[0]: "t", d[0]: "d"} | dict(zip(summed, order))
            yield (f, tuple(names[x] for x in fl)), (c, tuple(names[x] for x in cl))


def _scatter_combine(comb):
    """(weights, ids) of ``zeros.at[arange(T)[:, None], ids].set(w)`` on nn.top_k ids."""
    op = producer(comb, "stablehlo.scatter")
    if op is None or len(op.operands) != 3 or splat(op.operands[0]) != 0:
        return None
    text = str(op.attributes["scatter_dimension_numbers"]).replace(" ", "")
    block = op.regions[0].blocks[0]
    body = [o.operation for o in block.operations]
    if ("inserted_window_dims=[0,1]" not in text or "scatter_dims_to_operand_dims=[0,1]" not in text
            or "index_vector_dim=2" not in text or len(body) != 1 or list(body[0].operands) != [block.arguments[1]]):
        return None
    _, idx, w = op.operands
    cat = producer(idx, "prim.concat")
    if cat is None or len(cat.operands) != 2 or attr(cat, "axis") != 2 or len(shape(w)) != 2:
        return None
    (t, e), k = shape(comb), shape(w)[1]
    rows, cols = subgraph(cat.operands[0]), subgraph(cat.operands[1])
    if rows is None or cols is None or rows[1] or len(cols[1]) != 1:
        return None
    ids = cols[1][0]
    top_k = producer(ids, "nn.top_k")  # in-range ids: the scatter neither wraps nor drops them
    if top_k is None or ids != top_k.results[1] or shape(top_k.operands[0])[-1] != e or shape(ids) != (t, k):
        return None
    probe = next(_probes(t, k, e))[1]
    if not (np.array_equal(evaluate(*rows[:1], {}), np.broadcast_to(np.arange(t)[:, None, None], (t, k, 1)))
            and np.array_equal(evaluate(cols[0], {ids: probe}), probe[..., None])):
        return None
    return w, ids


def _matches(ops_list, leaves, want_fn, t, k, e) -> bool:
    """Whether the routing subgraphs compute ``want_fn(w, ids)`` on every probe."""
    w, ids = leaves
    for pw, pi in _probes(t, k, e):
        env = {ids: pi.astype(ttype(ids).numpy_dtype())} | ({} if w is None else {w: pw.astype(ttype(w).numpy_dtype())})
        for ops, want in zip(ops_list, want_fn(pw, pi)):
            if not np.allclose(evaluate(ops, dict(env)), want, rtol=1e-5, atol=1e-6):
                return False
    return True


def _k_of(value, t: int):
    """k of the [T, k] leaves of ``value``'s routing subgraph (0 if none)."""
    graph = subgraph(value)
    found = [v for v in (graph[1] if graph else []) if len(shape(v)) == 2 and shape(v)[0] == t]
    return shape(found[0])[1] if found else 0


def _axes(arr, names, order):
    return arr.transpose([order.index(n) for n in names])


# einsum("ted,te->td", expert outputs [T, E, D], combine [T, E]) of the dense layer -> nn.moe_ffn.
def dense_moe(op, b):
    for (y, ynames), (comb, cnames) in _roots(op, ("e",)):
        path = expert_path(y, ynames)
        if path is None or set(path["rows"][1]) != {"t", "d"}:
            continue
        comb, cnames = untranspose(comb, cnames)
        t, e = (shape(comb)[cnames.index(n)] for n in ("t", "e"))
        routed = _scatter_combine(comb) if cnames == ("t", "e") else None
        k = _k_of(comb, t)
        if routed is None and k:
            found = _routing_leaves([comb], t, k)
            if found is not None and found[1] is not None and _matches(
                    found[0], found[1:], lambda w, i: [_axes(_onehot_sum(w, i, e), cnames, ("t", "e"))], t, k, e):
                routed = found[1:]
        if routed is not None:
            return _moe(b, path, canonical(b, path["rows"], ("t", "d")), *routed)
    return None


# the capacity layer: combine [T, E, C] . (experts on dispatch [T, E, C] . x) -> nn.moe_ffn {capacity}.
def capacity_moe(op, b):
    for (ye, ynames), (comb, cnames) in _roots(op, ("e", "c")):
        path = expert_path(ye, ynames)
        if path is None or set(path["rows"][1]) != {"e", "c", "d"}:
            continue
        xe, xnames = path["rows"]
        mm = producer(xe, "prim.contract")
        pairs = None if mm is None else _operands_named(mm, xnames, "t")
        if pairs is None:
            continue
        x = [p for p in pairs if set(p[1]) == {"t", "d"}]
        disp = [p for p in pairs if set(p[1]) == {"t", "e", "c"}]
        if len(x) != 1 or len(disp) != 1:
            continue
        comb, cnames = untranspose(comb, cnames)
        disp, dnames = untranspose(*disp[0])
        t, e, c = (shape(comb)[cnames.index(n)] for n in ("t", "e", "c"))
        k = _k_of(comb, t)
        found = _routing_leaves([comb, disp], t, k) if k else None
        if found is None or found[1] is None:
            continue
        for priority in ("token", "choice"):
            def want(w, i):
                full = _onehot_sum(w, i, e, c, priority)
                ones = _onehot_sum(np.ones_like(w), i, e, c, priority)
                return [_axes(full, cnames, ("t", "e", "c")), _axes(ones, dnames, ("t", "e", "c"))]
            if _matches(found[0], found[1:], want, t, k, e):
                return _moe(b, path, canonical(b, x[0], ("t", "d")), *found[1:], capacity=c, priority=priority)
    return None


# sum over groups g of select(start_g <= row < end_g, x, 0) @ w[g] (ragged_dot on CPU) -> nn.grouped_matmul.
def masked_ragged_dot(op, b):
    if op.name != "prim.contract":
        return None
    lhs, rhs, out = parse_contract_spec(attr(op, "spec"))
    a, w = op.operands
    if len(lhs) != 3 or len(rhs) != 3 or len(out) != 2 or lhs[0] != rhs[0] or lhs[0] in out:
        return None
    if not (lhs[2] == rhs[1] and lhs[2] not in out and out == lhs[1] + rhs[2]):
        return None
    sel = producer(a, "prim.map")
    if sel is None or attr(sel, "fn") != "select" or splat(sel.operands[2]) != 0:
        return None
    mask, xb = sel.operands[0], producer(sel.operands[1], "prim.broadcast")
    if xb is None or list(attr(xb, "dims")) != [1, 2]:
        return None
    graph = subgraph(mask)
    if graph is None or len(graph[1]) != 1 or len(shape(graph[1][0])) != 1:
        return None
    sizes = graph[1][0]
    g, m, kk = shape(a)
    if shape(sizes) != (g,) or ttype(sizes).dtype not in ("i32", "i64"):
        return None
    rng = np.random.default_rng(0)
    for total in (m, m // 2, 2 * m):  # groups filling, short of and beyond the rows
        s = np.diff(np.concatenate([[0], np.sort(rng.integers(0, total + 1, g - 1)), [total]]))
        ends = np.cumsum(s)
        rows = np.arange(m)[None, :, None]
        want = np.broadcast_to(((ends - s)[:, None, None] <= rows) & (rows < ends[:, None, None]), (g, m, kk))
        if not np.array_equal(evaluate(graph[0], {sizes: s.astype(ttype(sizes).numpy_dtype())}), want):
            return None
    return b.nn("grouped_matmul", xb.operands[0], w, sizes)


# root op -> the MoE layer rules, the last phase of stablehlo-to-nn.
PHASE = {"prim.contract": [masked_ragged_dot, dense_moe, capacity_moe], "nn.matmul": [capacity_moe]}
