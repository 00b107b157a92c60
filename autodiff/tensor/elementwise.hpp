#pragma once
// Elementwise tensor ops. Their values and derivatives are the scalar table's (ops.hpp): Map
// applies a unary entry, ZipWith a binary one with NumPy broadcasting, and WithNumber a binary one
// with a plain number on one side (a number is never recorded). A user's elementwise struct goes
// through the same three: elementwise<MyOp>(tensor).
//
// Tangent mode (tangent.hpp): ẏ = f′·ẋ, and backward's g·f′ gains g·(f′)˙, the derivative's own
// tangent, found by evaluating the table's derivative on Dual numbers (dual.hpp), as the scalar
// second-order tape does: no second derivative is written anywhere. A user's entry joins in by
// saying its derivative is generic code that runs on Duals: `static constexpr bool
// twice_differentiable = true;` (call exp, fabs, … unqualified).

#include <functional>
#include <type_traits>

#include "autodiff/dual.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/parallel.hpp"
#include "autodiff/tensor/op.hpp"

namespace autodiff {

/// A plain number beside a tensor: converted to the tensor's element type, never recorded.
template <class N>
concept Number = std::is_arithmetic_v<N>;

namespace detail {

template <class F, class... Table>
inline constexpr bool is_one_of = (std::is_same_v<F, Table> || ...);
/// Whether an elementwise entry's derivatives run on Dual numbers, for tangent mode: the op
/// table's do; a user's entry says so with `static constexpr bool twice_differentiable = true`.
template <class F>
inline constexpr bool kTwiceDifferentiable =
    is_one_of<F, op::Add, op::Subtract, op::Multiply, op::Divide, op::Power, op::Minimum,
              op::Maximum, op::Negate, op::Square, op::Exp, op::Log, op::Log1p, op::Sqrt, op::Sin,
              op::Cos, op::Tan, op::Tanh, op::Sigmoid, op::Relu, op::Abs, op::Softplus,
              op::LeakyRelu, op::Clamp> ||
    requires {
  requires F::twice_differentiable;
};

/// The value's tangent where there is one, else 0: a Dual for the derivative's own tangent.
template <class T>
Dual<T> dual_at(const T* values, const T* tangents, std::int64_t i) {
  return Dual<T>(values[i], tangents ? tangents[i] : T(0));
}

/// For each output element of a broadcast, the index into each of K inputs.
template <int K>
struct Broadcast {
  std::int64_t dims[Shape::kMaxRank];
  std::int64_t strides[K][Shape::kMaxRank];  // 0 along a broadcast dimension
  bool same_shape = true;
  std::int64_t size;

  Broadcast(const Shape& out, std::array<Shape, K> in) : size(out.size()) {
    for (int i = 0; i < Shape::kMaxRank; ++i) {
      const int axis = out.rank() - Shape::kMaxRank + i;
      dims[i] = axis >= 0 ? out[axis] : 1;
    }
    for (int k = 0; k < K; ++k) {
      same_shape = same_shape && in[k] == out;
      std::int64_t stride = 1;
      for (int i = Shape::kMaxRank - 1; i >= 0; --i) {
        const int in_axis = in[k].rank() - Shape::kMaxRank + i;
        const std::int64_t dim = in_axis >= 0 ? in[k][in_axis] : 1;
        strides[k][i] = (dim == 1 && dims[i] != 1) ? 0 : stride;
        stride *= dim;
      }
    }
  }

  /// f(output index, input indices…) for every output element, in order.
  template <class F>
  void for_each(F&& f) const {
    if (same_shape) {
      for (std::int64_t o = 0; o < size; ++o) call(f, o, o);
      return;
    }
    std::int64_t o = 0;
    for (std::int64_t i0 = 0; i0 < dims[0]; ++i0)
      for (std::int64_t i1 = 0; i1 < dims[1]; ++i1)
        for (std::int64_t i2 = 0; i2 < dims[2]; ++i2)
          for (std::int64_t i3 = 0; i3 < dims[3]; ++i3, ++o) {
            std::int64_t at[K];
            for (int k = 0; k < K; ++k)
              at[k] =
                  i0 * strides[k][0] + i1 * strides[k][1] + i2 * strides[k][2] + i3 * strides[k][3];
            if constexpr (K == 2)
              f(o, at[0], at[1]);
            else
              f(o, at[0], at[1], at[2]);
          }
  }

 private:
  template <class F>
  static void call(F& f, std::int64_t o, std::int64_t i) {
    if constexpr (K == 2)
      f(o, i, i);
    else
      f(o, i, i, i);
  }
};

}  // namespace detail

namespace detail {
/// Elementwise loops split over the pool (parallel.hpp) from this many elements on: below it,
/// waking a second thread costs more than the loop.
inline constexpr std::int64_t kElementwiseGrain = 32'768;

/// f(begin, end) over [0, count), on the pool when count is large.
template <class F>
void elementwise_for(std::int64_t count, F&& f) {
  if (count < 2 * kElementwiseGrain)
    f(std::int64_t{0}, count);
  else
    parallel_for(count, f, kElementwiseGrain);
}

/// When `in` repeats along the leading axes of `out` (a bias row: in's shape, leading 1s aside,
/// is out's last dimensions), its size; otherwise 0.
inline std::int64_t row_period(const Shape& out, const Shape& in) {
  int rank = in.rank(), first = 0;
  while (first < rank && in[first] == 1) ++first;
  if (rank - first > out.rank() || in.size() == 0) return 0;
  for (int i = first; i < rank; ++i)
    if (in[i] != out[out.rank() - rank + i]) return 0;
  return in.size();
}
}  // namespace detail

/// y = f(x) for each element; dx += g · f′(x, y).
template <class F>
struct Map {
  const char* name = "elementwise";
  [[no_unique_address]] F f{};
  Shape output_shape(const Shape& x) const { return x; }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const T* __restrict x = ctx.input(0).data;
    T* __restrict y = ctx.output().data;
    detail::elementwise_for(ctx.output().size(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) y[i] = f.value(x[i]);
    });
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const T* __restrict x = ctx.input(0).data;
    const T* __restrict y = ctx.output().data;
    const T* __restrict g = ctx.output_grad().data;
    T* __restrict gx = ctx.input_grad(0).data;
    detail::elementwise_for(ctx.output().size(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) gx[i] += g[i] * f.derivative(x[i], y[i]);
    });
  }
  // Tangent mode: ẏ = f′·ẋ; ġx += ġ·f′ + g·(f′)˙, with (f′)˙ from f′ on Duals.
  template <class T>
  void jvp(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0), dx = ctx.input_tangent(0);
    const auto y = ctx.output(), dy = ctx.output_tangent();
    for (std::int64_t i = 0; i < y.size(); ++i)
      dy[i] = dx[i] == T(0) ? T(0) : f.derivative(x[i], y[i]) * dx[i];
  }
  template <class T>
  void backward_jvp(OpContext<T, 1>& ctx) const requires detail::kTwiceDifferentiable<F> {
    const auto x = ctx.input(0), dx = ctx.input_tangent(0);
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const auto g = ctx.output_grad(), dg = ctx.output_grad_tangent();
    const auto d_gx = ctx.input_grad_tangent(0);
    for (std::int64_t i = 0; i < y.size(); ++i) {
      T term = dg[i] == T(0) ? T(0) : dg[i] * f.derivative(x[i], y[i]);
      if (dx && dx[i] != T(0))
        term += g[i] * f.derivative(detail::dual_at(x.data, dx.data, i),
                                    detail::dual_at(y.data, dy.data, i))
                           .tangent;
      d_gx[i] += term;
    }
  }
};

/// y = f(a, b) with broadcasting; da += g · ∂f/∂a, db += g · ∂f/∂b (summed over broadcasts).
template <class F>
struct ZipWith {
  const char* name = "elementwise";
  [[no_unique_address]] F f{};
  Shape output_shape(const Shape& a, const Shape& b) const { return broadcast_shapes(a, b, name); }
  template <class T>
  void forward(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto y = ctx.output();
    const T* __restrict pa = a.data;
    const T* __restrict pb = b.data;
    T* __restrict py = y.data;
    if (a.shape == y.shape && b.shape == y.shape) {
      detail::elementwise_for(y.size(), [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) py[i] = f.value(pa[i], pb[i]);
      });
      return;
    }
    if (const std::int64_t width = a.shape == y.shape ? detail::row_period(y.shape, b.shape) : 0) {
      for (std::int64_t at = 0; at < y.size(); at += width)  // a bias added to each row
        for (std::int64_t j = 0; j < width; ++j) py[at + j] = f.value(pa[at + j], pb[j]);
      return;
    }
    detail::Broadcast<2>(y.shape, {a.shape, b.shape})
        .for_each(
            [&](std::int64_t o, std::int64_t i, std::int64_t j) { y[o] = f.value(a[i], b[j]); });
  }
  template <class T>
  void backward(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto y = ctx.output();
    const auto g = ctx.output_grad();
    const auto ga = ctx.input_grad(0), gb = ctx.input_grad(1);
    const T* __restrict pa = a.data;
    const T* __restrict pb = b.data;
    const T* __restrict py = y.data;
    const T* __restrict pg = g.data;
    // a and b may be one tensor (x * x): then ga and gb are one buffer, so each loop has its own
    // restrict-qualified pointer, in its own block.
    if (a.shape == y.shape && b.shape == y.shape) {
      detail::elementwise_for(y.size(), [&](std::int64_t begin, std::int64_t end) {
        if (ga) {
          T* __restrict out = ga.data;
          for (std::int64_t i = begin; i < end; ++i)
            out[i] += pg[i] * f.d_left(pa[i], pb[i], py[i]);
        }
        if (gb) {
          T* __restrict out = gb.data;
          for (std::int64_t i = begin; i < end; ++i)
            out[i] += pg[i] * f.d_right(pa[i], pb[i], py[i]);
        }
      });
      return;
    }
    if (const std::int64_t width = a.shape == y.shape ? detail::row_period(y.shape, b.shape) : 0) {
      if (ga) {
        T* __restrict out = ga.data;
        for (std::int64_t at = 0; at < y.size(); at += width)
          for (std::int64_t j = 0; j < width; ++j)
            out[at + j] += pg[at + j] * f.d_left(pa[at + j], pb[j], py[at + j]);
      }
      if (gb) {  // summed over the rows in order, as the general path does
        T* __restrict out = gb.data;
        for (std::int64_t at = 0; at < y.size(); at += width)
          for (std::int64_t j = 0; j < width; ++j)
            out[j] += pg[at + j] * f.d_right(pa[at + j], pb[j], py[at + j]);
      }
      return;
    }
    const detail::Broadcast<2> plan(y.shape, {a.shape, b.shape});
    if (ga)
      plan.for_each([&](std::int64_t o, std::int64_t i, std::int64_t j) {
        ga[i] += g[o] * f.d_left(a[i], b[j], y[o]);
      });
    if (gb)
      plan.for_each([&](std::int64_t o, std::int64_t i, std::int64_t j) {
        gb[j] += g[o] * f.d_right(a[i], b[j], y[o]);
      });
  }
  // Tangent mode: ẏ = ∂f/∂a·ȧ + ∂f/∂b·ḃ; ġa += ġ·∂f/∂a + g·(∂f/∂a)˙, and likewise for b.
  template <class T>
  void jvp(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1), da = ctx.input_tangent(0),
               db = ctx.input_tangent(1);
    const auto y = ctx.output(), dy = ctx.output_tangent();
    detail::Broadcast<2>(y.shape, {a.shape, b.shape})
        .for_each([&](std::int64_t o, std::int64_t i, std::int64_t j) {
          T d = 0;
          if (da && da[i] != T(0)) d += f.d_left(a[i], b[j], y[o]) * da[i];
          if (db && db[j] != T(0)) d += f.d_right(a[i], b[j], y[o]) * db[j];
          dy[o] = d;
        });
  }
  template <class T>
  void backward_jvp(OpContext<T, 2>& ctx) const requires detail::kTwiceDifferentiable<F> {
    const auto a = ctx.input(0), b = ctx.input(1), da = ctx.input_tangent(0),
               db = ctx.input_tangent(1);
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const auto g = ctx.output_grad(), dg = ctx.output_grad_tangent();
    const auto d_ga = ctx.input_grad_tangent(0), d_gb = ctx.input_grad_tangent(1);
    const bool moves = da || db;  // otherwise the derivatives stay put
    detail::Broadcast<2>(y.shape, {a.shape, b.shape})
        .for_each([&](std::int64_t o, std::int64_t i, std::int64_t j) {
          if (d_ga) d_ga[i] += dg[o] * f.d_left(a[i], b[j], y[o]);
          if (d_gb) d_gb[j] += dg[o] * f.d_right(a[i], b[j], y[o]);
          if (!moves || g[o] == T(0)) return;
          const Dual<T> ad = detail::dual_at(a.data, da.data, i),
                        bd = detail::dual_at(b.data, db.data, j),
                        yd = detail::dual_at(y.data, dy.data, o);
          if (d_ga) d_ga[i] += g[o] * f.d_left(ad, bd, yd).tangent;
          if (d_gb) d_gb[j] += g[o] * f.d_right(ad, bd, yd).tangent;
        });
  }
};

/// y = f(x, c) (or f(c, x) when the number is on the left) for a number c.
template <class F, bool kNumberOnLeft>
struct WithNumber {
  const char* name = "elementwise";
  double number;
  [[no_unique_address]] F f{};
  Shape output_shape(const Shape& x) const { return x; }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const T* __restrict x = ctx.input(0).data;
    T* __restrict y = ctx.output().data;
    const T c = static_cast<T>(number);
    detail::elementwise_for(ctx.output().size(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i)
        y[i] = kNumberOnLeft ? f.value(c, x[i]) : f.value(x[i], c);
    });
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const T* __restrict x = ctx.input(0).data;
    const T* __restrict y = ctx.output().data;
    const T* __restrict g = ctx.output_grad().data;
    T* __restrict gx = ctx.input_grad(0).data;
    const T c = static_cast<T>(number);
    detail::elementwise_for(ctx.output().size(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) gx[i] += g[i] * derivative(c, x[i], y[i]);
    });
  }
  // Tangent mode: as Map's, with the number held still.
  template <class T>
  void jvp(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0), dx = ctx.input_tangent(0);
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const T c = static_cast<T>(number);
    for (std::int64_t i = 0; i < y.size(); ++i)
      dy[i] = dx[i] == T(0) ? T(0) : derivative(c, x[i], y[i]) * dx[i];
  }
  template <class T>
  void backward_jvp(OpContext<T, 1>& ctx) const requires detail::kTwiceDifferentiable<F> {
    const auto x = ctx.input(0), dx = ctx.input_tangent(0);
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const auto g = ctx.output_grad(), dg = ctx.output_grad_tangent();
    const auto d_gx = ctx.input_grad_tangent(0);
    const T c = static_cast<T>(number);
    for (std::int64_t i = 0; i < y.size(); ++i) {
      T term = dg[i] == T(0) ? T(0) : dg[i] * derivative(c, x[i], y[i]);
      if (dx && dx[i] != T(0))
        term += g[i] * derivative(Dual<T>(c), detail::dual_at(x.data, dx.data, i),
                                  detail::dual_at(y.data, dy.data, i))
                           .tangent;
      d_gx[i] += term;
    }
  }

 private:
  // ∂y/∂x, for x on either side of the number.
  template <class T>
  T derivative(T c, T x, T y) const {
    return kNumberOnLeft ? f.d_right(c, x, y) : f.d_left(x, c, y);
  }
};

/// condition ≠ 0 ? a : b, with broadcasting; the gradient goes to the side that was chosen.
struct Select {
  static constexpr const char* name = "where";
  static constexpr bool backward_reads_gradient_only = true;  // by the condition
  Shape output_shape(const Shape& c, const Shape& a, const Shape& b) const {
    return broadcast_shapes(c, broadcast_shapes(a, b, name), name);
  }
  template <class T>
  void forward(OpContext<T, 3>& ctx) const {
    const auto c = ctx.input(0), a = ctx.input(1), b = ctx.input(2);
    const auto y = ctx.output();
    detail::Broadcast<3>(y.shape, {c.shape, a.shape, b.shape})
        .for_each([&](std::int64_t o, std::int64_t k, std::int64_t i, std::int64_t j) {
          y[o] = c[k] != T(0) ? a[i] : b[j];
        });
  }
  template <class T>
  void backward(OpContext<T, 3>& ctx) const {
    const auto c = ctx.input(0), a = ctx.input(1), b = ctx.input(2);
    const auto g = ctx.output_grad();
    const auto ga = ctx.input_grad(1), gb = ctx.input_grad(2);
    detail::Broadcast<3>(g.shape, {c.shape, a.shape, b.shape})
        .for_each([&](std::int64_t o, std::int64_t k, std::int64_t i, std::int64_t j) {
          if (c[k] != T(0)) {
            if (ga) ga[i] += g[o];
          } else if (gb) {
            gb[j] += g[o];
          }
        });
  }
  // Tangent mode: linear in a and b (the condition is a constant).
  template <class T>
  void jvp(OpContext<T, 3>& ctx) const {
    const auto c = ctx.input(0), da = ctx.input_tangent(1), db = ctx.input_tangent(2);
    const auto dy = ctx.output_tangent();
    detail::Broadcast<3>(dy.shape, {c.shape, da.shape, db.shape})
        .for_each([&](std::int64_t o, std::int64_t k, std::int64_t i, std::int64_t j) {
          dy[o] = c[k] != T(0) ? (da ? da[i] : T(0)) : (db ? db[j] : T(0));
        });
  }
};

/// a ∘ b → 1 or 0 (a constant: comparisons have no gradient).
template <class Compare>
struct Comparison {
  const char* name = "comparison";
  Shape output_shape(const Shape& a, const Shape& b) const { return broadcast_shapes(a, b, name); }
  template <class T>
  void forward(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto y = ctx.output();
    detail::Broadcast<2>(y.shape, {a.shape, b.shape})
        .for_each([&](std::int64_t o, std::int64_t i, std::int64_t j) {
          y[o] = Compare()(a[i], b[j]) ? T(1) : T(0);
        });
  }
};

// ---- A user's elementwise op, on tensors (ops.hpp has the same call on Vars) ----

template <class F, TensorElement T>
Tensor<T> elementwise(const Tensor<T>& x, F f = {}) {
  return apply(Map<F>{"elementwise", f}, x);
}
template <class F, TensorElement T>
Tensor<T> elementwise(const Tensor<T>& a, const Tensor<T>& b) {
  return apply(ZipWith<F>{"elementwise"}, a, b);
}

// ---- Unary ----

#define AUTODIFF_TENSOR_UNARY(function, Op)  \
  template <TensorElement T>                 \
  Tensor<T> function(const Tensor<T>& x) {   \
    return apply(Map<op::Op>{#function}, x); \
  }
AUTODIFF_TENSOR_UNARY(square, Square)
AUTODIFF_TENSOR_UNARY(exp, Exp)
AUTODIFF_TENSOR_UNARY(log, Log)
AUTODIFF_TENSOR_UNARY(log1p, Log1p)
AUTODIFF_TENSOR_UNARY(sqrt, Sqrt)
AUTODIFF_TENSOR_UNARY(sin, Sin)
AUTODIFF_TENSOR_UNARY(cos, Cos)
AUTODIFF_TENSOR_UNARY(tanh, Tanh)
AUTODIFF_TENSOR_UNARY(sigmoid, Sigmoid)
AUTODIFF_TENSOR_UNARY(relu, Relu)
AUTODIFF_TENSOR_UNARY(abs, Abs)
AUTODIFF_TENSOR_UNARY(softplus, Softplus)
#undef AUTODIFF_TENSOR_UNARY

template <TensorElement T>
Tensor<T> operator-(const Tensor<T>& x) {
  return apply(Map<op::Negate>{"negate"}, x);
}
template <TensorElement T>
Tensor<T> leaky_relu(const Tensor<T>& x, double slope = 0.01) {
  return apply(Map<op::LeakyRelu>{"leaky_relu", {slope}}, x);
}
/// Throws std::invalid_argument unless low ≤ high.
template <TensorElement T>
Tensor<T> clamp(const Tensor<T>& x, double low, double high) {
  if (!(low <= high)) detail::throw_bad_clamp(low, high);
  return apply(Map<op::Clamp>{"clamp", {low, high}}, x);
}

// ---- Binary: tensor ∘ tensor with broadcasting, or tensor ∘ number ----

#define AUTODIFF_TENSOR_BINARY(function, Op, op_name)                            \
  template <TensorElement T>                                                     \
  Tensor<T> function(const Tensor<T>& a, const Tensor<T>& b) {                   \
    return apply(ZipWith<op::Op>{op_name}, a, b);                                \
  }                                                                              \
  template <TensorElement T, Number N>                                           \
  Tensor<T> function(const Tensor<T>& a, N b) {                                  \
    return apply(WithNumber<op::Op, false>{op_name, static_cast<double>(b)}, a); \
  }                                                                              \
  template <TensorElement T, Number N>                                           \
  Tensor<T> function(N a, const Tensor<T>& b) {                                  \
    return apply(WithNumber<op::Op, true>{op_name, static_cast<double>(a)}, b);  \
  }
AUTODIFF_TENSOR_BINARY(operator+, Add, "add")
AUTODIFF_TENSOR_BINARY(operator-, Subtract, "subtract")
AUTODIFF_TENSOR_BINARY(operator*, Multiply, "multiply")
AUTODIFF_TENSOR_BINARY(operator/, Divide, "divide")
AUTODIFF_TENSOR_BINARY(minimum, Minimum, "minimum")
AUTODIFF_TENSOR_BINARY(maximum, Maximum, "maximum")
AUTODIFF_TENSOR_BINARY(pow, Power, "pow")
#undef AUTODIFF_TENSOR_BINARY

/// condition ≠ 0 ? a : b, elementwise with broadcasting (condition from a comparison, say).
template <TensorElement T>
Tensor<T> where(const Tensor<T>& condition, const Tensor<T>& a, const Tensor<T>& b) {
  return apply(Select{}, condition, a, b);
}
template <TensorElement T, Number N>
Tensor<T> where(const Tensor<T>& condition, const Tensor<T>& a, N b) {
  return where(condition, a, Tensor<T>::full({}, static_cast<T>(b)));
}
template <TensorElement T, Number N>
Tensor<T> where(const Tensor<T>& condition, N a, const Tensor<T>& b) {
  return where(condition, Tensor<T>::full({}, static_cast<T>(a)), b);
}

// ---- Comparisons: 1 where true, 0 where false; constants ----

#define AUTODIFF_TENSOR_COMPARISON(symbol, Compare)                   \
  template <TensorElement T>                                          \
  Tensor<T> operator symbol(const Tensor<T>& a, const Tensor<T>& b) { \
    return apply(Comparison<Compare>{"operator" #symbol}, a, b);      \
  }                                                                   \
  template <TensorElement T, Number N>                                \
  Tensor<T> operator symbol(const Tensor<T>& a, N b) {                \
    return a symbol Tensor<T>::full({}, static_cast<T>(b));           \
  }
AUTODIFF_TENSOR_COMPARISON(<, std::less<>)
AUTODIFF_TENSOR_COMPARISON(<=, std::less_equal<>)
AUTODIFF_TENSOR_COMPARISON(>, std::greater<>)
AUTODIFF_TENSOR_COMPARISON(>=, std::greater_equal<>)
#undef AUTODIFF_TENSOR_COMPARISON

}  // namespace autodiff
