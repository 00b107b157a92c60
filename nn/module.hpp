#pragma once
// Module: anything that maps a batch tensor to a batch tensor — a layer, a user's block, a whole
// model — and a tree of them. A module registers its parameters and its children once, in its
// constructor; the tree names every parameter after the path to it ("0.weight",
// "block.dense1.bias"), lists them in a stable order (registration order, depth first), lets a
// child be reached again with its type, and carries the train/eval mode to every module.
//
//   struct Residual : nn::Module {
//     nn::Dense* inner;
//     nn::Dense* outer;
//     explicit Residual(std::int64_t n)
//         : inner(&register_module("inner", nn::Dense(n, n, nn::Activation::Relu))),
//           outer(&register_module("outer", nn::Dense(n, n))) {}
//     Tensor<float> forward(const Tensor<float>& x) override { return x + (*outer)((*inner)(x)); }
//   };
//
// Modules move (their parameters and children stay where they are, owned through pointers) but
// do not copy.

#include <concepts>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nn/parameter.hpp"

namespace nn {

struct NamedParameter {
  std::string name;  // the path: "block.dense1.weight"
  Parameter* parameter;
};

/// Where a data-parallel rank's rows lie in the step's global batch (Model::distribute): layers
/// that draw at random per row (Dropout) draw by global row, so that a share of the batch gets
/// exactly what the same rows get in one process.
struct BatchShare {
  std::int64_t first_row = 0;  // the share's first row, counted in the global batch
  bool empty = false;          // no rows here this step: this rank runs no forward pass
};

class Module {
 public:
  Module() = default;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  virtual Tensor<float> forward(const Tensor<float>& x) = 0;
  Tensor<float> operator()(const Tensor<float>& x) { return forward(x); }
  /// One line about this module alone, for summaries: "Dense(784 → 128, relu)".
  virtual std::string describe() const { return "Module"; }

  /// Every parameter of this module and of its children, depth first in registration order.
  std::vector<NamedParameter> named_parameters();
  /// Every buffer (register_buffer), likewise.
  std::vector<NamedParameter> named_buffers();
  /// Parameters and buffers together, in registration order: everything a model file holds.
  std::vector<NamedParameter> named_state();
  /// Every counter (register_counter), likewise: integer training state a checkpoint keeps.
  std::vector<std::pair<std::string, std::uint64_t*>> named_counters();
  std::vector<Parameter*> parameters();
  /// The same into `out` (cleared first), with no allocation once `out` is large enough.
  void collect_parameters(std::vector<Parameter*>& out);
  std::int64_t parameter_count();

  std::size_t child_count() const { return children_.size(); }
  /// A child by position or by name; throws std::out_of_range naming what exists.
  Module& child(std::size_t index);
  Module& child(std::string_view name);
  /// The same, as the type it was registered with; throws std::invalid_argument if it is not one.
  template <std::derived_from<Module> M>
  M& child(std::size_t index) {
    return checked_cast<M>(child(index), std::to_string(index));
  }
  template <std::derived_from<Module> M>
  M& child(std::string_view name) {
    return checked_cast<M>(child(name), std::string(name));
  }
  const std::string& child_name(std::size_t index) const;

  /// Training mode (the default) or evaluation mode, for this module and all its children.
  /// Layers whose behaviour differs (Dropout, BatchNorm) read is_training().
  void train(bool training = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// Tells this module and all its children where the rows of the next forward passes lie in the
  /// global batch (on_batch_share); Model's data-parallel step sets it before each forward pass and
  /// back to the default after. A single process never needs it.
  void set_batch_share(const BatchShare& share);

 protected:
  /// set_batch_share's call on each module of the tree; does nothing unless overridden.
  virtual void on_batch_share(const BatchShare& /*share*/) {}
  /// A new parameter of this module, zero-filled; its storage never moves.
  Parameter& register_parameter(std::string name, const Shape& shape);
  /// State that is saved with the model but not trained (no optimizer sees it): BatchNorm's
  /// moving mean and variance. Zero-filled; its storage never moves.
  Parameter& register_buffer(std::string name, const Shape& shape);
  /// An integer that training advances and an exact resume must restore, e.g. Dropout's call
  /// number (its masks are drawn from it). Saved in checkpoints, not in model files. Starts at 0;
  /// its storage never moves.
  std::uint64_t& register_counter(std::string name);
  /// Takes `module` as a child; the returned reference stays valid as long as this module
  /// (moves included).
  template <std::derived_from<Module> M>
  M& register_module(std::string name, M module) {
    auto owned = std::make_unique<M>(std::move(module));
    M& child = *owned;
    adopt(std::move(name), std::move(owned));
    return child;
  }
  void adopt(std::string name, std::unique_ptr<Module> child);

 private:
  void check_new_name(const std::string& name) const;
  template <class M>
  static M& checked_cast(Module& m, const std::string& which) {
    if (auto* typed = dynamic_cast<M*>(&m)) return *typed;
    throw_wrong_type(which, m.describe());
  }
  [[noreturn]] static void throw_wrong_type(const std::string& which, const std::string& what);
  enum class Entry : unsigned char { Parameter, Buffer, Child };
  // Every parameter (or buffer, or both, as `kinds` says) below this module in registration order,
  // depth first: f(prefix, local name, parameter). The prefix is built only when f asks for it
  // (kNamed), so that collecting pointers allocates nothing.
  template <bool kNamed, class F>
  void for_each_parameter(const std::string& prefix, bool parameters, bool buffers, F&& f);
  std::vector<NamedParameter> named(bool parameters, bool buffers);
  Parameter& register_tensor(std::string name, const Shape& shape, Entry kind);

  std::vector<std::pair<std::string, std::unique_ptr<Parameter>>> parameters_;
  std::vector<std::pair<std::string, std::unique_ptr<Parameter>>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
  std::vector<std::pair<std::string, std::unique_ptr<std::uint64_t>>> counters_;
  std::vector<Entry> registered_;  // what was registered, in order
  bool training_ = true;
};

}  // namespace nn
