#pragma once
// Argument checks shared by the nn module: errors say what was expected and what was found.

#include <cstddef>
#include <stdexcept>

#include <fmt/format.h>

namespace nn {

inline void check_same_length(std::size_t expected, std::size_t found, const char* what) {
  if (expected != found)
    throw std::invalid_argument(
        fmt::format("{} has {} entries, expected {}", what, found, expected));
}

}  // namespace nn
