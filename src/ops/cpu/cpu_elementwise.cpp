// Elementwise ops: relu, add, copy and dropout, in static chunks over the pool. Each element
// is computed alone, so the result cannot depend on the partition. Every operand is loaded
// unconditionally before the select: a load inside `cond ? a[i] : 0` may not be hoisted, so
// GCC would keep a scalar loop with a branch that mispredicts on half the elements (it made
// relu's backward 10% of a cifar_cnn step).
#include <algorithm>
#include <cstring>

#include "core/rng.h"
#include "ops/dropout_range.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/cpu_op_checks.h"

namespace tb {

using cpu_ops::expect;
using cpu_ops::fptr;
using cpu_ops::parallel_elements;

void CpuBackend::relu_forward(const Tensor& x, const Tensor& y) {
  constexpr OpKind op = OpKind::relu;
  expect(op, "x", x, x.numel());
  expect(op, "y", y, x.numel());
  const float* xd = fptr(x);
  float* yd = fptr(y);
  parallel_elements(*pool_, x.numel(), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) yd[i] = xd[i] > 0.0f ? xd[i] : 0.0f;
  });
}

void CpuBackend::relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx,
                               bool accumulate_dx) {
  constexpr OpKind op = OpKind::relu;
  expect(op, "y", y, y.numel());
  expect(op, "dy", dy, y.numel());
  float* dxd = cpu_ops::optional_ptr(op, "dx", dx, y.numel());
  if (!dxd) return;
  const float* yd = fptr(y);
  const float* dyd = fptr(dy);
  parallel_elements(*pool_, y.numel(), [&](int64_t lo, int64_t hi) {
    if (accumulate_dx) {
      for (int64_t i = lo; i < hi; ++i) {
        const float g = dyd[i];
        dxd[i] += yd[i] > 0.0f ? g : 0.0f;
      }
    } else {
      for (int64_t i = lo; i < hi; ++i) {
        const float g = dyd[i];
        dxd[i] = yd[i] > 0.0f ? g : 0.0f;
      }
    }
  });
}

void CpuBackend::add_forward(const Tensor& a, const Tensor& b, const Tensor& y) {
  constexpr OpKind op = OpKind::add;
  expect(op, "a", a, a.numel());
  expect(op, "b", b, a.numel());
  expect(op, "y", y, a.numel());
  const float* ad = fptr(a);
  const float* bd = fptr(b);
  float* yd = fptr(y);
  parallel_elements(*pool_, a.numel(), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) yd[i] = ad[i] + bd[i];
  });
}

void CpuBackend::copy(const Tensor& src, const Tensor& dst, bool accumulate) {
  constexpr OpKind op = OpKind::copy;
  expect(op, "src", src, src.numel());
  expect(op, "dst", dst, src.numel());  // shapes may differ (flatten), sizes may not
  const float* s = fptr(src);
  float* d = fptr(dst);
  if (s == d && !accumulate) return;
  parallel_elements(*pool_, src.numel(), [&](int64_t lo, int64_t hi) {
    if (accumulate) {
      for (int64_t i = lo; i < hi; ++i) d[i] += s[i];
    } else {
      std::memcpy(d + lo, s + lo, sizeof(float) * (hi - lo));
    }
  });
}

void CpuBackend::dropout_forward(const DropoutParams& p, const Tensor& x, const Tensor& y,
                                 const Tensor& mask) {
  constexpr OpKind op = OpKind::dropout;
  TB_CHECK(p.p >= 0.0f && p.p <= 1.0f, "cpu dropout: p = {} is outside [0, 1]", p.p);
  expect(op, "x", x, p.numel);
  expect(op, "y", y, p.numel);
  expect(op, "mask", mask, p.numel, DType::u8);
  const float scale = dropout_keep_scale(p.p);
  const float* xd = fptr(x);
  float* yd = fptr(y);
  uint8_t* m = static_cast<uint8_t*>(mask.data);
  // The hash dominates, so even small tensors are worth splitting.
  const uint64_t key = counter_key(p.seed, p.stream);
  pool_->parallel_for_range(0, p.numel, [&](int64_t lo, int64_t hi) {
    dropout_range(key, p.p, scale, lo, hi, xd, yd, m);
  });
}

void CpuBackend::dropout_backward(const DropoutParams& p, const Tensor& dy, const Tensor& mask,
                                  const Tensor& dx, bool accumulate_dx) {
  constexpr OpKind op = OpKind::dropout;
  expect(op, "dy", dy, p.numel);
  expect(op, "mask", mask, p.numel, DType::u8);
  float* dxd = cpu_ops::optional_ptr(op, "dx", dx, p.numel);
  if (!dxd) return;
  const float scale = dropout_keep_scale(p.p);
  const float* dyd = fptr(dy);
  const uint8_t* m = static_cast<const uint8_t*>(mask.data);
  parallel_elements(*pool_, p.numel, [&](int64_t lo, int64_t hi) {
    dropout_backward_range(scale, lo, hi, dyd, m, dxd, accumulate_dx);
  });
}

}  // namespace tb
