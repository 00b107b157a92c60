#include "autodiff/tape.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include <fmt/format.h>

namespace autodiff {
namespace {

// Epochs are drawn from one counter so that no two tapes, nor two generations of one tape,
// share one; 0 is never drawn.
std::uint32_t draw_epoch() {
  static std::atomic<std::uint32_t> next{1};
  std::uint32_t epoch = next.fetch_add(1, std::memory_order_relaxed);
  if (epoch == 0) epoch = next.fetch_add(1, std::memory_order_relaxed);
  return epoch;
}

// Moves the first `count` elements into an array of `capacity` elements.
template <class T>
void regrow(std::unique_ptr<T[]>& array, std::size_t count, std::size_t capacity) {
  std::unique_ptr<T[]> bigger(new T[capacity]);
  if (count > 0) std::memcpy(bigger.get(), array.get(), count * sizeof(T));
  array = std::move(bigger);
}

// Indices are 32-bit; kNotRecorded is reserved.
constexpr std::size_t kMaxCount = std::size_t{UINT32_MAX} - 1;

std::size_t next_capacity(std::size_t current, std::size_t needed, const char* what) {
  if (needed > kMaxCount)
    throw std::length_error(fmt::format(
        "autodiff: the tape cannot hold more than {} {} (asked for {})", kMaxCount, what, needed));
  return std::min(kMaxCount, std::max({needed, 2 * current, std::size_t{1024}}));
}

}  // namespace

namespace detail {

Tape& make_default_tape() {
  thread_local Tape tape;
  active_tape = &tape;
  return tape;
}

void throw_foreign_operand(Index node, std::uint32_t var_epoch, std::uint32_t tape_epoch) {
  throw TapeError(fmt::format(
      "autodiff: a Var (node {}, tape epoch {}) is not on the active tape (epoch {}): it was "
      "recorded before the tape was cleared, or on another tape or thread. Recompute it after "
      "clear(), or pass its value() as a constant.",
      node, var_epoch, tape_epoch));
}

}  // namespace detail

Tape::Tape() : epoch_(draw_epoch()) {}

Tape::~Tape() {
  if (detail::active_tape == this) detail::active_tape = nullptr;
}

void Tape::clear() {
  node_count_ = 0;
  op_count_ = 0;
  swept_ = false;
  epoch_ = draw_epoch();
}

void Tape::zero_grad() { std::fill_n(adjoint_.get(), node_count_, 0.0); }

std::size_t Tape::bytes_used() const {
  return std::size_t{node_count_} * (sizeof(double) + sizeof(std::uint32_t)) +
         std::size_t{op_count_} * (sizeof(double) + sizeof(Index));
}

std::size_t Tape::bytes_reserved() const {
  return std::size_t{node_capacity_} * (sizeof(double) + sizeof(std::uint32_t)) +
         std::size_t{op_capacity_} * (sizeof(double) + sizeof(Index));
}

void Tape::grow_nodes() {
  const std::size_t capacity = next_capacity(node_capacity_, node_count_ + 1, "nodes");
  regrow(adjoint_, node_count_, capacity);
  regrow(op_end_, node_count_, capacity);
  node_capacity_ = static_cast<std::uint32_t>(capacity);
}

void Tape::grow_operations(std::size_t needed) {
  const std::size_t capacity = next_capacity(op_capacity_, needed, "operations");
  regrow(partial_, op_count_, capacity);
  regrow(operand_, op_count_, capacity);
  op_capacity_ = static_cast<std::uint32_t>(capacity);
}

void Tape::check_recorded(Index node, std::uint32_t epoch, const char* what) const {
  if (node == kNotRecorded)
    throw TapeError(fmt::format(
        "autodiff: {} of a Var that was not recorded: it is a constant (made under NoGradGuard, "
        "by detach(), or from constants only), so the tape holds no gradient for it",
        what));
  if (epoch != epoch_ || node >= node_count_)
    throw TapeError(fmt::format(
        "autodiff: {} of a Var (node {}, tape epoch {}) that is not on the active tape (epoch "
        "{}): it was recorded before the tape was cleared, or on another tape or thread",
        what, node, epoch, epoch_));
}

void Tape::zero_intermediate_adjoints() {
  std::uint32_t begin = 0;
  for (std::uint32_t n = 0; n < node_count_; ++n) {
    if (op_end_[n] != begin) adjoint_[n] = 0.0;  // has operations: not a leaf
    begin = op_end_[n];
  }
}

void Tape::sweep_scalars(Index last, Index first) {
  const double* partial = partial_.get();
  const Index* operand = operand_.get();
  const std::uint32_t* op_end = op_end_.get();
  double* adjoint = adjoint_.get();
  for (Index n = last + 1; n-- > first;) {
    const double a = adjoint[n];
    // A node that received no gradient sends none: this also keeps an infinite partial on an
    // unused branch (sqrt at 0, say) from turning into 0·∞ = NaN.
    if (a == 0.0) continue;
    const std::uint32_t begin = n == 0 ? 0 : op_end[n - 1];
    for (std::uint32_t k = begin; k < op_end[n]; ++k) adjoint[operand[k]] += partial[k] * a;
  }
}

void Tape::backward(Index output) {
  if (swept_) zero_intermediate_adjoints();
  adjoint_[output] += 1.0;
  sweep_scalars(output, 0);
  swept_ = true;
}

}  // namespace autodiff
