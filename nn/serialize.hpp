#pragma once
// A model's weights in a file, in the safetensors format (github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON naming each tensor's dtype, shape and
// byte range, then the raw little-endian values. The tensors are the module tree's parameters,
// under their paths ("0.weight", "block.inner.bias"); the file is readable by the safetensors
// library, by numpy (scripts/safetensors_read.py), and by load_weights into a model of the same
// structure.
//
//   nn::save_weights(model, "mnist.safetensors");
//   ...
//   nn::Sequential again = make_model();   // the same layers, in the same order
//   nn::load_weights(again, "mnist.safetensors");

#include <cstdint>
#include <string>

#include "nn/module.hpp"

namespace nn {

/// The largest header load_weights accepts (as the safetensors library does: 100 MB).
inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

/// Writes every parameter of `model` to `path` as F32 tensors named after model.named_parameters(),
/// in that order, with the metadata {"format": "autodiff", "format_version": "1"}. The file is
/// written atomically (write_file_atomically): whole or not at all. Throws DataError naming the
/// path if it cannot be written.
void save_weights(Module& model, const std::string& path);

/// Reads the weights in `path` into `model`'s parameters. Everything is checked before the model
/// is touched: the header length against the file's size, the JSON header, every tensor's dtype
/// (F32 only), shape and byte range (exactly its size, inside the data section, the ranges
/// covering it in order with no gaps or overlaps), and the names and shapes against the model.
/// Throws DataError naming the file and what is wrong (every missing, extra or wrongly-shaped
/// tensor); the model's parameters are then unchanged.
void load_weights(Module& model, const std::string& path);

}  // namespace nn
