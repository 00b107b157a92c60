#pragma once
// Convolution over images in NHWC layout (batch, height, width, channels), as Keras lays them
// out, lowered to the BLAS GEMM of linalg.hpp by im2col: each output pixel's receptive field
// becomes one row of a patch matrix P, (pixels, kh·kw·c), and the convolution is P·W with the
// kernel W seen as (kh·kw·c, filters) — Keras's (kh, kw, c, filters) kernel, row-major, is exactly
// that matrix. Backward: dW += Pᵀ·dY, db += Σ dY, and dP = dY·Wᵀ scattered back onto the input
// (col2im).
//
// The batch is split across threads (parallel.hpp), and each thread walks its images a few at a
// time, so that a block's patch rows stay in cache between im2col and its GEMMs. The patches are
// not kept for backward: it rebuilds them block by block (a copy, cheaper than storing and
// re-reading 18 MB per step). Scratch comes from the tape's arena; nothing is heap-allocated.
//
// Tangent mode (tangent.hpp): conv(x, w) is bilinear, so its tangent is conv(ẋ, w) + conv(x, ẇ)
// + ḃ through the same lowering, and backward's products gain their tangents' products
// (the ReLU's mask does not move).

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/parallel.hpp"
#include "autodiff/tensor/linalg.hpp"
#include "autodiff/tensor/op.hpp"

namespace autodiff {

/// Keras's padding: "valid" (no padding: out = ⌊(in − k)/s⌋ + 1) or "same" (out = ⌈in/s⌉, the
/// input padded with zeros, the odd one at the bottom and right).
enum class Padding : std::uint8_t { Valid, Same };
const char* to_string(Padding padding);

/// A 2-D sliding window: kernel (or pool) size and strides, and the padding rule.
struct Window2D {
  std::int64_t height = 1, width = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  Padding padding = Padding::Valid;
};

namespace detail {

/// Where a window lands along one axis: the output length, and the padding before the input.
struct AxisPlan {
  std::int64_t out = 0, pad_before = 0;
};
AxisPlan plan_axis(std::int64_t in, std::int64_t kernel, std::int64_t stride, Padding padding,
                   const char* op, const char* axis);

/// The geometry of a windowed op on an NHWC input: the input (n, h, w, c), the window, the output
/// (out_h, out_w), and the padding at the top and left.
struct Geometry2D {
  std::int64_t batch, in_h, in_w, channels;
  std::int64_t kernel_h, kernel_w, stride_h, stride_w;
  std::int64_t out_h, out_w, pad_top, pad_left;
  std::int64_t in_pixels() const { return in_h * in_w; }
  std::int64_t out_pixels() const { return out_h * out_w; }
};
/// Checks that x is (n, h, w, c) and that the window fits it (naming the op).
Geometry2D plan_window(const Shape& x, const Window2D& window, const char* op);

/// The kernel columns [begin, end) of output column ow that fall on real input pixels.
struct KernelSpan {
  std::int64_t begin, end;
};
inline KernelSpan real_columns(const Geometry2D& g, std::int64_t ow) {
  const std::int64_t left = ow * g.stride_w - g.pad_left;  // input column of kernel column 0
  return {std::clamp<std::int64_t>(-left, 0, g.kernel_w),
          std::clamp<std::int64_t>(g.in_w - left, 0, g.kernel_w)};
}

/// The kernel rows [begin, end) of output row oh that fall on real input rows.
inline KernelSpan real_rows(const Geometry2D& g, std::int64_t oh) {
  const std::int64_t top = oh * g.stride_h - g.pad_top;  // input row of kernel row 0
  return {std::clamp<std::int64_t>(-top, 0, g.kernel_h),
          std::clamp<std::int64_t>(g.in_h - top, 0, g.kernel_h)};
}

/// count values from `from` to `to` (not overlapping), inline: a patch row's pieces are short
/// (a 3×3 kernel: 3·c values), and a call to the library's memcpy (which GCC makes of a plain
/// copy loop) costs more than they do. Whole 64-byte chunks, then one last chunk that may overlap
/// the one before (the same values written twice). Under one chunk: the largest power of two
/// `size` ≤ count, copied at the start and at the end (together they cover all count values).
/// With a count known at compile time (im2col's small rows), the branches fold away.
template <class T, class Count>
inline void copy_values(const T* __restrict from, T* __restrict to, Count count) {
  static_assert(64 % sizeof(T) == 0, "whole elements in a 64-byte chunk");
  const auto copy_bytes = [&](std::int64_t at, std::size_t bytes) {
    std::memcpy(to + at, from + at, bytes);  // a fixed size: one or two vector moves
  };
  constexpr std::int64_t kChunk = 64 / sizeof(T);
  if (count >= kChunk) {
    for (std::int64_t i = 0; i + kChunk <= count; i += kChunk) copy_bytes(i, 64);
    if (count % kChunk != 0) copy_bytes(count - kChunk, 64);
    return;
  }
  for (std::int64_t size = kChunk / 2; size >= 1; size /= 2)
    if (count >= size) {
      copy_bytes(0, size * sizeof(T));
      copy_bytes(count - size, size * sizeof(T));
      return;
    }
}

/// f(std::integral_constant<std::int64_t, value>{}) when 1 ≤ value ≤ kMax, else f(value): a loop
/// written once, compiled for small constant sizes too.
template <std::int64_t kMax, class F>
inline void with_constant(std::int64_t value, F&& f) {
  if constexpr (kMax == 0)
    f(value);
  else if (value == kMax)
    f(std::integral_constant<std::int64_t, kMax>{});
  else
    with_constant<kMax - 1>(value, f);
}

/// Patch rows of images [first, last) of x (NHWC) into p: one row of kh·kw·c values per output
/// pixel, (kh, kw, c) in order, zeros where the window hangs over the padding. In NHWC the kw·c
/// values of one kernel row are contiguous in the input: each is one copy.
template <class T>
void im2col(const Geometry2D& g, const T* x, std::int64_t first, std::int64_t last, T* p) {
  const std::int64_t c = g.channels, kernel_row = g.kernel_w * c, row = g.kernel_h * kernel_row;
  const bool inside = g.pad_top == 0 && g.pad_left == 0 &&
                      (g.out_h - 1) * g.stride_h + g.kernel_h <= g.in_h &&
                      (g.out_w - 1) * g.stride_w + g.kernel_w <= g.in_w;
  if (inside) {  // every window on real pixels ("valid" padding): copies only
    with_constant<64 / sizeof(T) - 1>(kernel_row, [&](auto count) {
      for (std::int64_t n = first; n < last; ++n) {
        const T* image = x + n * g.in_pixels() * c;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
          for (std::int64_t ow = 0; ow < g.out_w; ++ow, p += row) {
            const T* in = image + (oh * g.stride_h * g.in_w + ow * g.stride_w) * c;
            for (std::int64_t kh = 0; kh < g.kernel_h; ++kh)
              copy_values(in + kh * g.in_w * c, p + kh * count, count);
          }
      }
    });
    return;
  }
  for (std::int64_t n = first; n < last; ++n) {
    const T* image = x + n * g.in_pixels() * c;
    for (std::int64_t oh = 0; oh < g.out_h; ++oh)
      for (std::int64_t ow = 0; ow < g.out_w; ++ow, p += row) {
        const auto [begin, end] = real_columns(g, ow);
        const std::int64_t left = ow * g.stride_w - g.pad_left;
        for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
          T* out = p + kh * kernel_row;
          const std::int64_t ih = oh * g.stride_h - g.pad_top + kh;
          if (ih < 0 || ih >= g.in_h || begin >= end) {
            std::fill_n(out, kernel_row, T(0));
            continue;
          }
          const T* in = image + (ih * g.in_w + left) * c;
          std::fill_n(out, begin * c, T(0));
          copy_values(in + begin * c, out + begin * c, (end - begin) * c);
          std::fill_n(out + end * c, (g.kernel_w - end) * c, T(0));
        }
      }
  }
}

/// The reverse of im2col: adds each patch row of images [first, last) back onto gx.
template <class T>
void col2im_add(const Geometry2D& g, const T* p, std::int64_t first, std::int64_t last, T* gx) {
  const std::int64_t c = g.channels, kernel_row = g.kernel_w * c, row = g.kernel_h * kernel_row;
  for (std::int64_t n = first; n < last; ++n) {
    T* image = gx + n * g.in_pixels() * c;
    for (std::int64_t oh = 0; oh < g.out_h; ++oh)
      for (std::int64_t ow = 0; ow < g.out_w; ++ow, p += row) {
        const auto [begin, end] = real_columns(g, ow);
        const std::int64_t left = ow * g.stride_w - g.pad_left;
        for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const std::int64_t ih = oh * g.stride_h - g.pad_top + kh;
          if (ih < 0 || ih >= g.in_h) continue;
          const T* __restrict in = p + kh * kernel_row + begin * c;
          T* __restrict target = image + (ih * g.in_w + left + begin) * c;
          for (std::int64_t i = 0; i < (end - begin) * c; ++i) target[i] += in[i];
        }
      }
  }
}

/// Images per block: enough patch rows for an efficient GEMM, few enough to stay in cache.
inline std::int64_t images_per_block(const Geometry2D& g) {
  constexpr std::int64_t kBlockRows = 512;
  return std::max<std::int64_t>(1, kBlockRows / std::max<std::int64_t>(1, g.out_pixels()));
}

}  // namespace detail

/// y = act(conv(x, w) + b) on NHWC images: x (n, h, w, c), w (kh, kw, c, filters), b (filters,)
/// (optional: two inputs mean no bias), y (n, out_h, out_w, filters). `relu` fuses the ReLU that
/// Keras's Conv2D(…, activation="relu") applies (its backward then masks by y > 0).
struct Conv2D {
  static constexpr const char* name = "conv2d";
  std::int64_t stride_h = 1, stride_w = 1;
  Padding padding = Padding::Valid;
  bool relu = false;

  detail::Geometry2D geometry(const Shape& x, const Shape& w) const;
  Shape output_shape(const Shape& x, const Shape& w) const;
  Shape output_shape(const Shape& x, const Shape& w, const Shape& b) const;

  template <class T, int N>
  void forward(OpContext<T, N>& ctx) const {
    const auto x = ctx.input(0), w = ctx.input(1);
    const T* bias = N == 3 ? ctx.input(N - 1).data : nullptr;
    const auto y = ctx.output();
    const detail::Geometry2D g = geometry(x.shape, w.shape);
    const std::int64_t filters = w.shape[3], row = g.kernel_h * g.kernel_w * g.channels;
    const std::int64_t block = detail::images_per_block(g), pixels = g.out_pixels();
    T* patches = ctx.template scratch<T>(threads() * block * pixels * row);
    parallel_parts(g.batch, [&](int part, std::int64_t first, std::int64_t last) {
      T* mine = patches + part * block * pixels * row;
      for (std::int64_t n = first; n < last; n += block) {
        const std::int64_t end = std::min(last, n + block), rows = (end - n) * pixels;
        detail::im2col(g, x.data, n, end, mine);
        T* out = y.data + n * pixels * filters;
        detail::gemm(false, false, rows, filters, row, mine, w.data, false, out);
        finish_rows(out, rows, filters, bias);
      }
    });
  }

  template <class T, int N>
  void backward(OpContext<T, N>& ctx) const {
    const auto y = ctx.output();
    const auto gy = ctx.output_grad();
    const std::int64_t filters = ctx.input(1).shape[3];
    const std::int64_t pixels = geometry(ctx.input(0).shape, ctx.input(1).shape).out_pixels();
    backward_blocks(ctx, [&](std::int64_t n, std::int64_t end, T* d_out, T* d_b) {
      mask_rows(gy.data + n * pixels * filters, y.data + n * pixels * filters, (end - n) * pixels,
                filters, d_out, d_b);
    });
  }

  /// The backward pass of images [n, end) at a time, given `output_grad(n, end, d_out, d_b)`,
  /// which writes their output gradient (after the activation's mask) into d_out, (rows, filters),
  /// and adds its column sums to d_b. Conv2D reads it off its own output; a fused op after it
  /// (conv_pool.hpp) makes it from its own.
  template <class T, int N, class OutputGrad>
  void backward_blocks(OpContext<T, N>& ctx, OutputGrad&& output_grad) const {
    const auto x = ctx.input(0), w = ctx.input(1);
    bool fresh = false;  // no gradient in gx yet: each block zeroes its own images first
    const auto gx = ctx.input_grad_to_write(0, &fresh);
    const auto gw = ctx.input_grad(1);
    const TensorView<T> gb = N == 3 ? ctx.input_grad(N - 1) : TensorView<T>{};
    const detail::Geometry2D g = geometry(x.shape, w.shape);
    const std::int64_t filters = w.shape[3], row = g.kernel_h * g.kernel_w * g.channels;
    const std::int64_t block = detail::images_per_block(g), pixels = g.out_pixels();
    const std::int64_t slots = threads(), block_rows = block * pixels;
    // Per thread: a block of patches, of their gradient, of the output's gradient after the ReLU
    // mask, and its own sums for dW and db (added up in thread order at the end).
    const std::int64_t per_slot =
        block_rows * row * 2 + block_rows * filters + row * filters + filters;
    T* scratch = ctx.template scratch<T>(slots * per_slot);
    const std::int64_t sums_at = block_rows * row * 2 + block_rows * filters;
    for (std::int64_t s = 0; s < slots; ++s)
      std::fill_n(scratch + s * per_slot + sums_at, row * filters + filters, T(0));
    parallel_parts(g.batch, [&](int part, std::int64_t first, std::int64_t last) {
      T* patches = scratch + part * per_slot;
      T* d_patches = patches + block_rows * row;
      T* d_out = d_patches + block_rows * row;
      T* d_w = d_out + block_rows * filters;
      T* d_b = d_w + row * filters;
      for (std::int64_t n = first; n < last; n += block) {
        const std::int64_t end = std::min(last, n + block), rows = (end - n) * pixels;
        output_grad(n, end, d_out, d_b);
        if (gw) {
          detail::im2col(g, x.data, n, end, patches);
          detail::gemm(true, false, row, filters, rows, patches, d_out, true, d_w);
        }
        if (gx) {
          detail::gemm(false, true, rows, row, filters, d_out, w.data, false, d_patches);
          if (fresh)
            std::fill_n(gx.data + n * g.in_pixels() * g.channels,
                        (end - n) * g.in_pixels() * g.channels, T(0));
          detail::col2im_add(g, d_patches, n, end, gx.data);
        }
      }
    });
    for (std::int64_t s = 0; s < slots; ++s) {
      const T* d_w = scratch + s * per_slot + sums_at;
      if (gw)
        for (std::int64_t i = 0; i < row * filters; ++i) gw[i] += d_w[i];
      if (gb)
        for (std::int64_t f = 0; f < filters; ++f) gb[f] += d_w[row * filters + f];
    }
  }

  template <class T, int N>
  void jvp(OpContext<T, N>& ctx) const {
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const std::int64_t filters = ctx.input(1).shape[3];
    const std::int64_t pixels = geometry(ctx.input(0).shape, ctx.input(1).shape).out_pixels();
    jvp_blocks(
        ctx, [&](int, std::int64_t n) { return dy.data + n * pixels * filters; },
        [&](std::int64_t n, std::int64_t end, T* out) {  // the ReLU's mask
          if (!relu) return;
          const T* y_rows = y.data + n * pixels * filters;
          for (std::int64_t i = 0; i < (end - n) * pixels * filters; ++i)
            if (!(y_rows[i] > T(0))) out[i] = T(0);
        });
  }

  /// The tangent of the convolution before its activation, ż = conv(ẋ, w) + conv(x, ẇ) + ḃ, of
  /// images [n, end) at a time: into the rows `target(part, n)` points to, which
  /// `finish(n, end, rows)` then completes. Conv2D's rows are its output's tangent; a fused op
  /// after it (conv_pool.hpp) pools them from a scratch of its own.
  template <class T, int N, class Target, class Finish>
  void jvp_blocks(OpContext<T, N>& ctx, Target&& target, Finish&& finish) const {
    const auto x = ctx.input(0), w = ctx.input(1);
    const auto dx = ctx.input_tangent(0), dw = ctx.input_tangent(1);
    const T* d_bias = N == 3 ? ctx.input_tangent(N - 1).data : nullptr;
    const detail::Geometry2D g = geometry(x.shape, w.shape);
    const std::int64_t filters = w.shape[3], row = g.kernel_h * g.kernel_w * g.channels;
    const std::int64_t block = detail::images_per_block(g), pixels = g.out_pixels();
    T* patches = ctx.template scratch<T>(threads() * block * pixels * row);
    parallel_parts(g.batch, [&](int part, std::int64_t first, std::int64_t last) {
      T* mine = patches + part * block * pixels * row;
      for (std::int64_t n = first; n < last; n += block) {
        const std::int64_t end = std::min(last, n + block), rows = (end - n) * pixels;
        T* out = target(part, n);
        if (dw) {  // conv(x, ẇ)
          detail::im2col(g, x.data, n, end, mine);
          detail::gemm(false, false, rows, filters, row, mine, dw.data, false, out);
        }
        if (dx) {  // conv(ẋ, w)
          detail::im2col(g, dx.data, n, end, mine);
          detail::gemm(false, false, rows, filters, row, mine, w.data, bool(dw), out);
        }
        if (!dw && !dx) std::fill_n(out, rows * filters, T(0));
        if (d_bias)
          for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t f = 0; f < filters; ++f) out[r * filters + f] += d_bias[f];
        finish(n, end, out);
      }
    });
  }

  template <class T, int N>
  void backward_jvp(OpContext<T, N>& ctx) const {
    const auto y = ctx.output();
    const auto gy = ctx.output_grad(), d_gy = ctx.output_grad_tangent();
    const std::int64_t filters = ctx.input(1).shape[3];
    const std::int64_t pixels = geometry(ctx.input(0).shape, ctx.input(1).shape).out_pixels();
    backward_jvp_blocks(ctx, [&](std::int64_t n, std::int64_t end, T* g_out, T* d_g_out, T* d_b) {
      const std::int64_t at = n * pixels * filters;
      for (std::int64_t r = 0; r < (end - n) * pixels; ++r)  // the ReLU's mask, (db)˙'s sums
        for (std::int64_t f = 0; f < filters; ++f) {
          const std::int64_t i = r * filters + f;
          const bool pass = !relu || y[at + i] > T(0);
          g_out[i] = pass ? gy[at + i] : T(0);
          d_g_out[i] = pass ? d_gy[at + i] : T(0);
          d_b[f] += d_g_out[i];
        }
    });
  }

  /// backward_jvp of images [n, end) at a time, given `output_grads(n, end, g_out, d_g_out, d_b)`,
  /// which writes their output gradient and its tangent (after the activation's mask) into g_out
  /// and d_g_out, (rows, filters), and adds d_g_out's column sums to d_b.
  template <class T, int N, class OutputGrads>
  void backward_jvp_blocks(OpContext<T, N>& ctx, OutputGrads&& output_grads) const {
    const auto x = ctx.input(0), w = ctx.input(1);
    const auto dx = ctx.input_tangent(0), dw = ctx.input_tangent(1);
    const auto d_gx = ctx.input_grad_tangent(0), d_gw = ctx.input_grad_tangent(1);
    const TensorView<T> d_gb = N == 3 ? ctx.input_grad_tangent(N - 1) : TensorView<T>{};
    const detail::Geometry2D g = geometry(x.shape, w.shape);
    const std::int64_t filters = w.shape[3], row = g.kernel_h * g.kernel_w * g.channels;
    const std::int64_t block = detail::images_per_block(g), pixels = g.out_pixels();
    const std::int64_t slots = threads(), block_rows = block * pixels;
    // Per thread: patches, their gradient's tangent, the output gradient and its tangent after
    // the ReLU's mask, and its own sums for (dW)˙ and (db)˙.
    const std::int64_t per_slot =
        block_rows * row * 2 + block_rows * filters * 2 + row * filters + filters;
    T* scratch = ctx.template scratch<T>(slots * per_slot);
    const std::int64_t sums_at = block_rows * row * 2 + block_rows * filters * 2;
    for (std::int64_t s = 0; s < slots; ++s)
      std::fill_n(scratch + s * per_slot + sums_at, row * filters + filters, T(0));
    parallel_parts(g.batch, [&](int part, std::int64_t first, std::int64_t last) {
      T* patches = scratch + part * per_slot;
      T* d_patches = patches + block_rows * row;
      T* g_out = d_patches + block_rows * row;
      T* d_g_out = g_out + block_rows * filters;
      T* d_w = d_g_out + block_rows * filters;
      T* d_b = d_w + row * filters;
      for (std::int64_t n = first; n < last; n += block) {
        const std::int64_t end = std::min(last, n + block), rows = (end - n) * pixels;
        output_grads(n, end, g_out, d_g_out, d_b);
        if (d_gw) {  // (dW)˙ += Pᵀ·(dY)˙ + Ṗᵀ·dY
          detail::im2col(g, x.data, n, end, patches);
          detail::gemm(true, false, row, filters, rows, patches, d_g_out, true, d_w);
          if (dx) {
            detail::im2col(g, dx.data, n, end, patches);
            detail::gemm(true, false, row, filters, rows, patches, g_out, true, d_w);
          }
        }
        if (d_gx) {  // (dX)˙ += col2im((dY)˙·Wᵀ + dY·Ẇᵀ)
          detail::gemm(false, true, rows, row, filters, d_g_out, w.data, false, d_patches);
          if (dw) detail::gemm(false, true, rows, row, filters, g_out, dw.data, true, d_patches);
          detail::col2im_add(g, d_patches, n, end, d_gx.data);
        }
      }
    });
    for (std::int64_t s = 0; s < slots; ++s) {
      const T* d_w = scratch + s * per_slot + sums_at;
      if (d_gw)
        for (std::int64_t i = 0; i < row * filters; ++i) d_gw[i] += d_w[i];
      if (d_gb)
        for (std::int64_t f = 0; f < filters; ++f) d_gb[f] += d_w[row * filters + f];
    }
  }

  // The output's gradient after the ReLU's mask (zero where y ≤ 0) into d_out, and db's sums.
  template <class T>
  void mask_rows(const T* __restrict g_rows, const T* __restrict y_rows, std::int64_t rows,
                 std::int64_t filters, T* __restrict d_out, T* __restrict d_b) const {
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t at = r * filters;
      for (std::int64_t f = 0; f < filters; ++f) {
        const T v = relu && !(y_rows[at + f] > T(0)) ? T(0) : g_rows[at + f];
        d_out[at + f] = v;
        d_b[f] += v;
      }
    }
  }
  /// Calls f(finish), where finish(v, k) is the output value of filter k whose product sum is v:
  /// the ReLU of v + bias[k] (as finish_rows makes it), for kernels that finish values as they
  /// read them. Its shape is fixed at compile time: without bias or ReLU it does nothing.
  template <class T, class F>
  void with_finish(const T* bias, F&& f) const {
    const auto with_relu = [&](auto add_bias) {
      if (relu)
        f([add_bias](T v, std::int64_t k) { return std::max(add_bias(v, k), T(0)); });
      else
        f(add_bias);
    };
    if (bias)
      with_relu([bias](T v, std::int64_t k) { return v + bias[k]; });
    else
      with_relu([](T v, std::int64_t) { return v; });
  }
  template <class T>
  void finish_rows(T* __restrict out, std::int64_t rows, std::int64_t filters,
                   const T* __restrict bias) const {
    for (std::int64_t r = 0; r < rows; ++r, out += filters) {
      if (bias)
        for (std::int64_t f = 0; f < filters; ++f) out[f] += bias[f];
      if (relu)
        for (std::int64_t f = 0; f < filters; ++f) out[f] = std::max(out[f], T(0));
    }
  }
};

/// Keras's Conv2D: x (n, h, w, c) ⋆ kernel (kh, kw, c, filters) + bias (filters,).
template <TensorElement T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& kernel, const Tensor<T>& bias,
                 std::int64_t stride_h = 1, std::int64_t stride_w = 1,
                 Padding padding = Padding::Valid, bool relu = false) {
  return apply(Conv2D{stride_h, stride_w, padding, relu}, x, kernel, bias);
}
/// Without bias.
template <TensorElement T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& kernel, std::int64_t stride_h = 1,
                 std::int64_t stride_w = 1, Padding padding = Padding::Valid, bool relu = false) {
  return apply(Conv2D{stride_h, stride_w, padding, relu}, x, kernel);
}

}  // namespace autodiff
