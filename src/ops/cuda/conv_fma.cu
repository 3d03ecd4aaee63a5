// FMA implicit GEMM for the three convolution passes: the fp32 path, and the path for shapes
// the tensor-core engine does not take (channel counts that are not multiples of 8, such as
// a 3-channel stem or a 10-way classifier). Classic register blocking: a 16x16 thread block
// computes a (16*TM) x (16*TN) tile, each thread TM x TN outputs, over k-slices of 8 staged
// through double-buffered shared memory with the next slice's loads already in registers.
// Elements are gathered one by one (any alignment), converted to float, and reduced in fp32.
#include "ops/cuda/conv_common.cuh"
#include "ops/cuda/pdl.cuh"

namespace tb::gpu {
namespace {

constexpr int kBK = 8;
constexpr int kThreads = 256;

__device__ __forceinline__ void advance_rsi(int& r, int& s, int& i, int step, int n, int S) {
  i += step;
  while (i >= n) {
    i -= n;
    if (++s == S) {
      s = 0;
      ++r;
    }
  }
}

template <class T, ConvPass kPass, int TM, int TN>
__global__ void __launch_bounds__(kThreads)
    conv_fma_kernel(ConvGeometry g, const T* __restrict__ opA, const T* __restrict__ opB,
                    Epilogue<T> ep, int tiles_per_split) {
  pdl_begin();
  constexpr int BM = 16 * TM, BN = 16 * TN;
  constexpr int A_ITERS = BM * kBK / kThreads, B_ITERS = BN * kBK / kThreads;
  constexpr bool kAKMajor = kPass != ConvPass::wgrad;
  constexpr bool kBKMajor = kPass == ConvPass::fprop;
  __shared__ __align__(16) float As[2][kBK][BM];
  __shared__ __align__(16) float Bs[2][kBK][BN];

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const GemmSize gs = gemm_size(kPass, g);
  const int64_t m0 = int64_t(blockIdx.x) * BM;
  const int n0 = blockIdx.y * BN;
  const int k_tiles = int((gs.K + kBK - 1) / kBK);
  const int kt_begin = blockIdx.z * tiles_per_split;
  const int kt_end = min(k_tiles, kt_begin + tiles_per_split);

  // ---- loader state ------------------------------------------------------------------
  // K-major operands: this thread always loads reduction column tid % 8.
  const int kcol = tid % kBK;
  int64_t a_base[A_ITERS];
  int a_h[A_ITERS], a_w[A_ITERS];
  bool a_ok[A_ITERS];
  int ar = 0, as = 0, ai = 0;
  if (kAKMajor) {
    const int n_red = kPass == ConvPass::fprop ? g.C : g.K;
    split_reduction(kt_begin * kBK + kcol, g.S, n_red, ar, as, ai);
#pragma unroll
    for (int i = 0; i < A_ITERS; ++i) {
      const int64_t m = m0 + (tid + i * kThreads) / kBK;
      a_ok[i] = m < gs.M;
      a_row_origin<kPass>(g, g.H, g.W, g.pad, g.pad, a_ok[i] ? m : 0, a_base[i], a_h[i],
                          a_w[i]);
    }
  }
  // N-major B (dgrad w): per-row (r, s, k) positions.
  int br[B_ITERS], bs[B_ITERS], bi[B_ITERS];
  if (kPass == ConvPass::dgrad) {
#pragma unroll
    for (int i = 0; i < B_ITERS; ++i) {
      split_reduction(kt_begin * kBK + (tid + i * kThreads) / BN, g.S, g.K, br[i], bs[i], bi[i]);
    }
  }
  // wgrad B: this thread's column (r, s, c) is fixed.
  int wr = 0, wsi = 0, wc = 0;
  bool wcol_ok = true;
  if (kPass == ConvPass::wgrad) {
    const int col = n0 + tid % BN;
    wcol_ok = col < gs.N;
    const int cc = wcol_ok ? col : 0;
    split_reduction(cc, g.S, g.C, wr, wsi, wc);
  }

  float ra[A_ITERS], rb[B_ITERS];
  auto fetch = [&](int kt) {
    // A
#pragma unroll
    for (int i = 0; i < A_ITERS; ++i) {
      float v = 0.0f;
      if (kPass == ConvPass::fprop) {
        const int h = a_h[i] + ar, w = a_w[i] + as;
        if (a_ok[i] && ar < g.R && h >= 0 && h < g.H && w >= 0 && w < g.W)
          v = to_float(opA[a_base[i] + (int64_t(h) * g.W + w) * g.C + ai]);
      } else if (kPass == ConvPass::dgrad) {
        const int hp = a_h[i] - ar, wp = a_w[i] - as;
        const int p = hp / g.stride, q = wp / g.stride;
        if (a_ok[i] && ar < g.R && hp >= 0 && wp >= 0 && hp == p * g.stride &&
            wp == q * g.stride && p < g.P && q < g.Q)
          v = to_float(opA[a_base[i] + (int64_t(p) * g.Q + q) * g.K + ai]);
      } else {
        const int e = tid + i * kThreads;
        const int64_t m = m0 + e % BM, j = int64_t(kt) * kBK + e / BM;
        if (m < gs.M && j < gs.K) v = to_float(opA[j * g.K + m]);
      }
      ra[i] = v;
    }
    if (kPass == ConvPass::fprop) advance_rsi(ar, as, ai, kBK, g.C, g.S);
    if (kPass == ConvPass::dgrad) advance_rsi(ar, as, ai, kBK, g.K, g.S);
    // B
#pragma unroll
    for (int i = 0; i < B_ITERS; ++i) {
      const int e = tid + i * kThreads;
      float v = 0.0f;
      if (kPass == ConvPass::fprop) {
        const int n = n0 + e / kBK;
        const int64_t kk = int64_t(kt) * kBK + kcol;
        if (n < gs.N && kk < gs.K) v = to_float(opB[int64_t(n) * gs.K + kk]);
      } else if (kPass == ConvPass::dgrad) {
        const int c = n0 + e % BN;
        if (br[i] < g.R && c < gs.N)
          v = to_float(opB[((int64_t(bi[i]) * g.R + br[i]) * g.S + bs[i]) * g.C + c]);
        advance_rsi(br[i], bs[i], bi[i], kBK, g.K, g.S);
      } else {
        const int64_t j = int64_t(kt) * kBK + e / BN;
        if (wcol_ok && j < gs.K) {
          const int64_t pq = int64_t(g.P) * g.Q;
          const int64_t n = j / pq, r = j % pq;
          const int h = int(r / g.Q) * g.stride - g.pad + wr;
          const int w = int(r % g.Q) * g.stride - g.pad + wsi;
          if (h >= 0 && h < g.H && w >= 0 && w < g.W)
            v = to_float(opB[((n * g.H + h) * g.W + w) * g.C + wc]);
        }
      }
      rb[i] = v;
    }
  };
  auto stash = [&](int buf) {
#pragma unroll
    for (int i = 0; i < A_ITERS; ++i) {
      const int e = tid + i * kThreads;
      if (kAKMajor)
        As[buf][e % kBK][e / kBK] = ra[i];
      else
        As[buf][e / BM][e % BM] = ra[i];
    }
#pragma unroll
    for (int i = 0; i < B_ITERS; ++i) {
      const int e = tid + i * kThreads;
      if (kBKMajor)
        Bs[buf][e % kBK][e / kBK] = rb[i];
      else
        Bs[buf][e / BN][e % BN] = rb[i];
    }
  };

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  if (kt_begin < kt_end) {
    fetch(kt_begin);
    stash(0);
    __syncthreads();
  }
  for (int kt = kt_begin; kt < kt_end; ++kt) {
    const int buf = (kt - kt_begin) & 1;
    const bool more = kt + 1 < kt_end;
    if (more) fetch(kt + 1);
#pragma unroll
    for (int k = 0; k < kBK; ++k) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; i += 4)
        *reinterpret_cast<float4*>(&a[i]) = *reinterpret_cast<const float4*>(&As[buf][k][ty * TM + i]);
#pragma unroll
      for (int j = 0; j < TN; j += 4)
        *reinterpret_cast<float4*>(&b[j]) = *reinterpret_cast<const float4*>(&Bs[buf][k][tx * TN + j]);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (more) stash(buf ^ 1);
    __syncthreads();
  }

  const bool read_dx = reads_dx<T, kPass>(ep);
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t row = m0 + ty * TM + i;
    if (row >= gs.M) continue;
    // An accumulating data gradient reads the row's dx values before it stores any
    // (reads_dx in conv_tile_loader.cuh says why).
    float had[TN];
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + tx * TN + j;
      had[j] = read_dx && col < gs.N ? to_float(ep.out[row * gs.N + col]) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + tx * TN + j;
      if (col >= gs.N) continue;
      float v = acc[i][j];
      if (ep.partials) {
        ep.partials[(int64_t(blockIdx.z) * gs.M + row) * gs.N + col] = v;
        continue;
      }
      T* dst = ep.out + row * gs.N + col;
      if (kPass == ConvPass::fprop && ep.bias) v += ep.bias[col];
      if (kPass == ConvPass::dgrad && ep.accumulate) v += had[j];
      *dst = from_float<T>(v);
    }
  }
}

template <class T, ConvPass kPass>
void launch(int tile, const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
            int splits, cudaStream_t s) {
  const GemmSize gs = gemm_size(kPass, g);
  const int k_tiles = int((gs.K + kBK - 1) / kBK);
  const int per_split = (k_tiles + splits - 1) / splits;
  const int bm = tile == 0 ? 128 : 64, bn = bm;
  const dim3 grid(unsigned((gs.M + bm - 1) / bm), unsigned((gs.N + bn - 1) / bn), unsigned(splits));
  if (tile == 0)
    launch_kernel(conv_fma_kernel<T, kPass, 8, 8>, grid, kThreads, 0, s, g, a, b, ep, per_split);
  else
    launch_kernel(conv_fma_kernel<T, kPass, 4, 4>, grid, kThreads, 0, s, g, a, b, ep, per_split);
}

template <ConvPass kPass>
void run_fma(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* a, const void* b,
             void* out, const float* bias, bool accumulate, void* workspace, cudaStream_t s) {
  const bool partial = l.splits > 1 || kPass == ConvPass::wgrad;
  float* partials = partial ? static_cast<float*>(workspace) : nullptr;
  TB_GPU_DISPATCH(t, T, {
    Epilogue<T> ep{static_cast<T*>(out), bias, accumulate, partials};
    launch<T, kPass>(l.tile, g, (const T*)a, (const T*)b, ep, l.splits, s);
  });
  if (partial) reduce_partials(kPass, t, g, l.splits, partials, out, bias, accumulate, s);
}

}  // namespace

int fma_tile_count() { return 2; }
int fma_tile_size(int tile) { return tile == 0 ? 128 : 64; }
int fma_tile_bk() { return kBK; }

void fma_fprop(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* x, const void* w,
               const float* bias, void* y, void* ws, cudaStream_t s) {
  run_fma<ConvPass::fprop>(l, t, g, x, w, y, bias, false, ws, s);
}
void fma_dgrad(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* dy, const void* w,
               void* dx, bool accumulate, void* ws, cudaStream_t s) {
  run_fma<ConvPass::dgrad>(l, t, g, dy, w, dx, nullptr, accumulate, ws, s);
}
void fma_wgrad(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* x, const void* dy,
               float* dw, void* ws, cudaStream_t s) {
  run_fma<ConvPass::wgrad>(l, t, g, dy, x, dw, nullptr, false, ws, s);
}

}  // namespace tb::gpu
