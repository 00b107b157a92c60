#pragma once
// Range checks for the examples' command lines (CLI11 validators; each error names the option,
// e.g. "--seed: must be an integer in [0, 4294967295], got -1"), and the last check of a run:
// that everything printed reached the standard output.
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

namespace cli_checks {

/// The largest seed an example takes (the seeds of its layers count up from it).
inline constexpr long long kMaxSeed = 4'294'967'295;  // 2^32 − 1

/// "must be > 0", for numbers of any type (CLI11's PositiveNumber prints DBL_MAX as its bound).
inline const CLI::Validator positive(
    [](std::string& text) {
      double value = 0;
      return CLI::detail::lexical_cast(text, value) && value > 0 ? std::string()
                                                                 : "must be > 0, got " + text;
    },
    "> 0");

/// A finite number in (0, max]: inf and nan are not.
inline CLI::Validator positive_at_most(double max) {
  return CLI::Validator(
      [max](std::string& text) {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !(value > 0))
          return "must be > 0, got " + text;
        return std::isfinite(value) && value <= max
                   ? std::string()
                   : fmt::format("must be ≤ {}, got {}", max, text);
      },
      fmt::format("in (0, {}]", max));
}

/// A decimal integer in [min, max], checked on the text before CLI11 converts it: a value too
/// large for the option's type is not clamped to its maximum, and -1 never becomes a huge
/// unsigned number.
inline CLI::Validator integer_in(long long min, long long max) {
  return CLI::Validator(
      [min, max](std::string& text) {
        long long value = 0;
        const char *first = text.data(), *last = text.data() + text.size();
        const auto [end, error] = std::from_chars(first, last, value);
        return error == std::errc() && end == last && value >= min && value <= max
                   ? std::string()
                   : fmt::format("must be an integer in [{}, {}], got {}", min, max, text);
      },
      fmt::format("in [{}, {}]", min, max));
}

/// Throws unless everything printed so far reached the standard output (a full disk, a closed
/// pipe): a run whose output was lost must not exit 0.
inline void flush_stdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout))
    throw std::runtime_error(
        fmt::format("cannot write the standard output ({})", std::strerror(errno)));
}

}  // namespace cli_checks
