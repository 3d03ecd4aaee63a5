// RefBackend: checks every tensor against the op's params, then dispatches on the dtype to
// the float or double kernel of ref_kernels.h. The checks are cheap next to plain loops and
// turn a wrong shape into a message instead of a silent out-of-bounds read.
#include "ops/ref/ref_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ops/ref/ref_kernels.h"

namespace tb {
namespace {

// "[2x3x4]", like Shape::to_string(), built with fmt: GCC 12 at -O3 raises a false
// -Wrestrict warning (its bug 105329) where that function's string concatenation is inlined.
std::string shape_text(const Shape& s) {
  std::string text = "[";
  for (int i = 0; i < s.rank; ++i) text += fmt::format("{}{}", i ? "x" : "", s.dims[i]);
  return text + "]";
}

// Fails unless t is a defined, contiguous host tensor of `numel` elements.
void expect(OpKind op, const char* what, const Tensor& t, int64_t numel) {
  TB_CHECK(t.defined(), "ref {}: {} is undefined", op_name(op), what);
  TB_CHECK(t.device.kind == DeviceKind::cpu, "ref {}: {} lives on cuda:{}, not the host",
           op_name(op), what, t.device.index);
  TB_CHECK(t.contiguous(), "ref {}: {} {} is not contiguous", op_name(op), what,
           shape_text(t.shape));
  TB_CHECK(t.numel() == numel, "ref {}: {} has shape {} ({} elements), the params say {}",
           op_name(op), what, shape_text(t.shape), t.numel(), numel);
}

// As expect(), but an undefined tensor is allowed and yields a null pointer (a dx nobody
// needs, a bias the layer does not have).
template <class T>
T* optional_ptr(OpKind op, const char* what, const Tensor& t, int64_t numel) {
  if (!t.defined()) return nullptr;
  expect(op, what, t, numel);
  return t.ptr<T>();
}

// The bias pointer: required when has_bias, ignored otherwise.
template <class T>
T* bias_ptr(OpKind op, const char* what, bool has_bias, const Tensor& t, int64_t numel) {
  if (!has_bias) return nullptr;
  expect(op, what, t, numel);
  return t.ptr<T>();
}

// Calls f(T{}) with T the C++ type of `dtype`; only fp32 and fp64 run here.
template <class F>
void dispatch(OpKind op, DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32:
      f(float{});
      return;
    case DType::f64:
      f(double{});
      return;
    default:
      TB_FAIL("the ref backend does not run {} on {} tensors (it supports fp32 and fp64)",
              op_name(op), dtype_name(dtype));
  }
}

void check_conv(const Conv2dParams& p) {
  TB_CHECK(p.N > 0 && p.C > 0 && p.K > 0 && p.kernel > 0 && p.stride > 0 && p.pad >= 0,
           "ref conv2d: bad params N={} C={} K={} kernel={} stride={} pad={}", p.N, p.C, p.K,
           p.kernel, p.stride, p.pad);
  TB_CHECK(p.P() > 0 && p.Q() > 0, "ref conv2d: a {}x{} kernel does not fit a {}x{} input, pad {}",
           p.kernel, p.kernel, p.H, p.W, p.pad);
}

void check_pool(OpKind op, const Pool2dParams& p) {
  // PyTorch's rule; it also guarantees every window holds at least one real cell.
  TB_CHECK(p.kernel > 0 && p.stride > 0 && p.pad >= 0 && 2 * p.pad <= p.kernel,
           "ref {}: bad params kernel={} stride={} pad={} (pad must be at most kernel/2)",
           op_name(op), p.kernel, p.stride, p.pad);
  TB_CHECK(p.P() > 0 && p.Q() > 0, "ref {}: a {}x{} window does not fit a {}x{} input", op_name(op),
           p.kernel, p.kernel, p.H, p.W);
}

}  // namespace

bool RefBackend::supports(OpKind op, DType dtype) const {
  if (op == OpKind::sgd_update || op == OpKind::adam_update) return dtype == DType::f32;
  // The oracle computes conv2d_relu and linear_relu (the ops other backends are tested
  // against) but keeps its own graphs unfused: the model as written.
  if (op == OpKind::conv2d_relu || op == OpKind::linear_relu) return false;
  return dtype == DType::f32 || dtype == DType::f64;
}

// --- memory ------------------------------------------------------------------------------

void* RefBackend::allocate(size_t bytes) {
  // 64 bytes: a cache line and an AVX-512 vector. aligned_alloc wants a multiple of the
  // alignment, and a zero-byte request still gets a distinct block.
  constexpr size_t kAlignment = 64;
  const size_t rounded = std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  TB_CHECK(ptr != nullptr, "ref backend: out of host memory allocating {} bytes", bytes);
  ++allocation_count_;
  return ptr;
}

void RefBackend::release(void* ptr) { std::free(ptr); }

void RefBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void RefBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void RefBackend::fill_zero(const Tensor& t) {
  if (!t.defined()) return;
  TB_CHECK(t.contiguous(), "ref fill_zero: tensor {} is not contiguous", shape_text(t.shape));
  std::memset(t.data, 0, t.bytes());
}

// --- conv2d, linear ----------------------------------------------------------------------

void RefBackend::conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w,
                                const Tensor& bias, const Tensor& y) {
  constexpr OpKind op = OpKind::conv2d;
  check_conv(p);
  expect(op, "x", x, p.x_numel());
  expect(op, "w", w, p.w_numel());
  expect(op, "y", y, p.y_numel());
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::conv2d_forward<T>(p, x.ptr<T>(), w.ptr<T>(),
                           bias_ptr<T>(op, "bias", p.has_bias, bias, p.K), y.ptr<T>());
    if (p.relu) ref::relu_forward<T>(p.y_numel(), y.ptr<T>(), y.ptr<T>());
  });
}

void RefBackend::conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& w,
                                 const Tensor& dy, const Tensor& dx, const Tensor& dw,
                                 const Tensor& dbias, bool accumulate_dx) {
  constexpr OpKind op = OpKind::conv2d;
  check_conv(p);
  expect(op, "x", x, p.x_numel());
  expect(op, "w", w, p.w_numel());
  expect(op, "dy", dy, p.y_numel());
  expect(op, "dw", dw, p.w_numel());
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::conv2d_backward<T>(p, x.ptr<T>(), w.ptr<T>(), dy.ptr<T>(),
                            optional_ptr<T>(op, "dx", dx, p.x_numel()), dw.ptr<T>(),
                            bias_ptr<T>(op, "dbias", p.has_bias, dbias, p.K), accumulate_dx);
  });
}

void RefBackend::linear_forward(const LinearParams& p, const Tensor& x, const Tensor& w,
                                const Tensor& bias, const Tensor& y) {
  constexpr OpKind op = OpKind::linear;
  expect(op, "x", x, int64_t(p.N) * p.in);
  expect(op, "w", w, int64_t(p.out) * p.in);
  expect(op, "y", y, int64_t(p.N) * p.out);
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::linear_forward<T>(p, x.ptr<T>(), w.ptr<T>(),
                           bias_ptr<T>(op, "bias", p.has_bias, bias, p.out), y.ptr<T>());
    if (p.relu) ref::relu_forward<T>(int64_t(p.N) * p.out, y.ptr<T>(), y.ptr<T>());
  });
}

void RefBackend::linear_backward(const LinearParams& p, const Tensor& x, const Tensor& w,
                                 const Tensor& dy, const Tensor& dx, const Tensor& dw,
                                 const Tensor& dbias, bool accumulate_dx) {
  constexpr OpKind op = OpKind::linear;
  expect(op, "x", x, int64_t(p.N) * p.in);
  expect(op, "w", w, int64_t(p.out) * p.in);
  expect(op, "dy", dy, int64_t(p.N) * p.out);
  expect(op, "dw", dw, int64_t(p.out) * p.in);
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::linear_backward<T>(p, x.ptr<T>(), w.ptr<T>(), dy.ptr<T>(),
                            optional_ptr<T>(op, "dx", dx, int64_t(p.N) * p.in), dw.ptr<T>(),
                            bias_ptr<T>(op, "dbias", p.has_bias, dbias, p.out), accumulate_dx);
  });
}

// --- elementwise -------------------------------------------------------------------------

void RefBackend::relu_forward(const Tensor& x, const Tensor& y) {
  constexpr OpKind op = OpKind::relu;
  expect(op, "x", x, x.numel());
  expect(op, "y", y, x.numel());
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::relu_forward<T>(x.numel(), x.ptr<T>(), y.ptr<T>());
  });
}

void RefBackend::relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx,
                               bool accumulate_dx) {
  constexpr OpKind op = OpKind::relu;
  expect(op, "y", y, y.numel());
  expect(op, "dy", dy, y.numel());
  dispatch(op, y.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::relu_backward<T>(y.numel(), y.ptr<T>(), dy.ptr<T>(), optional_ptr<T>(op, "dx", dx, y.numel()),
                          accumulate_dx);
  });
}

void RefBackend::add_forward(const Tensor& a, const Tensor& b, const Tensor& y) {
  constexpr OpKind op = OpKind::add;
  expect(op, "a", a, a.numel());
  expect(op, "b", b, a.numel());
  expect(op, "y", y, a.numel());
  dispatch(op, a.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::add_forward<T>(a.numel(), a.ptr<T>(), b.ptr<T>(), y.ptr<T>());
  });
}

void RefBackend::copy(const Tensor& src, const Tensor& dst, bool accumulate) {
  constexpr OpKind op = OpKind::copy;
  expect(op, "src", src, src.numel());
  expect(op, "dst", dst, src.numel());  // shapes may differ (flatten), sizes may not
  dispatch(op, src.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::copy<T>(src.numel(), src.ptr<T>(), dst.ptr<T>(), accumulate);
  });
}

// --- pooling -----------------------------------------------------------------------------

void RefBackend::max_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) {
  constexpr OpKind op = OpKind::max_pool2d;
  check_pool(op, p);
  expect(op, "x", x, p.x_numel());
  expect(op, "y", y, p.y_numel());
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::max_pool2d_forward<T>(p, x.ptr<T>(), y.ptr<T>());
  });
}

// y is not needed: the winner is recomputed from x with the first-maximum rule.
void RefBackend::max_pool2d_backward(const Pool2dParams& p, const Tensor& x, const Tensor&,
                                     const Tensor& dy, const Tensor& dx, bool accumulate_dx) {
  constexpr OpKind op = OpKind::max_pool2d;
  check_pool(op, p);
  expect(op, "x", x, p.x_numel());
  expect(op, "dy", dy, p.y_numel());
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::max_pool2d_backward<T>(p, x.ptr<T>(), dy.ptr<T>(), optional_ptr<T>(op, "dx", dx, p.x_numel()),
                                accumulate_dx);
  });
}

void RefBackend::avg_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) {
  constexpr OpKind op = OpKind::avg_pool2d;
  check_pool(op, p);
  expect(op, "x", x, p.x_numel());
  expect(op, "y", y, p.y_numel());
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::avg_pool2d_forward<T>(p, x.ptr<T>(), y.ptr<T>());
  });
}

void RefBackend::avg_pool2d_backward(const Pool2dParams& p, const Tensor& dy, const Tensor& dx,
                                     bool accumulate_dx) {
  constexpr OpKind op = OpKind::avg_pool2d;
  check_pool(op, p);
  expect(op, "dy", dy, p.y_numel());
  dispatch(op, dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::avg_pool2d_backward<T>(p, dy.ptr<T>(), optional_ptr<T>(op, "dx", dx, p.x_numel()),
                                accumulate_dx);
  });
}

void RefBackend::global_avg_pool_forward(const GlobalPoolParams& p, const Tensor& x,
                                         const Tensor& y) {
  constexpr OpKind op = OpKind::global_avg_pool;
  expect(op, "x", x, int64_t(p.N) * p.C * p.H * p.W);
  expect(op, "y", y, int64_t(p.N) * p.C);
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::global_avg_pool_forward<T>(p, x.ptr<T>(), y.ptr<T>());
  });
}

void RefBackend::global_avg_pool_backward(const GlobalPoolParams& p, const Tensor& dy,
                                          const Tensor& dx, bool accumulate_dx) {
  constexpr OpKind op = OpKind::global_avg_pool;
  expect(op, "dy", dy, int64_t(p.N) * p.C);
  dispatch(op, dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::global_avg_pool_backward<T>(
        p, dy.ptr<T>(), optional_ptr<T>(op, "dx", dx, int64_t(p.N) * p.C * p.H * p.W), accumulate_dx);
  });
}

// --- batch norm --------------------------------------------------------------------------

void RefBackend::batch_norm_forward_train(const BatchNormParams& p, const Tensor& x,
                                          const Tensor& gamma, const Tensor& beta, const Tensor& y,
                                          const Tensor& running_mean, const Tensor& running_var,
                                          const Tensor& save_mean, const Tensor& save_invstd) {
  constexpr OpKind op = OpKind::batch_norm;
  expect(op, "x", x, p.numel());
  expect(op, "y", y, p.numel());
  for (const Tensor* t : {&gamma, &beta, &running_mean, &running_var, &save_mean, &save_invstd})
    expect(op, "a per-channel tensor", *t, p.C);
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::batch_norm_forward_train<T>(p, x.ptr<T>(), gamma.ptr<T>(), beta.ptr<T>(), y.ptr<T>(),
                                     running_mean.ptr<T>(), running_var.ptr<T>(),
                                     save_mean.ptr<T>(), save_invstd.ptr<T>());
  });
}

void RefBackend::batch_norm_forward_eval(const BatchNormParams& p, const Tensor& x,
                                         const Tensor& gamma, const Tensor& beta,
                                         const Tensor& running_mean, const Tensor& running_var,
                                         const Tensor& y) {
  constexpr OpKind op = OpKind::batch_norm;
  expect(op, "x", x, p.numel());
  expect(op, "y", y, p.numel());
  for (const Tensor* t : {&gamma, &beta, &running_mean, &running_var})
    expect(op, "a per-channel tensor", *t, p.C);
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::batch_norm_forward_eval<T>(p, x.ptr<T>(), gamma.ptr<T>(), beta.ptr<T>(),
                                    running_mean.ptr<T>(), running_var.ptr<T>(), y.ptr<T>());
  });
}

void RefBackend::batch_norm_backward(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                                     const Tensor& save_mean, const Tensor& save_invstd,
                                     const Tensor& dy, const Tensor& dx, const Tensor& dgamma,
                                     const Tensor& dbeta, bool accumulate_dx) {
  constexpr OpKind op = OpKind::batch_norm;
  expect(op, "x", x, p.numel());
  expect(op, "dy", dy, p.numel());
  for (const Tensor* t : {&gamma, &save_mean, &save_invstd, &dgamma, &dbeta})
    expect(op, "a per-channel tensor", *t, p.C);
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::batch_norm_backward<T>(
        p, x.ptr<T>(), gamma.ptr<T>(), save_mean.ptr<T>(), save_invstd.ptr<T>(), dy.ptr<T>(),
        optional_ptr<T>(op, "dx", dx, p.numel()), dgamma.ptr<T>(), dbeta.ptr<T>(), accumulate_dx);
  });
}

// --- dropout, loss -----------------------------------------------------------------------

void RefBackend::dropout_forward(const DropoutParams& p, const Tensor& x, const Tensor& y,
                                 const Tensor& mask) {
  constexpr OpKind op = OpKind::dropout;
  TB_CHECK(p.p >= 0.0f && p.p <= 1.0f, "ref dropout: p = {} is outside [0, 1]", p.p);
  expect(op, "x", x, p.numel);
  expect(op, "y", y, p.numel);
  expect(op, "mask", mask, p.numel);
  dispatch(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::dropout_forward<T>(p, x.ptr<T>(), y.ptr<T>(), mask.ptr<uint8_t>());
  });
}

void RefBackend::dropout_backward(const DropoutParams& p, const Tensor& dy, const Tensor& mask,
                                  const Tensor& dx, bool accumulate_dx) {
  constexpr OpKind op = OpKind::dropout;
  expect(op, "dy", dy, p.numel);
  expect(op, "mask", mask, p.numel);
  dispatch(op, dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::dropout_backward<T>(p, dy.ptr<T>(), mask.ptr<uint8_t>(),
                             optional_ptr<T>(op, "dx", dx, p.numel), accumulate_dx);
  });
}

void RefBackend::cross_entropy_forward(const CrossEntropyParams& p, const Tensor& logits,
                                       const Tensor& labels, const Tensor& probs,
                                       const Tensor& losses) {
  constexpr OpKind op = OpKind::softmax_cross_entropy;
  expect(op, "logits", logits, int64_t(p.N) * p.classes);
  expect(op, "labels", labels, p.N);
  expect(op, "probs", probs, int64_t(p.N) * p.classes);
  expect(op, "losses", losses, p.N);
  dispatch(op, logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::cross_entropy_forward<T>(p, logits.ptr<T>(), labels.ptr<int32_t>(), probs.ptr<T>(),
                                  losses.ptr<T>());
  });
}

void RefBackend::cross_entropy_backward(const CrossEntropyParams& p, const Tensor& probs,
                                        const Tensor& labels, const Tensor& dlogits) {
  constexpr OpKind op = OpKind::softmax_cross_entropy;
  expect(op, "probs", probs, int64_t(p.N) * p.classes);
  expect(op, "labels", labels, p.N);
  expect(op, "dlogits", dlogits, int64_t(p.N) * p.classes);
  dispatch(op, probs.dtype, [&](auto tag) {
    using T = decltype(tag);
    ref::cross_entropy_backward<T>(p, probs.ptr<T>(), labels.ptr<int32_t>(), dlogits.ptr<T>());
  });
}

// --- optimizer updates (fp32 master weights only) ----------------------------------------

void RefBackend::sgd_update(const SgdUpdateParams& p, const Tensor& param, const Tensor& grad,
                            const Tensor& momentum_buffer) {
  constexpr OpKind op = OpKind::sgd_update;
  TB_CHECK(param.dtype == DType::f32, "the ref backend runs sgd_update on fp32 only, got {}",
           dtype_name(param.dtype));
  expect(op, "param", param, p.n);
  expect(op, "grad", grad, p.n);
  float* buffer = nullptr;  // only read when there is momentum
  if (p.momentum != 0.0f) {
    expect(op, "momentum_buffer", momentum_buffer, p.n);
    buffer = momentum_buffer.ptr<float>();
  }
  ref::sgd_update(p, param.ptr<float>(), grad.ptr<float>(), buffer);
}

void RefBackend::adam_update(const AdamUpdateParams& p, const Tensor& param, const Tensor& grad,
                             const Tensor& exp_avg, const Tensor& exp_avg_sq) {
  constexpr OpKind op = OpKind::adam_update;
  TB_CHECK(param.dtype == DType::f32, "the ref backend runs adam_update on fp32 only, got {}",
           dtype_name(param.dtype));
  TB_CHECK(p.step >= 1, "ref adam_update: step {} (steps count from 1)", p.step);
  expect(op, "param", param, p.n);
  expect(op, "grad", grad, p.n);
  expect(op, "exp_avg", exp_avg, p.n);
  expect(op, "exp_avg_sq", exp_avg_sq, p.n);
  ref::adam_update(p, param.ptr<float>(), grad.ptr<float>(), exp_avg.ptr<float>(),
                   exp_avg_sq.ptr<float>());
}

std::unique_ptr<Backend> make_ref_backend() { return std::make_unique<RefBackend>(); }

}  // namespace tb
