// Elementwise and data-movement kernels. Memory-bound: each walks its tensors once, 16 bytes
// per thread where the pointers allow (every planned buffer is 256-byte aligned), with a
// scalar loop for the tail.
#include "ops/cuda/elementwise_kernels.h"
#include "ops/cuda/gpu_types.cuh"
#include "ops/cuda/pdl.cuh"

namespace tb::gpu {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t thread_index() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t thread_stride() { return int64_t(gridDim.x) * blockDim.x; }

template <class T, bool kVector>
__global__ void relu_fwd_kernel(const T* x, T* y, int64_t n) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  const int64_t nvec = kVector ? n / V : 0;
  for (int64_t i = thread_index(); i < nvec; i += thread_stride()) {
    Vec16<T> a = reinterpret_cast<const Vec16<T>*>(x)[i];
#pragma unroll
    for (int j = 0; j < V; ++j) a.v[j] = to_float(a.v[j]) > 0.0f ? a.v[j] : from_float<T>(0.0f);
    reinterpret_cast<Vec16<T>*>(y)[i] = a;
  }
  for (int64_t i = nvec * V + thread_index(); i < n; i += thread_stride())
    y[i] = to_float(x[i]) > 0.0f ? x[i] : from_float<T>(0.0f);
}

template <class T, bool kVector>
__global__ void relu_bwd_kernel(const T* y, const T* dy, T* dx, int64_t n, bool accumulate) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  const int64_t nvec = kVector ? n / V : 0;
  for (int64_t i = thread_index(); i < nvec; i += thread_stride()) {
    const Vec16<T> a = reinterpret_cast<const Vec16<T>*>(y)[i];
    const Vec16<T> g = reinterpret_cast<const Vec16<T>*>(dy)[i];
    Vec16<T> out;
    if (accumulate) out = reinterpret_cast<const Vec16<T>*>(dx)[i];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float v = to_float(a.v[j]) > 0.0f ? to_float(g.v[j]) : 0.0f;
      out.v[j] = from_float<T>(accumulate ? to_float(out.v[j]) + v : v);
    }
    reinterpret_cast<Vec16<T>*>(dx)[i] = out;
  }
  for (int64_t i = nvec * V + thread_index(); i < n; i += thread_stride()) {
    const float v = to_float(y[i]) > 0.0f ? to_float(dy[i]) : 0.0f;
    dx[i] = from_float<T>(accumulate ? to_float(dx[i]) + v : v);
  }
}

template <class T, bool kVector>
__global__ void add_kernel(const T* a, const T* b, T* y, int64_t n) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  const int64_t nvec = kVector ? n / V : 0;
  for (int64_t i = thread_index(); i < nvec; i += thread_stride()) {
    const Vec16<T> u = reinterpret_cast<const Vec16<T>*>(a)[i];
    const Vec16<T> v = reinterpret_cast<const Vec16<T>*>(b)[i];
    Vec16<T> out;
#pragma unroll
    for (int j = 0; j < V; ++j) out.v[j] = from_float<T>(to_float(u.v[j]) + to_float(v.v[j]));
    reinterpret_cast<Vec16<T>*>(y)[i] = out;
  }
  for (int64_t i = nvec * V + thread_index(); i < n; i += thread_stride())
    y[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

template <class T, bool kVector>
__global__ void copy_same_kernel(const T* src, T* dst, int64_t n, bool accumulate) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  const int64_t nvec = kVector ? n / V : 0;
  for (int64_t i = thread_index(); i < nvec; i += thread_stride()) {
    const Vec16<T> u = reinterpret_cast<const Vec16<T>*>(src)[i];
    if (!accumulate) {
      reinterpret_cast<Vec16<T>*>(dst)[i] = u;
      continue;
    }
    Vec16<T> out = reinterpret_cast<const Vec16<T>*>(dst)[i];
#pragma unroll
    for (int j = 0; j < V; ++j) out.v[j] = from_float<T>(to_float(out.v[j]) + to_float(u.v[j]));
    reinterpret_cast<Vec16<T>*>(dst)[i] = out;
  }
  for (int64_t i = nvec * V + thread_index(); i < n; i += thread_stride())
    dst[i] = accumulate ? from_float<T>(to_float(dst[i]) + to_float(src[i])) : src[i];
}

template <class S, class D>
__global__ void convert_kernel(const S* src, D* dst, int64_t n, bool accumulate) {
  pdl_begin();
  for (int64_t i = thread_index(); i < n; i += thread_stride()) {
    const float v = to_float(src[i]);
    dst[i] = from_float<D>(accumulate ? to_float(dst[i]) + v : v);
  }
}

// One thread per destination element; the other side is read with a stride of C or H*W.
template <class S, class D, bool kToFlat>
__global__ void flatten_kernel(const S* src, D* dst, int N, int C, int H, int W, bool accumulate) {
  pdl_begin();
  const int64_t hw = int64_t(H) * W, n_total = int64_t(N) * C * hw;
  for (int64_t i = thread_index(); i < n_total; i += thread_stride()) {
    int64_t from;
    if (kToFlat) {  // i walks [N,C,H*W]; the source is [N,H*W,C]
      const int64_t n = i / (C * hw), r = i % (C * hw), c = r / hw, pos = r % hw;
      from = (n * hw + pos) * C + c;
    } else {  // i walks [N,H*W,C]; the source is [N,C,H*W]
      const int64_t n = i / (C * hw), r = i % (C * hw), pos = r / C, c = r % C;
      from = (n * C + c) * hw + pos;
    }
    const float v = to_float(src[from]);
    dst[i] = from_float<D>(accumulate ? to_float(dst[i]) + v : v);
  }
}

// The same through 32 x 32 tiles of one image in shared memory, so that both the reads and
// the writes of a warp are contiguous (the kernel above, a 64-bit division chain per element
// and a strided side, ran at 0.4 TB/s on alexnet_lite's 6 MB flatten; gpu-notes v19). The
// source image is a rows x cols matrix: [H*W][C] to flatten, [C][H*W] back; block z = image.
constexpr int kTile = 32, kTileRows = 8, kTileThreads = kTile * kTileRows;
template <class S, class D, bool kToFlat>
__global__ void __launch_bounds__(kTileThreads)
    flatten_tiled_kernel(const S* src, D* dst, int C, int HW, bool accumulate) {
  __shared__ float tile[kTile][kTile + 1];
  pdl_begin();
  const int rows = kToFlat ? HW : C, cols = kToFlat ? C : HW;
  const int64_t image = int64_t(blockIdx.z) * C * HW;
  const int r0 = blockIdx.y * kTile, c0 = blockIdx.x * kTile;
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int r = r0 + j, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[j][threadIdx.x] = to_float(src[image + int64_t(r) * cols + c]);
  }
  __syncthreads();
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int r = c0 + j, c = r0 + threadIdx.x;  // destination row (a source column) and column
    if (r < cols && c < rows) {
      const int64_t at = image + int64_t(r) * rows + c;
      const float v = tile[threadIdx.x][j];
      dst[at] = from_float<D>(accumulate ? to_float(dst[at]) + v : v);
    }
  }
}

template <class S, class D, bool kToFlat>
void launch_flatten(const S* src, D* dst, int N, int C, int H, int W, bool accumulate,
                    cudaStream_t s) {
  const int hw = H * W, rows = kToFlat ? hw : C, cols = kToFlat ? C : hw;
  if (N <= 65535 && (rows + kTile - 1) / kTile <= 65535) {
    const dim3 grid((cols + kTile - 1) / kTile, (rows + kTile - 1) / kTile, N);
    launch_kernel(flatten_tiled_kernel<S, D, kToFlat>, grid, dim3(kTile, kTileRows), 0, s, src, dst,
                  C, hw, accumulate);
  } else {
    launch_kernel(flatten_kernel<S, D, kToFlat>, blocks_for(int64_t(N) * C * hw, kThreads),
                  kThreads, 0, s, src, dst, N, C, H, W, accumulate);
  }
}

__device__ __forceinline__ float keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

template <class T>
__global__ void dropout_fwd_kernel(DropoutParams p, int channels, int64_t hw, const T* x, T* y,
                                   uint8_t* mask, const GpuStepState* state) {
  pdl_begin();
  const uint64_t stream = state ? ((uint64_t(state->step) << 16) ^ (p.stream & 0xFFFFu)) : p.stream;
  const float scale = keep_scale(p.p);
  const int64_t item = int64_t(channels) * hw;
  for (int64_t j = thread_index(); j < p.numel; j += thread_stride()) {
    int64_t i = j;  // the element's index in N,C,H,W order
    if (hw > 1) {
      const int64_t n = j / item, r = j % item, pos = r / channels, c = r % channels;
      i = (n * channels + c) * hw + pos;
    }
    const bool keep = counter_uniform_dev(p.seed, stream, uint64_t(i)) >= p.p;
    mask[j] = keep ? 1 : 0;
    y[j] = keep ? from_float<T>(to_float(x[j]) * scale) : from_float<T>(0.0f);
  }
}

template <class T>
__global__ void dropout_bwd_kernel(DropoutParams p, const T* dy, const uint8_t* mask, T* dx,
                                   bool accumulate) {
  pdl_begin();
  const float scale = keep_scale(p.p);
  for (int64_t j = thread_index(); j < p.numel; j += thread_stride()) {
    const float g = mask[j] ? to_float(dy[j]) * scale : 0.0f;
    dx[j] = from_float<T>(accumulate ? to_float(dx[j]) + g : g);
  }
}

template <class T>
__global__ void add_bias_kernel(T* y, const float* bias, int64_t rows, int K) {
  pdl_begin();
  const int64_t n = rows * K;
  for (int64_t i = thread_index(); i < n; i += thread_stride())
    y[i] = from_float<T>(to_float(y[i]) + bias[i % K]);
}

// 16 bytes of y a thread when K is whole vectors (the scalar loop above ran at 0.8 TB/s on
// alexnet_lite's first convolution, 51 MB, gpu-notes v19).
template <class T>
__global__ void add_bias_vector_kernel(Vec16<T>* y, const float* bias, int64_t vectors, int K) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  for (int64_t i = thread_index(); i < vectors; i += thread_stride()) {
    Vec16<T> v = y[i];
    const int k0 = int(i * V % K);
#pragma unroll
    for (int e = 0; e < V; ++e) v.v[e] = from_float<T>(to_float(v.v[e]) + bias[k0 + e]);
    y[i] = v;
  }
}

template <class T>
bool vectorizable(const void* a, const void* b = nullptr, const void* c = nullptr) {
  return aligned16(a) && (!b || aligned16(b)) && (!c || aligned16(c));
}

template <class T>
unsigned vector_blocks(int64_t n) {
  return blocks_for((n + Vec16<T>::kCount - 1) / Vec16<T>::kCount, kThreads);
}

}  // namespace

void relu_forward(DType t, const void* x, void* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  TB_GPU_DISPATCH(t, T, {
    if (vectorizable<T>(x, y))
      launch_kernel(relu_fwd_kernel<T, true>, vector_blocks<T>(n), kThreads, 0, s, (const T*)x,
                    (T*)y, n);
    else
      launch_kernel(relu_fwd_kernel<T, false>, blocks_for(n, kThreads), kThreads, 0, s, (const T*)x,
                    (T*)y, n);
  });
}

void relu_backward(DType t, const void* y, const void* dy, void* dx, int64_t n, bool accumulate,
                   cudaStream_t s) {
  if (n == 0) return;
  TB_GPU_DISPATCH(t, T, {
    if (vectorizable<T>(y, dy, dx))
      launch_kernel(relu_bwd_kernel<T, true>, vector_blocks<T>(n), kThreads, 0, s, (const T*)y,
                    (const T*)dy, (T*)dx, n, accumulate);
    else
      launch_kernel(relu_bwd_kernel<T, false>, blocks_for(n, kThreads), kThreads, 0, s, (const T*)y,
                    (const T*)dy, (T*)dx, n, accumulate);
  });
}

void add_forward(DType t, const void* a, const void* b, void* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  TB_GPU_DISPATCH(t, T, {
    if (vectorizable<T>(a, b, y))
      launch_kernel(add_kernel<T, true>, vector_blocks<T>(n), kThreads, 0, s, (const T*)a,
                    (const T*)b, (T*)y, n);
    else
      launch_kernel(add_kernel<T, false>, blocks_for(n, kThreads), kThreads, 0, s, (const T*)a,
                    (const T*)b, (T*)y, n);
  });
}

void convert_copy(DType src_t, const void* src, DType dst_t, void* dst, int64_t n, bool accumulate,
                  cudaStream_t s) {
  if (n == 0) return;
  if (src_t == dst_t) {
    TB_GPU_DISPATCH(src_t, T, {
      if (vectorizable<T>(src, dst))
        launch_kernel(copy_same_kernel<T, true>, vector_blocks<T>(n), kThreads, 0, s, (const T*)src,
                      (T*)dst, n, accumulate);
      else
        launch_kernel(copy_same_kernel<T, false>, blocks_for(n, kThreads), kThreads, 0, s,
                      (const T*)src, (T*)dst, n, accumulate);
    });
  } else {
    TB_GPU_DISPATCH(src_t, S, {
      TB_GPU_DISPATCH(dst_t, D, {
        launch_kernel(convert_kernel<S, D>, blocks_for(n, kThreads), kThreads, 0, s, (const S*)src,
                      (D*)dst, n, accumulate);
      });
    });
  }
}

void nhwc_to_flat(DType src_t, const void* src, DType dst_t, void* dst, int N, int C, int H, int W,
                  bool accumulate, cudaStream_t s) {
  const int64_t n = int64_t(N) * C * H * W;
  if (n == 0) return;
  TB_GPU_DISPATCH(src_t, S, {
    TB_GPU_DISPATCH(dst_t, D, {
      launch_flatten<S, D, true>((const S*)src, (D*)dst, N, C, H, W, accumulate, s);
    });
  });
}

void flat_to_nhwc(DType src_t, const void* src, DType dst_t, void* dst, int N, int C, int H, int W,
                  bool accumulate, cudaStream_t s) {
  const int64_t n = int64_t(N) * C * H * W;
  if (n == 0) return;
  TB_GPU_DISPATCH(src_t, S, {
    TB_GPU_DISPATCH(dst_t, D, {
      launch_flatten<S, D, false>((const S*)src, (D*)dst, N, C, H, W, accumulate, s);
    });
  });
}

void dropout_forward(DType t, const DropoutParams& p, int channels, int64_t hw, const void* x,
                     void* y, uint8_t* mask, const GpuStepState* state, cudaStream_t s) {
  if (p.numel == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(dropout_fwd_kernel<T>, blocks_for(p.numel, kThreads), kThreads, 0, s, p, channels,
                  hw, (const T*)x, (T*)y, mask, state);
  });
}

void dropout_backward(DType t, const DropoutParams& p, const void* dy, const uint8_t* mask,
                      void* dx, bool accumulate, cudaStream_t s) {
  if (p.numel == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(dropout_bwd_kernel<T>, blocks_for(p.numel, kThreads), kThreads, 0, s, p,
                  (const T*)dy, mask, (T*)dx, accumulate);
  });
}

void add_bias(DType t, void* y, const float* bias, int64_t rows, int K, cudaStream_t s) {
  if (rows * K == 0) return;
  TB_GPU_DISPATCH(t, T, {
    if (K % Vec16<T>::kCount == 0 && vectorizable<T>(y))
      launch_kernel(add_bias_vector_kernel<T>, vector_blocks<T>(rows * K), kThreads, 0, s,
                    (Vec16<T>*)y, bias, rows * K / Vec16<T>::kCount, K);
    else
      launch_kernel(add_bias_kernel<T>, blocks_for(rows * K, kThreads), kThreads, 0, s, (T*)y, bias,
                    rows, K);
  });
}

}  // namespace tb::gpu
