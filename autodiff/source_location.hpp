#pragma once
// Where a Var was recorded, for anomaly reports: std::source_location where the standard library
// has it, and otherwise (clang 14 with libstdc++ 12, which lacks __builtin_source_location) the
// same fields from the compiler builtins that both gcc and clang provide.
#include <cstdint>
#include <version>
#if defined(__cpp_lib_source_location)
#include <source_location>
#endif

namespace autodiff {

#if defined(__cpp_lib_source_location)
using SourceLocation = std::source_location;
#else
class SourceLocation {
 public:
  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          int line = __builtin_LINE(),
                                          const char* function = __builtin_FUNCTION()) noexcept {
    SourceLocation location;
    location.file_ = file;
    location.line_ = static_cast<std::uint_least32_t>(line);
    location.function_ = function;
    return location;
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr std::uint_least32_t column() const noexcept { return 0; }
  constexpr const char* function_name() const noexcept { return function_; }

 private:
  const char* file_ = "";
  std::uint_least32_t line_ = 0;
  const char* function_ = "";
};
#endif

}  // namespace autodiff
