// Device-side helpers shared by every kernel file: element types and their float
// conversions, a dtype switch for launchers, 16-byte vectors, and the counter-based random
// numbers of core/rng.h ported to device code (bit for bit the same values).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "ops/cuda/cuda_check.h"

namespace tb::gpu {

using bf16 = __nv_bfloat16;
using f16 = __half;

template <class T> __device__ __forceinline__ float to_float(T v);
template <> __device__ __forceinline__ float to_float<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_float<bf16>(bf16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_float<f16>(f16 v) { return __half2float(v); }

template <class T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_float<bf16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ f16 from_float<f16>(float v) { return __float2half_rn(v); }

// 16 bytes of T, the widest single load or store a thread can issue.
template <class T>
struct alignas(16) Vec16 {
  static constexpr int kCount = 16 / int(sizeof(T));
  T v[kCount];
};

// Whether n elements at these addresses can be walked in Vec16 steps.
__host__ __device__ inline bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

// A grid for n independent items of `per_thread` elements each, capped so grid-stride loops
// cover the rest.
inline unsigned blocks_for(int64_t n, int threads, int64_t cap = 65535 * 8) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return unsigned(b < cap ? b : cap);
}

// core/rng.h, on the device.
__device__ __forceinline__ uint64_t splitmix64_dev(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
__device__ __forceinline__ float counter_uniform_dev(uint64_t seed, uint64_t stream, uint64_t index) {
  const uint64_t h = splitmix64_dev(splitmix64_dev(splitmix64_dev(seed) ^ stream) ^ index);
  return float(h >> 40) * (1.0f / 16777216.0f);
}

}  // namespace tb::gpu

// Runs the statements with T bound to the C++ type of a floating dtype (fp32, bf16, fp16).
#define TB_GPU_DISPATCH(dtype, T, ...)                                         \
  switch (dtype) {                                                             \
    case ::tb::DType::f32: { using T = float; __VA_ARGS__; break; }            \
    case ::tb::DType::bf16: { using T = ::tb::gpu::bf16; __VA_ARGS__; break; } \
    case ::tb::DType::f16: { using T = ::tb::gpu::f16; __VA_ARGS__; break; }   \
    default: ::tb::gpu::bad_dtype(__func__, int(dtype), __FILE__, __LINE__);   \
  }
