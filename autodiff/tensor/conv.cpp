#include "autodiff/tensor/conv.hpp"

#include <limits>

namespace autodiff {

const char* to_string(Padding padding) { return padding == Padding::Same ? "same" : "valid"; }

namespace detail {

AxisPlan plan_axis(std::int64_t in, std::int64_t kernel, std::int64_t stride, Padding padding,
                   const char* op, const char* axis) {
  if (kernel < 1 || stride < 1)
    throw std::invalid_argument(
        fmt::format("{}: {} window {} with stride {}: both must be ≥ 1", op, axis, kernel, stride));
  if (padding == Padding::Same) {
    const std::int64_t out = in / stride + (in % stride != 0 ? 1 : 0);
    // (out − 1)·stride + kernel − in, written so that no window size can overflow it:
    // in − (out − 1)·stride is in [1, stride].
    const std::int64_t total = std::max<std::int64_t>(kernel - (in - (out - 1) * stride), 0);
    return {out, total / 2};
  }
  if (in < kernel)
    throw std::invalid_argument(
        fmt::format("{}: the input's {} is {}, smaller than the window's {} (padding \"valid\"); "
                    "use padding \"same\" or a smaller window",
                    op, axis, in, kernel));
  return {(in - kernel) / stride + 1, 0};
}

Geometry2D plan_window(const Shape& x, const Window2D& window, const char* op) {
  if (x.rank() != 4)
    throw std::invalid_argument(fmt::format(
        "{}: input of shape {}, expected (batch, height, width, channels)", op, x.str()));
  const AxisPlan h = plan_axis(x[1], window.height, window.stride_h, window.padding, op, "height");
  const AxisPlan w = plan_axis(x[2], window.width, window.stride_w, window.padding, op, "width");
  return {x[0],
          x[1],
          x[2],
          x[3],
          window.height,
          window.width,
          window.stride_h,
          window.stride_w,
          h.out,
          w.out,
          h.pad_before,
          w.pad_before};
}

}  // namespace detail

detail::Geometry2D Conv2D::geometry(const Shape& x, const Shape& w) const {
  if (w.rank() != 4 || x.rank() != 4 || w[2] != x[3])
    throw std::invalid_argument(
        fmt::format("conv2d: input {} and kernel {}: expected (batch, height, width, channels) and "
                    "(kernel_h, kernel_w, channels, filters) with the same channels",
                    x.str(), w.str()));
  return detail::plan_window(x, {w[0], w[1], stride_h, stride_w, padding}, name);
}

Shape Conv2D::output_shape(const Shape& x, const Shape& w) const {
  const detail::Geometry2D g = geometry(x, w);
  // The GEMMs of a block take int sizes (CBLAS): a block's patches, outputs and the kernel.
  constexpr std::int64_t kBlasMax = std::numeric_limits<int>::max();
  const std::int64_t row = g.kernel_h * g.kernel_w * g.channels;
  const std::int64_t block_rows = detail::images_per_block(g) * g.out_pixels();
  const auto too_big = [](std::int64_t a, std::int64_t b) {
    std::int64_t product = 0;
    return __builtin_mul_overflow(a, b, &product) || product > kBlasMax;
  };
  if (too_big(block_rows, row) || too_big(block_rows, w[3]) || too_big(row, w[3]))
    throw std::invalid_argument(fmt::format(
        "conv2d: input {} and kernel {} make patch matrices larger than the {} elements BLAS "
        "addresses with int",
        x.str(), w.str(), kBlasMax));
  return {g.batch, g.out_h, g.out_w, w[3]};
}

Shape Conv2D::output_shape(const Shape& x, const Shape& w, const Shape& b) const {
  if (b.rank() != 1 || w.rank() != 4 || b[0] != w[3])
    throw std::invalid_argument(fmt::format(
        "conv2d: kernel {} and bias {}: expected a bias of shape (filters,)", w.str(), b.str()));
  return output_shape(x, w);
}

}  // namespace autodiff
