// Batch norm in three launches per pass: per-block partial sums, a per-channel finish (in
// double, in a fixed order), and one elementwise pass that applies per-channel coefficients.
// The fused batch-norm + (residual add +) ReLU ops reuse the same three launches: the ReLU
// and the add run inside the forward apply pass, and the backward reads the ReLU's mask from
// y inside its reduction and its apply pass (which also writes the residual's gradient), or,
// without a residual, recomputes it from x and the forward's coefficients (ReluFromX).
#include <algorithm>
#include <initializer_list>

#include "ops/cuda/batchnorm_kernels.h"
#include "ops/cuda/gpu_types.cuh"
#include "ops/cuda/pdl.cuh"

namespace tb::gpu {
namespace {

constexpr int kCols = 32;  // channels per block (one warp across)
constexpr int kRows = 8;   // rows a block walks at once

struct Grid {
  int col_blocks;
  int chunks;
  int64_t rows_per_chunk;
};

// Row chunks of about 16K elements each, at most 1,024: enough blocks to fill the GPU whether
// the tensor is wide (512 channels, few rows) or narrow (64 channels, many rows).
Grid grid_for(int64_t rows, int C) {
  Grid g;
  g.col_blocks = (C + kCols - 1) / kCols;
  const int64_t by_size = rows * int64_t(C) / 16384;
  g.chunks = int(std::max<int64_t>(1, std::min<int64_t>({by_size, 1024, rows})));
  g.rows_per_chunk = (rows + g.chunks - 1) / g.chunks;
  return g;
}

// The forward's per-channel coefficients, bn(x) = x * scale + shift, from the saved fp32
// statistics. The forward computes them this way, so a backward recomputes them bit for bit
// (explicit roundings: the compiler may not contract one call site and not another).
__device__ __forceinline__ float2 forward_coefficients(float gamma, float beta, float mean,
                                                       float invstd) {
  const double scale = __dmul_rn(double(gamma), double(invstd));
  return make_float2(float(scale), float(__fma_rn(-double(mean), scale, double(beta))));
}
// bn(x) before rounding, as every apply pass computes it (one rounding: fma).
__device__ __forceinline__ float normalised(float x, float scale, float shift) {
  return __fmaf_rn(x, scale, shift);
}
// Whether relu(bn(x)), stored in T, is positive: the fused forward's ReLU mask, recomputed.
template <class T>
__device__ __forceinline__ bool relu_passed(float x, float2 k) {
  return to_float(from_float<T>(normalised(x, k.x, k.y))) > 0.0f;
}

// What a backward without a residual needs to rebuild relu(bn(x)) > 0 from x (the y it would
// otherwise read is as large as x): the forward's gamma, beta and saved statistics.
struct ReluFromX {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  const float* mean = nullptr;
  const float* invstd = nullptr;
  __device__ float2 coefficients(int c) const {
    return forward_coefficients(gamma[c], beta[c], mean[c], invstd[c]);
  }
};

// kMode 0: sums of (x - x[0,c]) and its square. kMode 1: sums of dy and dy * (x - mean[c]).
// kMode 2: sums of y only (column sums). kMode 3: kMode 1 with dy masked by a ReLU's output
// (dy where mask > 0, else 0: the ReLU's backward, read as the separate kernel computes it).
// kMode 4: kMode 3 with the mask rebuilt from x (relu_from_x) instead of read.
template <class T, int kMode>
__global__ void partial_sums_kernel(const T* x, const T* dy, const float* mean, int64_t rows, int C,
                                    int64_t rows_per_chunk, float2* partials, const T* mask,
                                    ReluFromX relu_from_x) {
  pdl_begin();
  __shared__ float2 red[kRows][kCols];
  const int c = blockIdx.x * kCols + threadIdx.x;
  const int64_t begin = blockIdx.y * rows_per_chunk;
  const int64_t end = min(rows, begin + rows_per_chunk);
  float s1 = 0.0f, s2 = 0.0f;
  if (c < C) {
    const float shift = kMode == 0 ? to_float(x[c]) : (kMode != 2 ? mean[c] : 0.0f);
    const float2 k = kMode == 4 ? relu_from_x.coefficients(c) : float2{};
    for (int64_t r = begin + threadIdx.y; r < end; r += kRows) {
      const int64_t i = r * C + c;
      if (kMode == 0) {
        const float d = to_float(x[i]) - shift;
        s1 += d;
        s2 += d * d;
      } else if (kMode != 2) {
        const bool pass = kMode == 1 || (kMode == 3 ? to_float(mask[i]) > 0.0f
                                                    : relu_passed<T>(to_float(x[i]), k));
        const float g = pass ? to_float(dy[i]) : 0.0f;
        s1 += g;
        s2 += g * (to_float(x[i]) - shift);
      } else {
        s1 += to_float(x[i]);
      }
    }
  }
  red[threadIdx.y][threadIdx.x] = make_float2(s1, s2);
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float2 sum = red[0][threadIdx.x];
    for (int k = 1; k < kRows; ++k) {
      sum.x += red[k][threadIdx.x].x;
      sum.y += red[k][threadIdx.x].y;
    }
    partials[int64_t(blockIdx.y) * C + c] = sum;
  }
}

// The same sums with 16-byte loads: a thread owns V = 16 / sizeof(T) consecutive channels of
// a row, C / V threads cover a row, and a block of `lanes` such row-walkers steps through its
// chunk `lanes` rows at a time (a warp reads whole rows: NHWC rows are contiguous). The block
// then adds its lanes in order, so the result depends on the shape only, never on timing.
template <class T, int kMode>
__global__ void partial_sums_vector_kernel(const T* x, const T* dy, const float* mean, int64_t rows,
                                           int C, int64_t rows_per_chunk, float2* partials,
                                           const T* mask, ReluFromX relu_from_x) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  extern __shared__ float2 lane_sums[];  // [lanes][C]
  const int groups = C / V;
  const int lanes = int(blockDim.x) / groups;
  const int lane = int(threadIdx.x) / groups, c0 = (int(threadIdx.x) % groups) * V;
  const int64_t begin = int64_t(blockIdx.x) * rows_per_chunk;
  const int64_t end = min(rows, begin + rows_per_chunk);
  float s1[V], s2[V], shift[V];
  float2 k[kMode == 4 ? V : 1];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    s1[j] = s2[j] = 0.0f;
    shift[j] = kMode == 0 ? to_float(x[c0 + j]) : (kMode != 2 ? mean[c0 + j] : 0.0f);
    if constexpr (kMode == 4) k[j] = relu_from_x.coefficients(c0 + j);
  }
  const Vec16<T>* xv = reinterpret_cast<const Vec16<T>*>(x);
  const Vec16<T>* dyv = reinterpret_cast<const Vec16<T>*>(dy);
  const Vec16<T>* mv = reinterpret_cast<const Vec16<T>*>(mask);
  const auto add = [&](const Vec16<T>& a, const Vec16<T>& g, const Vec16<T>& m) {
    if (kMode == 0) {
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float d = to_float(a.v[j]) - shift[j];
        s1[j] += d;
        s2[j] += d * d;
      }
    } else if (kMode != 2) {
#pragma unroll
      for (int j = 0; j < V; ++j) {
        bool pass = true;
        if constexpr (kMode == 3) pass = to_float(m.v[j]) > 0.0f;
        if constexpr (kMode == 4) pass = relu_passed<T>(to_float(a.v[j]), k[kMode == 4 ? j : 0]);
        const float gj = pass ? to_float(g.v[j]) : 0.0f;
        s1[j] += gj;
        s2[j] += gj * (to_float(a.v[j]) - shift[j]);
      }
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) s1[j] += to_float(a.v[j]);
    }
  };
  // Four rows' loads are issued before any is added: with one tensor to read (the forward's
  // sums) a thread otherwise had a single 16-byte load in flight, and the pass ran at 1.8
  // TB/s on an H100 against 2.9 for the backward's three tensors (ncu, gpu-notes v20). The
  // rows are still added in the same order, so the sums are unchanged bit for bit.
  constexpr int kBatch = 4;
  const int64_t step = int64_t(C) / V * lanes;  // vectors between a lane's rows
  int64_t r = begin + lane;
  for (; r + (kBatch - 1) * lanes < end; r += kBatch * lanes) {
    const int64_t i = (r * C + c0) / V;
    Vec16<T> a[kBatch], g[kBatch], m[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      a[u] = xv[i + u * step];
      if (kMode != 0 && kMode != 2) g[u] = dyv[i + u * step];
      if (kMode == 3) m[u] = mv[i + u * step];
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) add(a[u], g[u], m[u]);
  }
  for (; r < end; r += lanes) {
    const int64_t i = (r * C + c0) / V;
    Vec16<T> g, m;
    if (kMode != 0 && kMode != 2) g = dyv[i];
    if (kMode == 3) m = mv[i];
    add(xv[i], g, m);
  }
#pragma unroll
  for (int j = 0; j < V; ++j) lane_sums[lane * C + c0 + j] = make_float2(s1[j], s2[j]);
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float2 sum = lane_sums[c];
    for (int k = 1; k < lanes; ++k) {
      sum.x += lane_sums[k * C + c].x;
      sum.y += lane_sums[k * C + c].y;
    }
    partials[int64_t(blockIdx.x) * C + c] = sum;
  }
}

// The finish kernels run on blocks of kCols channels x kFinishRows thread rows: row r adds
// chunks r, r + kFinishRows, ... in double (coalesced across the channels), then the rows are
// added pairwise in a fixed tree. A fixed order, so results depend on the shape only. With 8
// rows, a 64-channel tensor's 1,024 chunks were two blocks of 128 serial loads per thread:
// 13-16 us per finish on an H100 at batch 512, 40 finishes a resnet18 step; with 32 rows,
// 5-8 us (gpu-notes v18).
constexpr int kFinishRows = 32;
constexpr int kFinishThreads = kCols * kFinishRows;

__device__ __forceinline__ bool sum_chunks(const float2* partials, int chunks, int C, double& s1,
                                           double& s2) {
  __shared__ double r1[kFinishRows][kCols], r2[kFinishRows][kCols];
  const int c = blockIdx.x * kCols + threadIdx.x;
  double a = 0, b = 0;
  if (c < C) {
#pragma unroll 4
    for (int k = threadIdx.y; k < chunks; k += kFinishRows) {
      const float2 v = partials[int64_t(k) * C + c];
      a += v.x;
      b += v.y;
    }
  }
  r1[threadIdx.y][threadIdx.x] = a;
  r2[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
#pragma unroll
  for (int half = kFinishRows / 2; half > 0; half /= 2) {
    if (int(threadIdx.y) < half) {
      r1[threadIdx.y][threadIdx.x] += r1[threadIdx.y + half][threadIdx.x];
      r2[threadIdx.y][threadIdx.x] += r2[threadIdx.y + half][threadIdx.x];
    }
    __syncthreads();
  }
  if (threadIdx.y != 0 || c >= C) return false;
  s1 = r1[0][threadIdx.x];
  s2 = r2[0][threadIdx.x];
  return true;
}

dim3 finish_grid(int C) { return dim3((C + kCols - 1) / kCols); }
dim3 finish_block() { return dim3(kCols, kFinishRows); }

// coef[c] = scale, coef[C + c] = shift: y = x * scale + shift.
template <class T>
__global__ void __launch_bounds__(kFinishThreads)
    finish_forward_kernel(const T* x, const float2* partials, int chunks, int64_t rows, int C,
                          double eps, double momentum, const float* gamma, const float* beta,
                          float* running_mean, float* running_var, float* save_mean,
                          float* save_invstd, float* coef) {
  pdl_begin();
  double s1 = 0, s2 = 0;
  if (!sum_chunks(partials, chunks, C, s1, s2)) return;
  const int c = blockIdx.x * kCols + threadIdx.x;
  const double m = double(rows);
  const double shifted_mean = s1 / m;
  const double var = fmax(s2 / m - shifted_mean * shifted_mean, 0.0);
  const double mean = double(to_float(x[c])) + shifted_mean;
  const double invstd = 1.0 / sqrt(var + eps);
  save_mean[c] = float(mean);
  save_invstd[c] = float(invstd);
  const double unbiased = rows > 1 ? var * m / (m - 1) : var;
  running_mean[c] = float((1.0 - momentum) * double(running_mean[c]) + momentum * mean);
  running_var[c] = float((1.0 - momentum) * double(running_var[c]) + momentum * unbiased);
  // From the saved (rounded) statistics, as a backward recomputes them (ReluFromX).
  const float2 k = forward_coefficients(gamma[c], beta[c], float(mean), float(invstd));
  coef[c] = k.x;
  coef[C + c] = k.y;
}

__global__ void finish_eval_kernel(int C, double eps, const float* gamma, const float* beta,
                                   const float* running_mean, const float* running_var,
                                   float* coef) {
  pdl_begin();
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const double scale = double(gamma[c]) / sqrt(double(running_var[c]) + eps);
  coef[c] = float(scale);
  coef[C + c] = float(double(beta[c]) - double(running_mean[c]) * scale);
}

// dx = a * dy + b * x + d, with a = gamma*invstd, b = -k*sum_dy_xhat*invstd,
// d = -b*mean - k*sum_dy and k = gamma*invstd/m (the ref's formula, expanded).
__global__ void __launch_bounds__(kFinishThreads)
    finish_backward_kernel(const float2* partials, int chunks, int64_t rows, int C,
                           const float* gamma, const float* save_mean, const float* save_invstd,
                           float* dgamma, float* dbeta, float* coef, ReluFromX relu_from_x) {
  pdl_begin();
  double sum_dy = 0, sum_dy_xmu = 0;
  if (!sum_chunks(partials, chunks, C, sum_dy, sum_dy_xmu)) return;
  const int c = blockIdx.x * kCols + threadIdx.x;
  const double invstd = save_invstd[c], mean = save_mean[c];
  const double sum_dy_xhat = sum_dy_xmu * invstd;
  dbeta[c] = float(sum_dy);
  dgamma[c] = float(sum_dy_xhat);
  const double m = double(rows);
  const double k = double(gamma[c]) * invstd / m;
  const double a = double(gamma[c]) * invstd;
  const double b = -k * sum_dy_xhat * invstd;
  coef[c] = float(a);
  coef[C + c] = float(b);
  coef[2 * C + c] = float(-b * mean - k * sum_dy);
  if (relu_from_x.beta) {  // the forward's coefficients, for the apply pass's ReLU mask
    const float2 f = relu_from_x.coefficients(c);
    coef[3 * C + c] = f.x;
    coef[4 * C + c] = f.y;
  }
}

__global__ void __launch_bounds__(kFinishThreads)
    finish_column_sum_kernel(const float2* partials, int chunks, int C, float* out) {
  pdl_begin();
  double s = 0, unused = 0;
  if (!sum_chunks(partials, chunks, C, s, unused)) return;
  out[blockIdx.x * kCols + threadIdx.x] = float(s);
}

// What the forward apply pass does after normalising: nothing, ReLU, or residual add + ReLU.
enum Epilogue { kPlain = 0, kRelu = 1, kAddRelu = 2 };

// Rounds to T between steps, as the separate batch-norm, add and ReLU kernels store their
// outputs, so the fused pass writes exactly what the three would.
template <class T, int kEpilogue>
__device__ __forceinline__ T finish_value(float v, T residual) {
  T out = from_float<T>(v);
  if (kEpilogue == kAddRelu) out = from_float<T>(to_float(out) + to_float(residual));
  if (kEpilogue != kPlain) out = to_float(out) > 0.0f ? out : from_float<T>(0.0f);
  return out;
}

// The apply kernels' 16-byte paths: with kApplyThreads threads per block and a row of C / V
// vectors dividing it, every grid-stride step lands on the same channels, so a thread keeps
// its channels' coefficients in registers instead of a 64-bit modulo and global loads per
// vector.
constexpr int kApplyThreads = 256;
template <class T>
bool fixed_channels(int C) {
  const int per_row = C / Vec16<T>::kCount;
  return per_row > 0 && kApplyThreads % per_row == 0;
}

// y = epilogue(x * coef[c] + coef[C + c]); 16-byte vectors when C is a multiple of the vector
// width. residual is read only for kAddRelu.
template <class T, bool kVector, int kEpilogue, bool kFixed = false>
__global__ void apply_forward_kernel(const T* x, const T* residual, T* y, int64_t n, int C,
                                     const float* coef) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (kFixed) {
    const int c0 = int(tid % (C / V)) * V;
    float scale[V], shift[V];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      scale[j] = coef[c0 + j];
      shift[j] = coef[C + c0 + j];
    }
#pragma unroll 2
    for (int64_t i = tid; i < n / V; i += stride) {
      Vec16<T> a = reinterpret_cast<const Vec16<T>*>(x)[i];
      Vec16<T> r;
      if (kEpilogue == kAddRelu) r = reinterpret_cast<const Vec16<T>*>(residual)[i];
#pragma unroll
      for (int j = 0; j < V; ++j)
        a.v[j] = finish_value<T, kEpilogue>(normalised(to_float(a.v[j]), scale[j], shift[j]),
                                            kEpilogue == kAddRelu ? r.v[j] : T{});
      reinterpret_cast<Vec16<T>*>(y)[i] = a;
    }
  } else if (kVector) {
    for (int64_t i = tid; i < n / V; i += stride) {
      Vec16<T> a = reinterpret_cast<const Vec16<T>*>(x)[i];
      Vec16<T> r;
      if (kEpilogue == kAddRelu) r = reinterpret_cast<const Vec16<T>*>(residual)[i];
      const int c0 = int((i * V) % C);
#pragma unroll
      for (int j = 0; j < V; ++j)
        a.v[j] =
            finish_value<T, kEpilogue>(normalised(to_float(a.v[j]), coef[c0 + j], coef[C + c0 + j]),
                                       kEpilogue == kAddRelu ? r.v[j] : T{});
      reinterpret_cast<Vec16<T>*>(y)[i] = a;
    }
  } else {
    for (int64_t i = tid; i < n; i += stride) {
      const int c = int(i % C);
      y[i] = finish_value<T, kEpilogue>(normalised(to_float(x[i]), coef[c], coef[C + c]),
                                        kEpilogue == kAddRelu ? residual[i] : T{});
    }
  }
}

// dx = coef[c] * g + coef[C + c] * x + coef[2C + c] with g = dy (kMask 0), or g = dy where the
// ReLU passed, else 0, and dres = g (or += g): read from mask > 0 (kMask 1), or rebuilt from x
// and the forward's coefficients coef[3C + c], coef[4C + c] (kMask 2). dx may be null when
// only dres is wanted.
template <class T, bool kVector, int kMask, bool kFixed = false>
__global__ void apply_backward_kernel(const T* x, const T* dy, T* dx, int64_t n, int C,
                                      const float* coef, bool accumulate, const T* mask, T* dres,
                                      bool accumulate_res) {
  pdl_begin();
  constexpr int V = Vec16<T>::kCount;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (kVector) {
    // With kFixed the channels never change (see fixed_channels): coefficients in registers.
    const int c_fixed = kFixed ? int(tid % (C / V)) * V : 0;
    float ca[kFixed ? V : 1], cb[kFixed ? V : 1], cd[kFixed ? V : 1];
    float2 kf[kFixed && kMask == 2 ? V : 1];
    if (kFixed) {
#pragma unroll
      for (int j = 0; j < V; ++j) {
        ca[j] = coef[c_fixed + j];
        cb[j] = coef[C + c_fixed + j];
        cd[j] = coef[2 * C + c_fixed + j];
        if constexpr (kMask == 2)
          kf[kFixed ? j : 0] = make_float2(coef[3 * C + c_fixed + j], coef[4 * C + c_fixed + j]);
      }
    }
    for (int64_t i = tid; i < n / V; i += stride) {
      const Vec16<T> a = reinterpret_cast<const Vec16<T>*>(x)[i];
      Vec16<T> g = reinterpret_cast<const Vec16<T>*>(dy)[i];
      if (kMask != 0) {
        if constexpr (kMask == 1) {
          const Vec16<T> m = reinterpret_cast<const Vec16<T>*>(mask)[i];
#pragma unroll
          for (int j = 0; j < V; ++j)
            if (!(to_float(m.v[j]) > 0.0f)) g.v[j] = from_float<T>(0.0f);
        } else {
          const int c0 = kFixed ? c_fixed : int((i * V) % C);
#pragma unroll
          for (int j = 0; j < V; ++j) {
            const float2 k = kFixed ? kf[kFixed && kMask == 2 ? j : 0]
                                    : make_float2(coef[3 * C + c0 + j], coef[4 * C + c0 + j]);
            if (!relu_passed<T>(to_float(a.v[j]), k)) g.v[j] = from_float<T>(0.0f);
          }
        }
        if (dres) {
          Vec16<T> r = g;
          if (accumulate_res) {
            r = reinterpret_cast<const Vec16<T>*>(dres)[i];
#pragma unroll
            for (int j = 0; j < V; ++j) r.v[j] = from_float<T>(to_float(r.v[j]) + to_float(g.v[j]));
          }
          reinterpret_cast<Vec16<T>*>(dres)[i] = r;
        }
        if (!dx) continue;
      }
      Vec16<T> out;
      if (accumulate) out = reinterpret_cast<const Vec16<T>*>(dx)[i];
      if (kFixed) {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float v = ca[j] * to_float(g.v[j]) + cb[j] * to_float(a.v[j]) + cd[j];
          out.v[j] = from_float<T>(accumulate ? to_float(out.v[j]) + v : v);
        }
      } else {
        const int c0 = int((i * V) % C);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const int c = c0 + j;
          const float v =
              coef[c] * to_float(g.v[j]) + coef[C + c] * to_float(a.v[j]) + coef[2 * C + c];
          out.v[j] = from_float<T>(accumulate ? to_float(out.v[j]) + v : v);
        }
      }
      reinterpret_cast<Vec16<T>*>(dx)[i] = out;
    }
  } else {
    for (int64_t i = tid; i < n; i += stride) {
      T g = dy[i];
      const int c = int(i % C);
      if (kMask != 0) {
        const bool pass =
            kMask == 1
                ? to_float(mask[i]) > 0.0f
                : relu_passed<T>(to_float(x[i]), make_float2(coef[3 * C + c], coef[4 * C + c]));
        if (!pass) g = from_float<T>(0.0f);
        if (dres) dres[i] = accumulate_res ? from_float<T>(to_float(dres[i]) + to_float(g)) : g;
        if (!dx) continue;
      }
      const float v = coef[c] * to_float(g) + coef[C + c] * to_float(x[i]) + coef[2 * C + c];
      dx[i] = from_float<T>(accumulate ? to_float(dx[i]) + v : v);
    }
  }
}

size_t round256(size_t n) { return (n + 255) / 256 * 256; }

// Workspace layout: partials (float2 per chunk and channel), then 5*C coefficients (the
// backward's three, then the forward's two when it rebuilds a ReLU mask from x).
float2* partials_of(void* ws) { return static_cast<float2*>(ws); }
float* coef_of(void* ws, int64_t rows, int C) {
  const Grid g = grid_for(rows, C);
  return reinterpret_cast<float*>(static_cast<char*>(ws) +
                                  round256(sizeof(float2) * size_t(g.chunks) * C));
}

// Whether every given pointer (null ones are skipped) allows 16-byte steps.
template <class T>
bool vector_ok(int C, std::initializer_list<const void*> pointers) {
  if (C % Vec16<T>::kCount != 0) return false;
  for (const void* p : pointers)
    if (p && !aligned16(p)) return false;
  return true;
}

// Per-chunk, per-channel partial sums (kMode as partial_sums_kernel): 16-byte loads when the
// channels split into whole vectors and a row fits one block, else one element per thread.
template <class T, int kMode>
void partial_sums(const void* x, const void* dy, const float* mean, int64_t rows, int C,
                  const Grid& g, float2* partials, const void* mask, cudaStream_t s,
                  ReluFromX relu_from_x = {}) {
  constexpr int V = Vec16<T>::kCount;
  const int groups = C / V;
  if (vector_ok<T>(C, {x, dy, mask}) && groups <= 256) {
    const int lanes = 256 / groups;
    const size_t shared = sizeof(float2) * size_t(lanes) * size_t(C);
    launch_kernel(partial_sums_vector_kernel<T, kMode>, g.chunks, lanes * groups, shared, s,
                  (const T*)x, (const T*)dy, mean, rows, C, g.rows_per_chunk, partials,
                  (const T*)mask, relu_from_x);
  } else {
    launch_kernel(partial_sums_kernel<T, kMode>, dim3(g.col_blocks, g.chunks), dim3(kCols, kRows),
                  0, s, (const T*)x, (const T*)dy, mean, rows, C, g.rows_per_chunk, partials,
                  (const T*)mask, relu_from_x);
  }
}

template <class T, int kEpilogue>
void apply_forward(const void* x, const void* residual, void* y, int64_t n, int C,
                   const float* coef, cudaStream_t s) {
  const unsigned vector_blocks = blocks_for(n / Vec16<T>::kCount, kApplyThreads);
  if (vector_ok<T>(C, {x, residual, y}) && fixed_channels<T>(C))
    launch_kernel(apply_forward_kernel<T, true, kEpilogue, true>, vector_blocks, kApplyThreads, 0,
                  s, (const T*)x, (const T*)residual, (T*)y, n, C, coef);
  else if (vector_ok<T>(C, {x, residual, y}))
    launch_kernel(apply_forward_kernel<T, true, kEpilogue>, vector_blocks, kApplyThreads, 0, s,
                  (const T*)x, (const T*)residual, (T*)y, n, C, coef);
  else
    launch_kernel(apply_forward_kernel<T, false, kEpilogue>, blocks_for(n, 256), 256, 0, s,
                  (const T*)x, (const T*)residual, (T*)y, n, C, coef);
}

template <class T>
void apply_forward(const void* x, const void* residual, void* y, int64_t n, int C,
                   const float* coef, Epilogue epilogue, cudaStream_t s) {
  switch (epilogue) {
    case kPlain: apply_forward<T, kPlain>(x, nullptr, y, n, C, coef, s); break;
    case kRelu: apply_forward<T, kRelu>(x, nullptr, y, n, C, coef, s); break;
    case kAddRelu: apply_forward<T, kAddRelu>(x, residual, y, n, C, coef, s); break;
  }
}

Epilogue epilogue_for(bool relu, const void* residual) {
  return !relu ? kPlain : (residual ? kAddRelu : kRelu);
}

void forward_train(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                   const float* beta, const void* residual, Epilogue epilogue, void* y,
                   float* running_mean, float* running_var, float* save_mean, float* save_invstd,
                   void* workspace, cudaStream_t s) {
  const int64_t rows = int64_t(p.N) * p.spatial;
  const int C = p.C;
  const Grid g = grid_for(rows, C);
  float* coef = coef_of(workspace, rows, C);
  TB_GPU_DISPATCH(t, T, {
    partial_sums<T, 0>(x, nullptr, nullptr, rows, C, g, partials_of(workspace), nullptr, s);
    launch_kernel(finish_forward_kernel<T>, finish_grid(C), finish_block(), 0, s, (const T*)x,
                  partials_of(workspace), g.chunks, rows, C, p.eps, p.momentum, gamma, beta,
                  running_mean, running_var, save_mean, save_invstd, coef);
    apply_forward<T>(x, residual, y, rows * C, C, coef, epilogue, s);
  });
}

void forward_eval(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                  const float* beta, const float* running_mean, const float* running_var,
                  const void* residual, Epilogue epilogue, void* y, void* workspace,
                  cudaStream_t s) {
  const int64_t rows = int64_t(p.N) * p.spatial;
  const int C = p.C;
  float* coef = coef_of(workspace, rows, C);
  launch_kernel(finish_eval_kernel, (C + 127) / 128, 128, 0, s, C, p.eps, gamma, beta, running_mean,
                running_var, coef);
  TB_GPU_DISPATCH(t, T, { apply_forward<T>(x, residual, y, rows * C, C, coef, epilogue, s); });
}

// One apply_backward_kernel launch with mask mode kMask, on the widest path the shape allows.
template <class T, int kMask>
void apply_backward(const void* x, const void* dy, void* dx, int64_t n, int C, const float* coef,
                    bool accumulate, const void* mask, void* dres, bool accumulate_res,
                    cudaStream_t s) {
  const bool vector = vector_ok<T>(C, {x, dy, dx, mask, dres});
  const bool fixed = vector && fixed_channels<T>(C);
  const unsigned blocks =
      vector ? blocks_for(n / Vec16<T>::kCount, kApplyThreads) : blocks_for(n, kApplyThreads);
  const auto go = [&](auto kernel) {
    launch_kernel(kernel, blocks, kApplyThreads, 0, s, (const T*)x, (const T*)dy, (T*)dx, n, C,
                  coef, accumulate, (const T*)mask, (T*)dres, accumulate_res);
  };
  if (fixed)
    go(apply_backward_kernel<T, true, kMask, true>);
  else if (vector)
    go(apply_backward_kernel<T, true, kMask>);
  else
    go(apply_backward_kernel<T, false, kMask>);
}

// mask null and relu_from_x.beta null: the plain batch-norm backward. Otherwise the ReLU's
// backward is folded into the reduction and the apply pass (which also writes dres), its
// mask read from `mask` (the ReLU's output) or, with relu_from_x, rebuilt from x.
void backward(DType t, const BatchNormParams& p, const void* x, const float* gamma,
              const float* save_mean, const float* save_invstd, const void* mask,
              ReluFromX relu_from_x, const void* dy, void* dx, float* dgamma, float* dbeta,
              bool accumulate, void* dres, bool accumulate_res, void* workspace, cudaStream_t s) {
  const int64_t rows = int64_t(p.N) * p.spatial;
  const int C = p.C;
  const Grid g = grid_for(rows, C);
  float* coef = coef_of(workspace, rows, C);
  const bool from_x = relu_from_x.beta != nullptr;
  if (from_x) mask = nullptr;
  TB_GPU_DISPATCH(t, T, {
    if (from_x)
      partial_sums<T, 4>(x, dy, save_mean, rows, C, g, partials_of(workspace), nullptr, s,
                         relu_from_x);
    else if (mask)
      partial_sums<T, 3>(x, dy, save_mean, rows, C, g, partials_of(workspace), mask, s);
    else
      partial_sums<T, 1>(x, dy, save_mean, rows, C, g, partials_of(workspace), nullptr, s);
    launch_kernel(finish_backward_kernel, finish_grid(C), finish_block(), 0, s,
                  partials_of(workspace), g.chunks, rows, C, gamma, save_mean, save_invstd, dgamma,
                  dbeta, coef, relu_from_x);
    const int64_t n = rows * C;
    if (from_x && (dx || dres))
      apply_backward<T, 2>(x, dy, dx, n, C, coef, accumulate, nullptr, dres, accumulate_res, s);
    else if (mask && (dx || dres))
      apply_backward<T, 1>(x, dy, dx, n, C, coef, accumulate, mask, dres, accumulate_res, s);
    else if (!mask && !from_x && dx)
      apply_backward<T, 0>(x, dy, dx, n, C, coef, accumulate, nullptr, nullptr, false, s);
  });
}

}  // namespace

size_t batch_norm_workspace_bytes(int64_t rows, int C) {
  const Grid g = grid_for(rows, C);
  return round256(sizeof(float2) * size_t(g.chunks) * C) + round256(sizeof(float) * 5 * size_t(C));
}

size_t column_sum_workspace_bytes(int64_t rows, int K) { return batch_norm_workspace_bytes(rows, K); }

void batch_norm_forward_train(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                              const float* beta, void* y, float* running_mean, float* running_var,
                              float* save_mean, float* save_invstd, void* workspace,
                              cudaStream_t s) {
  forward_train(t, p, x, gamma, beta, nullptr, kPlain, y, running_mean, running_var, save_mean,
                save_invstd, workspace, s);
}

void batch_norm_forward_eval(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                             const float* beta, const float* running_mean,
                             const float* running_var, void* y, void* workspace, cudaStream_t s) {
  forward_eval(t, p, x, gamma, beta, running_mean, running_var, nullptr, kPlain, y, workspace, s);
}

void batch_norm_backward(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                         const float* save_mean, const float* save_invstd, const void* dy,
                         void* dx, float* dgamma, float* dbeta, bool accumulate, void* workspace,
                         cudaStream_t s) {
  backward(t, p, x, gamma, save_mean, save_invstd, nullptr, {}, dy, dx, dgamma, dbeta, accumulate,
           nullptr, false, workspace, s);
}

void batch_norm_relu_forward_train(DType t, const BatchNormParams& p, const void* x,
                                   const float* gamma, const float* beta, const void* residual,
                                   void* y, float* running_mean, float* running_var,
                                   float* save_mean, float* save_invstd, void* workspace,
                                   cudaStream_t s) {
  forward_train(t, p, x, gamma, beta, residual, epilogue_for(true, residual), y, running_mean,
                running_var, save_mean, save_invstd, workspace, s);
}

void batch_norm_relu_forward_eval(DType t, const BatchNormParams& p, const void* x,
                                  const float* gamma, const float* beta,
                                  const float* running_mean, const float* running_var,
                                  const void* residual, void* y, void* workspace, cudaStream_t s) {
  forward_eval(t, p, x, gamma, beta, running_mean, running_var, residual,
               epilogue_for(true, residual), y, workspace, s);
}

void batch_norm_relu_backward(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                              const float* beta, const float* save_mean, const float* save_invstd,
                              const void* y, const void* dy, void* dx, float* dgamma, float* dbeta,
                              bool accumulate_dx, void* dresidual, bool accumulate_dresidual,
                              void* workspace, cudaStream_t s) {
  ReluFromX relu_from_x;
  if (beta && !dresidual) relu_from_x = {gamma, beta, save_mean, save_invstd};
  backward(t, p, x, gamma, save_mean, save_invstd, y, relu_from_x, dy, dx, dgamma, dbeta,
           accumulate_dx, dresidual, accumulate_dresidual, workspace, s);
}

void column_sum(DType t, const void* y, int64_t rows, int K, float* out, void* workspace,
                cudaStream_t s) {
  const Grid g = grid_for(rows, K);
  TB_GPU_DISPATCH(t, T, {
    partial_sums<T, 2>(y, nullptr, nullptr, rows, K, g, partials_of(workspace), nullptr, s);
  });
  launch_kernel(finish_column_sum_kernel, finish_grid(K), finish_block(), 0, s,
                partials_of(workspace), g.chunks, K, out);
}

}  // namespace tb::gpu
