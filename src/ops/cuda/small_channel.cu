// im2col rows and filter rows for small-channel convolutions (small_channel_kernels.h).
// Memory-bound: the rows written are ~10x the input read, whose reads hit L2 (a batch of 512
// CIFAR images is 3 MB in bf16).
#include "ops/cuda/gpu_types.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/small_channel_kernels.h"

namespace tb::gpu {
namespace {

constexpr int kThreads = 256;

// One thread per row (output pixel): it divides once to find its pixel, then walks the
// taps with running counters (c, then s, then r), so the inner loop has no division. The
// row's Kp values leave as whole 16-byte vectors; a warp writes 32 consecutive rows.
// (The first version, a thread per vector with divisions per value, ran at 0.4 TB/s.)
template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, ConvGeometry g, int n0, int count, int kp,
                              Vec16<T>* __restrict__ cols) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  const int crs = g.C * g.R * g.S;
  const int units = kp / V;  // vectors per row
  const int64_t rows = int64_t(count) * g.P * g.Q;
  for (int64_t m = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; m < rows;
       m += int64_t(gridDim.x) * blockDim.x) {
    const int q = int(m % g.Q);
    const int64_t image_row = m / g.Q;
    const int p = int(image_row % g.P);
    const int64_t n = n0 + image_row / g.P;
    const int h0 = p * g.stride - g.pad, w0 = q * g.stride - g.pad;
    const T* xn = x + n * g.H * g.W * g.C;
    Vec16<T>* out = cols + m * units;
    int j = 0, c = 0, r = 0, s = 0;  // tap j = (r*S + s)*C + c
    for (int u = 0; u < units; ++u) {
      Vec16<T> vec;
#pragma unroll
      for (int e = 0; e < V; ++e, ++j) {
        float v = 0.0f;
        if (j < crs) {
          const int h = h0 + r, w = w0 + s;
          if (h >= 0 && h < g.H && w >= 0 && w < g.W) v = to_float(xn[(h * g.W + w) * g.C + c]);
          if (++c == g.C) {
            c = 0;
            if (++s == g.S) {
              s = 0;
              ++r;
            }
          }
        }
        vec.v[e] = from_float<T>(v);
      }
      out[u] = vec;
    }
  }
}

template <class T>
__global__ void pack_filter_kernel(const float* __restrict__ w, ConvGeometry g, int kp,
                                   T* __restrict__ rows) {
  pdl_begin();
  const int crs = g.C * g.R * g.S;
  const int total = g.K * kp;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const int k = i / kp, j = i % kp;
    float v = 0.0f;
    if (j < crs) {
      const int c = j % g.C, rs = j / g.C;
      v = w[(int64_t(k) * g.C + c) * g.R * g.S + rs];
    }
    rows[i] = from_float<T>(v);
  }
}

__global__ void unpack_filter_kernel(const float* __restrict__ rows, ConvGeometry g, int kp,
                                     float* __restrict__ w) {
  pdl_begin();
  const int rs_count = g.R * g.S;
  const int total = g.K * g.C * rs_count;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const int rs = i % rs_count, c = i / rs_count % g.C, k = i / (rs_count * g.C);
    w[i] = rows[int64_t(k) * kp + rs * g.C + c];
  }
}

}  // namespace

void im2col_rows(DType t, const void* x, const ConvGeometry& g, int n0, int count, void* cols,
                 cudaStream_t s) {
  TB_GPU_DISPATCH(t, T, {
    const int kp = small_channel_row(g);
    const int64_t rows = int64_t(count) * g.P * g.Q;
    launch_kernel(im2col_kernel<T>, blocks_for(rows, kThreads), kThreads, 0, s,
                  static_cast<const T*>(x), g, n0, count, kp, static_cast<Vec16<T>*>(cols));
  });
}

void pack_filter_rows(DType t, const float* w, const ConvGeometry& g, void* rows, cudaStream_t s) {
  const int kp = small_channel_row(g);
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(pack_filter_kernel<T>, blocks_for(int64_t(g.K) * kp, kThreads), kThreads, 0, s, w,
                  g, kp, static_cast<T*>(rows));
  });
}

void unpack_filter_rows(const float* rows, const ConvGeometry& g, float* w, cudaStream_t s) {
  launch_kernel(unpack_filter_kernel, blocks_for(int64_t(g.K) * g.C * g.R * g.S, kThreads),
                kThreads, 0, s, rows, g, small_channel_row(g), w);
}

}  // namespace tb::gpu
