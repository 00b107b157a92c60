#pragma once
// A convolution (with its bias and ReLU) and the max pooling after it as one op: Keras's
// Conv2D(…, activation="relu") → MaxPooling2D, the pair every convnet starts with. Apart, the
// convolution writes its full-size output to memory, pooling reads it back, pooling's backward
// writes a full-size gradient (three quarters zeros) and the convolution's backward reads it and
// the output again: for the first layer of Keras's MNIST convnet, 11 MB five times per step of
// 128 images. Together, each block of images is convolved into a per-thread scratch that stays
// in cache, pooled from there, and in backward its output gradient is rebuilt there from the
// pooled gradient and the saved positions of the maxima.
//
// The results equal conv2d followed by max_pool2d bit for bit: the same GEMMs on the same
// blocks, the same values summed in the same order. No tangent rules (tangent mode refuses it by
// name); nn::Sequential uses it outside tangent mode only.

#include "autodiff/tensor/pooling.hpp"

namespace autodiff {

/// y = max_pool2d(conv2d(x, w, b, …, relu), pool): x (n, h, w, c), w (kh, kw, c, filters),
/// b (filters,) (optional: two inputs mean no bias), y the pooled output.
struct Conv2DMaxPool2D {
  static constexpr const char* name = "conv2d_max_pool2d";
  Conv2D conv;
  Window2D pool;
  const std::int32_t* argmax = nullptr;  // per output element: its source in the conv's image

  Shape output_shape(const Shape& x, const Shape& w) const {
    return MaxPool2D{pool}.output_shape(conv.output_shape(x, w));
  }
  Shape output_shape(const Shape& x, const Shape& w, const Shape& b) const {
    return MaxPool2D{pool}.output_shape(conv.output_shape(x, w, b));
  }

  template <class T, int N>
  void forward(OpContext<T, N>& ctx) {
    const auto x = ctx.input(0), w = ctx.input(1);
    const T* bias = N == 3 ? ctx.input(N - 1).data : nullptr;
    const auto y = ctx.output();
    const detail::Geometry2D g = conv.geometry(x.shape, w.shape);
    const std::int64_t filters = w.shape[3], row = g.kernel_h * g.kernel_w * g.channels;
    const detail::Geometry2D p = pooling(g, filters);
    const std::int64_t block = detail::images_per_block(g), pixels = g.out_pixels();
    const std::int64_t per_slot = block * pixels * (row + filters);
    T* scratch = ctx.template scratch<T>(threads() * per_slot);
    std::int32_t* where = ctx.recording() ? ctx.template scratch<std::int32_t>(y.size()) : nullptr;
    argmax = where;
    const std::int64_t pooled_per_image = p.out_pixels() * filters;
    parallel_parts(g.batch, [&](int part, std::int64_t first, std::int64_t last) {
      T* patches = scratch + part * per_slot;
      T* conv_out = patches + block * pixels * row;
      for (std::int64_t n = first; n < last; n += block) {
        const std::int64_t end = std::min(last, n + block), rows = (end - n) * pixels;
        detail::im2col(g, x.data, n, end, patches);
        detail::gemm(false, false, rows, filters, row, patches, w.data, false, conv_out);
        conv.finish_rows(conv_out, rows, filters, bias);
        for (std::int64_t i = n; i < end; ++i) {
          const T* image = conv_out + (i - n) * pixels * filters;
          for (std::int64_t oh = 0; oh < p.out_h; ++oh)
            for (std::int64_t ow = 0; ow < p.out_w; ++ow) {
              const std::int64_t o = i * pooled_per_image + (oh * p.out_w + ow) * filters;
              if (where)
                MaxPool2D::pool_window(p, oh, ow, image, y.data + o, where + o);
              else
                MaxPool2D::pool_window<T, false>(p, oh, ow, image, y.data + o, nullptr);
            }
        }
      }
    });
  }

  template <class T, int N>
  void backward(OpContext<T, N>& ctx) const {
    const auto y = ctx.output();
    const auto gy = ctx.output_grad();
    const detail::Geometry2D g = conv.geometry(ctx.input(0).shape, ctx.input(1).shape);
    const std::int64_t filters = ctx.input(1).shape[3], pixels = g.out_pixels();
    const detail::Geometry2D p = pooling(g, filters);
    const std::int64_t pooled_per_image = p.out_pixels() * filters;
    const bool tiled = pool.padding == Padding::Valid && pool.stride_h == pool.height &&
                       pool.stride_w == pool.width;
    const T* __restrict pooled = y.data;
    const T* __restrict pooled_grad = gy.data;
    const std::int32_t* __restrict at = argmax;
    // The convolution's output gradient, as max pooling's backward and then the ReLU's mask
    // would leave it: each pooled gradient at its maximum's place (added, where windows overlap),
    // kept where the maximum, the pooled output, is positive.
    conv.backward_blocks(ctx, [&](std::int64_t n, std::int64_t end, T* d_out, T* d_b) {
      for (std::int64_t i = n; i < end; ++i) {
        T* image = d_out + (i - n) * pixels * filters;
        const std::int64_t o = i * pooled_per_image;
        if (tiled && conv.relu) {  // each pixel written once, in order: no zeroing pass
          MaxPool2D::write_tiled<T, true>(p, pooled_grad + o, at + o, image, pooled + o);
        } else if (tiled) {
          MaxPool2D::write_tiled(p, pooled_grad + o, at + o, image);
        } else {
          std::fill_n(image, pixels * filters, T(0));
          for (std::int64_t k = o; k < o + pooled_per_image; ++k)
            image[at[k]] += !conv.relu || pooled[k] > T(0) ? pooled_grad[k] : T(0);
        }
      }
      for (std::int64_t r = 0; r < (end - n) * pixels; ++r)
        for (std::int64_t f = 0; f < filters; ++f) d_b[f] += d_out[r * filters + f];
    });
  }

 private:
  // The pooling window on the convolution's output, (batch, out_h, out_w, filters).
  detail::Geometry2D pooling(const detail::Geometry2D& g, std::int64_t filters) const {
    return detail::plan_window({g.batch, g.out_h, g.out_w, filters}, pool, name);
  }
};

/// max_pool2d(conv2d(x, kernel, bias, stride_h, stride_w, padding, relu), pool) in one op.
template <TensorElement T>
Tensor<T> conv2d_max_pool2d(const Tensor<T>& x, const Tensor<T>& kernel, const Tensor<T>& bias,
                            const Conv2D& conv, const Window2D& pool) {
  return apply(Conv2DMaxPool2D{conv, pool}, x, kernel, bias);
}
/// Without bias.
template <TensorElement T>
Tensor<T> conv2d_max_pool2d(const Tensor<T>& x, const Tensor<T>& kernel, const Conv2D& conv,
                            const Window2D& pool) {
  return apply(Conv2DMaxPool2D{conv, pool}, x, kernel);
}

}  // namespace autodiff
