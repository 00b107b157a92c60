#include "autodiff/tape.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include <fmt/format.h>

namespace autodiff {
namespace {

// Epochs are drawn from one 64-bit counter, so that no two tapes, nor two generations of one
// tape, share one within a process (it would take centuries of clear() calls to wrap); 0 is never
// drawn. Each thread takes them in blocks, so that clear() in a training loop costs no atomic
// operation.
Epoch draw_epoch() {
  constexpr Epoch kBlock = 4096;
  static std::atomic<Epoch> next_block{1};
  thread_local Epoch next = 0, end = 0;
  if (next == end) {
    next = next_block.fetch_add(kBlock, std::memory_order_relaxed);
    end = next + kBlock;
  }
  return next++;
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
  if (tape.scope_depth_ == 0) tape.enter_thread();  // a thread's own tape: owned for good
  active_tape = &tape;
  return tape;
}

void throw_foreign_operand(Index node, Epoch var_epoch, Epoch tape_epoch) {
  throw TapeError(fmt::format(
      "autodiff: a Var (node {}, tape epoch {}) is not on the active tape (epoch {}): it was "
      "recorded before the tape was cleared, or on another tape or thread. Recompute it after "
      "clear(), or pass its value() as a constant.",
      node, var_epoch, tape_epoch));
}

void throw_not_recorded(Index node, Epoch var_epoch, Epoch tape_epoch, const char* what) {
  if (node == kNotRecorded)
    throw TapeError(fmt::format(
        "autodiff: {} of a Var that was not recorded: it is a constant (made under NoGradGuard, "
        "by detach(), or from constants only), so the tape holds no gradient for it",
        what));
  throw TapeError(fmt::format(
      "autodiff: {} of a Var (node {}, tape epoch {}) that is not on the active tape (epoch "
      "{}): it was recorded before the tape was cleared, or on another tape or thread",
      what, node, var_epoch, tape_epoch));
}

}  // namespace detail

Tape::Tape() : op_bounds_(new std::uint32_t[1]{0}), epoch_(draw_epoch()) {}

void Tape::enter_thread() {
  const auto me = reinterpret_cast<std::uintptr_t>(&detail::thread_token);
  std::uintptr_t owner = owner_.load(std::memory_order_relaxed);
  if (owner != me) {
    owner = 0;
    if (!owner_.compare_exchange_strong(owner, me, std::memory_order_acquire))
      throw TapeError(
          "autodiff: TapeScope on a tape that another thread has active: a tape records one "
          "thread at a time (its arrays are not shared safely). Give each thread its own tape, "
          "or end the other thread's scope first");
  }
  ++scope_depth_;
}

Tape::~Tape() {
  if (detail::active_tape == this) detail::active_tape = nullptr;
}

void Tape::clear() {
  slot_count_ = 0;
  statement_count_ = 0;
  op_count_ = 0;
  swept_ = false;
  epoch_ = draw_epoch();
  nodes_.clear();
  arena_.reset();
}

void Tape::zero_grad() {
  std::fill_n(adjoint_.get(), slot_count_, 0.0);
  for (CoarseNode& n : nodes_)
    if (n.grad) std::memset(n.grad, 0, n.grad_bytes);
}

namespace {
constexpr std::size_t kSlotBytes = sizeof(double);
constexpr std::size_t kStatementBytes = sizeof(Index) + sizeof(std::uint32_t);
constexpr std::size_t kOperationBytes = sizeof(double) + sizeof(Index);
}  // namespace

std::size_t Tape::bytes_used() const {
  return slot_count_ * kSlotBytes + statement_count_ * kStatementBytes +
         op_count_ * kOperationBytes + nodes_.size() * sizeof(CoarseNode) + arena_.bytes_used();
}

std::size_t Tape::bytes_reserved() const {
  return slot_capacity_ * kSlotBytes + statement_capacity_ * kStatementBytes +
         op_capacity_ * kOperationBytes + nodes_.capacity() * sizeof(CoarseNode) +
         arena_.bytes_reserved();
}

std::uint32_t Tape::push_node(const CoarseNode& node) {
  if (nodes_.size() >= kMaxCount)
    throw std::length_error(
        fmt::format("autodiff: the tape cannot hold more than {} coarse nodes", kMaxCount));
  nodes_.push_back(node);
  nodes_.back().statement_position = statement_count_;
  return static_cast<std::uint32_t>(nodes_.size() - 1);
}

CoarseNode& Tape::node(std::uint32_t id, Epoch epoch, const char* what) {
  if (epoch == 0) throw TapeError(fmt::format("autodiff: {} of an empty handle", what));
  if (epoch != epoch_ || id >= nodes_.size())
    throw TapeError(fmt::format(
        "autodiff: {} of a Tensor (node {}, tape epoch {}) that is not on the active tape (epoch "
        "{}): it was made before the tape was cleared, or on another tape or thread",
        what, id, epoch, epoch_));
  return nodes_[id];
}

void* Tape::grad_buffer(std::uint32_t id) {
  CoarseNode& n = nodes_[id];
  if (!n.grad) {
    n.grad = arena_.allocate(n.grad_bytes);
    std::memset(n.grad, 0, n.grad_bytes);
  }
  return n.grad;
}

void* Tape::grad_buffer_to_write(std::uint32_t id, bool* fresh) {
  CoarseNode& n = nodes_[id];
  *fresh = n.grad == nullptr;
  if (*fresh) n.grad = arena_.allocate(n.grad_bytes);
  return n.grad;
}

void Tape::grow_slots() {
  const std::size_t capacity = next_capacity(slot_capacity_, slot_count_ + 1, "Vars");
  regrow(adjoint_, slot_count_, capacity);
  slot_capacity_ = static_cast<std::uint32_t>(capacity);
}

void Tape::grow_statements() {
  const std::size_t capacity =
      next_capacity(statement_capacity_, statement_count_ + 1, "statements");
  regrow(statement_slot_, statement_count_, capacity);
  regrow(op_bounds_, statement_count_ + 1, capacity + 1);
  statement_capacity_ = static_cast<std::uint32_t>(capacity);
}

void Tape::grow_operations(std::size_t needed) {
  const std::size_t capacity = next_capacity(op_capacity_, needed, "operations");
  regrow(partial_, op_count_, capacity);
  regrow(operand_, op_count_, capacity);
  op_capacity_ = static_cast<std::uint32_t>(capacity);
}

void Tape::zero_intermediate_adjoints() {
  for (std::uint32_t s = 0; s < statement_count_; ++s) adjoint_[statement_slot_[s]] = 0.0;
  for (CoarseNode& n : nodes_) {
    if (n.scalar_output != kNotRecorded) adjoint_[n.scalar_output] = 0.0;
    // Forgotten, not zeroed: a node that the next sweep does not reach must not run its rule
    // on zeros (an infinite partial would make 0·∞ = NaN). The arena keeps the old buffer.
    if (!n.is_leaf) n.grad = nullptr;
  }
}

void Tape::sweep_statements(std::uint32_t end, std::uint32_t first) {
  const double* partial = partial_.get();
  const Index* operand = operand_.get();
  const Index* slot = statement_slot_.get();
  const std::uint32_t* op_bounds = op_bounds_.get();
  double* adjoint = adjoint_.get();
  for (std::uint32_t s = end; s-- > first;) {
    const double a = adjoint[slot[s]];
    // A node that received no gradient sends none: this also keeps an infinite partial on an
    // unused branch (sqrt at 0, say) from turning into 0·∞ = NaN.
    if (a == 0.0) continue;
    const std::uint32_t begin = op_bounds[s], end_of_s = op_bounds[s + 1];
    for (std::uint32_t k = begin; k < end_of_s; ++k) adjoint[operand[k]] += partial[k] * a;
  }
}

void Tape::sweep_interleaved(std::uint32_t statement_end) {
  std::uint32_t end = statement_end;
  for (std::size_t id = nodes_.size(); id-- > 0;) {
    const CoarseNode& n = nodes_[id];
    if (n.statement_position < end) {
      sweep_statements(end, n.statement_position);
      end = n.statement_position;
    }
    if (!n.backward) {
      if (n.is_leaf && leaf_finished_)
        leaf_finished_(leaf_context_, static_cast<std::uint32_t>(id));
      continue;
    }
    // Like a statement, a node that received no gradient sends none.
    const bool reached =
        n.grad != nullptr || (n.scalar_output != kNotRecorded && adjoint_[n.scalar_output] != 0.0);
    if (reached) n.backward(*this, static_cast<std::uint32_t>(id));
    if (n.is_leaf && leaf_finished_)  // a leaf with a hook of its own (data-parallel training)
      leaf_finished_(leaf_context_, static_cast<std::uint32_t>(id));
  }
  if (end > 0) sweep_statements(end, 0);
}

void Tape::begin_backward() {
  if (swept_) zero_intermediate_adjoints();
  swept_ = true;
}

void Tape::sweep_all() {
  if (notes_ && detail::inspected_sweep(*this, statement_count_)) [[unlikely]]
    return;
  sweep_interleaved(statement_count_);
}

void Tape::backward(Index output) {
  begin_backward();
  adjoint_[output] += 1.0;
  if (notes_ && detail::inspected_sweep(*this, statement_count_)) [[unlikely]]
    return;
  if (!nodes_.empty()) return sweep_all();
  // Statements write slots in increasing order: sweep from the last one at or before `output`.
  std::uint32_t end = statement_count_;
  if (end > 0 && statement_slot_[end - 1] > output)
    end = static_cast<std::uint32_t>(
        std::upper_bound(statement_slot_.get(), statement_slot_.get() + end, output) -
        statement_slot_.get());
  sweep_statements(end, 0);
}

}  // namespace autodiff
