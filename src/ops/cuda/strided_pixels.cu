// Strided pixel gather and scatter (strided_pixels_kernels.h). Memory-bound: one thread per
// 16 bytes of a pixel when a pixel's row of channels is a whole number of 16-byte vectors
// (every planned buffer is 256-byte aligned), one per element otherwise.
#include "ops/cuda/gpu_types.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/strided_pixels_kernels.h"

namespace tb::gpu {
namespace {

constexpr int kThreads = 256;

// U is the unit moved per thread (Vec16<T> or T); `units` is C in those units. I is the index
// type: 32-bit whenever the gathered tensor's units fit, because 64-bit divisions (several
// per unit) cost more than the copy itself (the same lesson as the stems' im2col, v19).
template <class U, class I>
__global__ void gather_kernel(const U* __restrict__ x, U* __restrict__ xs, int N, int H, int W,
                              int units, int stride, int P, int Q) {
  pdl_begin();
  const I total = I(N) * I(P) * I(Q) * I(units);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * blockDim.x) {
    const I pixel = i / I(units);
    const int c = int(i - pixel * I(units));
    const I image_row = pixel / I(Q);
    const int q = int(pixel - image_row * I(Q));
    const I n = image_row / I(P);
    const int p = int(image_row - n * I(P));
    xs[i] = x[((int64_t(n) * H + int64_t(p) * stride) * W + int64_t(q) * stride) * units + c];
  }
}

template <class U>
void launch_gather(const void* x, void* xs, int N, int H, int W, int units, int stride, int P,
                   int Q, cudaStream_t s) {
  const int64_t total = int64_t(N) * P * Q * units;
  const unsigned blocks = blocks_for(total, kThreads);
  const auto* in = static_cast<const U*>(x);
  auto* out = static_cast<U*>(xs);
  if (total < (int64_t(1) << 31))
    launch_kernel(gather_kernel<U, uint32_t>, blocks, kThreads, 0, s, in, out, N, H, W, units,
                  stride, P, Q);
  else
    launch_kernel(gather_kernel<U, int64_t>, blocks, kThreads, 0, s, in, out, N, H, W, units,
                  stride, P, Q);
}

// Without accumulate: one thread per unit of dx, zero off the stride grid. With it: one per
// unit of dxs, adding into its pixel of dx.
template <class T, class U, bool kAccumulate>
__global__ void scatter_kernel(const U* __restrict__ dxs, U* __restrict__ dx, int N, int H, int W,
                               int units, int stride, int P, int Q) {
  pdl_begin();
  const int64_t total = int64_t(N) * (kAccumulate ? int64_t(P) * Q : int64_t(H) * W) * units;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % units);
    const int64_t pixel = i / units;
    if constexpr (kAccumulate) {
      const int q = int(pixel % Q), p = int(pixel / Q % P);
      const int64_t n = pixel / (int64_t(P) * Q);
      U& out = dx[((n * H + int64_t(p) * stride) * W + int64_t(q) * stride) * units + c];
      const U add = dxs[i];
      if constexpr (sizeof(U) == sizeof(T)) {
        out = from_float<T>(to_float(out) + to_float(add));
      } else {
        U sum = out;
#pragma unroll
        for (int j = 0; j < Vec16<T>::kCount; ++j)
          sum.v[j] = from_float<T>(to_float(sum.v[j]) + to_float(add.v[j]));
        out = sum;
      }
    } else {
      const int w = int(pixel % W), h = int(pixel / W % H);
      const int64_t n = pixel / (int64_t(H) * W);
      if (h % stride == 0 && w % stride == 0) {
        dx[i] = dxs[((n * P + h / stride) * Q + w / stride) * units + c];
      } else if constexpr (sizeof(U) == sizeof(T)) {
        dx[i] = from_float<T>(0.0f);
      } else {
        U zero;
#pragma unroll
        for (int j = 0; j < Vec16<T>::kCount; ++j) zero.v[j] = from_float<T>(0.0f);
        dx[i] = zero;
      }
    }
  }
}

template <class T>
bool vector_pixels(int C, const void* a, const void* b) {
  return C % Vec16<T>::kCount == 0 && aligned16(a) && aligned16(b);
}

// One scatter launch in units U (`units` of them per pixel).
template <class T, class U>
void launch_scatter(const void* dxs, void* dx, int N, int H, int W, int units, int stride, int P,
                    int Q, bool accumulate, cudaStream_t s) {
  const int64_t pixels = int64_t(N) * (accumulate ? int64_t(P) * Q : int64_t(H) * W);
  const unsigned blocks = blocks_for(pixels * units, kThreads);
  const auto* in = static_cast<const U*>(dxs);
  auto* out = static_cast<U*>(dx);
  if (accumulate)
    launch_kernel(scatter_kernel<T, U, true>, blocks, kThreads, 0, s, in, out, N, H, W, units,
                  stride, P, Q);
  else
    launch_kernel(scatter_kernel<T, U, false>, blocks, kThreads, 0, s, in, out, N, H, W, units,
                  stride, P, Q);
}

}  // namespace

void gather_strided_pixels(DType t, const void* x, int N, int H, int W, int C, int stride,
                           void* xs, cudaStream_t s) {
  const int P = strided_extent(H, stride), Q = strided_extent(W, stride);
  TB_GPU_DISPATCH(t, T, {
    if (vector_pixels<T>(C, x, xs))
      launch_gather<Vec16<T>>(x, xs, N, H, W, C / Vec16<T>::kCount, stride, P, Q, s);
    else
      launch_gather<T>(x, xs, N, H, W, C, stride, P, Q, s);
  });
}

void scatter_strided_pixels(DType t, const void* dxs, int N, int H, int W, int C, int stride,
                            void* dx, bool accumulate, cudaStream_t s) {
  const int P = strided_extent(H, stride), Q = strided_extent(W, stride);
  TB_GPU_DISPATCH(t, T, {
    if (vector_pixels<T>(C, dxs, dx))
      launch_scatter<T, Vec16<T>>(dxs, dx, N, H, W, C / Vec16<T>::kCount, stride, P, Q,
                                  accumulate, s);
    else
      launch_scatter<T, T>(dxs, dx, N, H, W, C, stride, P, Q, accumulate, s);
  });
}

}  // namespace tb::gpu
