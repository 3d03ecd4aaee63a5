#include "ops/cuda/channel_pad_kernels.h"
#include "ops/cuda/gpu_types.cuh"
#include "ops/cuda/pdl.cuh"

namespace tb::gpu {
namespace {

template <class T>
__global__ void pad_channels_kernel(const T* __restrict__ x, T* __restrict__ xp, int64_t pixels,
                                    int C, int Cp) {
  pdl_begin();
  const int64_t total = pixels * Cp;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % Cp);
    xp[i] = c < C ? x[(i / Cp) * C + c] : from_float<T>(0.0f);
  }
}

__global__ void unpad_kernel(const float* __restrict__ dwp, float* __restrict__ dw, int K, int C,
                             int Cp, int RS) {
  pdl_begin();
  const int64_t total = int64_t(K) * C * RS;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int rs = int(i % RS);
    const int64_t kc = i / RS;
    const int c = int(kc % C), k = int(kc / C);
    dw[i] = dwp[(int64_t(k) * Cp + c) * RS + rs];
  }
}

}  // namespace

void pad_channels(DType t, const void* x, void* xp, int64_t pixels, int C, int Cp,
                  cudaStream_t s) {
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(pad_channels_kernel<T>, blocks_for(pixels * Cp, 256), 256, 0, s,
                  static_cast<const T*>(x), static_cast<T*>(xp), pixels, C, Cp);
  });
}

void unpad_weight_gradient(const float* dw_padded, float* dw, int K, int C, int Cp, int R, int S,
                           cudaStream_t s) {
  launch_kernel(unpad_kernel, blocks_for(int64_t(K) * C * R * S, 256), 256, 0, s, dw_padded, dw, K,
                C, Cp, R * S);
}

}  // namespace tb::gpu
