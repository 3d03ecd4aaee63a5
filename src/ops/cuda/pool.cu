// Pooling over channels-last tensors: consecutive threads take consecutive channels of one
// pixel, so every load of a warp is contiguous.
#include "ops/cuda/gpu_types.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/pool_kernels.h"

namespace tb::gpu {
namespace {

constexpr int kThreads = 256;

// Pool2dParams with its derived sizes computed on the host (its methods are host code).
struct PoolShape {
  int N, C, H, W, kernel, stride, pad, P, Q;
};

PoolShape shape_of(const Pool2dParams& p) {
  return {p.N, p.C, p.H, p.W, p.kernel, p.stride, p.pad, p.P(), p.Q()};
}

struct Win {
  int h0, h1, w0, w1;
};

__device__ __forceinline__ Win window_at(const PoolShape& p, int op, int oq) {
  const int h = op * p.stride - p.pad, w = oq * p.stride - p.pad;
  return {max(h, 0), min(h + p.kernel, p.H), max(w, 0), min(w + p.kernel, p.W)};
}

// The (h, w) of the window's first maximum in channel c of image n.
template <class T>
__device__ __forceinline__ int2 argmax_in(const PoolShape& p, const T* x, int n, int c,
                                          const Win& win) {
  const T* img = x + int64_t(n) * p.H * p.W * p.C + c;
  int bh = win.h0, bw = win.w0;
  float best = to_float(img[(int64_t(bh) * p.W + bw) * p.C]);
  for (int h = win.h0; h < win.h1; ++h)
    for (int w = win.w0; w < win.w1; ++w) {
      const float v = to_float(img[(int64_t(h) * p.W + w) * p.C]);
      if (v > best) {
        best = v;
        bh = h;
        bw = w;
      }
    }
  return make_int2(bh, bw);
}

template <class T>
__global__ void max_fwd_kernel(PoolShape p, const T* x, T* y) {
  pdl_begin();
  const int P = p.P, Q = p.Q;
  const int64_t total = int64_t(p.N) * P * Q * p.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % p.C);
    int64_t r = i / p.C;
    const int oq = int(r % Q);
    r /= Q;
    const int op = int(r % P), n = int(r / P);
    const int2 at = argmax_in(p, x, n, c, window_at(p, op, oq));
    y[i] = x[((int64_t(n) * p.H + at.x) * p.W + at.y) * p.C + c];
  }
}

// Output rows whose windows hold input row h: op*stride - pad <= h < op*stride - pad + kernel.
__device__ __forceinline__ int2 covering(int h, int pad, int kernel, int stride, int P) {
  const int hi_num = h + pad;
  const int lo_num = h + pad - kernel + 1;
  int lo = lo_num <= 0 ? 0 : (lo_num + stride - 1) / stride;
  int hi = min(hi_num / stride, P - 1);
  return make_int2(lo, hi);
}

template <class T>
__global__ void max_bwd_kernel(PoolShape p, const T* x, const T* dy, T* dx, bool accumulate) {
  pdl_begin();
  const int P = p.P, Q = p.Q;
  const int64_t total = int64_t(p.N) * p.C * p.H * p.W;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % p.C);
    int64_t r = i / p.C;
    const int w = int(r % p.W);
    r /= p.W;
    const int h = int(r % p.H), n = int(r / p.H);
    const int2 rows = covering(h, p.pad, p.kernel, p.stride, P);
    const int2 cols = covering(w, p.pad, p.kernel, p.stride, Q);
    float g = 0.0f;
    for (int op = rows.x; op <= rows.y; ++op)
      for (int oq = cols.x; oq <= cols.y; ++oq) {
        const int2 at = argmax_in(p, x, n, c, window_at(p, op, oq));
        if (at.x == h && at.y == w) g += to_float(dy[((int64_t(n) * P + op) * Q + oq) * p.C + c]);
      }
    dx[i] = from_float<T>(accumulate ? to_float(dx[i]) + g : g);
  }
}

// Windows that tile the input exactly (kernel == stride, no padding, H and W multiples of
// it: 2x2 pooling of even images) with whole 16-byte vectors of channels: a thread per output
// pixel and vector reads its window once, and the backward writes the whole window (dy at
// the winner, 0 elsewhere), so each input cell is written by exactly one thread. The general
// kernels above re-read a window for every input cell it covers, with 64-bit divisions per
// element: 495 us for alexnet_lite's first pool backward at b512 on an H100 (gpu-notes v19).
// The winner is the window's first maximum in row-major order, as in argmax_in().
bool tiles_exactly(const PoolShape& p, int vector, const void* a, const void* b,
                   const void* c = nullptr) {
  return p.kernel == p.stride && p.pad == 0 && p.H == p.P * p.kernel && p.W == p.Q * p.kernel &&
         p.C % vector == 0 && aligned16(a) && aligned16(b) && (!c || aligned16(c));
}

// Output vector i of a tiled pool: its image, output pixel and channel vector, and the index
// (in vectors) of its window's first cell.
struct TiledWindow {
  int64_t first;
  int64_t row_step;  // vectors from one window row to the next
  int cell_step;     // vectors from one cell to the next within a row
};
__device__ __forceinline__ TiledWindow tiled_window(const PoolShape& p, int vectors_per_pixel,
                                                    int64_t i) {
  const int cv = int(i % vectors_per_pixel);
  int64_t r = i / vectors_per_pixel;
  const int oq = int(r % p.Q);
  r /= p.Q;
  const int op = int(r % p.P);
  const int64_t n = r / p.P;
  const int64_t pixel = (n * p.H + int64_t(op) * p.kernel) * p.W + int64_t(oq) * p.kernel;
  return {pixel * vectors_per_pixel + cv, int64_t(p.W) * vectors_per_pixel, vectors_per_pixel};
}

// The first maximum of each channel of the vector in the window (row-major, as argmax_in()):
// its value and its cell, kh * kernel + kw.
template <class T>
__device__ __forceinline__ void tiled_max(const PoolShape& p, const Vec16<T>* __restrict__ x,
                                          const TiledWindow& win, float (&best)[Vec16<T>::kCount],
                                          int (&winner)[Vec16<T>::kCount]) {
  for (int kh = 0, cell = 0; kh < p.kernel; ++kh)
    for (int kw = 0; kw < p.kernel; ++kw, ++cell) {
      const Vec16<T> v = x[win.first + kh * win.row_step + kw * win.cell_step];
#pragma unroll
      for (int e = 0; e < Vec16<T>::kCount; ++e) {
        const float f = to_float(v.v[e]);
        if (cell == 0 || f > best[e]) {
          best[e] = f;
          winner[e] = cell;
        }
      }
    }
}

template <class T>
__global__ void max_fwd_tiled_kernel(PoolShape p, const Vec16<T>* __restrict__ x,
                                     Vec16<T>* __restrict__ y) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  const int per_pixel = p.C / V;
  const int64_t total = int64_t(p.N) * p.P * p.Q * per_pixel;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    float best[V];
    int winner[V];
    tiled_max(p, x, tiled_window(p, per_pixel, i), best, winner);
    Vec16<T> out;
#pragma unroll
    for (int e = 0; e < V; ++e) out.v[e] = from_float<T>(best[e]);  // exact: best came from T
    y[i] = out;
  }
}

template <class T>
__global__ void max_bwd_tiled_kernel(PoolShape p, const Vec16<T>* __restrict__ x,
                                     const Vec16<T>* __restrict__ dy, Vec16<T>* __restrict__ dx,
                                     bool accumulate) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  const int per_pixel = p.C / V;
  const int64_t total = int64_t(p.N) * p.P * p.Q * per_pixel;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const TiledWindow win = tiled_window(p, per_pixel, i);
    float best[V];
    int winner[V];
    tiled_max(p, x, win, best, winner);
    const Vec16<T> g = dy[i];
    for (int kh = 0, cell = 0; kh < p.kernel; ++kh)
      for (int kw = 0; kw < p.kernel; ++kw, ++cell) {
        const int64_t at = win.first + kh * win.row_step + kw * win.cell_step;
        Vec16<T> out;
        const Vec16<T> prev = accumulate ? dx[at] : Vec16<T>{};
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const float d = winner[e] == cell ? to_float(g.v[e]) : 0.0f;
          out.v[e] = from_float<T>(accumulate ? to_float(prev.v[e]) + d : d);
        }
        dx[at] = out;
      }
  }
}

template <class T>
__global__ void avg_fwd_kernel(PoolShape p, const T* x, T* y) {
  pdl_begin();
  const int P = p.P, Q = p.Q;
  const float scale = 1.0f / float(p.kernel * p.kernel);
  const int64_t total = int64_t(p.N) * P * Q * p.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % p.C);
    int64_t r = i / p.C;
    const int oq = int(r % Q);
    r /= Q;
    const int op = int(r % P), n = int(r / P);
    const Win win = window_at(p, op, oq);
    const T* img = x + int64_t(n) * p.H * p.W * p.C + c;
    float sum = 0.0f;
    for (int h = win.h0; h < win.h1; ++h)
      for (int w = win.w0; w < win.w1; ++w) sum += to_float(img[(int64_t(h) * p.W + w) * p.C]);
    y[i] = from_float<T>(sum * scale);
  }
}

template <class T>
__global__ void avg_bwd_kernel(PoolShape p, const T* dy, T* dx, bool accumulate) {
  pdl_begin();
  const int P = p.P, Q = p.Q;
  const float scale = 1.0f / float(p.kernel * p.kernel);
  const int64_t total = int64_t(p.N) * p.C * p.H * p.W;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % p.C);
    int64_t r = i / p.C;
    const int w = int(r % p.W);
    r /= p.W;
    const int h = int(r % p.H), n = int(r / p.H);
    const int2 rows = covering(h, p.pad, p.kernel, p.stride, P);
    const int2 cols = covering(w, p.pad, p.kernel, p.stride, Q);
    float g = 0.0f;
    for (int op = rows.x; op <= rows.y; ++op)
      for (int oq = cols.x; oq <= cols.y; ++oq)
        g += to_float(dy[((int64_t(n) * P + op) * Q + oq) * p.C + c]) * scale;
    dx[i] = from_float<T>(accumulate ? to_float(dx[i]) + g : g);
  }
}

template <class T>
__global__ void gap_fwd_kernel(GlobalPoolParams p, const T* x, T* y) {
  pdl_begin();
  const int64_t hw = int64_t(p.H) * p.W, total = int64_t(p.N) * p.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / p.C, c = i % p.C;
    const T* img = x + n * hw * p.C + c;
    float sum = 0.0f;
    for (int64_t pos = 0; pos < hw; ++pos) sum += to_float(img[pos * p.C]);
    y[i] = from_float<T>(sum / float(hw));
  }
}

template <class T>
__global__ void gap_bwd_kernel(GlobalPoolParams p, const T* dy, T* dx, bool accumulate) {
  pdl_begin();
  const int64_t hw = int64_t(p.H) * p.W, total = int64_t(p.N) * p.C * hw;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % p.C, n = i / (hw * p.C);
    const float g = to_float(dy[n * p.C + c]) / float(hw);
    dx[i] = from_float<T>(accumulate ? to_float(dx[i]) + g : g);
  }
}

}  // namespace

void max_pool2d_forward(DType t, const Pool2dParams& p, const void* x, void* y, cudaStream_t s) {
  const int64_t n = p.y_numel();
  if (n == 0) return;
  const PoolShape shape = shape_of(p);
  TB_GPU_DISPATCH(t, T, {
    if (tiles_exactly(shape, Vec16<T>::kCount, x, y))
      launch_kernel(max_fwd_tiled_kernel<T>, blocks_for(n / Vec16<T>::kCount, kThreads), kThreads,
                    0, s, shape, (const Vec16<T>*)x, (Vec16<T>*)y);
    else
      launch_kernel(max_fwd_kernel<T>, blocks_for(n, kThreads), kThreads, 0, s, shape, (const T*)x,
                    (T*)y);
  });
}

void max_pool2d_backward(DType t, const Pool2dParams& p, const void* x, const void* dy, void* dx,
                         bool accumulate, cudaStream_t s) {
  const int64_t n = p.x_numel();
  if (n == 0) return;
  const PoolShape shape = shape_of(p);
  TB_GPU_DISPATCH(t, T, {
    if (tiles_exactly(shape, Vec16<T>::kCount, x, dy, dx))
      launch_kernel(max_bwd_tiled_kernel<T>, blocks_for(p.y_numel() / Vec16<T>::kCount, kThreads),
                    kThreads, 0, s, shape, (const Vec16<T>*)x, (const Vec16<T>*)dy, (Vec16<T>*)dx,
                    accumulate);
    else
      launch_kernel(max_bwd_kernel<T>, blocks_for(n, kThreads), kThreads, 0, s, shape, (const T*)x,
                    (const T*)dy, (T*)dx, accumulate);
  });
}

void avg_pool2d_forward(DType t, const Pool2dParams& p, const void* x, void* y, cudaStream_t s) {
  const int64_t n = p.y_numel();
  if (n == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(avg_fwd_kernel<T>, blocks_for(n, kThreads), kThreads, 0, s, shape_of(p),
                  (const T*)x, (T*)y);
  });
}

void avg_pool2d_backward(DType t, const Pool2dParams& p, const void* dy, void* dx, bool accumulate,
                         cudaStream_t s) {
  const int64_t n = p.x_numel();
  if (n == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(avg_bwd_kernel<T>, blocks_for(n, kThreads), kThreads, 0, s, shape_of(p),
                  (const T*)dy, (T*)dx, accumulate);
  });
}

void global_avg_pool_forward(DType t, const GlobalPoolParams& p, const void* x, void* y,
                             cudaStream_t s) {
  const int64_t n = int64_t(p.N) * p.C;
  if (n == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(gap_fwd_kernel<T>, blocks_for(n, kThreads), kThreads, 0, s, p, (const T*)x,
                  (T*)y);
  });
}

void global_avg_pool_backward(DType t, const GlobalPoolParams& p, const void* dy, void* dx,
                              bool accumulate, cudaStream_t s) {
  const int64_t n = int64_t(p.N) * p.C * p.H * p.W;
  if (n == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(gap_bwd_kernel<T>, blocks_for(n, kThreads), kThreads, 0, s, p, (const T*)dy,
                  (T*)dx, accumulate);
  });
}

}  // namespace tb::gpu
