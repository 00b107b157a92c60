#include "nn/data_parallel.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace nn {

std::pair<std::int64_t, std::int64_t> shard_of(std::int64_t begin, std::int64_t end,
                                               const Communicator& communicator) {
  const std::int64_t rows = end - begin, ranks = communicator.size(), r = communicator.rank();
  const std::int64_t first = begin + rows / ranks * r + std::min(r, rows % ranks);
  return {first, first + rows / ranks + (r < rows % ranks ? 1 : 0)};
}

GradientBuckets::GradientBuckets(Communicator& communicator, std::span<Parameter* const> parameters,
                                 DistributedOptions options)
    : communicator_(communicator),
      options_(options),
      parameters_(parameters.begin(), parameters.end()),
      watches_(parameters.size()),
      bucket_of_(parameters.size()) {
  if (options_.bucket_bytes == 0)
    throw std::invalid_argument("GradientBuckets: bucket_bytes is 0, expected ≥ 1");
  for (Parameter* p : parameters_)
    if (p->watch)
      throw std::invalid_argument(fmt::format(
          "GradientBuckets: parameter \"{}\" is already watched by another data-parallel model",
          p->name));
  // The reverse sweep completes the last registered parameters first.
  std::size_t bytes = 0;
  for (std::size_t i = parameters_.size(); i-- > 0;) {
    if (buckets_.empty() || bytes >= options_.bucket_bytes) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& bucket = buckets_.back();
    bucket.members.push_back(i);
    bucket.buffer.resize(bucket.buffer.size() + parameters_[i]->grad.size());
    bytes += parameters_[i]->grad.size() * sizeof(float);
    bucket_of_[i] = buckets_.size() - 1;
  }
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    watches_[i].complete = &on_complete;
    watches_[i].owner = this;
    parameters_[i]->watch = &watches_[i];
  }
}

GradientBuckets::~GradientBuckets() {
  for (Parameter* p : parameters_) p->watch = nullptr;
}

bool GradientBuckets::watches(std::span<Parameter* const> parameters) const {
  return std::equal(parameters.begin(), parameters.end(), parameters_.begin(), parameters_.end());
}

std::vector<std::vector<std::size_t>> GradientBuckets::buckets() const {
  std::vector<std::vector<std::size_t>> result;
  for (const Bucket& b : buckets_) result.push_back(b.members);
  return result;
}

void GradientBuckets::begin_step(float share) {
  share_ = share;
  for (GradientWatch& w : watches_) w.recorded = w.swept = 0;
  for (Bucket& b : buckets_) b.complete = 0;
  next_ = 0;
  started_early_ = 0;
}

void GradientBuckets::on_complete(GradientWatch& watch) {
  auto& self = *static_cast<GradientBuckets*>(watch.owner);
  const auto index = static_cast<std::size_t>(&watch - self.watches_.data());
  ++self.buckets_[self.bucket_of_[index]].complete;
  if (self.options_.overlap) {
    self.start_ready();
    self.communicator_.progress();
  }
}

void GradientBuckets::start_ready() {
  while (next_ < buckets_.size() && buckets_[next_].complete == buckets_[next_].members.size()) {
    start(buckets_[next_++]);
    ++started_early_;
  }
}

void GradientBuckets::start(Bucket& bucket) {
  float* out = bucket.buffer.data();
  for (std::size_t i : bucket.members) {
    const std::vector<float>& grad = parameters_[i]->grad;
    for (std::size_t k = 0; k < grad.size(); ++k) out[k] = share_ * grad[k];
    out += grad.size();
  }
  communicator_.start_sum(bucket.buffer);
}

void GradientBuckets::finish(std::span<double> scalars) {
  while (next_ < buckets_.size()) start(buckets_[next_++]);
  communicator_.wait_all();
  for (const Bucket& bucket : buckets_) {
    const float* in = bucket.buffer.data();
    for (std::size_t i : bucket.members) {
      std::vector<float>& grad = parameters_[i]->grad;
      std::copy(in, in + grad.size(), grad.begin());
      in += grad.size();
    }
  }
  if (!scalars.empty()) communicator_.sum(scalars);
}

}  // namespace nn
