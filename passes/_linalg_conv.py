"""prim-to-linalg: ``prim.conv`` as linalg convolutions (or a grouped linalg.generic)."""

from __future__ import annotations


from stepwell.core.types import is_float
from stepwell.passes._linalg_shapes import _expand, _pad
from stepwell.passes._linalg_text import (narrow, Unsupported, amap, attr, convert, floats_wide, ttype)


# -- conv -----------------------------------------------------------------------------


# conv: tensor.pad, then linalg.conv_2d_nhwc_hwcf (groups 1), a depthwise conv (groups = C)
# or a grouped linalg.generic; f16/bf16 accumulate in f32.
def lower_conv(op, e, args):
    x, w = (ttype(v) for v in op.operands)
    res = ttype(op.results[0])
    strides, dilation = attr(op, "strides", [1, 1]), attr(op, "dilation", [1, 1])
    top, bottom, left, right = attr(op, "padding", [0, 0, 0, 0])
    groups = attr(op, "groups", 1)
    n, h, wd, c = x.shape
    kh, kw, ci, co = w.shape
    if c is None:
        raise Unsupported(f"a dynamic channel count in {x}")
    like = {0: (args[0], x, 0)}  # dynamic output sizes: batch, (padded - span) / stride + 1
    xv, x, bottom, right = _drop_unused_rows(e, args[0], x, res, (kh, kw), strides, dilation,
                                             (top, bottom), (left, right))
    grow = lambda d, lo, hi: None if d is None else d + lo + hi  # noqa: E731
    padded = x.with_shape([n, grow(x.shape[1], top, bottom), grow(x.shape[2], left, right), c])
    xv = _pad(e, xv, x, padded, [0, top, left, 0], [0, bottom, right, 0], 0)
    for d, k in ((1, kh), (2, kw)):
        if res.shape[d] is None:
            span = (k - 1) * dilation[d - 1] + 1
            size = e(f"arith.subi {e.dim(xv, padded, d)}, {e.index(span)} : index")
            size = e(f"arith.divui {size}, {e.index(strides[d - 1])} : index")
            like[d] = e(f"arith.addi {size}, {e.index(1)} : index")
    acc = res.with_dtype(floats_wide(res.dtype))
    attrs = (f"{{dilations = dense<[{dilation[0]}, {dilation[1]}]> : tensor<2xi64>, "
             f"strides = dense<[{strides[0]}, {strides[1]}]> : tensor<2xi64>}}")
    if groups == 1:
        init = e.filled(0, acc, like)
        value = e(f"linalg.conv_2d_nhwc_hwcf {attrs} ins({xv}, {args[1]} : {padded}, {w}) "
                  f"outs({init} : {acc}) -> {acc}")
    elif groups == c:
        m = co // c
        flat = w.with_shape([kh, kw, co])
        wv = e(f"tensor.collapse_shape {args[1]} [[0], [1], [2, 3]] : {w} into {flat}")
        if m == 1:
            init = e.filled(0, acc, like)
            value = e(f"linalg.depthwise_conv_2d_nhwc_hwc {attrs} ins({xv}, {wv} : {padded}, {flat}) "
                      f"outs({init} : {acc}) -> {acc}")
        else:
            wt = w.with_shape([kh, kw, c, m])
            wv = _expand(e, wv, flat, wt, [[0], [1], [2, 3]])
            wide = acc.with_shape(list(acc.shape[:3]) + [c, m])
            init = e.filled(0, wide, like)
            value = e(f"linalg.depthwise_conv_2d_nhwc_hwcm {attrs} ins({xv}, {wv} : {padded}, {wt}) "
                      f"outs({init} : {wide}) -> {wide}")
            value = e(f"tensor.collapse_shape {value} [[0], [1], [2], [3, 4]] : {wide} into {acc}")
    else:
        value = _grouped_conv(e, xv, padded, args[1], w, acc, groups, strides, dilation, like)
    return narrow(e, value, acc, res)


def _drop_unused_rows(e, value, x, res, kernel, strides, dilation, rows, cols):
    """Trim what no window reads from the high end of each spatial dim (padding first,
    then input rows, with tensor.extract_slice): linalg requires a strided
    convolution's input to end where its last window does (IREE 3.13 fails to compile
    ``stride 2`` over 3 padded columns with a width-2 kernel otherwise)."""
    highs = []
    sizes = list(x.shape)
    for d, (lo, hi) in ((1, rows), (2, cols)):
        if x.shape[d] is None or res.shape[d] is None:
            highs.append(hi)
            continue
        used = (res.shape[d] - 1) * strides[d - 1] + (kernel[d - 1] - 1) * dilation[d - 1] + 1
        extra = x.shape[d] + lo + hi - used
        cut = min(max(extra, 0), hi)
        highs.append(hi - cut)
        sizes[d] = x.shape[d] - max(extra - cut, 0)
    if sizes != list(x.shape):
        small = x.with_shape(sizes)
        sizes = [str(n) if n is not None else e.dim(value, x, i) for i, n in enumerate(sizes)]  # (a dynamic batch)
        value = e(f"tensor.extract_slice {value}[0, 0, 0, 0] [{', '.join(sizes)}] [1, 1, 1, 1] : {x} to {small}")
        x = small
    return value, x, highs[0], highs[1]


def _grouped_conv(e, xv, xt, wv, wt, acc, groups, strides, dilation, like):
    """out[n,oh,ow,g,f] = sum x[n, oh*s+kh*d, ow*s+kw*d, g, c] * w[kh, kw, c, g, f]."""
    n, h, wd, c = xt.shape
    kh, kw, ci, co = wt.shape
    xg = xt.with_shape([n, h, wd, groups, ci])
    wg = wt.with_shape([kh, kw, ci, groups, co // groups])
    og = acc.with_shape(list(acc.shape[:3]) + [groups, co // groups])
    xv = _expand(e, xv, xt, xg, [[0], [1], [2], [3, 4]])
    wv = _expand(e, wv, wt, wg, [[0], [1], [2], [3, 4]])
    init = e.filled(0, og, like)
    # loops: n oh ow g f kh kw c
    maps = [amap(8, [0, f"d1 * {strides[0]} + d5 * {dilation[0]}", f"d2 * {strides[1]} + d6 * {dilation[1]}", 3, 7]),
            amap(8, [5, 6, 7, 3, 4]), amap(8, range(5))]
    iters = ["parallel"] * 5 + ["reduction"] * 3

    def body(s, args):
        a, b = (convert(s, v, xt.dtype, acc.dtype) for v in args[:2])
        f = "f" if is_float(acc.dtype) else "i"
        return s(f"arith.add{f} {args[2]}, {s(f'arith.mul{f} {a}, {b} : {acc.dtype}')} : {acc.dtype}")

    value = e.generic([(xv, xg), (wv, wg)], init, og, maps, iters, body)
    return e(f"tensor.collapse_shape {value} [[0], [1], [2], [3, 4]] : {og} into {acc}")
