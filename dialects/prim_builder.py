"""``PrimBuilder``: terse construction of ``prim`` ops at the current insertion point.

Used by lowerings into ``prim`` (``nn-to-prim``, the StableHLO raising)::

    with rewriter.ip, op.location:
        b = PrimBuilder()
        y = b.map("add", b.broadcast_to(x, shape), bias)

Shapes given to the builder may hold run-time sizes: an entry is an int, ``None`` (a
dynamic dimension that follows from the operand) or an ``index`` value
(``b.dim(x, 0)``, ``b.mul(...)``), which becomes a ``?`` in the result type and a
``sizes`` operand of ``prim.broadcast``/``prim.reshape``/``prim.iota``.
"""

from __future__ import annotations

import numpy as np

from stepwell.core.ir import arith, ir, tensor
from stepwell.core.opspec import lookup
from stepwell.core.types import TensorType, is_float


def ttype(value) -> TensorType:
    return TensorType.from_mlir(value.type)


class PrimBuilder:
    def _op(self, name, *operands, result_type=None, **attrs):
        return lookup(name).build(*operands, result_type=result_type, **attrs)

    # -- constants ------------------------------------------------------------
    def splat(self, value, t: TensorType):
        """``arith.constant dense<value> : t``."""
        elem = t.to_mlir().element_type
        attr = (ir.FloatAttr.get(elem, float(value)) if is_float(t.dtype)
                else ir.IntegerAttr.get(elem, int(value)))
        return arith.ConstantOp(t.to_mlir(), ir.DenseElementsAttr.get_splat(t.to_mlir(), attr)).result

    def like(self, value, x):
        """A splat of ``value`` with the type of ``x`` (a dynamic one: a broadcast scalar)."""
        t = ttype(x)
        if None not in t.shape:
            return self.splat(value, t)
        return self.broadcast(self.splat(value, t.with_shape(())), [], self.shape_of(x))

    def lowest(self, x):
        """The most negative finite value of ``x``'s element type in ``x``'s shape (a safe
        -inf for masking)."""
        from stepwell.core.types import numpy_dtype
        t = ttype(x)
        dt = numpy_dtype(t.dtype)
        return self.like(float(np.finfo(dt).min) if is_float(t.dtype) else int(np.iinfo(dt).min), x)

    # -- run-time sizes ---------------------------------------------------------
    def index(self, n: int):
        """``arith.constant n : index``."""
        return arith.ConstantOp(ir.IndexType.get(), int(n)).result

    def dim(self, x, i: int):
        """Dimension ``i`` of ``x``: an int if static, else a ``tensor.dim`` index value."""
        t = ttype(x)
        i %= t.rank
        d = t.shape[i]
        return d if d is not None else tensor.DimOp(x, self.index(i)).result

    def shape_of(self, x) -> list:
        return [self.dim(x, i) for i in range(ttype(x).rank)]

    def mul(self, *dims):
        """The product of dims (ints and index values); an int when all are static."""
        static = 1
        values = []
        for d in dims:
            if isinstance(d, ir.Value):
                values.append(d)
            else:
                static *= int(d)
        if not values:
            return static
        out = values[0]
        for v in values[1:]:
            out = arith.MulIOp(out, v).result
        return out if static == 1 else arith.MulIOp(out, self.index(static)).result

    def scalar_of(self, d, dtype: str):
        """A rank-0 tensor of element type ``dtype`` holding the size ``d``."""
        if not isinstance(d, ir.Value):
            return self.splat(d, TensorType((), dtype))
        from stepwell.core.types import numpy_dtype  # noqa: F401  (dtype checked by the op)
        t = TensorType((), dtype)
        i64 = arith.IndexCastOp(ir.IntegerType.get_signless(64), d).result
        elem = t.to_mlir().element_type
        if is_float(dtype):
            scalar = arith.SIToFPOp(elem, i64).result
        elif dtype != "i64":
            scalar = arith.TruncIOp(elem, i64).result
        else:
            scalar = i64
        return tensor.FromElementsOp(t.to_mlir(), [scalar]).result

    # -- prim ops ---------------------------------------------------------------
    def map(self, fn: str, *xs):
        return self._op("prim.map", *xs, fn=fn)

    def contract(self, a, b, spec: str, dtype: str | None = None):
        rt = None
        if dtype is not None:
            from stepwell.dialects.prim import parse_contract_spec
            lhs, rhs, out = parse_contract_spec(spec)
            sizes = dict(zip(lhs, ttype(a).shape)) | dict(zip(rhs, ttype(b).shape))
            rt = TensorType(tuple(sizes[c] for c in out), dtype)
        return self._op("prim.contract", a, b, spec=spec, result_type=rt)

    def reduce(self, x, kind: str, axes):
        return self._op("prim.reduce", x, kind=kind, axes=list(axes))

    def transpose(self, x, perm):
        perm = list(perm)
        return x if perm == sorted(perm) else self._op("prim.transpose", x, permutation=perm)

    def reshape(self, x, shape):
        """``x`` reshaped to ``shape`` (index values in it: run-time sizes, given for
        every dynamic dimension)."""
        t = ttype(x)
        static, sizes = _split(shape)
        if static == t.shape and (static.count(None) <= 1 or _same_sizes(x, shape)):
            return x  # (one dynamic dimension: the element count fixes it)
        if sizes and len(sizes) != static.count(None):
            raise TypeError(f"'prim.reshape' to {shape}: give every dynamic dimension's size")
        return self._op("prim.reshape", x, *sizes, result_type=t.with_shape(static))

    def cast(self, x, dtype: str):
        t = ttype(x)
        return x if t.dtype == dtype else self._op("prim.cast", x, result_type=t.with_dtype(dtype))

    def broadcast(self, x, dims, shape):
        """``x`` broadcast to ``shape`` (operand dim i -> ``dims[i]``); a dynamic result
        dimension is an index value in ``shape``, or ``None`` where it is ``x``'s."""
        t = ttype(x)
        dims = list(dims)
        static, sizes = _split(shape)
        if static == t.shape and dims == list(range(t.rank)):
            return x
        if sizes or any(static[d] is None for d in range(len(static)) if d not in dims):
            full = list(shape)
            for i, d in enumerate(dims):  # kept dynamic dims: x's size
                if full[d] is None:
                    full[d] = self.dim(x, i)
            if any(v is None for v in full):
                raise TypeError(f"'prim.broadcast' to {shape}: a dynamic added dimension needs its size")
            sizes = [v for v in full if isinstance(v, ir.Value)]
        return self._op("prim.broadcast", x, *sizes, dims=dims, result_type=t.with_shape(static))

    def iota(self, shape, dim: int, dtype: str = "i64"):
        static, sizes = _split(shape)
        return self._op("prim.iota", *sizes, dim=dim, result_type=TensorType(static, dtype))

    # -- composites -----------------------------------------------------------
    def broadcast_to(self, x, shape):
        """Numpy-style broadcast of ``x`` to ``shape``: drop stretched 1-dims, add dims
        (``shape`` may hold index values; a dynamic dim of ``x`` is taken as kept)."""
        t = ttype(x)
        static, _ = _split(shape)
        offset = len(static) - t.rank
        keep = [i for i, d in enumerate(t.shape) if not (d == 1 and static[offset + i] != 1)]
        if offset == 0 and len(keep) == t.rank and not any(isinstance(d, ir.Value) for d in shape):
            return x
        x = self.reshape(x, [self.dim(x, i) for i in keep])
        return self.broadcast(x, [offset + i for i in keep], shape)

    def restore_axes(self, reduced, axes, shape):
        """Broadcast a reduction result back over the reduced ``axes`` of ``shape``."""
        kept = [i for i in range(len(shape)) if i not in axes]
        return self.broadcast(reduced, kept, shape)


def _split(shape) -> tuple[tuple, list]:
    """(the static shape, None for dynamic entries; the index values among the entries)."""
    static = tuple(None if d is None or isinstance(d, ir.Value) else int(d) for d in shape)
    return static, [d for d in shape if isinstance(d, ir.Value)]


def _same_sizes(x, shape) -> bool:
    """Whether every index value in ``shape`` is ``x``'s own ``tensor.dim`` at that position."""
    for i, d in enumerate(shape):
        if isinstance(d, ir.Value):
            owner = d.owner
            if not (isinstance(owner, ir.OpView) and owner.operation.name == "tensor.dim"
                    and owner.operands[0] == x and _const_index(owner.operands[1]) == i):
                return False
    return True


def _const_index(v):
    owner = v.owner
    if isinstance(owner, ir.OpView) and owner.operation.name == "arith.constant":
        return ir.IntegerAttr(owner.attributes["value"]).value
    return None
