// Gradient clipping by global norm. The sums of squares go through fixed slices and fixed
// trees (float within a thread's slice, double across threads and blocks), so the factor,
// and the clipped gradients, are the same run to run.
#include <algorithm>
#include <cmath>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/grad_clip_kernels.h"
#include "ops/cuda/pdl.cuh"
#include "ops/optimizer_update.h"

namespace tb::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 256;
constexpr int64_t kPerThread = 16;  // elements a thread adds in float before the tree

// Sums `value` over the block in a fixed tree; thread 0 gets the total.
__device__ double block_sum(double value) {
  __shared__ double tree[kThreads];
  tree[threadIdx.x] = value;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) tree[threadIdx.x] += tree[threadIdx.x + half];
    __syncthreads();
  }
  return tree[0];
}

__global__ void sum_squares_kernel(const float* g, int64_t n, double* partials) {
  pdl_begin();
  float s = 0.0f;
  for (int64_t i = blockIdx.x * int64_t(kThreads) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * kThreads)
    s += g[i] * g[i];
  const double total = block_sum(double(s));
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void factor_kernel(const double* partials, int count, float max_norm,
                              const GpuStepState* state, float* factor) {
  pdl_begin();
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += kThreads) s += partials[i];
  const double total = block_sum(s);
  if (threadIdx.x == 0) {
    const double scale = state ? double(state->loss_scale) : 1.0;
    const double norm = sqrt(total) / scale;
    const float f = fminf(float(double(max_norm) / (norm + double(kClipNormEpsilon))), 1.0f);
    *factor = isnan(norm) ? __int_as_float(0x7fc00000) : f;
  }
}

__global__ void scale_kernel(float* g, int64_t n, const float* factor) {
  pdl_begin();
  const float f = *factor;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    g[i] *= f;
}

}  // namespace

int clip_partial_count(int64_t n) {
  const int64_t blocks = (n + kThreads * kPerThread - 1) / (kThreads * kPerThread);
  return int(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

void clip_sum_squares(const float* grad, int64_t n, double* partials, cudaStream_t s) {
  launch_kernel(sum_squares_kernel, clip_partial_count(n), kThreads, 0, s, grad, n, partials);
}

void clip_factor(const double* partials, int count, float max_norm, const GpuStepState* state,
                 float* factor, cudaStream_t s) {
  launch_kernel(factor_kernel, 1, kThreads, 0, s, partials, count, max_norm, state, factor);
}

void clip_scale(float* grad, int64_t n, const float* factor, cudaStream_t s) {
  if (n == 0) return;
  const int64_t blocks = std::min<int64_t>((n + kThreads * 4 - 1) / (kThreads * 4), 4096);
  launch_kernel(scale_kernel, int(blocks), kThreads, 0, s, grad, n, factor);
}

}  // namespace tb::gpu
