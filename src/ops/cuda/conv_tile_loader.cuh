// What both tensor-core convolution kernels (conv_mma.cu: mma.sync; conv_wgmma.cu: Hopper's
// wgmma) share: the cp.async loaders that gather the implicit-GEMM operand tiles straight from
// the activations into shared memory, the output-parity classes of strided data gradients,
// and the epilogue store. The kernels differ in how shared memory is laid out (a Layout
// policy below) and in what reads it.
//
// Shared-memory tiles come in two orientations. "K-major" tiles hold rows of BK (32 or 64)
// reduction elements for one output row or column; "MN-major" tiles hold BK rows of BM or BN
// output positions. Which operand has which follows from what is contiguous in memory:
//   fprop: A = x gathered (channels contiguous: K-major), B = w[K][RSC] (K-major)
//   dgrad: A = dy gathered (K-major),                     B = w[(r,s,k)][C] (N-major)
//   wgrad: A = dy^T (output channels contiguous: M-major), B = x gathered (N-major)
#pragma once
#include "ops/cuda/conv_common.cuh"
#include "ops/cuda/pdl.cuh"

namespace tb::gpu {

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

// mma.sync tiles, read with ldmatrix: MN-major rows are whole (BM or BN elements wide).
struct LdmatrixLayout {
  template <int kBK>
  static __device__ __forceinline__ uint32_t k_major(int row, int ch) {
    return kmajor_offset<kBK>(row, ch);
  }
  template <int kWidth, int kBK>
  static __device__ __forceinline__ uint32_t mn_major(int k, int ch) {
    return mnmajor_offset<kWidth>(k, ch);
  }
};

// wgmma's canonical 128-byte-swizzled layouts (the PTX ISA's "matrix descriptor" layouts),
// for 64-wide k-tiles of 16-bit elements. K-major: one 128-byte row per M or N position,
// chunks XORed with the row's low 3 bits, 8-row groups 1024 bytes apart (the descriptor's
// stride offset). MN-major: atoms of 64 positions x 8 k-rows (1024 bytes, the same XOR); the
// 8 k-groups of one 64-position column of atoms follow each other (stride offset 1024), and the
// next 64 positions start kBK * 128 bytes on (the leading offset). Both need the tile to start
// on a 1024-byte boundary.
struct WgmmaLayout {
  template <int kBK>
  static __device__ __forceinline__ uint32_t k_major(int row, int ch) {
    static_assert(kBK == 64, "128-byte rows");
    return mnmajor_offset<64>(row, ch);
  }
  template <int kWidth, int kBK>
  static __device__ __forceinline__ uint32_t mn_major(int k, int ch) {
    return uint32_t(((ch >> 3) * (kBK / 8) + (k >> 3)) * 1024 + (k & 7) * 128 +
                    (((ch & 7) ^ (k & 7)) << 4));
  }
};

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

// Where one block's GEMM lies: blockIdx.z = split * classes + class (a data gradient's
// classes have their own GEMM sizes; the grid is sized for the largest, and rows past a
// smaller class's end have nothing to do), and the k-tiles of its split.
template <ConvPass kPass>
struct ConvBlockWork {
  DgradClass cls{};
  GemmSize gs;
  int64_t out_rows;  // rows of the whole output (and of each split's partials)
  int split, kt_begin, kt_end;

  __device__ __forceinline__ ConvBlockWork(const ConvGeometry& g, int bk) {
    const int classes = mma_classes(kPass, g);
    split = blockIdx.z / classes;
    const int splits = gridDim.z / classes;
    gs = gemm_size(kPass, g);
    out_rows = gs.M;
    if (kPass == ConvPass::dgrad) {
      cls = dgrad_class(g, blockIdx.z % classes);
      gs.M = int64_t(g.N) * cls.H * cls.W;
      gs.K = int64_t(cls.R) * cls.S * g.K;
    }
    const int k_tiles = int((gs.K + bk - 1) / bk);
    const int tiles_per_split = (k_tiles + splits - 1) / splits;
    kt_begin = split * tiles_per_split;
    kt_end = min(k_tiles, kt_begin + tiles_per_split);
  }
};

// Gathers the A (BM x BK) and B (BN x BK) tiles of k-tile kt into shared memory with
// cp.async; k-tiles must be loaded in order (the weight gradient's x rows advance by BK
// positions per call). Each thread copies G 16-byte chunks of a tile row per pass, chunks
// c0, c0 + g, c0 + 2g, ... of the row (g threads share a row), so that the lanes of a warp
// still copy whole 32-byte sectors side by side. With G = 1 (the mma.sync tiles) a row's
// position, bounds and address are worked out for every chunk; with G = 4 (the wgmma tiles)
// once per 4 chunks, which leaves the loads a quarter of the integer work that otherwise
// competes with the tensor cores for issue slots. For the gathered activations (fprop's and
// dgrad's A) G > 1 needs a k-tile's chunks in one filter tap: the channel count a multiple
// of BK (wgmma_tile_fits); elsewhere each chunk checks its own bounds.
template <class T, ConvPass kPass, int BM, int BN, int BK, int kThreads, class Layout,
          int G = 1>
struct ConvTileLoader {
  // K-major tiles (fprop's operands, dgrad's A) have rows of 32 or 64 elements; the weight
  // gradient's operands are both MN-major, whose tiles take any multiple of 16 rows.
  static_assert(BK == 32 || BK == 64 || (kPass == ConvPass::wgrad && BK % 16 == 0),
                "K-major rows are 32 or 64 wide");
  static_assert(G == 1 || G == 2 || G == 4, "chunks per thread and row: a power of two");
  static constexpr bool kAKMajor = kPass != ConvPass::wgrad;
  static constexpr bool kBKMajor = kPass == ConvPass::fprop;
  // Chunks per thread and row for each tile: G, or fewer where the tile has fewer than G
  // chunks per thread.
  static constexpr int kGA = BM * BK / 8 / kThreads < G ? BM * BK / 8 / kThreads : G;
  static constexpr int kGB = BN * BK / 8 / kThreads < G ? BN * BK / 8 / kThreads : G;
  // Threads per tile row: chunks per row over G. Powers of two, so that shifts and masks
  // split a thread index without the fix-ups of signed division.
  static constexpr int kAGroups = (kAKMajor ? BK : BM) / 8 / kGA;
  static constexpr int kBGroups = (kBKMajor ? BK : BN) / 8 / kGB;
  static constexpr int kAIters = BM * BK / 8 / kGA / kThreads;
  static constexpr int kBIters = BN * BK / 8 / kGB / kThreads;
  static_assert(kGA >= 1 && kGB >= 1 && kAIters >= 1 && kBIters >= 1,
                "tile too small for the block");
  // Each loader pass of the block copies kThreads x G 16-byte chunks; the passes must cover a
  // tile exactly, and a thread's chunk column (tid % groups) must be the same in every pass.
  static_assert(kAIters * kThreads * 8 * kGA == BM * BK &&
                    kBIters * kThreads * 8 * kGB == BN * BK,
                "loader passes cover each tile exactly");
  static_assert(kAGroups >= 1 && kBGroups >= 1 && kThreads % kAGroups == 0 &&
                    kThreads % kBGroups == 0 && (kAGroups & (kAGroups - 1)) == 0 &&
                    (kBGroups & (kBGroups - 1)) == 0,
                "chunk column fixed per thread");
  // The MN-major swizzle XORs a chunk index with row & 7: rows need at least 8 chunks.
  static_assert(kAKMajor || BM % 64 == 0, "M-major rows of 64 or more");
  static_assert(kBKMajor || BN % 64 == 0, "N-major rows of 64 or more");

  int tid, n0;
  int64_t m0;
  // This thread's first chunk in a row of A and of B; its others follow every kAGroups or
  // kBGroups chunks.
  int a_ch, b_ch;
  // A, K-major (fprop x, dgrad dy): rows fixed per thread, one shared reduction position.
  int64_t a_base[kAIters];
  int a_h[kAIters], a_w[kAIters];
  bool a_ok[kAIters];
  int ar = 0, as = 0, ai = 0;  // reduction position (r, s, channel) of this thread's chunk
  // B, N-major (dgrad w, wgrad x): fixed column chunks.
  int br[kBIters], bs[kBIters], bi[kBIters];  // dgrad: (r, s, k) per row
  int b_r[kGB], b_s[kGB], b_c[kGB];           // wgrad: each column chunk's (r, s, c)
  bool b_col_ok[kGB];
  // wgrad: each row's output position (n, p, q), advanced by BK positions per load call
  // (tiles load in order) by adding (dn, dp, dq) = BK in mixed radix (N, P, Q) with carries,
  // so no tile divides.
  int bn[kBIters], bp[kBIters], bq[kBIters];
  int b_dn = 0, b_dp = 0, b_dq = 0;

  // Row of A or B (a k-row for MN-major tiles) that pass i of this thread copies into.
  __device__ __forceinline__ int a_row(int i) const { return (tid + i * kThreads) / kAGroups; }
  __device__ __forceinline__ int b_row(int i) const { return (tid + i * kThreads) / kBGroups; }

  // The geometry, class, GEMM size and operands are passed to every call rather than kept:
  // kept copies of kernel parameters cost registers that the parameters themselves do not
  // (ptxas -v showed spills).
  __device__ __forceinline__ ConvTileLoader(const ConvGeometry& g, const DgradClass& cls,
                                            const GemmSize& gs, int64_t m0_, int n0_,
                                            int kt_begin, int tid_)
      : tid(tid_), n0(n0_), m0(m0_) {
    a_ch = tid % kAGroups;
    b_ch = tid % kBGroups;
    if (kAKMajor) {
      const int n_red = kPass == ConvPass::fprop ? g.C : g.K;
      const int taps_s = kPass == ConvPass::fprop ? g.S : cls.S;
      split_reduction(kt_begin * BK + a_ch * 8, taps_s, n_red, ar, as, ai);
#pragma unroll
      for (int i = 0; i < kAIters; ++i) {
        const int64_t m = m0 + a_row(i);
        a_ok[i] = m < gs.M;
        a_row_origin<kPass>(g, cls.H, cls.W, cls.p0, cls.q0, a_ok[i] ? m : 0, a_base[i],
                            a_h[i], a_w[i]);
      }
    }
    if (kPass == ConvPass::dgrad) {
#pragma unroll
      for (int i = 0; i < kBIters; ++i) {
        split_reduction(kt_begin * BK + b_row(i), cls.S, g.K, br[i], bs[i], bi[i]);
      }
    }
    if (kPass == ConvPass::wgrad) {
#pragma unroll
      for (int j = 0; j < kGB; ++j) {
        const int col = n0 + (b_ch + j * kBGroups) * 8;
        b_col_ok[j] = col < gs.N;
        const int cc = b_col_ok[j] ? col : 0;
        split_reduction(cc, g.S, g.C, b_r[j], b_s[j], b_c[j]);
      }
      const int pq = g.P * g.Q;
      b_dq = BK % g.Q;
      b_dp = (BK / g.Q) % g.P;
      b_dn = BK / pq;
#pragma unroll
      for (int i = 0; i < kBIters; ++i) {
        const int64_t j = int64_t(kt_begin) * BK + b_row(i);
        const int r = int(j % pq);
        bn[i] = int(j / pq);
        bp[i] = r / g.Q;
        bq[i] = r % g.Q;
      }
    }
  }

  // Issues the copies of k-tile kt into the A tile at a_dst and the B tile at b_dst
  // (shared-memory addresses); the caller commits the group.
  __device__ __forceinline__ void load(const ConvGeometry& g, const DgradClass& cls,
                                       const GemmSize& gs, const T* __restrict__ opA,
                                       const T* __restrict__ opB, uint32_t a_dst,
                                       uint32_t b_dst, int kt) {
    // A: chunk j of a row is chunk a_ch + j * kAGroups, 8 * j * kAGroups elements on.
    if (kPass == ConvPass::fprop || kPass == ConvPass::dgrad) {
#pragma unroll
      for (int i = 0; i < kAIters; ++i) {
        bool ok;
        const T* src;
        if (kPass == ConvPass::fprop) {
          const int h = a_h[i] + ar, w = a_w[i] + as;
          ok = a_ok[i] && ar < g.R && h >= 0 && h < g.H && w >= 0 && w < g.W;
          src = ok ? opA + a_base[i] + (int64_t(h) * g.W + w) * g.C + ai : opA;
        } else {
          const int p = a_h[i] - ar, q = a_w[i] - as;
          ok = a_ok[i] && ar < cls.R && p >= 0 && q >= 0 && p < g.P && q < g.Q;
          src = ok ? opA + a_base[i] + (int64_t(p) * g.Q + q) * g.K + ai : opA;
        }
#pragma unroll
        for (int j = 0; j < kGA; ++j)
          cp_async16(a_dst + Layout::template k_major<BK>(a_row(i), a_ch + j * kAGroups),
                     ok ? src + 8 * j * kAGroups : opA, ok);
      }
      if (kPass == ConvPass::fprop)
        advance_rsi(ar, as, ai, BK, g.C, g.S);
      else
        advance_rsi(ar, as, ai, BK, g.K, cls.S);
    } else {
#pragma unroll
      for (int i = 0; i < kAIters; ++i) {
        const int64_t j = int64_t(kt) * BK + a_row(i);
        const int64_t m = m0 + a_ch * 8;
        const T* src = opA + j * g.K + m;
#pragma unroll
        for (int c = 0; c < kGA; ++c) {
          const bool ok = j < gs.K && m + c * kAGroups * 8 < gs.M;
          cp_async16(a_dst + Layout::template mn_major<BM, BK>(a_row(i), a_ch + c * kAGroups),
                     ok ? src + 8 * c * kAGroups : opA, ok);
        }
      }
    }
    // B: chunk j of a row is chunk b_ch + j * kBGroups.
    if (kPass == ConvPass::fprop) {
#pragma unroll
      for (int i = 0; i < kBIters; ++i) {
        const int n = n0 + b_row(i);
        const int64_t kk = int64_t(kt) * BK + b_ch * 8;
        const T* src = opB + int64_t(n) * gs.K + kk;
#pragma unroll
        for (int j = 0; j < kGB; ++j) {
          const bool ok = n < gs.N && kk + j * kBGroups * 8 < gs.K;
          cp_async16(b_dst + Layout::template k_major<BK>(b_row(i), b_ch + j * kBGroups),
                     ok ? src + 8 * j * kBGroups : opB, ok);
        }
      }
    } else if (kPass == ConvPass::dgrad) {
#pragma unroll
      for (int i = 0; i < kBIters; ++i) {
        const int c = n0 + b_ch * 8;
        const int r = cls.r0 + br[i] * g.stride, s = cls.s0 + bs[i] * g.stride;
        const bool row_ok = br[i] < cls.R;
        const T* src = opB + ((int64_t(bi[i]) * g.R + r) * g.S + s) * g.C + c;
#pragma unroll
        for (int j = 0; j < kGB; ++j) {
          const bool ok = row_ok && c + j * kBGroups * 8 < gs.N;
          cp_async16(b_dst + Layout::template mn_major<BN, BK>(b_row(i), b_ch + j * kBGroups),
                     ok ? src + 8 * j * kBGroups : opB, ok);
        }
        advance_rsi(br[i], bs[i], bi[i], BK, g.K, cls.S);
      }
    } else {
#pragma unroll
      for (int i = 0; i < kBIters; ++i) {
        const int h0 = bp[i] * g.stride - g.pad, w0 = bq[i] * g.stride - g.pad;
        const bool row_ok = bn[i] < g.N;
        const int64_t image = int64_t(bn[i]) * g.H;
#pragma unroll
        for (int j = 0; j < kGB; ++j) {
          const int h = h0 + b_r[j], w = w0 + b_s[j];
          const bool ok = row_ok && b_col_ok[j] && h >= 0 && h < g.H && w >= 0 && w < g.W;
          const T* src = ok ? opB + ((image + h) * g.W + w) * g.C + b_c[j] : opB;
          cp_async16(b_dst + Layout::template mn_major<BN, BK>(b_row(i), b_ch + j * kBGroups),
                     src, ok);
        }
        // Reduction position j += BK: (n, p, q) += (dn, dp, dq) with carries.
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
  }
};

// The output row of GEMM row m: a data gradient's class rows map to its dx pixels.
template <ConvPass kPass>
__device__ __forceinline__ int64_t output_row(const ConvGeometry& g,
                                              const ConvBlockWork<kPass>& work, int64_t m) {
  return kPass == ConvPass::dgrad ? dgrad_pixel(g, work.cls, m) : m;
}

// An accumulating data gradient's dx values, read with these before the epilogue's stores
// (reads_dx in conv_common.cuh).
template <class T>
__device__ __forceinline__ uint32_t load_pair(const Epilogue<T>& ep, int64_t n_cols, int64_t row,
                                              int col) {
  return *reinterpret_cast<const uint32_t*>(ep.out + row * n_cols + col);
}
template <class T>
__device__ __forceinline__ uint2 load_quad(const Epilogue<T>& ep, int64_t n_cols, int64_t row,
                                           int col) {
  return *reinterpret_cast<const uint2*>(ep.out + row * n_cols + col);
}

// Stores two adjacent output columns (col, col + 1) of output row `row`: fp32 partials of
// this split, or the pass's output with its bias (fprop) or the existing dx added (dgrad,
// accumulating: `prev`, from load_pair). Rows past the GEMM and columns past N are the
// caller's to skip.
template <class T, ConvPass kPass>
__device__ __forceinline__ void store_pair(const Epilogue<T>& ep, const ConvBlockWork<kPass>& work,
                                           int64_t row, int col, float v0, float v1,
                                           uint32_t prev) {
  const int64_t n_cols = work.gs.N;
  if (ep.partials) {
    float2* dst = reinterpret_cast<float2*>(
        ep.partials + (int64_t(work.split) * work.out_rows + row) * n_cols + col);
    *dst = make_float2(v0, v1);
    return;
  }
  T* dst = ep.out + row * n_cols + col;
  if (kPass == ConvPass::fprop && ep.bias) {
    v0 += ep.bias[col];
    v1 += ep.bias[col + 1];
  }
  if (kPass == ConvPass::dgrad && ep.accumulate) {
    T had[2];
    *reinterpret_cast<uint32_t*>(had) = prev;
    v0 += to_float(had[0]);
    v1 += to_float(had[1]);
  }
  T pair[2] = {from_float<T>(v0), from_float<T>(v1)};
  *reinterpret_cast<uint32_t*>(dst) = *reinterpret_cast<const uint32_t*>(pair);
}

// Stores four adjacent output columns (col .. col + 3) of output row `row`, as store_pair
// (`prev` from load_quad).
template <class T, ConvPass kPass>
__device__ __forceinline__ void store_quad(const Epilogue<T>& ep, const ConvBlockWork<kPass>& work,
                                           int64_t row, int col, float4 v, uint2 prev) {
  const int64_t n_cols = work.gs.N;
  if (ep.partials) {
    *reinterpret_cast<float4*>(ep.partials + (int64_t(work.split) * work.out_rows + row) * n_cols +
                               col) = v;
    return;
  }
  T* dst = ep.out + row * n_cols + col;
  float f[4] = {v.x, v.y, v.z, v.w};
  T out[4], had[4];
  *reinterpret_cast<uint2*>(had) = prev;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if (kPass == ConvPass::fprop && ep.bias) f[e] += ep.bias[col + e];
    if (kPass == ConvPass::dgrad && ep.accumulate) f[e] += to_float(had[e]);
    out[e] = from_float<T>(f[e]);
  }
  *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(out);
}

// Launches one of the tensor-core kernels over its pass's grid: a block per BM x BN tile of
// the (largest parity class's) GEMM, per split and class, with `smem` bytes of dynamic shared
// memory. `configured` (one per kernel instance) records that its limit was raised.
template <class T, ConvPass kPass, class Kernel>
void launch_tiles(Kernel kernel, bool& configured, int bm, int bn, int threads, int smem,
                  const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                  int splits, cudaStream_t s) {
  if (!configured) {
    TB_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    configured = true;
  }
  const GemmSize gs = mma_work_size(kPass, g);
  const dim3 grid(unsigned((gs.M + bm - 1) / bm), unsigned((gs.N + bn - 1) / bn),
                  unsigned(splits * mma_classes(kPass, g)));
  launch_kernel(kernel, grid, threads, smem, s, g, a, b, ep);
}

}  // namespace tb::gpu
