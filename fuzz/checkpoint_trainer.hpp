#pragma once
// fuzz_checkpoint's trainer, which its seed checkpoints (fuzz/make_corpus.py) are written for:
// Dense(2, 3, relu) → Dropout(0.5, seed 3) → Dense(3, 2, softmax), Adam at 0.01. The tests load
// the seeds into it too (tests/test_weights_hostile.cpp).
#include <memory>

#include "nn/layers.hpp"
#include "nn/losses.hpp"
#include "nn/model.hpp"
#include "nn/optimizers.hpp"

namespace fuzz {

inline nn::Model checkpoint_trainer() {
  nn::Sequential network;
  network.add(nn::Dense(2, 3, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dropout(0.5, {.seed = 3}));
  network.add(nn::Dense(3, 2, nn::Activation::Softmax, {.seed = 2}));
  return nn::Model(std::move(network), nn::categorical_crossentropy,
                   std::make_unique<nn::Adam>(nn::AdamOptions().learning_rate(0.01)));
}

}  // namespace fuzz
