#!/usr/bin/env python3
"""Exact outputs and input gradients of the tensor ops that are not elementwise (softmax.hpp,
reductions.hpp, linalg.hpp, conv.hpp, pooling.hpp, normalization.hpp), for the accuracy test
(tests/test_tensor_accuracy.cpp), computed with mpmath.

    python3 scripts/make_tensor_references.py > tests/tensor_references.inc

Needs mpmath (Debian: apt-get install python3-mpmath). Every input is a float (drawn from a
fixed-seed generator and rounded to float, or written out by hand for the hard cases: logits of
±1000 and 80, rows that one entry dominates, differences of 2⁻²⁰, sums that cancel), so that the
float and the double tensors take the same inputs exactly. Each case also has fixed weights w
(floats) of the output's shape: the gradients are those of sum(w ⊙ y), i.e. the backward pass of
the op with the upstream gradient w.

Each exact value is written as a double-double {hi, lo} (hi the value rounded to double, lo the
rest), with a scale per element for the test's error measure (see SCALES below), and the largest
number of terms summed into an element of that quantity. Every case is computed twice, at 50 and
at 100 digits, and the two must agree to 100 bits.
"""
import math
import random
import struct
import sys
from fractions import Fraction

import mpmath
from mpmath import mp, mpf

# ---- inputs ----


def f32(x):
    """x rounded to the nearest float."""
    return struct.unpack("f", struct.pack("f", x))[0]


def uniform(rng, count, low, high):
    return [f32(rng.uniform(low, high)) for _ in range(count)]


def size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


# ---- the ops, exactly: each returns the value and its scales, and the gradients (Jᵀw) and theirs ----
#
# SCALES. For a quantity that is a sum of products (a matmul entry, a convolution output, a
# mean, a gradient made of such sums), the scale of an element is Σ|terms|, the sum of the
# absolute values of the terms it sums: the error of any summation order is bounded by
# γ_n·Σ|terms|, however much the terms cancel. For the softmax family the scale is the condition
# of the element under the rounding of the shifted logits (see the test for each). A scale of 0
# means the test measures that quantity in ulps of the exact value.


def rows_of(x, cols):
    return [x[r * cols:(r + 1) * cols] for r in range(len(x) // cols)]


def softmax_row(z):
    m = max(z)
    e = [mpmath.exp(v - m) for v in z]
    total = mpmath.fsum(e)
    return m, total, [v / total for v in e]


def shift_condition(z, p, m):
    """Σ_j p_j·|z_j − m|: how much log Σ exp moves when each shifted logit z_j − m moves by u of
    itself (the rounding of the shift)."""
    return mpmath.fsum(pj * abs(zj - m) for pj, zj in zip(p, z))


def softmax_op(inputs, w, shape, params):
    (x,) = inputs
    cols = shape[-1]
    y, gx, gx_scale = [], [], []
    for z, wr in zip(rows_of(x, cols), rows_of(w, cols)):
        _, _, p = softmax_row(z)
        dot = mpmath.fsum(a * b for a, b in zip(wr, p))
        dot_abs = mpmath.fsum(abs(a) * b for a, b in zip(wr, p))
        y += p
        gx += [pi * (wi - dot) for pi, wi in zip(p, wr)]
        gx_scale += [pi * (abs(wi) + dot_abs) for pi, wi in zip(p, wr)]
    return (y, None, cols), [(gx, gx_scale, cols)]


def log_softmax_op(inputs, w, shape, params):
    (x,) = inputs
    cols = shape[-1]
    y, y_scale, gx, gx_scale = [], [], [], []
    for z, wr in zip(rows_of(x, cols), rows_of(w, cols)):
        m, total, p = softmax_row(z)
        log_total = mpmath.log(total)
        spread = shift_condition(z, p, m)
        y += [v - m - log_total for v in z]
        # the condition of log p_i: |z_i − m| + log Σ, and Σ p_j |z_j − m| (log Σ's own)
        y_scale += [abs(v - m) + log_total + spread for v in z]
        w_total = mpmath.fsum(wr)
        w_abs = mpmath.fsum(abs(a) for a in wr)
        gx += [wi - pi * w_total for pi, wi in zip(p, wr)]
        gx_scale += [abs(wi) + pi * w_abs for pi, wi in zip(p, wr)]
    return (y, y_scale, cols), [(gx, gx_scale, cols)]


def cross_entropy_op(inputs, w, shape, params):
    z, t = inputs
    rows, cols = shape
    g = w[0] / rows  # the upstream gradient over the mean's rows
    total, gz, gz_scale, gt, gt_scale = [], [], [], [], []
    for zr, tr in zip(rows_of(z, cols), rows_of(t, cols)):
        m, s, p = softmax_row(zr)
        log_total = mpmath.log(s)
        spread = shift_condition(zr, p, m)
        logp = [v - m - log_total for v in zr]
        total += [-tj * lj for tj, lj in zip(tr, logp)]
        t_total = mpmath.fsum(tr)
        t_abs = mpmath.fsum(abs(a) for a in tr)
        gz += [g * (pj * t_total - tj) for pj, tj in zip(p, tr)]
        gz_scale += [abs(g) * (pj * t_abs + abs(tj)) for pj, tj in zip(p, tr)]
        gt += [-g * lj for lj in logp]
        gt_scale += [abs(g) * (abs(v - m) + log_total + spread) for v in zr]
    value = mpmath.fsum(total) / rows
    return ([value], None, size(shape)), [(gz, gz_scale, cols), (gt, gt_scale, 1)]


def reduction_plan(shape, axis):
    """(outer, n, inner) as in reductions.hpp; axis None: all elements."""
    if axis is None:
        return 1, size(shape), 1
    outer = size(shape[:axis])
    inner = size(shape[axis + 1:])
    return outer, shape[axis], inner


def reduction_groups(shape, axis):
    outer, n, inner = reduction_plan(shape, axis)
    for o in range(outer):
        for i in range(inner):
            yield [o * n * inner + k * inner + i for k in range(n)]


def axis_param(params):
    return None if params[0] == ALL else int(params[0])


def sum_op(inputs, w, shape, params, mean=False):
    (x,) = inputs
    axis = axis_param(params)
    n = reduction_plan(shape, axis)[1]
    y, y_scale = [], []
    gx, gx_scale = [mpf(0)] * len(x), [mpf(0)] * len(x)
    for o, group in enumerate(reduction_groups(shape, axis)):
        y.append(mpmath.fsum(x[k] for k in group) / (n if mean else 1))
        y_scale.append(mpmath.fsum(abs(x[k]) for k in group) / (n if mean else 1))
        for k in group:
            gx[k] = w[o] / (n if mean else 1)
            gx_scale[k] = abs(gx[k])
    return (y, y_scale, n), [(gx, gx_scale, 1)]


def mean_op(inputs, w, shape, params):
    return sum_op(inputs, w, shape, params, mean=True)


def logsumexp_op(inputs, w, shape, params):
    (x,) = inputs
    axis = axis_param(params)
    n = reduction_plan(shape, axis)[1]
    y, y_scale = [], []
    gx, gx_scale = [mpf(0)] * len(x), [mpf(0)] * len(x)
    for o, group in enumerate(reduction_groups(shape, axis)):
        z = [x[k] for k in group]
        m, total, p = softmax_row(z)
        y.append(m + mpmath.log(total))
        # LSE's condition under the rounding of the shift and of m + log Σ
        y_scale.append(abs(m) + mpmath.log(total) + shift_condition(z, p, m))
        for k, pk in zip(group, p):
            gx[k] = w[o] * pk
    return (y, y_scale, n), [(gx, None, n)]


def matmul_op(inputs, w, shapes, params):
    a, b = inputs
    (m, k), (_, n) = shapes
    c = [[a[i * k + t] * b[t * n + j] for t in range(k)] for i in range(m) for j in range(n)]
    ga = [[w[i * n + j] * b[t * n + j] for j in range(n)] for i in range(m) for t in range(k)]
    gb = [[a[i * k + t] * w[i * n + j] for i in range(m)] for t in range(k) for j in range(n)]
    return summed(c), [summed(ga), summed(gb)]


def plan_axis(size_in, kernel, stride, same):
    """conv.cpp's plan_axis: (out, pad_before)."""
    if same:
        out = -(-size_in // stride)
        total = max(kernel - (size_in - (out - 1) * stride), 0)
        return out, total // 2
    return (size_in - kernel) // stride + 1, 0


def windows(xshape, kh, kw, sh, sw, same):
    """For each output pixel (n, oh, ow): the real input pixels (ih, iw) of its window, with the
    kernel position (i, j) of each."""
    batch, h, wd, _ = xshape
    out_h, top = plan_axis(h, kh, sh, same)
    out_w, left = plan_axis(wd, kw, sw, same)
    for nb in range(batch):
        for oh in range(out_h):
            for ow in range(out_w):
                inside = []
                for i in range(kh):
                    for j in range(kw):
                        ih, iw = oh * sh - top + i, ow * sw - left + j
                        if 0 <= ih < h and 0 <= iw < wd:
                            inside.append((ih, iw, i, j))
                yield nb, oh, ow, out_h, out_w, inside


def conv2d_op(inputs, w, shapes, params):
    x, kernel, bias = inputs
    xshape, kshape, _ = shapes
    _, h, wd, c = xshape
    kh, kw, _, f = kshape
    sh, sw, same = int(params[0]), int(params[1]), bool(params[2])
    xi = lambda nb, ih, iw, ch: ((nb * h + ih) * wd + iw) * c + ch
    ki = lambda i, j, ch, fo: ((i * kw + j) * c + ch) * f + fo
    y, y_scale = [], []
    gx = [[] for _ in x]  # the terms of each gradient element, summed at the end
    gk = [[] for _ in kernel]
    gb = [[] for _ in bias]
    for nb, oh, ow, out_h, out_w, inside in windows(xshape, kh, kw, sh, sw, same):
        o = ((nb * out_h + oh) * out_w + ow) * f
        for fo in range(f):
            terms = [x[xi(nb, ih, iw, ch)] * kernel[ki(i, j, ch, fo)]
                     for ih, iw, i, j in inside for ch in range(c)] + [bias[fo]]
            y.append(mpmath.fsum(terms))
            y_scale.append(mpmath.fsum(abs(v) for v in terms))
            g = w[o + fo]
            for ih, iw, i, j in inside:
                for ch in range(c):
                    gx[xi(nb, ih, iw, ch)].append(g * kernel[ki(i, j, ch, fo)])
                    gk[ki(i, j, ch, fo)].append(g * x[xi(nb, ih, iw, ch)])
            gb[fo].append(g)
    grads = [summed(t) for t in (gx, gk, gb)]
    return (y, y_scale, kh * kw * c + 1), grads


def summed(term_lists):
    """A gradient from the terms of each element: (values, Σ|terms|, the most terms)."""
    return ([mpmath.fsum(t) for t in term_lists],
            [mpmath.fsum(abs(v) for v in t) for t in term_lists],
            max(len(t) for t in term_lists))


def pool_params(params):
    return int(params[0]), int(params[1]), int(params[2]), int(params[3]), bool(params[4])


def avg_pool_op(inputs, w, shape, params):
    (x,) = inputs
    _, h, wd, c = shape
    kh, kw, sh, sw, same = pool_params(params)
    xi = lambda nb, ih, iw, ch: ((nb * h + ih) * wd + iw) * c + ch
    y, y_scale = [], []
    gx = [[] for _ in x]
    most = 0
    for nb, oh, ow, out_h, out_w, inside in windows(shape, kh, kw, sh, sw, same):
        o = ((nb * out_h + oh) * out_w + ow) * c
        count = len(inside)
        most = max(most, count)
        for ch in range(c):
            terms = [x[xi(nb, ih, iw, ch)] for ih, iw, _, _ in inside]
            y.append(mpmath.fsum(terms) / count)
            y_scale.append(mpmath.fsum(abs(v) for v in terms) / count)
            for ih, iw, _, _ in inside:
                gx[xi(nb, ih, iw, ch)].append(w[o + ch] / count)
    return (y, y_scale, most), [summed(gx)]


def max_pool_op(inputs, w, shape, params):
    (x,) = inputs
    _, h, wd, c = shape
    kh, kw, sh, sw, same = pool_params(params)
    xi = lambda nb, ih, iw, ch: ((nb * h + ih) * wd + iw) * c + ch
    y = []
    gx = [[] for _ in x]
    for nb, oh, ow, out_h, out_w, inside in windows(shape, kh, kw, sh, sw, same):
        o = ((nb * out_h + oh) * out_w + ow) * c
        for ch in range(c):
            at = [xi(nb, ih, iw, ch) for ih, iw, _, _ in inside]
            best = at[0]
            for k in at[1:]:  # the first largest, in the window's row-major order
                if x[k] > x[best]:
                    best = k
            y.append(x[best])
            gx[best].append(w[o + ch])
    grads = [summed([t or [mpf(0)] for t in gx])]
    return (y, None, 1), grads


def global_avg_pool_op(inputs, w, shape, params):
    (x,) = inputs
    batch, h, wd, c = shape
    pixels = h * wd
    y, y_scale, gx = [], [], [mpf(0)] * len(x)
    for nb in range(batch):
        for ch in range(c):
            at = [(nb * pixels + p) * c + ch for p in range(pixels)]
            y.append(mpmath.fsum(x[k] for k in at) / pixels)
            y_scale.append(mpmath.fsum(abs(x[k]) for k in at) / pixels)
            for k in at:
                gx[k] = w[nb * c + ch] / pixels
    return (y, y_scale, pixels), [(gx, [abs(v) for v in gx], 1)]


def batch_norm_op(inputs, w, shapes, params):
    x, gamma, beta = inputs
    c = shapes[1][0]
    m = len(x) // c
    eps = mpf(params[0])
    y, y_scale = [mpf(0)] * len(x), [mpf(0)] * len(x)
    gx, gx_scale = [mpf(0)] * len(x), [mpf(0)] * len(x)
    gg, gg_scale, gbeta, gbeta_scale = [], [], [], []
    for k in range(c):
        at = [r * c + k for r in range(m)]
        mu = mpmath.fsum(x[i] for i in at) / m
        var = mpmath.fsum((x[i] - mu) ** 2 for i in at) / m
        r = 1 / mpmath.sqrt(var + eps)
        # x̂ = (x − μ)·r; x − μ = x_i − Σ x_j/m sums the terms x_i and −x_j/m: its Σ|terms| is
        # |x_i| + Σ|x_j|/m (the mean's own rounding error is a fraction of Σ|x_j|/m)
        mean_abs = mpmath.fsum(abs(x[i]) for i in at) / m
        xhat = {i: (x[i] - mu) * r for i in at}
        xhat_abs = {i: (abs(x[i]) + mean_abs) * r for i in at}
        for i in at:
            y[i] = gamma[k] * xhat[i] + beta[k]
            y_scale[i] = abs(gamma[k]) * xhat_abs[i] + abs(beta[k])
        sum_g = mpmath.fsum(w[i] for i in at)
        sum_g_abs = mpmath.fsum(abs(w[i]) for i in at)
        sum_gx = mpmath.fsum(w[i] * xhat[i] for i in at)
        sum_gx_abs = mpmath.fsum(abs(w[i]) * xhat_abs[i] for i in at)
        gg.append(sum_gx)
        gg_scale.append(sum_gx_abs)
        gbeta.append(sum_g)
        gbeta_scale.append(sum_g_abs)
        for i in at:
            gx[i] = gamma[k] * r * (w[i] - sum_g / m - xhat[i] * sum_gx / m)
            gx_scale[i] = abs(gamma[k]) * r * (
                abs(w[i]) + sum_g_abs / m + xhat_abs[i] * sum_gx_abs / m)
    return (y, y_scale, 2 * m), [(gx, gx_scale, 2 * m), (gg, gg_scale, m), (gbeta, gbeta_scale, m)]


ALL = 99  # the axis parameter meaning all elements

OPS = {
    "softmax": softmax_op,
    "log_softmax": log_softmax_op,
    "cross_entropy_with_logits": cross_entropy_op,
    "logsumexp": logsumexp_op,
    "sum": sum_op,
    "mean": mean_op,
    "matmul": matmul_op,
    "conv2d": conv2d_op,
    "avg_pool2d": avg_pool_op,
    "max_pool2d": max_pool_op,
    "global_avg_pool2d": global_avg_pool_op,
    "batch_norm": batch_norm_op,
}

# ---- the cases ----


def logits_cases(rng):
    """(label, shape, values) of the logits shared by the softmax family."""
    return [
        ("4×7 uniform in [−4, 4]", (4, 7), uniform(rng, 28, -4, 4)),
        ("large logits: ±1000, 80, ±88", (4, 5),
         [1000, 999.5, -1000, 998.25, 1000,
          80, -80, 79.875, 0, -3.5,
          -1000, -1000.25, -999, -1001, -1000.5,
          88.5, 88.25, 87, -88, f32(0.1)]),
        ("rows one entry dominates (margins 12 to 60)", (4, 5),
         [0, -40, -20, -30, -25,
          6.5, -30, -35, -12, -18.75,
          -3, -60, -45, -63, -50,
          17, f32(0.3), -2, 1, -5]),
        ("tiny differences (2⁻²⁰) and a row of −0.5 to 0.5", (3, 6),
         [1, 1 + 2**-20, 1 - 2**-21, 1 + 2**-19, 1, 1 - 2**-20,
          -7, -7 + 2**-18, -7 - 2**-18, -7, -7 + 2**-17, -7,
          -0.5, 0.5, f32(0.1), f32(-0.3), 0.25, 0]),
        ("2×100 uniform in [−8, 8]", (2, 100), uniform(rng, 200, -8, 8)),
    ]


def targets_for(rng, label, shape, z):
    rows, cols = shape
    t = []
    for r in range(rows):
        zr = z[r * cols:(r + 1) * cols]
        if "dominates" in label:
            hot = zr.index(max(zr))  # confident and right: the loss is e^−margin
            t += [1.0 if j == hot else 0.0 for j in range(cols)]
        elif r % 2 == 0:
            hot = rng.randrange(cols)
            t += [1.0 if j == hot else 0.0 for j in range(cols)]
        else:  # label smoothing: 0.9 on one class, the rest spread
            hot = rng.randrange(cols)
            t += [f32(0.9 if j == hot else 0.1 / (cols - 1)) for j in range(cols)]
    return t


def sum_input(rng):
    """3×20×5 with cancellation: a fifth of the values are ±1e4 in pairs that cancel but for a
    part in 1e7, the rest uniform in [−1, 1]."""
    x = uniform(rng, 300, -1, 1)
    for i in range(0, 300, 10):
        big = f32(rng.uniform(5e3, 1e4))
        x[i], x[i + 5] = big, -big + f32(rng.uniform(-1e-3, 1e-3))
    return x


def cases():
    rng = random.Random(20240611)
    out = []

    def add(op, label, shapes, inputs, params=(0,), out_size=None):
        out.append((op, label, list(params) + [0] * (6 - len(params)), shapes, inputs))

    for label, shape, z in logits_cases(rng):
        add("softmax", label, [shape], [z])
        add("log_softmax", label, [shape], [z])
        add("cross_entropy_with_logits", label, [shape, shape],
            [z, targets_for(rng, label, shape, z)])
        add("logsumexp", label + ", along the last axis", [shape], [z], (-1 % len(shape),))
        add("logsumexp", label + ", over all", [shape], [z], (ALL,))
    x = sum_input(rng)
    for op in ("sum", "mean"):
        add(op, "3×20×5 with cancelling ±1e4 pairs, axis 1", [(3, 20, 5)], [x], (1,))
        add(op, "3×20×5 with cancelling ±1e4 pairs, axis 2", [(3, 20, 5)], [x], (2,))
        add(op, "3×20×5 with cancelling ±1e4 pairs, all", [(3, 20, 5)], [x], (ALL,))
    add("matmul", "5×4 · 4×6", [(5, 4), (4, 6)], [uniform(rng, 20, -2, 2), uniform(rng, 24, -2, 2)])
    a = uniform(rng, 600, -1, 1)
    b = uniform(rng, 600, -1, 1)
    for t in range(0, 300, 3):  # row 1 of A: large pairs that cancel against B's equal rows
        big = f32(rng.uniform(100, 1000))
        a[300 + t], a[300 + t + 1] = big, -big
        b[(t + 1) * 2:(t + 2) * 2] = b[t * 2:(t + 1) * 2]
    add("matmul", "2×300 · 300×2, k = 300, cancelling", [(2, 300), (300, 2)], [a, b])
    add("matmul", "3×64 · 64×5", [(3, 64), (64, 5)],
        [uniform(rng, 192, -1, 1), uniform(rng, 64 * 5, -1, 1)])
    for label, xs, ks, params in [
        ("3×3 kernel, stride 1, valid", (2, 6, 7, 3), (3, 3, 3, 4), (1, 1, 0)),
        ("2×3 kernel, strides (2, 1), same", (2, 7, 6, 2), (2, 3, 2, 3), (2, 1, 1)),
        ("5×5 kernel, stride 2, same", (1, 5, 6, 3), (5, 5, 3, 2), (2, 2, 1)),
    ]:
        add("conv2d", label, [xs, ks, (ks[3],)],
            [uniform(rng, size(xs), -2, 2), uniform(rng, size(ks), -1, 1),
             uniform(rng, ks[3], -1, 1)], params)
    pool_x = uniform(rng, 2 * 5 * 6 * 3, -3, 3)
    pool_x[7] = pool_x[4]  # a tie in a window (the first one takes the gradient)
    for label, params in [
        ("2×2 windows, stride 2, valid", (2, 2, 2, 2, 0)),
        ("3×3 windows, stride 2, same", (3, 3, 2, 2, 1)),
        ("3×2 windows, stride 1, same (overlapping)", (3, 2, 1, 1, 1)),
    ]:
        for op in ("avg_pool2d", "max_pool2d"):
            add(op, label, [(2, 5, 6, 3)], [pool_x], params)
    add("global_avg_pool2d", "2×4×5×3", [(2, 4, 5, 3)], [uniform(rng, 120, -2, 2)])
    # batch_norm: channel 0 uniform, channel 1 around 1000 with a spread of 0.01 (x − μ cancels),
    # channel 2 nearly constant (σ² ≪ ε)
    bn = []
    for r in range(16):
        bn += [f32(rng.uniform(-2, 2)), f32(1000 + rng.uniform(-0.01, 0.01)),
               f32(0.5 + rng.uniform(-1e-4, 1e-4))]
    add("batch_norm", "16×3: uniform, 1000 ± 0.01, 0.5 ± 1e-4; ε = 1e-3", [(16, 3), (3,), (3,)],
        [bn, [1.5, f32(-0.7), 2.0], [f32(0.1), 0.25, -1.0]], (1e-3,))
    add("batch_norm", "2×3×4×2 uniform; ε = 1e-5", [(2, 3, 4, 2), (2,), (2,)],
        [uniform(rng, 48, -3, 1), [f32(0.8), f32(1.3)], [f32(-0.2), 0.5]], (1e-5,))
    return out, rng


# ---- rounding and output ----


def exact(v):
    sign, man, exp, bits = v._mpf_
    value = Fraction(man) * (Fraction(2) ** exp)
    return -value if sign else value


def double_double(v):
    q = exact(mpf(v))
    hi = q.numerator / q.denominator
    return hi, (q - Fraction(hi)).numerator / (q - Fraction(hi)).denominator


def literal(x):
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    mantissa, exponent = x.hex().split("p")  # without the mantissa's trailing zeros
    return mantissa.rstrip("0").rstrip(".") + "p" + exponent


def agree(x, y):
    (hi, lo), (hi2, lo2) = x, y
    return hi == hi2 and abs(lo - lo2) <= abs(hi) * 2.0**-100


def evaluate(op, shapes, inputs, w, params, dps):
    with mp.workdps(dps):
        ins = [[mpf(v) for v in t] for t in inputs]
        ws = [mpf(v) for v in w]
        shape = shapes if op in ("matmul", "conv2d", "batch_norm") else shapes[0]
        value, grads = OPS[op](ins, ws, shape, params)

        def rounded(q):
            values, scales, terms = q
            return ([double_double(v) for v in values],
                    None if scales is None else [float(s) for s in scales], terms)

        return rounded(value), [rounded(g) for g in grads]


def output_shape(op, shapes, params):
    s = shapes[0]
    if op in ("softmax", "log_softmax", "batch_norm"):
        return s
    if op == "cross_entropy_with_logits":
        return ()
    if op in ("logsumexp", "sum", "mean"):
        if params[0] == ALL:
            return ()
        return tuple(d for i, d in enumerate(s) if i != params[0])
    if op == "matmul":
        return (s[0], shapes[1][1])
    if op == "conv2d":
        h, _ = plan_axis(s[1], shapes[1][0], int(params[0]), bool(params[2]))
        wd, _ = plan_axis(s[2], shapes[1][1], int(params[1]), bool(params[2]))
        return (s[0], h, wd, shapes[1][3])
    if op in ("avg_pool2d", "max_pool2d"):
        kh, kw, sh, sw, same = pool_params(params)
        return (s[0], plan_axis(s[1], kh, sh, same)[0], plan_axis(s[2], kw, sw, same)[0], s[3])
    if op == "global_avg_pool2d":
        return (s[0], s[3])
    raise KeyError(op)


class Writer:
    def __init__(self):
        self.lines = []
        self.named = {}  # the arrays written so far, by contents: inputs shared by several cases

    def shared(self, name, kind, items):
        """The name of an array of these items: an earlier one's, or a new one."""
        key = (kind, tuple(items))
        if key not in self.named:
            self.named[key] = name
            self.array(name, kind, items)
        return self.named[key]

    def array(self, name, kind, items):
        self.lines.append(f"const {kind} {name}[] = {{")
        line = "   "
        for item in items:
            if len(line) + len(item) + 2 > 100:
                self.lines.append(line)
                line = "   "
            line += " " + item + ","
        self.lines.append(line)
        self.lines.append("};")


def dims(shape):
    padded = list(shape) + [0] * (4 - len(shape))
    return f"{{{len(shape)}, {{{', '.join(str(d) for d in padded)}}}}}"


def main():
    all_cases, rng = cases()
    out = Writer()
    table = []
    for number, (op, label, params, shapes, inputs) in enumerate(all_cases):
        yshape = output_shape(op, shapes, params)
        w = [0.75] if size(yshape) == 1 and yshape == () else uniform(rng, size(yshape), -1, 1)
        low = evaluate(op, shapes, inputs, w, params, 50)
        high = evaluate(op, shapes, inputs, w, params, 100)
        for q_low, q_high in zip([low[0]] + low[1], [high[0]] + high[1]):
            if not all(agree(a, b) for a, b in zip(q_low[0], q_high[0])):
                sys.exit(f"{op} ({label}): 50 and 100 digits disagree")
        value, grads = low
        name = f"c{number}"
        input_names = [out.shared(f"{name}_in{k}", "double", [literal(float(v)) for v in t])
                       for k, t in enumerate(inputs)]
        out.array(f"{name}_w", "double", [literal(float(v)) for v in w])

        def quantity(q, tag, shape):
            values, scales, terms = q
            out.array(f"{name}_{tag}", "Exact",
                      [f"{{{literal(hi)}, {literal(lo)}}}" for hi, lo in values])
            scale_name = "nullptr"
            if scales is not None:
                scale_name = f"{name}_{tag}_scale"
                # three digits are plenty for a scale (the bound's unit)
                out.array(scale_name, "double", [f"{s:.3g}" for s in scales])
            return f"{{{dims(shape)}, {name}_{tag}, {scale_name}, {terms}}}"

        value_q = quantity(value, "y", yshape)
        grad_qs = [quantity(g, f"g{k}", shapes[k]) for k, g in enumerate(grads)]
        grad_qs += ["{}"] * (3 - len(grad_qs))
        ins = [f"{{{dims(s)}, {input_names[k]}}}" for k, s in enumerate(shapes)]
        ins += ["{}"] * (3 - len(ins))
        param_text = ", ".join(repr(float(p)) for p in params)
        table.append(
            f'    {{"{op}", "{label}", {{{param_text}}}, {len(shapes)}, {{{", ".join(ins)}}},\n'
            f'     {{{dims(yshape)}, {name}_w}}, {value_q},\n     {{{", ".join(grad_qs)}}}}},')
    print("// Generated by scripts/make_tensor_references.py; do not edit. To regenerate:")
    print("//     python3 scripts/make_tensor_references.py > tests/tensor_references.inc")
    print("// Per case: the inputs (floats), the weights w of the output, the exact output and the")
    print("// exact gradients of sum(w ⊙ y) (mpmath, 50 digits, checked against 100) as {hi, lo},")
    print("// each with its scale per element (see the script) and the most terms summed.")
    print(f"// mpmath {mpmath.__version__}.")
    print("// clang-format off")
    print("\n".join(out.lines))
    print("const TensorCase kTensorCases[] = {")
    print("\n".join(table))
    print("};")
    print("// clang-format on")


if __name__ == "__main__":
    main()
