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
// blocks, the same values summed in the same order (but for zeros, which leave a bias sum that
// starts at +0 as it was); in tangent mode too (jvp and backward_jvp are
// Conv2D's, on the rebuilt output gradient and its tangent), where only a zero's sign may differ
// (the two ops' pooling adds into a zeroed gradient there: −0 becomes +0).

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
    const bool tiled_2x2 = MaxPool2D::tiles_2x2(pool);
    parallel_parts(g.batch, [&](int part, std::int64_t first, std::int64_t last) {
      T* patches = scratch + part * per_slot;
      T* conv_out = patches + block * pixels * row;
      for (std::int64_t n = first; n < last; n += block) {
        const std::int64_t end = std::min(last, n + block), rows = (end - n) * pixels;
        detail::im2col(g, x.data, n, end, patches);
        detail::gemm(false, false, rows, filters, row, patches, w.data, false, conv_out);
        if (tiled_2x2) {  // bias and ReLU applied as the pooling reads each value: one pass
          conv.with_finish(bias, [&](auto finish) {
            for (std::int64_t i = n; i < end; ++i) {
              const T* image = conv_out + (i - n) * pixels * filters;
              const std::int64_t o = i * pooled_per_image;
              MaxPool2D::pool_tiled_2x2(p, image, y.data + o, where ? where + o : nullptr, finish);
            }
          });
          continue;
        }
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
    const Pooled p = pooled(ctx);
    conv.backward_blocks(ctx, [&](std::int64_t n, std::int64_t end, T* d_out, T* d_b) {
      for (std::int64_t i = n; i < end; ++i)
        conv_output_grad(p, i, y.data, gy.data, d_out + (i - n) * p.per_image, d_b);
    });
  }

  // Tangent mode: the convolution's tangent rules on its rebuilt output and output gradient.
  template <class T, int N>
  void jvp(OpContext<T, N>& ctx) const {
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const Pooled p = pooled(ctx);
    const std::int64_t block = detail::images_per_block(p.conv);
    T* scratch = ctx.template scratch<T>(threads() * block * p.per_image);
    conv.jvp_blocks(
        ctx, [&](int part, std::int64_t) { return scratch + part * block * p.per_image; },
        [&](std::int64_t n, std::int64_t end, const T* out) {  // ẏ = ż at the maximum, masked
          for (std::int64_t i = n; i < end; ++i) {
            const T* image = out + (i - n) * p.per_image;
            for (std::int64_t o = i * p.pooled_per_image; o < (i + 1) * p.pooled_per_image; ++o)
              dy[o] = conv.relu && !(y[o] > T(0)) ? T(0) : image[argmax[o]];
          }
        });
  }
  template <class T, int N>
  void backward_jvp(OpContext<T, N>& ctx) const {
    const auto y = ctx.output();
    const auto gy = ctx.output_grad(), d_gy = ctx.output_grad_tangent();
    const Pooled p = pooled(ctx);
    conv.backward_jvp_blocks(
        ctx, [&](std::int64_t n, std::int64_t end, T* g_out, T* d_g_out, T* d_b) {
          for (std::int64_t i = n; i < end; ++i) {
            conv_output_grad<T>(p, i, y.data, gy.data, g_out + (i - n) * p.per_image, nullptr);
            conv_output_grad(p, i, y.data, d_gy.data, d_g_out + (i - n) * p.per_image, d_b);
          }
        });
  }

 private:
  struct Pooled {
    detail::Geometry2D conv, pool;  // the convolution, and the pooling window on its output
    std::int64_t filters, per_image, pooled_per_image;
    bool tiled;  // windows that tile the conv's output without overlap
  };
  template <class T, int N>
  Pooled pooled(const OpContext<T, N>& ctx) const {
    const detail::Geometry2D g = conv.geometry(ctx.input(0).shape, ctx.input(1).shape);
    const std::int64_t filters = ctx.input(1).shape[3];
    const detail::Geometry2D p = pooling(g, filters);
    return {
        g, p, filters, g.out_pixels() * filters, p.out_pixels() * filters, MaxPool2D::tiles(pool)};
  }

  // Image i's convolution output gradient, as max pooling's backward and then the ReLU's mask
  // would leave it: each pooled gradient g at its maximum's place (added, where windows overlap),
  // kept where the maximum, the pooled output y, is positive. With sums, its column sums are
  // added there (the bias gradient), in the image's order.
  template <class T>
  void conv_output_grad(const Pooled& p, std::int64_t i, const T* __restrict y,
                        const T* __restrict g, T* __restrict image, T* __restrict sums) const {
    const std::int64_t o = i * p.pooled_per_image;
    const std::int32_t* __restrict at = argmax + o;
    if (p.tiled && conv.relu) {  // each pixel written once, in order: no zeroing pass
      MaxPool2D::write_tiled<T, true>(p.pool, g + o, at, image, y + o, sums);
    } else if (p.tiled) {
      MaxPool2D::write_tiled<T>(p.pool, g + o, at, image, nullptr, sums);
    } else {
      std::fill_n(image, p.per_image, T(0));
      for (std::int64_t k = 0; k < p.pooled_per_image; ++k)
        image[at[k]] += !conv.relu || y[o + k] > T(0) ? g[o + k] : T(0);
      if (sums) add_column_sums(image, p.per_image, p.filters, sums);
    }
  }
  // The pooling window on the convolution's output, (batch, out_h, out_w, filters).
  detail::Geometry2D pooling(const detail::Geometry2D& g, std::int64_t filters) const {
    return detail::plan_window({g.batch, g.out_h, g.out_w, filters}, pool, name);
  }
  template <class T>
  static void add_column_sums(const T* __restrict rows, std::int64_t size, std::int64_t filters,
                              T* __restrict sums) {
    for (std::int64_t r = 0; r < size; r += filters)
      for (std::int64_t f = 0; f < filters; ++f) sums[f] += rows[r + f];
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
