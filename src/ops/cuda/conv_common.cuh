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

// The GEMM one split of an mma launch covers per grid layer: a strided data gradient runs one
// GEMM per output parity class (conv_mma.cu, stride^2 classes side by side in the grid), sized
// here for the largest: ceil(H/stride) x ceil(W/stride) pixels, ceil(R/stride) x
// ceil(S/stride) taps.
__host__ __device__ inline GemmSize mma_work_size(ConvPass pass, const ConvGeometry& g) {
  GemmSize gs = gemm_size(pass, g);
  if (pass == ConvPass::dgrad) {
    const auto up = [&](int v) { return int64_t(v + g.stride - 1) / g.stride; };
    gs.M = g.N * up(g.H) * up(g.W);
    gs.K = up(g.R) * up(g.S) * g.K;
  }
  return gs;
}
__host__ __device__ inline int mma_classes(ConvPass pass, const ConvGeometry& g) {
  return pass == ConvPass::dgrad ? g.stride * g.stride : 1;
}

// Implicit-GEMM index arithmetic both engines' loaders share.
// A reduction index kk over (r, s, channel), channel fastest: its tap row, tap column, channel.
__device__ __forceinline__ void split_reduction(int kk, int taps_s, int channels, int& r, int& s,
                                                int& c) {
  r = kk / (taps_s * channels);
  s = (kk / channels) % taps_s;
  c = kk % channels;
}

// Where a K-major A row reads from: its image's offset and the first tap's (h, w), which may
// lie in the padding.
// - fprop: row m is an output pixel; x is read at (h + r, w + s).
// - dgrad: row m is a pixel of a grid_h x grid_w grid of dx (all of it, or one stride class),
//   offset by (off_h, off_w); dy is read at (h - r, w - s).
template <ConvPass kPass>
__device__ __forceinline__ void a_row_origin(const ConvGeometry& g, int grid_h, int grid_w,
                                             int off_h, int off_w, int64_t m, int64_t& base,
                                             int& h, int& w) {
  if (kPass == ConvPass::fprop) {
    const int64_t pq = int64_t(g.P) * g.Q;
    const int64_t n = m / pq, r = m % pq;
    base = n * g.H * g.W * g.C;
    h = int(r / g.Q) * g.stride - g.pad;
    w = int(r % g.Q) * g.stride - g.pad;
  } else {
    const int64_t hw = int64_t(grid_h) * grid_w;
    const int64_t n = m / hw, r = m % hw;
    base = n * g.P * g.Q * g.K;
    h = int(r / grid_w) + off_h;
    w = int(r % grid_w) + off_w;
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

// Whether an epilogue adds into the existing dx (an accumulating data gradient, unsplit).
// Such an epilogue reads all of a thread's dx values for a row (or a batch of quads) first,
// and then stores them: read one by one before each store, every read waited out a DRAM
// round trip (the compiler cannot move a load above a store that may alias it), and
// resnet50's accumulating 1x1 data gradients ran 3-5x slower than plain ones.
template <class T, ConvPass kPass>
__device__ __forceinline__ bool reads_dx(const Epilogue<T>& ep) {
  return kPass == ConvPass::dgrad && ep.accumulate && !ep.partials;
}

void reduce_partials(ConvPass pass, DType t, const ConvGeometry& g, int splits,
                     const float* partials, void* out, const float* bias, bool accumulate,
                     cudaStream_t s);

}  // namespace tb::gpu
