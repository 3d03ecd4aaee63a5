// OneDnnBackend: construction, threads, memory. The ops live in the other onednn_*.cpp
// files, one per op family.
#include "ops/onednn/onednn_backend.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "ops/onednn/onednn_checks.h"
#include "ops/onednn/onednn_state.h"

namespace tb {

OneDnnBackend::OneDnnBackend(int threads)
    : threads_(threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()))),
      state_(std::make_unique<onednn::State>(allocation_count_)) {
  use_threads();
}

OneDnnBackend::~OneDnnBackend() = default;

void OneDnnBackend::use_threads() const {
  // OpenMP's thread count is per calling thread, so it is set on whichever thread runs the
  // op; the check keeps the common case to one cheap call.
  if (omp_get_max_threads() != threads_) omp_set_num_threads(threads_);
}

// Fused conv/linear + ReLU (oneDNN post-ops) is not wired up: those chains run unfused here.
bool OneDnnBackend::supports(OpKind op, DType dtype) const {
  return dtype == DType::f32 && op != OpKind::conv2d_relu && op != OpKind::linear_relu;
}

size_t OneDnnBackend::primitive_creations() const { return state_->rt.primitive_creations; }

void OneDnnBackend::forget_cached_weights() { state_->weights.clear(); }

// --- memory ------------------------------------------------------------------------------

void* OneDnnBackend::allocate(size_t bytes) {
  // 64 bytes: a cache line and an AVX-512 vector. aligned_alloc wants a multiple of the
  // alignment, and a zero-byte request still gets a distinct block.
  constexpr size_t kAlignment = 64;
  const size_t rounded = std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  TB_CHECK(ptr != nullptr, "onednn backend: out of host memory allocating {} bytes", bytes);
  ++allocation_count_;
  block_bytes_[ptr] = rounded;
  return ptr;
}

void OneDnnBackend::release(void* ptr) {
  if (!ptr) return;
  auto it = block_bytes_.find(ptr);
  TB_CHECK(it != block_bytes_.end(), "onednn backend: release of memory it did not allocate");
  state_->forget_addresses(ptr, it->second);
  block_bytes_.erase(it);
  std::free(ptr);
}

void OneDnnBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  state_->weights.note_write(dst, bytes);
  std::memcpy(dst, src, bytes);
}

void OneDnnBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void OneDnnBackend::fill_zero(const Tensor& t) {
  if (!t.defined()) return;
  TB_CHECK(t.contiguous(), "onednn fill_zero: the tensor is not contiguous");
  state_->weights.note_write(t.data, t.bytes());
  std::memset(t.data, 0, t.bytes());
}

std::unique_ptr<Backend> make_onednn_backend(int threads) {
  return std::make_unique<OneDnnBackend>(threads);
}

}  // namespace tb
