#include "nn/source.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace nn {
namespace {

// Rows of `values` (shape (n, …)) gathered into a new tensor.
Tensor<float> gather(const std::vector<float>& values, const Shape& shape,
                     std::span<const std::int64_t> rows, const char* what) {
  const std::int64_t n = shape[0], row = n == 0 ? 0 : shape.size() / n;
  std::int64_t dims[Shape::kMaxRank];
  for (int i = 0; i < shape.rank(); ++i) dims[i] = shape[i];
  dims[0] = static_cast<std::int64_t>(rows.size());
  const auto out = Tensor<float>::zeros(
      Shape(std::span<const std::int64_t>(dims, static_cast<std::size_t>(shape.rank()))));
  float* o = out.mutable_data().data();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= n)
      throw std::out_of_range(fmt::format("TensorData: {} row {} of {}", what, rows[i], n));
    std::copy_n(values.data() + rows[i] * row, row, o + static_cast<std::int64_t>(i) * row);
  }
  return out;
}

void check(const std::vector<float>& values, const Shape& shape, const char* what) {
  if (shape.rank() < 1 || static_cast<std::int64_t>(values.size()) != shape.size())
    throw std::invalid_argument(
        fmt::format("TensorData: {} values given for {} of shape {}, expected (rows, …) holding "
                    "as many",
                    values.size(), what, shape.str()));
}

}  // namespace

TensorData::TensorData(std::vector<float> features, const Shape& shape)
    : features_(std::move(features)), shape_(shape) {
  check(features_, shape_, "features");
}

TensorData::TensorData(std::vector<float> features, const Shape& shape, std::vector<float> targets,
                       const Shape& target_shape)
    : features_(std::move(features)),
      targets_(std::move(targets)),
      shape_(shape),
      target_shape_(target_shape) {
  check(features_, shape_, "features");
  check(targets_, target_shape_, "targets");
  if (target_shape_[0] != shape_[0])
    throw std::invalid_argument(fmt::format("TensorData: features {} and targets {} differ in rows",
                                            shape_.str(), target_shape_.str()));
}

TensorData TensorData::with_labels(std::vector<float> features, const Shape& shape,
                                   std::span<const std::int32_t> labels, std::int64_t classes,
                                   bool one_hot) {
  const auto n = static_cast<std::int64_t>(labels.size());
  if (classes <= 0)
    throw std::invalid_argument(fmt::format("TensorData: {} classes, expected > 0", classes));
  std::vector<float> targets(static_cast<std::size_t>(one_hot ? n * classes : n), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= classes)
      throw std::invalid_argument(
          fmt::format("TensorData: label {} at row {} is outside [0, {})", labels[i], i, classes));
    if (one_hot)
      targets[static_cast<std::size_t>(i * classes + labels[i])] = 1.0f;
    else
      targets[static_cast<std::size_t>(i)] = float(labels[i]);
  }
  return TensorData(std::move(features), shape, std::move(targets),
                    one_hot ? Shape{n, classes} : Shape{n, 1});
}

Tensor<float> TensorData::features(std::span<const std::int64_t> rows) const {
  return gather(features_, shape_, rows, "features");
}

Tensor<float> TensorData::targets(std::span<const std::int64_t> rows) const {
  if (!has_targets()) throw std::logic_error("TensorData: this data has no targets");
  return gather(targets_, target_shape_, rows, "targets");
}

Tensor<float> LabelledImages::targets(std::span<const std::int64_t> rows) const {
  images_.batch_labels(rows, labels_);
  if (one_hot_) return autodiff::one_hot<float>(labels_, images_.classes());
  const auto out = Tensor<float>::zeros({static_cast<std::int64_t>(rows.size()), 1});
  std::copy(labels_.begin(), labels_.end(), out.mutable_data().begin());
  return out;
}

}  // namespace nn
