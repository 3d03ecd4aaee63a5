// Tensor-core implicit GEMM for the three convolution passes (bf16 / fp16 operands, fp32
// accumulation): mma.sync m16n8k16 fed by ldmatrix from shared memory, which cp.async fills
// two or three k-tiles ahead (3 or 4 stages) straight from the activations (the im2col
// matrix is never stored; the loaders are conv_tile_loader.cuh's). K-major tiles are read
// with ldmatrix, MN-major ones with ldmatrix.trans; both XOR-swizzle their 16-byte chunks so
// that the eight rows one ldmatrix reads fall in distinct banks. A strided data gradient runs
// as stride^2 smaller GEMMs, one per output parity class (see DgradClass), all in one launch.
// On Hopper, conv_wgmma.cu's kernels join these as more tiles of the same table.
#include <algorithm>
#include <string>
#include <utility>

#include "ops/cuda/conv_tile_loader.cuh"
#include "ops/cuda/conv_wgmma.h"
#include "ops/cuda/pdl.cuh"

namespace tb::gpu {
namespace {

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

template <class T, ConvPass kPass, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES>
struct MmaConv {
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  using Loader = ConvTileLoader<T, kPass, BM, BN, BK, kThreads, LdmatrixLayout>;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  static constexpr int MI = WM / 16, NI = WN / 8;
  static constexpr int kATileBytes = BM * BK * 2, kBTileBytes = BN * BK * 2;
  static constexpr int kStageBytes = kATileBytes + kBTileBytes;
  static constexpr int kSmemBytes = STAGES * kStageBytes;
  static_assert(BM % (16 * WARPS_M) == 0 && BN % (16 * WARPS_N) == 0,
                "warp tiles are whole 16x16 fragments");
  static_assert(NI % 2 == 0, "B fragments load in pairs");
};

// MIN_BLOCKS, the blocks per SM the register allocation must allow, comes from the tile
// table (kTiles below).
template <class T, ConvPass kPass, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES,
          int MIN_BLOCKS>
__global__ void __launch_bounds__(WARPS_M* WARPS_N * 32, MIN_BLOCKS)
    conv_mma_kernel(ConvGeometry g, const T* __restrict__ opA, const T* __restrict__ opB,
                    Epilogue<T> ep) {
  pdl_begin();
  using Cfg = MmaConv<T, kPass, BM, BN, BK, WARPS_M, WARPS_N, STAGES>;
  constexpr int kStages = STAGES, kBK = BK;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / WARPS_N, warp_n = warp % WARPS_N;
  const ConvBlockWork<kPass> work(g, kBK);
  const int64_t m0 = int64_t(blockIdx.x) * BM;
  if (m0 >= work.gs.M) return;  // whole block, before any barrier
  const int n0 = blockIdx.y * BN;
  const int kt_begin = work.kt_begin, kt_end = work.kt_end;
  const uint32_t smem_base = smem_addr(smem);
  typename Cfg::Loader loader(g, work.cls, work.gs, m0, n0, kt_begin, tid);
  auto load_tile = [&](int stage, int kt) {
    const uint32_t a_dst = smem_base + stage * Cfg::kStageBytes;
    loader.load(g, work.cls, work.gs, opA, opB, a_dst, a_dst + Cfg::kATileBytes, kt);
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
        if (Cfg::Loader::kAKMajor) {
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
        if (Cfg::Loader::kBKMajor) {
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
  const bool read_dx = reads_dx<T, kPass>(ep);
#pragma unroll
  for (int mi = 0; mi < Cfg::MI; ++mi) {
    // Both rows' dx pairs, all read before any store (reads_dx).
    uint32_t prev[2][Cfg::NI];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m0 + warp_m * Cfg::WM + mi * 16 + grp + half * 8;
#pragma unroll
      for (int ni = 0; ni < Cfg::NI; ++ni) {
        const int col = n0 + warp_n * Cfg::WN + ni * 8 + tig * 2;
        prev[half][ni] = read_dx && m < work.gs.M && col < work.gs.N
                             ? load_pair(ep, work.gs.N, output_row(g, work, m), col)
                             : 0u;
      }
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m0 + warp_m * Cfg::WM + mi * 16 + grp + half * 8;
      if (m >= work.gs.M) continue;
      const int64_t row = output_row(g, work, m);
#pragma unroll
      for (int ni = 0; ni < Cfg::NI; ++ni) {
        const int col = n0 + warp_n * Cfg::WN + ni * 8 + tig * 2;
        if (col >= work.gs.N) continue;
        store_pair(ep, work, row, col, acc[mi][ni][half * 2], acc[mi][ni][half * 2 + 1],
                   prev[half][ni]);
      }
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
static_assert(kTileCount + kWgmmaTileCount <= kMaxConvTiles,
              "conv_kernels.h sizes candidate lists by tiles");

template <class T, ConvPass kPass, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES,
          int MIN_BLOCKS>
void launch_shape(const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                  int splits, cudaStream_t s) {
  using Cfg = MmaConv<T, kPass, BM, BN, BK, WARPS_M, WARPS_N, STAGES>;
  static bool configured = false;
  auto kernel = conv_mma_kernel<T, kPass, BM, BN, BK, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS>;
  launch_tiles<T, kPass>(kernel, configured, BM, BN, Cfg::kThreads, Cfg::kSmemBytes, g, a, b,
                         ep, splits, s);
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

// Tiles from kTileCount on are conv_wgmma.cu's.
template <class T, ConvPass kPass>
void launch_tile(int tile, const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                 int splits, cudaStream_t s) {
  if (tile >= kTileCount) return wgmma_launch<T, kPass>(tile - kTileCount, g, a, b, ep, splits, s);
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

// The mma.sync tiles, then, where this device runs them, the wgmma tiles.
int mma_tile_count() { return kTileCount + (wgmma_available() ? wgmma_tile_count() : 0); }
int mma_tile_bm(int tile) {
  return tile < kTileCount ? kTiles[tile].bm : wgmma_tile_bm(tile - kTileCount);
}
int mma_tile_bn(int tile) {
  return tile < kTileCount ? kTiles[tile].bn : wgmma_tile_bn(tile - kTileCount);
}
int mma_tile_bk(int tile) { return tile < kTileCount ? kTiles[tile].bk : kWgmmaBK; }
std::string mma_tile_name(int tile) {
  if (tile >= kTileCount) return wgmma_tile_name(tile - kTileCount);
  const TileShape& t = kTiles[tile];
  return "mma " + std::to_string(t.bm) + "x" + std::to_string(t.bn) + "x" + std::to_string(t.bk) +
         ", " + std::to_string(t.stages) + " stages, " + std::to_string(t.warps_m * t.warps_n) +
         " warps";
}
bool mma_tile_fits(int tile, ConvPass pass, const ConvGeometry& g) {
  return tile < kTileCount || wgmma_tile_fits(tile - kTileCount, pass, g);
}
bool mma_tile_splits(int tile) { return tile < kTileCount || wgmma_tile_splits(tile - kTileCount); }
int mma_tile_fixed_splits(int tile, ConvPass pass, const ConvGeometry& g, int sm_count) {
  return wgmma_tile_fixed_splits(tile - kTileCount, pass, g, sm_count);
}
bool mma_tile_serves(int tile, ConvPass pass) {
  return tile < kTileCount ? (kTiles[tile].passes >> int(pass)) & 1
                           : wgmma_tile_serves(tile - kTileCount, pass);
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
