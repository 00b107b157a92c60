#pragma once
// Errors against exact values, for the accuracy tests (test_op_accuracy.cpp, whose references
// are scalar ops', and test_tensor_accuracy.cpp, tensor ops'): the exact value as a double-double,
// the error in ulps of the computed type at it.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace testing {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

/// An exact value as hi + lo: hi is the value rounded to double, lo the rest.
struct Exact {
  double hi, lo;
};

/// |computed − exact| in ulps of type T at the exact value: below a power of two, the finer ulps
/// of the binade below; an exact 0 and values below the normals absolutely, in the smallest
/// subnormal. +∞ for a wrong infinity or NaN; 0 for the right infinity, or a NaN where the exact
/// value does not exist.
template <class T>
inline double ulp_error(T computed_t, Exact exact) {
  using L = std::numeric_limits<T>;
  const double computed = computed_t;
  if (std::isnan(exact.hi)) return std::isnan(computed) ? 0 : kInf;
  if (std::isnan(computed)) return kInf;
  // The exact value rounded to float overflows from max + ulp(max)/2 on (to double, hi is ±∞).
  const bool overflows =
      std::isinf(exact.hi) || (std::is_same_v<T, float> && std::fabs(exact.hi) >= 0x1.ffffffp127);
  if (overflows) return computed == std::copysign(kInf, exact.hi) ? 0 : kInf;
  if (std::isinf(computed)) return kInf;
  int exponent = L::min_exponent - 1;  // ulp: denorm_min for an exact 0 and below the normals
  if (exact.hi != 0) {
    exponent = std::max(exponent, std::ilogb(exact.hi));
    // hi a power of two with the exact value just below it: the ulp of the binade below
    if (std::fabs(exact.hi) == std::ldexp(1.0, std::ilogb(exact.hi)) && exact.lo != 0 &&
        std::signbit(exact.lo) != std::signbit(exact.hi))
      exponent = std::max(L::min_exponent - 1, exponent - 1);
  }
  const double ulp = std::ldexp(1.0, exponent - (L::digits - 1));
  return std::fabs((computed - exact.hi) - exact.lo) / ulp;
}

}  // namespace testing
