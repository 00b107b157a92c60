#pragma once
// What the SIGKILL test (test_killed_save.cpp) and its helper program (save_until_killed.cpp)
// share: the model saved again and again, and how its versions are told apart.
#include <cstdint>

#include "nn/layers.hpp"

namespace killed_save {

// 256 → 256 → 10: a 270 KB file, so that a kill often lands while the bytes are being written.
inline nn::Sequential model() {
  nn::Sequential network;
  network.add(nn::Dense(256, 256, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(256, 10, nn::Activation::Linear, {.seed = 2}));
  return network;
}

// Version k of the model has every parameter equal to k (exact in float up to 2^24).
inline void set_version(nn::Module& network, std::uint32_t version) {
  for (nn::Parameter* p : network.parameters())
    for (float& v : p->value) v = static_cast<float>(version);
}

// Child i of the test saves versions first_version(i), first_version(i) + 1, …: all distinct.
inline constexpr std::uint32_t kVersionsPerChild = 100'000;
inline std::uint32_t first_version(int child) {
  return static_cast<std::uint32_t>(child + 1) * kVersionsPerChild;
}

}  // namespace killed_save
