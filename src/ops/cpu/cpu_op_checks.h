// Argument checks and small parallel helpers shared by the cpu backend's op files. The checks
// turn a wrong shape into a message instead of an out-of-bounds read; they cost nothing next
// to the kernels.
#pragma once
#include <cstdint>

#include "core/error.h"
#include "core/tensor.h"
#include "ops/backend.h"
#include "ops/cpu/thread_pool.h"

namespace tb::cpu_ops {

// Fails unless t is a defined, contiguous fp32 (or `dtype`) host tensor of `numel` elements.
inline void expect(OpKind op, const char* what, const Tensor& t, int64_t numel,
                   DType dtype = DType::f32) {
  TB_CHECK(t.defined(), "cpu {}: {} is undefined", op_name(op), what);
  TB_CHECK(t.device.kind == DeviceKind::cpu, "cpu {}: {} lives on cuda:{}, not the host",
           op_name(op), what, t.device.index);
  TB_CHECK(t.dtype == dtype, "cpu {}: {} holds {}, the cpu backend runs {} here", op_name(op),
           what, dtype_name(t.dtype), dtype_name(dtype));
  TB_CHECK(t.contiguous(), "cpu {}: {} is not contiguous", op_name(op), what);
  TB_CHECK(t.numel() == numel, "cpu {}: {} has {} elements, the params say {}", op_name(op), what,
           t.numel(), numel);
}

// An undefined tensor yields nullptr (a dx nobody needs), a defined one is checked.
inline float* optional_ptr(OpKind op, const char* what, const Tensor& t, int64_t numel) {
  if (!t.defined()) return nullptr;
  expect(op, what, t, numel);
  return static_cast<float*>(t.data);
}

// Required when `needed`, ignored (nullptr) otherwise.
inline float* needed_ptr(OpKind op, const char* what, bool needed, const Tensor& t,
                         int64_t numel) {
  if (!needed) return nullptr;
  expect(op, what, t, numel);
  return static_cast<float*>(t.data);
}

inline float* fptr(const Tensor& t) { return static_cast<float*>(t.data); }

// fn(lo, hi) over [0, n) in static chunks; small ranges run on the caller alone, since waking
// the workers costs more than a few thousand additions.
template <class F>
void parallel_elements(cpu::ThreadPool& pool, int64_t n, F&& fn) {
  constexpr int64_t kInline = 1 << 15;
  if (n <= kInline || pool.size() == 1) {
    if (n > 0) fn(int64_t(0), n);
    return;
  }
  pool.parallel_for_range(0, n, fn);
}

}  // namespace tb::cpu_ops
