#pragma once
// Data-parallel training's gradient exchange, as PyTorch's DistributedDataParallel does it: the
// gradients are summed over the ranks in buckets, filled in the order the reverse sweep completes
// them (the parameters' registration order, reversed), and each bucket is started as soon as all
// its gradients are complete, while the sweep goes on through the earlier layers. Each rank
// scales its gradients by its share of the global batch, so that the sums are the gradient of the
// global batch's mean loss. Model::distribute sets this up; fit and train_step drive it.

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "nn/communicator.hpp"
#include "nn/parameter.hpp"

namespace nn {

/// This rank's contiguous share [first, last) of rows [begin, end): shares differ in size by at
/// most one row, the larger ones first.
std::pair<std::int64_t, std::int64_t> shard_of(std::int64_t begin, std::int64_t end,
                                               const Communicator& communicator);

struct DistributedOptions {
  /// Bytes of gradient per bucket: parameters join the current bucket until it holds at least
  /// this many (a parameter is never split). ≥ 1.
  std::size_t bucket_bytes = std::size_t{1} << 20;
  /// Start each bucket during the backward pass as soon as it is complete; false starts them all
  /// after it (for measuring what the overlap gains).
  bool overlap = true;
};

class GradientBuckets {
 public:
  /// Watches `parameters` (Parameter::watch) until destroyed. Throws std::invalid_argument for a
  /// bucket size of 0 or a parameter already watched.
  GradientBuckets(Communicator& communicator, std::span<Parameter* const> parameters,
                  DistributedOptions options);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  /// Whether these are the parameters watched, in this order.
  bool watches(std::span<Parameter* const> parameters) const;

  /// Before a step's forward pass: this rank's gradients will be sent times `share`, its rows'
  /// fraction of the global batch.
  void begin_step(float share);
  /// After the backward pass: starts the buckets not started yet, waits for all, and leaves in each
  /// parameter's grad the sum over the ranks. Then sums `scalars` over the ranks (blocking).
  void finish(std::span<double> scalars);

  /// The parameters (indices into the constructor's list) of each bucket, in the order sent.
  std::vector<std::vector<std::size_t>> buckets() const;
  /// How many buckets of the last step were started before finish().
  std::size_t started_during_backward() const { return started_early_; }

 private:
  struct Bucket {
    std::vector<std::size_t> members;
    std::vector<float> buffer;
    std::size_t complete = 0;  // members whose gradient is complete this step
  };
  static void on_complete(GradientWatch& watch);
  void start_ready();
  void start(Bucket& bucket);

  Communicator& communicator_;
  DistributedOptions options_;
  std::vector<Parameter*> parameters_;
  std::vector<GradientWatch> watches_;  // one per parameter; never reallocated
  std::vector<std::size_t> bucket_of_;  // per parameter
  std::vector<Bucket> buckets_;
  std::size_t next_ = 0;  // the next bucket to start: buckets start in order on every rank
  std::size_t started_early_ = 0;
  float share_ = 1.0f;
};

}  // namespace nn
