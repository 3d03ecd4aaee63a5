// Tensor-core implicit GEMM for the three convolution passes (bf16 / fp16 operands, fp32
// accumulation): mma.sync m16n8k16 fed by ldmatrix from shared memory, which cp.async fills
// two or three k-tiles ahead (3 or 4 stages) straight from the activations (the im2col
// matrix is never stored).
//
// Shared-memory tiles come in two orientations. "K-major" tiles hold rows of BK (32 or 64)
// reduction elements for one output row or column, read with ldmatrix; "MN-major" tiles hold
// BK (32 or 64) rows of BM or BN output positions, read with ldmatrix.trans. Both XOR-swizzle
// their 16-byte chunks so that the eight rows one ldmatrix reads fall in distinct banks.
// Which operand has which orientation follows from what is contiguous in memory:
//   fprop: A = x gathered (channels contiguous: K-major), B = w[K][RSC] (K-major)
//   dgrad: A = dy gathered (K-major),                     B = w[(r,s,k)][C] (N-major)
//   wgrad: A = dy^T (output channels contiguous: M-major), B = x gathered (N-major)
// A strided data gradient runs as stride^2 smaller GEMMs, one per output parity class (see
// DgradClass), all in one launch.
#include <algorithm>
#include <utility>

#include "ops/cuda/conv_common.cuh"

namespace tb::gpu {
namespace {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  const int bytes = valid ? 16 : 0;  // 0: fill the 16 bytes with zeros, read nothing
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<bf16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<f16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                              uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Byte offsets of 16-byte chunk `ch` of a row, swizzled: rows of kWidth (64 or more) elements
// XOR the chunk index with the row's low 3 bits; K-major rows of 32 elements (64 bytes, two
// rows per 128-byte bank line) with bits 1 and 2, K-major rows of 64 like MN-major ones.
template <int kWidth>
__device__ __forceinline__ uint32_t mnmajor_offset(int row, int ch) {
  return uint32_t(row * kWidth * 2 + ((ch ^ (row & 7)) << 4));
}
template <int kBK>
__device__ __forceinline__ uint32_t kmajor_offset(int row, int ch) {
  if constexpr (kBK == 32)
    return uint32_t(row * 64 + ((ch ^ ((row >> 1) & 3)) << 4));
  else
    return mnmajor_offset<kBK>(row, ch);
}

// Advances a (r, s, i) position along a reduction axis laid out as r, s, then i < n.
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

// One output-parity class of a data gradient. Pixel h of dx only receives the filter taps
// r = h + pad - stride * p, that is r ≡ h + pad (mod stride): grouping dx pixels by
// (h + pad) mod stride and (w + pad) mod stride gives stride^2 GEMMs, each reducing over its
// own taps only, where one GEMM over all taps would gather rows that are zero for all but
// 1/stride^2 of them. Within a class, pixel (i, j) under tap (rr, ss) reads dy at
// (p0 + i - rr, q0 + j - ss). Stride 1 is the single class (0, 0) with all taps.
struct DgradClass {
  int r0, s0;  // the class's first tap: r = r0 + stride * rr, s = s0 + stride * ss
  int R, S;    // taps per axis; R = 0 (then S = 1, so index setup divides by nonzero): no taps,
               // the class's pixels get zeros (or keep dx when accumulating)
  int h0, w0;  // the class's first pixel: h = h0 + stride * i, w = w0 + stride * j
  int H, W;    // pixels per image and axis (0: the class is empty)
  int p0, q0;  // dy row and column of pixel (0, 0) under tap (0, 0)
};

__device__ __forceinline__ DgradClass dgrad_class(const ConvGeometry& g, int index) {
  const int st = g.stride;
  DgradClass c;
  c.r0 = index / st;
  c.s0 = index % st;
  c.R = c.r0 < g.R ? (g.R - c.r0 + st - 1) / st : 0;
  c.S = c.s0 < g.S ? (g.S - c.s0 + st - 1) / st : 0;
  if (c.R == 0 || c.S == 0) {
    c.R = 0;
    c.S = 1;
  }
  c.h0 = ((c.r0 - g.pad) % st + st) % st;
  c.w0 = ((c.s0 - g.pad) % st + st) % st;
  c.H = g.H > c.h0 ? (g.H - c.h0 + st - 1) / st : 0;
  c.W = g.W > c.w0 ? (g.W - c.w0 + st - 1) / st : 0;
  c.p0 = (c.h0 + g.pad - c.r0) / st;  // exact: h0 + pad ≡ r0 (mod stride)
  c.q0 = (c.w0 + g.pad - c.s0) / st;
  return c;
}

// The dx row (an N,H,W pixel index) of row m of a class's GEMM.
__device__ __forceinline__ int64_t dgrad_pixel(const ConvGeometry& g, const DgradClass& c,
                                               int64_t m) {
  const int64_t hw = int64_t(c.H) * c.W;
  const int64_t n = m / hw, r = m % hw;
  const int h = c.h0 + int(r / c.W) * g.stride, w = c.w0 + int(r % c.W) * g.stride;
  return (n * g.H + h) * g.W + w;
}

template <class T, ConvPass kPass, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES>
struct MmaConv {
  // K-major tiles (fprop's operands, dgrad's A) have rows of 32 or 64 elements; the weight
  // gradient's operands are both MN-major, whose tiles take any multiple of 16 rows.
  static_assert(BK == 32 || BK == 64 || (kPass == ConvPass::wgrad && BK % 16 == 0),
                "K-major rows are 32 or 64 wide");
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  // 16-byte chunks per K-major row (BK 32 or 64 there: a power of two, so shifts and masks
  // split a thread's chunk index, without the fix-ups of signed division).
  static constexpr int kKChunks = BK / 8, kKChunkShift = BK == 64 ? 3 : 2;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  static constexpr int MI = WM / 16, NI = WN / 8;
  static constexpr bool kAKMajor = kPass != ConvPass::wgrad;
  static constexpr bool kBKMajor = kPass == ConvPass::fprop;
  static constexpr int kATileBytes = BM * BK * 2, kBTileBytes = BN * BK * 2;
  static constexpr int kStageBytes = kATileBytes + kBTileBytes;
  static constexpr int kSmemBytes = STAGES * kStageBytes;
  static constexpr int kAIters = BM * BK / 8 / kThreads;
  static constexpr int kBIters = BN * BK / 8 / kThreads;
  static_assert(BM % (16 * WARPS_M) == 0 && BN % (16 * WARPS_N) == 0,
                "warp tiles are whole 16x16 fragments");
  static_assert(kAIters >= 1 && kBIters >= 1, "tile too small for the block");
  // Each loader pass of the block copies kThreads 16-byte chunks; the passes must cover a
  // tile exactly, and a thread's chunk column (tid % kKChunks for K-major rows, tid % (BM / 8)
  // or tid % (BN / 8) for MN-major rows) must be the same in every pass.
  static_assert(kAIters * kThreads * 8 == BM * BK && kBIters * kThreads * 8 == BN * BK,
                "loader passes cover each tile exactly");
  static_assert(kThreads % kKChunks == 0, "K-major chunk column fixed per thread");
  static_assert(kAKMajor || kThreads % (BM / 8) == 0, "M-major chunk column fixed per thread");
  static_assert(kBKMajor || kThreads % (BN / 8) == 0, "N-major chunk column fixed per thread");
  // The MN-major swizzle XORs a chunk index with row & 7: rows need at least 8 chunks.
  static_assert(kAKMajor || BM % 64 == 0, "M-major rows of 64 or more");
  static_assert(kBKMajor || BN % 64 == 0, "N-major rows of 64 or more");
  static_assert(NI % 2 == 0, "B fragments load in pairs");
};

// MIN_BLOCKS, the blocks per SM the register allocation must allow, comes from the tile
// table (kTiles below).
template <class T, ConvPass kPass, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES,
          int MIN_BLOCKS>
__global__ void __launch_bounds__(WARPS_M* WARPS_N * 32, MIN_BLOCKS)
    conv_mma_kernel(ConvGeometry g, const T* __restrict__ opA, const T* __restrict__ opB,
                    Epilogue<T> ep) {
  using Cfg = MmaConv<T, kPass, BM, BN, BK, WARPS_M, WARPS_N, STAGES>;
  constexpr int kStages = STAGES, kBK = BK;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / WARPS_N, warp_n = warp % WARPS_N;
  // blockIdx.z = split * classes + class; dgrad's classes have their own GEMM sizes, the grid
  // is sized for the largest and the rows past a smaller class's end have nothing to do.
  const int classes = mma_classes(kPass, g);
  const int split = blockIdx.z / classes, splits = gridDim.z / classes;
  DgradClass cls{};
  GemmSize gs = gemm_size(kPass, g);
  const int64_t out_rows = gs.M;  // rows of the whole output (and of each split's partials)
  if (kPass == ConvPass::dgrad) {
    cls = dgrad_class(g, blockIdx.z % classes);
    gs.M = int64_t(g.N) * cls.H * cls.W;
    gs.K = int64_t(cls.R) * cls.S * g.K;
  }
  const int64_t m0 = int64_t(blockIdx.x) * BM;
  if (m0 >= gs.M) return;  // whole block, before any barrier
  const int n0 = blockIdx.y * BN;
  const int k_tiles = int((gs.K + kBK - 1) / kBK);
  const int tiles_per_split = (k_tiles + splits - 1) / splits;
  const int kt_begin = split * tiles_per_split;
  const int kt_end = min(k_tiles, kt_begin + tiles_per_split);
  const uint32_t smem_base = smem_addr(smem);

  // ---- per-thread loader state -------------------------------------------------------
  // A, K-major (fprop x, dgrad dy): rows fixed per thread, one shared reduction position.
  const int a_ch = tid & (Cfg::kKChunks - 1);
  int64_t a_base[Cfg::kAIters];
  int a_h[Cfg::kAIters], a_w[Cfg::kAIters];
  bool a_ok[Cfg::kAIters];
  int ar = 0, as = 0, ai = 0;  // reduction position (r, s, channel) of this thread's chunk
  // A, M-major (wgrad dy^T): fixed output-channel chunk, rows advance with k.
  const int a_mch = tid % (BM / 8);
  // B, K-major (fprop w): row pointer per iteration.
  const int b_ch = tid & (Cfg::kKChunks - 1);
  // B, N-major (dgrad w, wgrad x): fixed column chunk.
  const int b_nch = tid % (BN / 8);
  int br[Cfg::kBIters], bs[Cfg::kBIters], bi[Cfg::kBIters];  // dgrad: (r, s, k) per row
  int b_r = 0, b_s = 0, b_c = 0;                             // wgrad: the column's (r, s, c)
  bool b_col_ok = true;
  // wgrad: each row's output position (n, p, q), advanced by kBK positions per load_tile call
  // (tiles load in order) by adding (dn, dp, dq) = kBK in mixed radix (N, P, Q) with carries,
  // so no tile divides.
  int bn[Cfg::kBIters], bp[Cfg::kBIters], bq[Cfg::kBIters];
  int b_dn = 0, b_dp = 0, b_dq = 0;

  if (Cfg::kAKMajor) {
    const int n_red = kPass == ConvPass::fprop ? g.C : g.K;
    const int taps_s = kPass == ConvPass::fprop ? g.S : cls.S;
    const int kk = kt_begin * kBK + a_ch * 8;
    ar = kk / (taps_s * n_red);
    as = (kk / n_red) % taps_s;
    ai = kk % n_red;
#pragma unroll
    for (int i = 0; i < Cfg::kAIters; ++i) {
      const int row = (tid + i * Cfg::kThreads) >> Cfg::kKChunkShift;
      const int64_t m = m0 + row;
      a_ok[i] = m < gs.M;
      const int64_t mm = a_ok[i] ? m : 0;
      if (kPass == ConvPass::fprop) {
        const int64_t pq = int64_t(g.P) * g.Q;
        const int64_t n = mm / pq, r = mm % pq;
        a_base[i] = n * g.H * g.W * g.C;
        a_h[i] = int(r / g.Q) * g.stride - g.pad;
        a_w[i] = int(r % g.Q) * g.stride - g.pad;
      } else {
        const int64_t hw = int64_t(cls.H) * cls.W;
        const int64_t n = mm / hw, r = mm % hw;
        a_base[i] = n * g.P * g.Q * g.K;
        a_h[i] = int(r / cls.W) + cls.p0;
        a_w[i] = int(r % cls.W) + cls.q0;
      }
    }
  }
  if (kPass == ConvPass::dgrad) {
#pragma unroll
    for (int i = 0; i < Cfg::kBIters; ++i) {
      const int krow = (tid + i * Cfg::kThreads) / (BN / 8);
      const int kk = kt_begin * kBK + krow;
      br[i] = kk / (cls.S * g.K);
      bs[i] = (kk / g.K) % cls.S;
      bi[i] = kk % g.K;
    }
  }
  if (kPass == ConvPass::wgrad) {
    const int col = n0 + b_nch * 8;
    b_col_ok = col < gs.N;
    const int cc = b_col_ok ? col : 0;
    b_r = cc / (g.S * g.C);
    b_s = (cc / g.C) % g.S;
    b_c = cc % g.C;
    const int pq = g.P * g.Q;
    b_dq = kBK % g.Q;
    b_dp = (kBK / g.Q) % g.P;
    b_dn = kBK / pq;
#pragma unroll
    for (int i = 0; i < Cfg::kBIters; ++i) {
      const int64_t j = int64_t(kt_begin) * kBK + (tid + i * Cfg::kThreads) / (BN / 8);
      const int r = int(j % pq);
      bn[i] = int(j / pq);
      bp[i] = r / g.Q;
      bq[i] = r % g.Q;
    }
  }

  auto load_tile = [&](int stage, int kt) {
    const uint32_t a_dst = smem_base + stage * Cfg::kStageBytes;
    const uint32_t b_dst = a_dst + Cfg::kATileBytes;
    // A
    if (kPass == ConvPass::fprop) {
#pragma unroll
      for (int i = 0; i < Cfg::kAIters; ++i) {
        const int row = (tid + i * Cfg::kThreads) >> Cfg::kKChunkShift;
        const int h = a_h[i] + ar, w = a_w[i] + as;
        const bool ok = a_ok[i] && ar < g.R && h >= 0 && h < g.H && w >= 0 && w < g.W;
        const T* src = ok ? opA + a_base[i] + (int64_t(h) * g.W + w) * g.C + ai : opA;
        cp_async16(a_dst + kmajor_offset<kBK>(row, a_ch), src, ok);
      }
      advance_rsi(ar, as, ai, kBK, g.C, g.S);
    } else if (kPass == ConvPass::dgrad) {
#pragma unroll
      for (int i = 0; i < Cfg::kAIters; ++i) {
        const int row = (tid + i * Cfg::kThreads) >> Cfg::kKChunkShift;
        const int p = a_h[i] - ar, q = a_w[i] - as;
        const bool ok = a_ok[i] && ar < cls.R && p >= 0 && q >= 0 && p < g.P && q < g.Q;
        const T* src = ok ? opA + a_base[i] + (int64_t(p) * g.Q + q) * g.K + ai : opA;
        cp_async16(a_dst + kmajor_offset<kBK>(row, a_ch), src, ok);
      }
      advance_rsi(ar, as, ai, kBK, g.K, cls.S);
    } else {
#pragma unroll
      for (int i = 0; i < Cfg::kAIters; ++i) {
        const int jrow = (tid + i * Cfg::kThreads) / (BM / 8);
        const int64_t j = int64_t(kt) * kBK + jrow;
        const int64_t m = m0 + a_mch * 8;
        const bool ok = j < gs.K && m < gs.M;
        const T* src = ok ? opA + j * g.K + m : opA;
        cp_async16(a_dst + mnmajor_offset<BM>(jrow, a_mch), src, ok);
      }
    }
    // B
    if (kPass == ConvPass::fprop) {
#pragma unroll
      for (int i = 0; i < Cfg::kBIters; ++i) {
        const int row = (tid + i * Cfg::kThreads) >> Cfg::kKChunkShift;
        const int n = n0 + row;
        const int64_t kk = int64_t(kt) * kBK + b_ch * 8;
        const bool ok = n < gs.N && kk < gs.K;
        const T* src = ok ? opB + int64_t(n) * gs.K + kk : opB;
        cp_async16(b_dst + kmajor_offset<kBK>(row, b_ch), src, ok);
      }
    } else if (kPass == ConvPass::dgrad) {
#pragma unroll
      for (int i = 0; i < Cfg::kBIters; ++i) {
        const int krow = (tid + i * Cfg::kThreads) / (BN / 8);
        const int c = n0 + b_nch * 8;
        const int r = cls.r0 + br[i] * g.stride, s = cls.s0 + bs[i] * g.stride;
        const bool ok = br[i] < cls.R && c < gs.N;
        const T* src = ok ? opB + ((int64_t(bi[i]) * g.R + r) * g.S + s) * g.C + c : opB;
        cp_async16(b_dst + mnmajor_offset<BN>(krow, b_nch), src, ok);
        advance_rsi(br[i], bs[i], bi[i], kBK, g.K, cls.S);
      }
    } else {
#pragma unroll
      for (int i = 0; i < Cfg::kBIters; ++i) {
        const int jrow = (tid + i * Cfg::kThreads) / (BN / 8);
        const int h = bp[i] * g.stride - g.pad + b_r, w = bq[i] * g.stride - g.pad + b_s;
        const bool ok = b_col_ok && bn[i] < g.N && h >= 0 && h < g.H && w >= 0 && w < g.W;
        const T* src = ok ? opB + ((int64_t(bn[i]) * g.H + h) * g.W + w) * g.C + b_c : opB;
        cp_async16(b_dst + mnmajor_offset<BN>(jrow, b_nch), src, ok);
        // Reduction position j += kBK: (n, p, q) += (dn, dp, dq) with carries.
        bq[i] += b_dq;
        if (bq[i] >= g.Q) {
          bq[i] -= g.Q;
          ++bp[i];
        }
        bp[i] += b_dp;
        if (bp[i] >= g.P) {
          bp[i] -= g.P;
          ++bn[i];
        }
        bn[i] += b_dn;
      }
    }
  };

  float acc[Cfg::MI][Cfg::NI][4];
#pragma unroll
  for (int mi = 0; mi < Cfg::MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < Cfg::NI; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (kt_begin + st < kt_end) load_tile(st, kt_begin + st);
    cp_async_commit();
  }

  for (int kt = kt_begin; kt < kt_end; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = kt + kStages - 1;
    if (next < kt_end) load_tile((next - kt_begin) % kStages, next);
    cp_async_commit();

    const uint32_t a_src = smem_base + ((kt - kt_begin) % kStages) * Cfg::kStageBytes;
    const uint32_t b_src = a_src + Cfg::kATileBytes;
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t af[Cfg::MI][4];
      uint32_t bfr[Cfg::NI][2];
#pragma unroll
      for (int mi = 0; mi < Cfg::MI; ++mi) {
        const int mbase = warp_m * Cfg::WM + mi * 16;
        if (Cfg::kAKMajor) {
          const int row = mbase + (lane & 7) + ((lane >> 3) & 1) * 8;
          const int ch = ks * 2 + (lane >> 4);
          ldmatrix_x4(af[mi], a_src + kmajor_offset<kBK>(row, ch));
        } else {
          const int row = ks * 16 + (lane & 7) + (lane >> 4) * 8;
          const int ch = (mbase >> 3) + ((lane >> 3) & 1);
          ldmatrix_x4_trans(af[mi], a_src + mnmajor_offset<BM>(row, ch));
        }
      }
#pragma unroll
      for (int nj = 0; nj < Cfg::NI / 2; ++nj) {
        const int nbase = warp_n * Cfg::WN + nj * 16;
        uint32_t r[4];
        if (Cfg::kBKMajor) {
          const int row = nbase + (lane & 7) + (lane >> 4) * 8;
          const int ch = ks * 2 + ((lane >> 3) & 1);
          ldmatrix_x4(r, b_src + kmajor_offset<kBK>(row, ch));
        } else {
          const int row = ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
          const int ch = (nbase >> 3) + (lane >> 4);
          ldmatrix_x4_trans(r, b_src + mnmajor_offset<BN>(row, ch));
        }
        bfr[2 * nj][0] = r[0];
        bfr[2 * nj][1] = r[1];
        bfr[2 * nj + 1][0] = r[2];
        bfr[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < Cfg::MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < Cfg::NI; ++ni) mma16816<T>(acc[mi][ni], af[mi], bfr[ni][0], bfr[ni][1]);
    }
  }
  cp_async_wait<0>();

  // ---- epilogue ------------------------------------------------------------------------
  const int grp = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int mi = 0; mi < Cfg::MI; ++mi)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m0 + warp_m * Cfg::WM + mi * 16 + grp + half * 8;
      if (m >= gs.M) continue;
      const int64_t row = kPass == ConvPass::dgrad ? dgrad_pixel(g, cls, m) : m;
#pragma unroll
      for (int ni = 0; ni < Cfg::NI; ++ni) {
        const int col = n0 + warp_n * Cfg::WN + ni * 8 + tig * 2;
        if (col >= gs.N) continue;
        float v0 = acc[mi][ni][half * 2], v1 = acc[mi][ni][half * 2 + 1];
        if (ep.partials) {
          float2* dst = reinterpret_cast<float2*>(ep.partials + (int64_t(split) * out_rows + row) *
                                                                    gs.N + col);
          *dst = make_float2(v0, v1);
          continue;
        }
        T* dst = ep.out + row * gs.N + col;
        if (kPass == ConvPass::fprop && ep.bias) {
          v0 += ep.bias[col];
          v1 += ep.bias[col + 1];
        }
        if (kPass == ConvPass::dgrad && ep.accumulate) {
          v0 += to_float(dst[0]);
          v1 += to_float(dst[1]);
        }
        T pair[2] = {from_float<T>(v0), from_float<T>(v1)};
        *reinterpret_cast<uint32_t*>(dst) = *reinterpret_cast<const uint32_t*>(pair);
      }
    }
}

// Tile shapes. The first seven use 64x32 warp tiles. The copies of the large tiles keep more
// of the reduction in flight for the same accumulators: 4 stages (64 and 48 KiB of shared
// memory; the register file, not shared memory, still sets their blocks per SM), or, for
// weight gradients (reductions over N*P*Q), 64-wide k-tiles, which also halve the barriers
// per reduction (96 KiB, two blocks per SM). fprop and dgrad gather A rows with twice the
// per-row state at BK 64 and spill under the two-block register cap, so they do not get that
// tile. 256-thread 64x32-warp tiles ask for two blocks per SM (at most 128 registers): the
// data gradient took 156 and so ran one block of 8 warps per SM; every pass fits 128 without
// spills (ptxas -v). The smaller ones would spill at their equivalent budget and ask for
// nothing (0 emits no .minnctapersm; 1 would let ptxas take more registers than its default).
// The rest use 64x64 warp tiles (CUTLASS's sm_80 defaults): per 16-wide k step a warp issues
// 8 ldmatrix.x4 for 32 mma, where a 64x32 warp tile issues 6 for 16. Their 128 fp32
// accumulators per thread take most of 255 registers: the 4-warp 128x128 tiles still fit two
// blocks per SM, the 8-warp 256x128 and 128x256 tiles one (which leaves shared memory for a
// fourth stage: 96 KiB at 256x128, the data gradient's way to more loads in flight, as it
// does not get the 64-wide k-tiles below). Their 64-wide k-tiles (96 and 144 KiB at 3
// stages) fit 255 registers without spills for fprop and, at 128x128, wgrad; the data
// gradient (per-row tap state for A and B) spills at both sizes and wgrad at 256x128, so
// those passes do not get them (ptxas -v, sm_90).
// The autotuner keeps whichever times fastest for a shape.
constexpr int kFprop = 1 << int(ConvPass::fprop), kDgrad = 1 << int(ConvPass::dgrad),
              kWgrad = 1 << int(ConvPass::wgrad), kAllPasses = kFprop | kDgrad | kWgrad;
struct TileShape {
  int bm, bn, bk, stages;
  int warps_m, warps_n;  // warp tile (bm / warps_m) x (bn / warps_n)
  int min_blocks;        // __launch_bounds__'s blocks per SM (0: no register cap)
  int passes;            // the passes it serves (a mask of 1 << pass): instantiated for those
};
constexpr TileShape kTiles[] = {
    {128, 128, 32, 3, 2, 4, 2, kAllPasses},
    {128, 64, 32, 3, 2, 2, 0, kAllPasses},
    {64, 128, 32, 3, 1, 4, 0, kAllPasses},
    {64, 64, 32, 3, 1, 2, 0, kAllPasses},
    {128, 128, 32, 4, 2, 4, 2, kAllPasses},
    {128, 64, 32, 4, 2, 2, 0, kAllPasses},
    {128, 128, 64, 3, 2, 4, 2, kWgrad},
    // 64x64 warp tiles
    {128, 128, 32, 3, 2, 2, 2, kAllPasses},
    {128, 128, 32, 4, 2, 2, 2, kAllPasses},
    {256, 128, 32, 3, 4, 2, 1, kAllPasses},
    {128, 256, 32, 3, 2, 4, 1, kAllPasses},
    {256, 128, 32, 4, 4, 2, 1, kAllPasses},
    {128, 128, 64, 3, 2, 2, 2, kFprop | kWgrad},
    {256, 128, 64, 3, 4, 2, 1, kFprop},
};
constexpr int kTileCount = int(sizeof(kTiles) / sizeof(kTiles[0]));
static_assert(kTileCount <= kMaxConvTiles, "conv_kernels.h sizes candidate lists by tiles");

template <class T, ConvPass kPass, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES,
          int MIN_BLOCKS>
void launch_shape(const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                  int splits, cudaStream_t s) {
  using Cfg = MmaConv<T, kPass, BM, BN, BK, WARPS_M, WARPS_N, STAGES>;
  auto kernel = conv_mma_kernel<T, kPass, BM, BN, BK, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS>;
  static bool configured = false;  // one attribute call per instance, before its first launch
  if (!configured) {
    TB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       Cfg::kSmemBytes));
    configured = true;
  }
  const GemmSize gs = mma_work_size(kPass, g);
  const int classes = mma_classes(kPass, g);
  const dim3 grid(unsigned((gs.M + BM - 1) / BM), unsigned((gs.N + BN - 1) / BN),
                  unsigned(splits * classes));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, s>>>(g, a, b, ep);
  TB_CUDA_LAUNCH_CHECK();
}

// Launches tile kTiles[kTile]; returns false for a pass the tile does not serve (never
// instantiated for it).
template <class T, ConvPass kPass, int kTile>
bool launch_index(const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                  int splits, cudaStream_t s) {
  constexpr TileShape t = kTiles[kTile];
  if constexpr (!(t.passes & (1 << int(kPass)))) {
    return false;
  } else {
    launch_shape<T, kPass, t.bm, t.bn, t.bk, t.warps_m, t.warps_n, t.stages, t.min_blocks>(
        g, a, b, ep, splits, s);
    return true;
  }
}

template <class T, ConvPass kPass, int... kTile>
bool launch_any(int tile, const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                int splits, cudaStream_t s, std::integer_sequence<int, kTile...>) {
  return ((tile == kTile && launch_index<T, kPass, kTile>(g, a, b, ep, splits, s)) || ...);
}

template <class T, ConvPass kPass>
void launch_tile(int tile, const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                 int splits, cudaStream_t s) {
  if (!launch_any<T, kPass>(tile, g, a, b, ep, splits, s,
                            std::make_integer_sequence<int, kTileCount>{}))
    cuda_fail(cudaErrorInvalidValue, "conv_mma: no such tile for this pass", __FILE__, __LINE__);
}

template <ConvPass kPass>
void run_mma(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* a, const void* b,
             void* out, const float* bias, bool accumulate, void* workspace, cudaStream_t s) {
  const bool partial = l.splits > 1 || kPass == ConvPass::wgrad;
  float* partials = partial ? static_cast<float*>(workspace) : nullptr;
  if (t == DType::bf16) {
    Epilogue<bf16> ep{static_cast<bf16*>(out), bias, accumulate, partials};
    launch_tile<bf16, kPass>(l.tile, g, (const bf16*)a, (const bf16*)b, ep, l.splits, s);
  } else if (t == DType::f16) {
    Epilogue<f16> ep{static_cast<f16*>(out), bias, accumulate, partials};
    launch_tile<f16, kPass>(l.tile, g, (const f16*)a, (const f16*)b, ep, l.splits, s);
  } else {
    bad_dtype("conv_mma", int(t), __FILE__, __LINE__);
  }
  if (partial) reduce_partials(kPass, t, g, l.splits, partials, out, bias, accumulate, s);
}

}  // namespace

bool mma_eligible(DType t, const ConvGeometry& g) {
  return (t == DType::bf16 || t == DType::f16) && g.C % 8 == 0 && g.K % 8 == 0;
}

int mma_tile_count() { return kTileCount; }
int mma_tile_bm(int tile) { return kTiles[tile].bm; }
int mma_tile_bn(int tile) { return kTiles[tile].bn; }
int mma_tile_bk(int tile) { return kTiles[tile].bk; }
bool mma_tile_serves(int tile, ConvPass pass) {
  return (kTiles[tile].passes >> int(pass)) & 1;
}

void mma_fprop(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* x, const void* w,
               const float* bias, void* y, void* ws, cudaStream_t s) {
  run_mma<ConvPass::fprop>(l, t, g, x, w, y, bias, false, ws, s);
}
void mma_dgrad(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* dy, const void* w,
               void* dx, bool accumulate, void* ws, cudaStream_t s) {
  run_mma<ConvPass::dgrad>(l, t, g, dy, w, dx, nullptr, accumulate, ws, s);
}
void mma_wgrad(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* x, const void* dy,
               float* dw, void* ws, cudaStream_t s) {
  run_mma<ConvPass::wgrad>(l, t, g, dy, x, dw, nullptr, false, ws, s);
}

}  // namespace tb::gpu
