#!/usr/bin/env python3
"""Exact values and partial derivatives of every scalar op in autodiff/ops.hpp, for the accuracy
test (tests/test_op_accuracy.cpp), computed with mpmath at 60 significant digits.

    python3 scripts/make_op_references.py > tests/op_references.inc

Needs mpmath (Debian: apt-get install python3-mpmath). The points are spread across each op's
domain: tiny, near 0, moderate, large, saturation (±20, ±40, ±700 for exp, sigmoid and tanh),
the edges of the domain, and the poles of tan. Each exact value is written as a double-double,
hi + lo: hi is the value rounded to the nearest double, lo the rest rounded to a double, so
that the test can measure errors in fractions of an ulp. A value beyond the double range is
±inf; a partial that does not exist (pow's ∂/∂b for a negative base) is nan, which the ops
return there too.

Every row is computed twice, at 60 and at 120 digits, and the two must agree to 100 bits: a
formula that loses digits to cancellation would show up as a difference.
"""
import math
import struct
import sys
from fractions import Fraction

import mpmath
from mpmath import mp, mpf

DBL_MAX = sys.float_info.max
DENORM_MIN = 5e-324
DBL_MIN = sys.float_info.min


def f32(x):
    """x rounded to the nearest float: points that the float tensor ops can take exactly."""
    return struct.unpack("f", struct.pack("f", x))[0]


def next_up(x):
    return math.nextafter(x, math.inf)


def next_down(x):
    return math.nextafter(x, -math.inf)


HALF_PI = math.pi / 2  # the double nearest π/2: tan is 1.6e16 there

# ---- the ops: value and partials as exact formulas (no cancellation at these precisions) ----


def sech2(x):
    return 1 / mpmath.cosh(x) ** 2


def sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


def sigmoid_derivative(x):
    e = mpmath.exp(-abs(x))  # σ(x)·σ(−x), without 1 − σ(x) cancelling for large x
    return e / (1 + e) ** 2


UNARY = {
    # name: (value, derivative)
    "negate": (lambda x: -x, lambda x: mpf(-1)),
    "square": (lambda x: x * x, lambda x: 2 * x),
    "exp": (mpmath.exp, mpmath.exp),
    "log": (mpmath.log, lambda x: 1 / x),
    "log1p": (mpmath.log1p, lambda x: 1 / (1 + x)),
    "sqrt": (mpmath.sqrt, lambda x: mpf("inf") if x == 0 else 1 / (2 * mpmath.sqrt(x))),
    "sin": (mpmath.sin, mpmath.cos),
    "cos": (mpmath.cos, lambda x: -mpmath.sin(x)),
    "tan": (mpmath.tan, lambda x: 1 / mpmath.cos(x) ** 2),
    "tanh": (mpmath.tanh, sech2),
    "sigmoid": (sigmoid, sigmoid_derivative),
    "relu": (lambda x: x if x > 0 else mpf(0), lambda x: mpf(1) if x > 0 else mpf(0)),
    "abs": (abs, lambda x: mpf(1) if x > 0 else mpf(-1)),
}


def pow_d_left(a, b):
    if a == 0:  # b·0^(b−1): mpmath raises for 0 to a negative power
        return mpf("inf") if b < 1 else (b if b == 1 else mpf(0))
    return b * mpmath.power(a, b - 1)


def pow_d_right(a, b):
    if a < 0:
        return mpf("nan")  # a^b is not differentiable in b for a < 0
    if a == 0:
        return mpf(0)  # 0^b = 0 for b > 0: the limit of a^b·ln a
    return mpmath.power(a, b) * mpmath.log(a)


BINARY = {
    # name: (value, ∂/∂a, ∂/∂b)
    "add": (lambda a, b: a + b, lambda a, b: mpf(1), lambda a, b: mpf(1)),
    "subtract": (lambda a, b: a - b, lambda a, b: mpf(1), lambda a, b: mpf(-1)),
    "multiply": (lambda a, b: a * b, lambda a, b: b, lambda a, b: a),
    "divide": (lambda a, b: a / b, lambda a, b: 1 / b, lambda a, b: -a / (b * b)),
    "pow": (mpmath.power, pow_d_left, pow_d_right),
    "min": (min, lambda a, b: mpf(1 if a < b else 0), lambda a, b: mpf(0 if a < b else 1)),
    "max": (max, lambda a, b: mpf(1 if a > b else 0), lambda a, b: mpf(0 if a > b else 1)),
}

# ---- the points ----

SMALL = [DENORM_MIN, 1e-310, DBL_MIN, 1e-300, 1e-100, 1e-20, f32(1e-8), f32(1e-3)]
MODERATE = [f32(0.1), 0.25, 0.5, f32(0.7), 1.0, 1.5, 2.0, 3.0, f32(3.7), 7.0, 10.0]

UNARY_POINTS = {
    "negate": [-2.0, 0.0, DENORM_MIN, f32(0.7), 1e300, -DBL_MAX],
    "square": [0.0, 1e-300, 1e-160, f32(1e-8), f32(0.7), -1.5, 3.0, 1e150, 1.3e154, 1e200, -1e200],
    "exp": [-800.0, -745.0, -744.0, -720.0, -708.0, -700.0, -100.0, -40.0, -20.0, -1.0,
            f32(-1e-3), -1e-300, 0.0, 1e-20, f32(1e-8), f32(0.1), 0.5, 1.0, 2.0, f32(3.7), 7.0,
            20.0, 40.0, 88.0, 100.0, 700.0, 709.0, 709.78, 710.0],
    "log": SMALL + [f32(0.1), 0.5, f32(0.7), next_down(1.0), 1.0, next_up(1.0), 1.0 + 2**-20, 2.0,
                    10.0, 1e10, 1e300, DBL_MAX],
    "log1p": [next_up(-1.0), -0.999, -0.5, f32(-0.1), -1e-10, -1e-300, 0.0, DENORM_MIN, 1e-300,
              1e-17, f32(1e-8), f32(1e-3), f32(0.1), 0.5, 1.0, 10.0, 1e10, 1e300, DBL_MAX],
    "sqrt": [0.0] + SMALL + [0.25, 0.5, 2.0, 10.0, 1e10, 1e300, DBL_MAX],
    "sin": [0.0, 1e-300, f32(1e-8), f32(0.1), 0.5, 1.0, HALF_PI, 2.0, 3.0, math.pi, -1.0, -3.0,
            10.0, 100.0, 1e5, 1e22, -1e300],
    "cos": [0.0, 1e-300, f32(1e-8), f32(0.1), 0.5, 1.0, HALF_PI, 2.0, 3.0, math.pi, -1.0, -3.0,
            10.0, 100.0, 1e5, 1e22, -1e300],
    "tan": [0.0, 1e-300, f32(1e-8), f32(0.1), 0.5, math.pi / 4, 1.0, 1.5, 1.57, next_down(HALF_PI),
            HALF_PI, next_up(HALF_PI), f32(HALF_PI), 3 * HALF_PI, 2.0, 3.0, math.pi, -1.0, -1.5,
            100.0, 1e22],
    "tanh": [0.0, 1e-300, -1e-300, f32(1e-8), f32(0.1), 0.5, 1.0, 2.0, 3.0, 5.0, 7.0, -7.0, 10.0,
             15.0, 19.0, 20.0, -20.0, 22.0, 30.0, 40.0, -40.0, 44.0, 100.0, 300.0, 354.0, 360.0,
             372.0, -372.0, 400.0, 1e300],
    "sigmoid": [0.0, 1e-300, -1e-300, f32(1e-8), f32(-1e-8), f32(0.1), 0.5, -0.5, 1.0, -1.0, 3.0,
                7.0, -7.0, 20.0, -20.0, 36.0, 37.0, -37.0, 40.0, -40.0, 88.0, 100.0, -100.0,
                700.0, -700.0, 708.0, -708.0, 740.0, -740.0, 745.0, -745.0, 800.0, -800.0],
    "relu": [-2.0, -1e-300, DENORM_MIN, f32(0.7), 3.0, 1e300],
    "abs": [-2.0, -1e-300, DENORM_MIN, f32(0.7), -DENORM_MIN, 1e300],
}

BINARY_POINTS = {
    "add": [(1.0, 2.0), (f32(0.1), f32(0.2)), (1e300, 1e300), (1e308, 1e308), (1e-310, 1e-310),
            (1.0, -1.0)],
    "subtract": [(3.0, 1.0), (f32(0.3), f32(0.1)), (1.0, 1e-20), (-1e308, 1e308),
                 (1e-310, 2e-310)],
    "multiply": [(1.5, -2.0), (f32(0.1), f32(0.3)), (1e200, 1e-200), (1e-200, 1e-200),
                 (1e200, 1e200), (DENORM_MIN, 0.5)],
    "divide": [(1.0, 3.0), (-2.0, 7.0), (f32(0.7), f32(0.1)), (1e300, 1e-10), (1e-300, 1e10),
               (1e-312, 1e-4), (2.2e-314, 1e-3), (3.0, 1e-160), (1e155, 1e155), (1e-300, 1e300),
               (5.0, 1e-300),
               (1e-321, 1e-8), (-3e-322, 7e-9)],  # a/b subnormal (few bits), a/b² normal
    "pow": [
        (2.0, 3.0), (2.0, 0.5), (f32(0.7), 3.0), (f32(0.7), f32(0.1)), (-2.0, 3.0), (-2.0, 2.0),
        (-1.5, -3.0), (4.0, -0.5), (10.0, f32(0.3)), (1e10, f32(0.1)), (1e300, f32(0.3)),
        (1e-300, f32(0.3)), (3.0, 7.5), (f32(1.1), 100.0),
        (1e300, 0.3), (1e-300, 0.3),  # b − 1 is not a double: pow(a, b − 1) is ~300 ulp off
        (1e300, 1.05),             # a^b overflows, b·a^(b−1) does not
        (2.0, 1024.5),             # a^b overflows, a^b·ln a does not
        (1.5, 1751.0),             # likewise
        (1e-300, 1.03),            # a^b subnormal, a^b·ln a normal
        (1e-300, 1.1),             # a^b underflows to 0, b·a^(b−1) = 1.1e-30
        (10.0, -308.0),            # a^b subnormal, b·a^(b−1) normal
        (-10.0, -308.0),           # the same with a negative base
        (-10.0, -309.0),
        (2.0, -1023.3),            # a^b subnormal, and b − 1 is not a double
        (100.0, -153.5),           # a^b normal, a^(b−1) subnormal
        (1e-300, -0.03),           # a^b normal, a^(b−1) overflows, b·a^(b−1) does not
        (1.3e154, 2.0),            # b·a^b overflows, b·a^(b−1) does not
        (-1e300, 2.0),             # a^b overflows, b·a^(b−1) = 2a
        (-1e-300, 3.0),            # a^b underflows, b·a^(b−1) = 3a²
        (0.0, 1.0), (0.0, 2.0), (0.0, 0.5), (1.0, 1e300), (f32(1.1), -3.5),
    ],
    "min": [(1.0, 2.0), (2.0, 1.0), (-0.5, 0.5), (1e300, -1e300)],
    "max": [(1.0, 2.0), (2.0, 1.0), (-0.5, 0.5), (1e300, -1e300)],
}

# ---- rounding and output ----


def exact(v):
    """An mpf as an exact Fraction (or a float for ±inf, nan, and values far outside the double
    range)."""
    if mpmath.isnan(v) or mpmath.isinf(v):
        return float(v)
    sign, man, exp, bits = v._mpf_
    if man and exp + bits < -1200:  # far below the smallest subnormal: rounds to ±0
        return -0.0 if sign else 0.0
    if man and exp + bits > 1100:  # far beyond the largest double: rounds to ±inf
        return -math.inf if sign else math.inf
    value = Fraction(man) * (Fraction(2) ** exp)
    return -value if sign else value


def to_double(q):
    """The double nearest the Fraction q (Python's int/int division rounds correctly)."""
    try:
        return q.numerator / q.denominator
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def double_double(v):
    """(hi, lo) with hi = v rounded to double and lo = (v − hi) rounded to double."""
    q = exact(v)
    if isinstance(q, float):
        return q, 0.0
    hi = to_double(q)
    if math.isinf(hi):
        return hi, 0.0
    return hi, to_double(q - Fraction(hi))


def literal(x):
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    return x.hex()


def agree(x, y):
    """Whether two double-doubles agree to 100 bits (lo may be far below hi's last bit)."""
    (hi, lo), (hi2, lo2) = x, y
    if math.isnan(hi) or math.isnan(hi2):
        return math.isnan(hi) and math.isnan(hi2)
    return hi == hi2 and abs(lo - lo2) <= abs(hi) * 2.0**-100


def evaluate(formulas, args, dps):
    with mp.workdps(dps):
        exact_args = [mpf(a) for a in args]
        return [double_double(f(*exact_args)) for f in formulas]


def row(name, formulas, args):
    low, high = evaluate(formulas, args, 60), evaluate(formulas, args, 120)
    if not all(agree(x, y) for x, y in zip(low, high)):
        sys.exit(f"{name}{args}: 60 and 120 digits disagree: {low} vs {high}")
    parts = low + [(math.nan, 0.0)] * (3 - len(low))
    a = args[0]
    b = args[1] if len(args) > 1 else 0.0
    cells = ", ".join(f"{{{literal(hi)}, {literal(lo)}}}" for hi, lo in parts)
    shown = ", ".join(f"{hi:.17g}" for hi, _ in parts[: len(low)])
    where = f"{a:.17g}" if len(args) == 1 else f"{a:.17g}, {b:.17g}"
    return f'    {{"{name}", {literal(a)}, {literal(b)}, {cells}}},  // ({where}) → {shown}'


def main():
    mp.dps = 60
    print("// Generated by scripts/make_op_references.py; do not edit. To regenerate:")
    print("//     python3 scripts/make_op_references.py > tests/op_references.inc")
    print("// {op, a, b, value, ∂/∂a, ∂/∂b}: each exact value (mpmath, 60 digits) as {hi, lo},")
    print("// hi + lo to 106 bits; ∂/∂b is nan for unary ops. The comment shows hi in decimal.")
    print(f"// mpmath {mpmath.__version__}.")
    for name, points in UNARY_POINTS.items():
        for x in points:
            print(row(name, UNARY[name], (x,)))
    for name, points in BINARY_POINTS.items():
        for a, b in points:
            print(row(name, BINARY[name], (a, b)))


if __name__ == "__main__":
    main()
