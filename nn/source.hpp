#pragma once
// What fit, evaluate and predict read: rows of features and of targets, a batch at a time, as
// float tensors on the active tape.
//
//   nn::TensorData data(x, {2000, 1}, y, {2000, 1});       // features and targets in memory
//   nn::LabelledImages images(load_mnist(dir, "train"));   // IDX images, one-hot targets

#include <cstdint>
#include <span>
#include <vector>

#include "autodiff/tensor.hpp"
#include "nn/data.hpp"

namespace nn {

using autodiff::Shape;
using autodiff::Tensor;

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual std::int64_t size() const = 0;
  /// The features of `rows`, (rows.size(), …).
  virtual Tensor<float> features(std::span<const std::int64_t> rows) const = 0;
  /// The targets of `rows`, (rows.size(), …); throws std::logic_error for a source without any.
  virtual Tensor<float> targets(std::span<const std::int64_t> rows) const = 0;
  virtual bool has_targets() const { return true; }
};

/// Features and (optionally) targets held in memory: row i of each is the i-th slice along the
/// first axis. Throws std::invalid_argument, naming the shapes, unless the sizes match.
class TensorData : public BatchSource {
 public:
  TensorData(std::vector<float> features, const Shape& shape);
  TensorData(std::vector<float> features, const Shape& shape, std::vector<float> targets,
             const Shape& target_shape);
  /// Class labels as targets: one-hot rows of `classes`, or (n, 1) class numbers when !one_hot.
  static TensorData with_labels(std::vector<float> features, const Shape& shape,
                                std::span<const std::int32_t> labels, std::int64_t classes,
                                bool one_hot = true);

  std::int64_t size() const override { return shape_[0]; }
  Tensor<float> features(std::span<const std::int64_t> rows) const override;
  Tensor<float> targets(std::span<const std::int64_t> rows) const override;
  bool has_targets() const override { return target_shape_.rank() > 0; }

 private:
  std::vector<float> features_, targets_;
  Shape shape_, target_shape_;
};

/// IDX images (nn::Dataset) scaled to [0, 1], with one-hot targets of its classes (or (n, 1)
/// class numbers when !one_hot). Refers to `images`, which must outlive it.
class LabelledImages : public BatchSource {
 public:
  explicit LabelledImages(const Dataset& images, bool one_hot = true)
      : images_(images), one_hot_(one_hot) {}
  std::int64_t size() const override { return images_.size(); }
  Tensor<float> features(std::span<const std::int64_t> rows) const override {
    return images_.batch(rows);
  }
  Tensor<float> targets(std::span<const std::int64_t> rows) const override;
  const Dataset& images() const { return images_; }

 private:
  const Dataset& images_;
  bool one_hot_;
  mutable std::vector<std::int32_t> labels_;  // the current batch's, reused
};

}  // namespace nn
