// CpuBackend: construction, memory and the grow-only workspace. The ops are in the
// cpu_*.cpp files of this folder, one per op family.
#include "ops/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace tb {

CpuBackend::CpuBackend(int threads) {
  cpu::set_cpu_threads(threads);
  // A private pool of the same size: two backends with different thread counts (the
  // determinism tests) can then live side by side.
  pool_ = std::make_unique<cpu::ThreadPool>(cpu::cpu_threads());
}

CpuBackend::~CpuBackend() {
  for (ScratchBuffer& b : scratch_) std::free(b.data);
}

bool CpuBackend::supports(OpKind, DType dtype) const { return dtype == DType::f32; }

void* CpuBackend::allocate(size_t bytes) {
  // 64 bytes: a cache line and an AVX-512 vector; aligned_alloc wants a multiple of it.
  constexpr size_t kAlignment = 64;
  const size_t rounded = std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  TB_CHECK(ptr != nullptr, "cpu backend: out of host memory allocating {} bytes", bytes);
  ++allocation_count_;
  return ptr;
}

void CpuBackend::release(void* ptr) { std::free(ptr); }

void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void CpuBackend::fill_zero(const Tensor& t) {
  if (!t.defined()) return;
  TB_CHECK(t.contiguous(), "cpu fill_zero: tensor {} is not contiguous", t.shape.to_string());
  std::memset(t.data, 0, t.bytes());
}

// Grows (never shrinks) the buffer to `floats`; counted as an allocation so the
// no-allocation-after-warm-up test sees it.
float* CpuBackend::scratch(Scratch which, size_t floats) {
  ScratchBuffer& b = scratch_[which];
  const size_t needed = per_thread_stride(floats);
  if (needed > b.floats) {
    std::free(b.data);
    b.data = nullptr;
    b.data = static_cast<float*>(allocate(needed * sizeof(float)));
    b.floats = needed;
  }
  return b.data;
}

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace tb
