#pragma once
// Tangent mode: second order through the tensor ops, by forward over reverse (Pearlmutter's
// R-operator). While a TangentMode guard is active, every recorded tensor also carries a tangent
// (its values' derivative along a direction v given for the leaves), and the reverse sweep also
// carries the tangent of every gradient. One forward and one backward then give ∇f and H·v:
//
//   Tape tape;
//   TapeScope scope(tape);
//   TangentMode tangents;                                    // until the end of the scope
//   Tensor<double> w = Tensor<double>::from(values, {3, 2}).requires_grad();
//   tangents.set_tangent(w, v);                              // the direction, as w's tangent
//   Tensor<double> loss = f(w);
//   loss.backward();
//   w.grad();            // ∇f
//   w.grad_tangent();    // H·v
//
// A parameter made by Tensor<T>::parameter (nn::Parameter::on_tape(), so any nn::Module) is
// given its tangent by its storage: seed_parameter(value, tangent, grad_tangent), so that modules
// need not know. Each op carries its own rules (jvp and backward_jvp, op.hpp), beside its forward
// and backward; an op without them is refused when recorded here, naming it. Tangents and the
// gradients' tangents live in the tape's arena, like values and gradients; outside tangent mode
// nothing of this is paid.

#include <functional>
#include <span>
#include <vector>

#include "autodiff/gradient_check.hpp"
#include "autodiff/tensor/tensor.hpp"

namespace autodiff {

namespace detail {
/// A parameter's storage and where its tangent comes from and its gradients go.
struct TangentSeed {
  const void* value;
  const void* tangent;
  void* gradient;  // null: the parameter's own gradient storage
  void* grad_tangent;
  std::int64_t size;
  DType dtype;
};
/// What the tape holds while tangent mode is on (Tape::tangents()).
struct TangentRecording {
  std::vector<TangentSeed> seeds;
};
/// Tensor<T>::parameter in tangent mode: the seed for this storage, or null.
const TangentSeed* find_seed(const TangentRecording& recording, const void* value,
                             std::int64_t size, DType dtype);
}  // namespace detail

/// Turns tangent mode on for the active tape (or `tape`) for the guard's lifetime. Guards do not
/// nest: a second one on the same tape throws a TapeError. Nodes recorded before it carry no
/// tangent (a leaf among them is a constant direction-wise; an op's output may not feed an op
/// recorded under the guard, which throws naming it).
class TangentMode {
 public:
  TangentMode() : TangentMode(Tape::active()) {}
  explicit TangentMode(Tape& tape);
  ~TangentMode();
  TangentMode(const TangentMode&) = delete;
  TangentMode& operator=(const TangentMode&) = delete;

  /// A parameter on storage `value` (Tensor<T>::parameter, as nn::Parameter::on_tape() makes one)
  /// recorded while the guard is active gets `tangent` as its tangent, adds its gradient's tangent
  /// into `grad_tangent` and, when `gradient` is given, its gradient there instead of into its own
  /// storage. All of the same size; they must outlive the recording. Throws
  /// std::invalid_argument for sizes that differ.
  template <TensorElement T>
  void seed_parameter(std::span<const T> value, std::span<const T> tangent,
                      std::span<T> grad_tangent, std::span<T> gradient = {});
  /// The tangent of a leaf (made with requires_grad() or Tensor<T>::parameter, not yet used by an
  /// op); copied. Throws std::invalid_argument for a wrong size, a TapeError for anything else.
  template <TensorElement T>
  void set_tangent(const Tensor<T>& leaf, std::span<const T> tangent);

 private:
  Tape& tape_;
  detail::TangentRecording recording_;
};

// ---- For checks and small problems: H·v of a function of double tensors ----

/// f: tensors of the given shapes → a one-element tensor.
using TensorFunction = std::function<Tensor<double>(std::span<const Tensor<double>> inputs)>;

/// f, ∇f and H·v at x, in tangent mode; x and v hold the inputs' values one after the other
/// (row-major), and so do the results.
struct TensorHvp {
  double value = 0.0;
  std::vector<double> gradient;
  std::vector<double> hessian_vector;
};
/// Throws std::invalid_argument unless x and v hold as many values as the shapes, and f returns a
/// one-element tensor recorded from its inputs.
TensorHvp tensor_hvp(const TensorFunction& f, std::span<const Shape> shapes,
                     std::span<const double> x, std::span<const double> v);

/// check_hvp for tensor functions: tangent mode's H·v next to Ridders' central differences of the
/// tape's own first-order gradient along v, in check_gradient's table.
SecondOrderCheck check_tensor_hvp(const TensorFunction& f, std::span<const Shape> shapes,
                                  std::span<const double> x, std::span<const double> v,
                                  GradientCheckOptions options = {});

}  // namespace autodiff
