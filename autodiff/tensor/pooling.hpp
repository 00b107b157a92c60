#pragma once
// Pooling over NHWC images (batch, height, width, channels), as Keras: max and average over a
// sliding window (pool size, strides, padding "valid" or "same"), and the global average over
// all pixels. With "same" padding the padded positions take no part: a max is over the window's
// real pixels, and an average divides by their count (TensorFlow's rule). Split over the batch
// across threads. In tangent mode (tangent.hpp) average pooling is linear (its forward and
// backward move the tangents), and max pooling routes them through the saved positions of the
// maxima.

#include <cassert>
#include <limits>

#include "autodiff/tensor/conv.hpp"

namespace autodiff {

/// The largest value in each window, per channel. Backward sends each output's gradient to the
/// input that was largest (the first one, on ties); forward keeps its position when recording.
struct MaxPool2D {
  static constexpr const char* name = "max_pool2d";
  // Tangent mode: backward routes the gradient's tangent by the saved positions of the maxima.
  static constexpr bool backward_reads_gradient_only = true;
  Window2D window;
  const std::int32_t* argmax = nullptr;  // per output element: its source within the image

  Shape output_shape(const Shape& x) const {
    const detail::Geometry2D g = detail::plan_window(x, window, name);
    if (g.in_pixels() * g.channels > std::numeric_limits<std::int32_t>::max())
      throw std::invalid_argument(
          fmt::format("max_pool2d: images of shape {} hold more than 2³¹ values each", x.str()));
    return {g.batch, g.out_h, g.out_w, g.channels};
  }
  template <class T>
  void forward(OpContext<T, 1>& ctx) {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const detail::Geometry2D g = detail::plan_window(x.shape, window, name);
    std::int32_t* where = ctx.recording() ? ctx.template scratch<std::int32_t>(y.size()) : nullptr;
    argmax = where;
    const std::int64_t c = g.channels;
    const bool tiled_2x2 = tiles_2x2(window);
    parallel_for(g.batch, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t n = first; n < last; ++n) {
        const T* image = x.data + n * g.in_pixels() * c;
        if (tiled_2x2) {
          const std::int64_t o = n * g.out_pixels() * c;
          pool_tiled_2x2(g, image, y.data + o, where ? where + o : nullptr,
                         [](T v, std::int64_t) { return v; });
          continue;
        }
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
          for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            const std::int64_t o = ((n * g.out_h + oh) * g.out_w + ow) * c;
            if (where)
              pool_window(g, oh, ow, image, y.data + o, where + o);
            else
              pool_window<T, false>(g, oh, ow, image, y.data + o, nullptr);
          }
      }
    });
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto gy = ctx.output_grad();
    bool fresh = false;  // no gradient in gx yet: each thread zeroes its own images first
    const auto gx = ctx.input_grad_to_write(0, &fresh);
    const std::int64_t per_image = gx.size() / std::max<std::int64_t>(gx.shape[0], 1);
    const std::int64_t out_per_image = gy.size() / std::max<std::int64_t>(gy.shape[0], 1);
    // Windows that tile the image without overlap (Keras's default, strides = pool size): each
    // input pixel is in one window at most, and a fresh gradient is written in one pass.
    const bool tiled = tiles(window);
    parallel_for(gy.shape[0], [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t n = first; n < last; ++n) {
        T* image = gx.data + n * per_image;
        if (fresh && tiled) {
          write_tiled(detail::plan_window(gx.shape, window, name), gy.data + n * out_per_image,
                      argmax + n * out_per_image, image);
          continue;
        }
        if (fresh) std::fill_n(image, per_image, T(0));  // an image at a time: still in cache
        for (std::int64_t o = n * out_per_image; o < (n + 1) * out_per_image; ++o)
          image[argmax[o]] += gy[o];
      }
    });
  }
  template <class T>
  void jvp(OpContext<T, 1>& ctx) const {
    const auto dx = ctx.input_tangent(0);
    const auto dy = ctx.output_tangent();
    const std::int64_t per_image = dx.size() / std::max<std::int64_t>(dx.shape[0], 1);
    const std::int64_t out_per_image = dy.size() / std::max<std::int64_t>(dy.shape[0], 1);
    parallel_for(dy.shape[0], [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t n = first; n < last; ++n)
        for (std::int64_t o = n * out_per_image; o < (n + 1) * out_per_image; ++o)
          dy[o] = dx[n * per_image + argmax[o]];
    });
  }

  /// Whether the windows tile the image without overlap: "valid", strides = pool size.
  static bool tiles(const Window2D& w) {
    return w.padding == Padding::Valid && w.stride_h == w.height && w.stride_w == w.width;
  }

  /// One image's input gradient when the windows tile it: g at each window's largest input, 0 at
  /// its other inputs and at the pixels no window covers (the last rows and columns). With
  /// kReluMask, g only where the window's maximum y is positive (a ReLU before the pooling). With
  /// sums, each value is also added to its channel's sum, in the image's order (a bias gradient),
  /// but for the zeros of pixels no window covers: sums that start at +0 stay as they would be.
  template <class T, bool kReluMask = false>
  static void write_tiled(const detail::Geometry2D& g, const T* __restrict gy,
                          const std::int32_t* __restrict at, T* __restrict image,
                          const T* __restrict y = nullptr, T* __restrict sums = nullptr) {
    if (sums)
      write_tiled_rows<T, kReluMask, true>(g, gy, at, image, y, sums);
    else
      write_tiled_rows<T, kReluMask, false>(g, gy, at, image, y, nullptr);
  }

  /// Whether the windows tile the image and are 2×2 (Keras's default): pool_tiled's case.
  static bool tiles_2x2(const Window2D& w) { return tiles(w) && w.height == 2 && w.width == 2; }

  /// All the 2×2 windows of one image, when they tile it (tiles_2x2): pool_tiled, keeping the
  /// positions of the maxima in `at` unless it is null.
  template <class T, class Finish>
  static void pool_tiled_2x2(const detail::Geometry2D& g, const T* image, T* out, std::int32_t* at,
                             Finish finish) {
    if (at)
      pool_tiled<2, 2, true>(g, image, out, at, finish);
    else
      pool_tiled<2, 2, false>(g, image, out, nullptr, finish);
  }

  /// All the windows of one image, when they tile it and are kH×kW, known at compile time: each
  /// output's maximum is found in registers, channel by channel, in one pass over the image, by
  /// the same comparisons in the same order as pool_window. finish(v, k) maps each input value of
  /// channel k first (a convolution's bias and ReLU, when the pooling is fused with it).
  template <std::int64_t kH, std::int64_t kW, bool kWhere, class T, class Finish>
  static void pool_tiled(const detail::Geometry2D& g, const T* __restrict image, T* __restrict out,
                         std::int32_t* __restrict at, Finish finish) {
    assert(g.kernel_h == kH && g.kernel_w == kW && g.stride_h == kH && g.stride_w == kW);
    const std::int64_t c = g.channels;
    for (std::int64_t oh = 0; oh < g.out_h; ++oh)
      for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
        const std::int64_t o = (oh * g.out_w + ow) * c;
        const std::int64_t corner = (oh * kH * g.in_w + ow * kW) * c;
        const T* __restrict first = image + corner;  // the window's top-left pixel
        for (std::int64_t k = 0; k < c; ++k) {
          T best = finish(first[k], k);
          std::int32_t where = 0;  // the pixel within the window, (kh·in_w + kw)·c
          for (std::int64_t j = 1; j < kH * kW; ++j) {  // (kh, kw) in order, after (0, 0)
            const std::int64_t pixel = (j / kW * g.in_w + j % kW) * c;
            const T v = finish(first[pixel + k], k);
            const bool larger = v > best;
            best = larger ? v : best;
            where = larger ? static_cast<std::int32_t>(pixel) : where;
          }
          out[o + k] = best;
          if constexpr (kWhere) at[o + k] = static_cast<std::int32_t>(corner + k) + where;
        }
      }
  }

  /// out[k] = the largest x over output (oh, ow)'s window of real pixels, channel k; and when
  /// kWhere, at[k] = its index within the image (the first one, on ties).
  template <class T, bool kWhere = true>
  static void pool_window(const detail::Geometry2D& g, std::int64_t oh, std::int64_t ow,
                          const T* __restrict image, T* __restrict out,
                          std::int32_t* __restrict at) {
    const std::int64_t c = g.channels;
    bool first = true;
    // Only the window's real pixels are visited: a huge "same" window costs what the image does.
    const auto [top, bottom] = detail::real_rows(g, oh);
    const auto [left, right] = detail::real_columns(g, ow);
    for (std::int64_t kh = top; kh < bottom; ++kh) {
      const std::int64_t ih = oh * g.stride_h - g.pad_top + kh;
      for (std::int64_t kw = left; kw < right; ++kw) {
        const std::int64_t iw = ow * g.stride_w - g.pad_left + kw;
        const std::int64_t pixel = (ih * g.in_w + iw) * c;
        const T* in = image + pixel;
        if (first) {  // every window holds at least one real pixel
          for (std::int64_t k = 0; k < c; ++k) out[k] = in[k];
          if constexpr (kWhere)
            for (std::int64_t k = 0; k < c; ++k) at[k] = static_cast<std::int32_t>(pixel + k);
          first = false;
          continue;
        }
        for (std::int64_t k = 0; k < c; ++k) {
          const bool larger = in[k] > out[k];
          out[k] = larger ? in[k] : out[k];
          if constexpr (kWhere) at[k] = larger ? static_cast<std::int32_t>(pixel + k) : at[k];
        }
      }
    }
  }

 private:
  // write_tiled's rows: a window row's kw values of channel k from one reading of its maximum's
  // place, g and y (the window's width compiled in when it is small, as Keras's 2).
  template <class T, bool kReluMask, bool kSums>
  static void write_tiled_rows(const detail::Geometry2D& g, const T* __restrict gy,
                               const std::int32_t* __restrict at, T* __restrict image,
                               const T* __restrict y, T* __restrict sums) {
    const std::int64_t c = g.channels;
    const auto c32 = static_cast<std::int32_t>(c);  // images hold < 2³¹ values (output_shape)
    detail::with_constant<4>(g.kernel_w, [&](auto kernel_w) {
      for (std::int64_t oh = 0; oh < g.out_h; ++oh)
        for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const std::int64_t ih = oh * g.stride_h + kh;
          for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            const std::int64_t o = (oh * g.out_w + ow) * c;
            const std::int64_t row_start = (ih * g.in_w + ow * g.stride_w) * c;
            T* __restrict pixels = image + row_start;
            const auto start = static_cast<std::int32_t>(row_start);  // int32: 8 lanes, not 4
            for (std::int32_t k = 0; k < c32; ++k) {
              // the maximum's place relative to this window row's first pixel, channel k
              const std::int32_t place = at[o + k] - start - k;
              bool positive = true;
              if constexpr (kReluMask) positive = y[o + k] > T(0);
              for (std::int32_t kw = 0; kw < kernel_w; ++kw) {
                const T value = positive && place == kw * c32 ? gy[o + k] : T(0);
                pixels[kw * c + k] = value;
                if constexpr (kSums) sums[k] += value;
              }
            }
          }
          const std::int64_t covered = g.out_w * g.stride_w;  // then the columns left over
          std::fill(image + (ih * g.in_w + covered) * c, image + (ih + 1) * g.in_w * c, T(0));
        }
    });
    std::fill(image + g.out_h * g.stride_h * g.in_w * c, image + g.in_pixels() * c, T(0));
  }
};

/// The mean of each window's real pixels, per channel; backward spreads g / count over them.
struct AvgPool2D {
  static constexpr const char* name = "avg_pool2d";
  static constexpr bool linear = true;
  Window2D window;

  Shape output_shape(const Shape& x) const {
    const detail::Geometry2D g = detail::plan_window(x, window, name);
    return {g.batch, g.out_h, g.out_w, g.channels};
  }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const detail::Geometry2D g = detail::plan_window(x.shape, window, name);
    const std::int64_t c = g.channels;
    parallel_for(g.batch, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t n = first; n < last; ++n)
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
          for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            T* out = y.data + ((n * g.out_h + oh) * g.out_w + ow) * c;
            std::fill_n(out, c, T(0));
            const std::int64_t count = for_each_input(g, n, oh, ow, [&](std::int64_t at) {
              for (std::int64_t k = 0; k < c; ++k) out[k] += x[at * c + k];
            });
            for (std::int64_t k = 0; k < c; ++k) out[k] /= T(count);
          }
    });
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto gy = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    const detail::Geometry2D g = detail::plan_window(gx.shape, window, name);
    const std::int64_t c = g.channels;
    parallel_for(g.batch, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t n = first; n < last; ++n)
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
          for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            const T* grad = gy.data + ((n * g.out_h + oh) * g.out_w + ow) * c;
            const T count = T(for_each_input(g, n, oh, ow, [](std::int64_t) {}));
            for_each_input(g, n, oh, ow, [&](std::int64_t at) {
              for (std::int64_t k = 0; k < c; ++k) gx[at * c + k] += grad[k] / count;
            });
          }
    });
  }

  /// f(pixel index in the batch) for each real input pixel of image n's output (oh, ow); returns
  /// how many there were.
  template <class F>
  static std::int64_t for_each_input(const detail::Geometry2D& g, std::int64_t n, std::int64_t oh,
                                     std::int64_t ow, F&& f) {
    std::int64_t count = 0;
    const auto [top, bottom] = detail::real_rows(g, oh);  // the real pixels only, as pool_window
    const auto [left, right] = detail::real_columns(g, ow);
    for (std::int64_t kh = top; kh < bottom; ++kh) {
      const std::int64_t ih = oh * g.stride_h - g.pad_top + kh;
      for (std::int64_t kw = left; kw < right; ++kw) {
        const std::int64_t iw = ow * g.stride_w - g.pad_left + kw;
        f((n * g.in_h + ih) * g.in_w + iw);
        ++count;
      }
    }
    return count;
  }
};

/// (n, h, w, c) → (n, c): the mean over all pixels; backward spreads g / (h·w) over them.
struct GlobalAvgPool2D {
  static constexpr const char* name = "global_avg_pool2d";
  static constexpr bool linear = true;
  Shape output_shape(const Shape& x) const {
    if (x.rank() != 4 || x[1] * x[2] == 0)
      throw std::invalid_argument(fmt::format(
          "global_avg_pool2d: input of shape {}, expected (batch, height, width, channels) with "
          "at least one pixel",
          x.str()));
    return {x[0], x[3]};
  }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const std::int64_t pixels = x.shape[1] * x.shape[2], c = x.shape[3];
    parallel_for(x.shape[0], [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t n = first; n < last; ++n) {
        T* out = y.data + n * c;
        std::fill_n(out, c, T(0));
        for (std::int64_t p = 0; p < pixels; ++p)
          for (std::int64_t k = 0; k < c; ++k) out[k] += x[(n * pixels + p) * c + k];
        for (std::int64_t k = 0; k < c; ++k) out[k] /= T(pixels);
      }
    });
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto gy = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    const std::int64_t pixels = gx.shape[1] * gx.shape[2], c = gx.shape[3];
    parallel_for(gx.shape[0], [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t n = first; n < last; ++n)
        for (std::int64_t p = 0; p < pixels; ++p)
          for (std::int64_t k = 0; k < c; ++k)
            gx[(n * pixels + p) * c + k] += gy[n * c + k] / T(pixels);
    });
  }
};

template <TensorElement T>
Tensor<T> max_pool2d(const Tensor<T>& x, Window2D window) {
  return apply(MaxPool2D{window}, x);
}
template <TensorElement T>
Tensor<T> avg_pool2d(const Tensor<T>& x, Window2D window) {
  return apply(AvgPool2D{window}, x);
}
template <TensorElement T>
Tensor<T> global_avg_pool2d(const Tensor<T>& x) {
  return apply(GlobalAvgPool2D{}, x);
}

}  // namespace autodiff
