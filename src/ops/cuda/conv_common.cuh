// Pieces both convolution engines share: GEMM sizes of each pass, and the reduce kernel that
// adds split partials and writes the pass's real output.
#pragma once
#include "ops/cuda/conv_kernels.h"
#include "ops/cuda/gpu_types.cuh"

namespace tb::gpu {

struct GemmSize {
  int64_t M, N, K;
};

__host__ __device__ inline GemmSize gemm_size(ConvPass pass, const ConvGeometry& g) {
  switch (pass) {
    case ConvPass::fprop: return {int64_t(g.N) * g.P * g.Q, g.K, int64_t(g.R) * g.S * g.C};
    case ConvPass::dgrad: return {int64_t(g.N) * g.H * g.W, g.C, int64_t(g.R) * g.S * g.K};
    default: return {g.K, int64_t(g.R) * g.S * g.C, int64_t(g.N) * g.P * g.Q};
  }
}

// Where a GEMM result goes. Without splits, fprop and dgrad write T directly; wgrad and any
// split launch write fp32 partials [splits][M][N] for reduce_partials().
template <class T>
struct Epilogue {
  T* out;              // fprop y or dgrad dx
  const float* bias;   // fprop only, may be null
  bool accumulate;     // dgrad only
  float* partials;     // non-null: write fp32 partials here instead
};

void reduce_partials(ConvPass pass, DType t, const ConvGeometry& g, int splits,
                     const float* partials, void* out, const float* bias, bool accumulate,
                     cudaStream_t s);

}  // namespace tb::gpu
