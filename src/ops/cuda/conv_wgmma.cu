// Tensor-core implicit GEMM on Hopper's warpgroup instructions (wgmma.mma_async, sm_90a):
// the same three GEMMs as conv_mma.cu, the same cp.async loaders (conv_tile_loader.cuh), but
// the tensor cores read both operands straight from shared memory through matrix
// descriptors, a warpgroup (4 warps) at a time, instead of each warp loading fragments into
// registers with ldmatrix. That frees the issue slots and registers mma.sync spent on
// fragments, and wgmma's 64 x N x 16 steps (N up to 256) move less shared memory per FLOP.
//
// Shared memory holds STAGES k-tiles of 64 in wgmma's 128-byte-swizzled layouts (WgmmaLayout):
// K-major for fprop's operands and dgrad's A, MN-major (the descriptor's transpose bit) for
// dgrad's B and both of wgrad's operands. The loop keeps two k-tiles of loads and two
// k-tiles of wgmma in flight: at k-tile kt, once this thread's copies of kt have landed and
// every warpgroup's wgmma of kt - 2 has finished (one barrier), the block loads k-tile
// kt + STAGES - 2 into kt - 2's stage and queues kt's 4 x MI wgmma without waiting for them.
//
// Compiled for sm_90a alone (CMakeLists.txt): other GPUs get no image of these kernels, and
// the dispatcher never offers these tiles there (wgmma_available()).
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "ops/cuda/conv_tile_loader.cuh"
#include "ops/cuda/conv_wgmma.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/wgmma_ops.cuh"
#include "ops/cuda/wgmma_sync.cuh"

namespace tb::gpu {
namespace {

// One tile shape. BM x BN is the block's share of the GEMM (BM output pixels, or output
// channels for wgrad; BN columns), WG warpgroups, STAGES k-tiles of shared memory.
// Not swapped: wgmma's M is the GEMM's M, each warpgroup taking MI = BM / WG / 64 slices of
// 64 rows against all BN columns (wgmma's N = BN).
// Swapped (kSwap, fprop and dgrad): wgmma computes the transposed tile, channels x pixels:
// its M is the GEMM's N (BN = 64 or 128 channels: MI slices of 64), its N the warpgroup's
// BM / WG pixels (up to 256). Layers with 64 or 128 channels then run 64 x 256 or
// 128 x 128 steps instead of 64 x 64 or 64 x 128 ones, which read less shared memory per
// FLOP; the epilogue transposes back through shared memory.
template <class T, ConvPass kPass, int BM, int BN, int WG, int STAGES, bool kSwap>
struct WgmmaConv {
  static constexpr int BK = kWgmmaBK;
  static constexpr int kThreads = WG * 128;
  // Chunks per thread and row (conv_tile_loader.cuh): four for the backward passes, one for
  // fprop, which measured 10-20% slower with four (H100; the backward passes 10-30% faster).
  static constexpr int kChunks = kPass == ConvPass::fprop ? 1 : 4;
  using Loader = ConvTileLoader<T, kPass, BM, BN, BK, kThreads, WgmmaLayout, kChunks>;
  static constexpr int MI = kSwap ? BN / 64 : BM / WG / 64;  // m64 slices per warpgroup
  static constexpr int NW = kSwap ? BM / WG : BN;           // wgmma's N
  static constexpr int kATileBytes = BM * BK * 2, kBTileBytes = BN * BK * 2;
  static constexpr int kStageBytes = kATileBytes + kBTileBytes;
  static constexpr int kPipeBytes = STAGES * kStageBytes;
  // The swapped epilogue's fp32 staging tile, [BM][BN + 4] in the pipeline's memory: the 4
  // floats of padding put the 8 channels x 4 pixels a warp stores at once in 32 banks.
  static constexpr int kStageLd = BN + 4;
  static constexpr int kSmemBytes =
      (kSwap && BM * kStageLd * 4 > kPipeBytes ? BM * kStageLd * 4 : kPipeBytes) + 1024;
  // wgmma's operands: the loader's A and B tiles, or B and A when swapped. Transposed
  // (MN-major) where the loader's tile is.
  static constexpr bool kTransA = kSwap ? !Loader::kBKMajor : !Loader::kAKMajor;
  static constexpr bool kTransB = kSwap ? !Loader::kAKMajor : !Loader::kBKMajor;
  // Per 16-wide k step: K-major tiles advance 32 bytes along their 128-byte rows (the
  // swizzle is applied to the computed address), MN-major tiles two 8-row groups.
  static constexpr uint32_t kAStep = kTransA ? 2048 : 32, kBStep = kTransB ? 2048 : 32;
  // Leading byte offset: between 64-position atoms for MN-major tiles; unused (16) for
  // K-major ones. Stride byte offset: between 8-row groups, 1024 for both.
  static constexpr uint32_t kALead = kTransA ? BK * 128 : 16, kBLead = kTransB ? BK * 128 : 16;
  static_assert(!kSwap || (kPass != ConvPass::wgrad && BN % 64 == 0 && NW % 8 == 0 &&
                           NW <= 256),
                "swapped tiles: fprop or dgrad, whole 64-channel slices, wgmma N <= 256");
  static_assert(kSwap || BM % (WG * 64) == 0, "each warpgroup takes whole 64-row slices");
  static_assert(STAGES >= 3, "two stages in flight plus the one being loaded");
  static_assert(MI * NW / 2 <= 128, "accumulators within the register file");
};

template <class T, ConvPass kPass, int BM, int BN, int WG, int STAGES, bool kSwap, int MIN_BLOCKS>
__global__ void __launch_bounds__(WG * 128, MIN_BLOCKS)
    conv_wgmma_kernel(ConvGeometry g, const T* __restrict__ opA, const T* __restrict__ opB,
                      Epilogue<T> ep) {
  pdl_begin();
#ifdef TB_WGMMA_DEVICE
  using Cfg = WgmmaConv<T, kPass, BM, BN, WG, STAGES, kSwap>;
  constexpr int MI = Cfg::MI, NW = Cfg::NW;
  extern __shared__ unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const ConvBlockWork<kPass> work(g, Cfg::BK);
  const int64_t m0 = int64_t(blockIdx.x) * BM;
  if (m0 >= work.gs.M) return;  // whole block, before any barrier
  const int n0 = blockIdx.y * BN;
  const int kt_begin = work.kt_begin, kt_end = work.kt_end;
  const uint32_t smem_base = (smem_addr(smem) + 1023u) & ~1023u;
  typename Cfg::Loader loader(g, work.cls, work.gs, m0, n0, kt_begin, tid);
  auto load_tile = [&](int stage, int kt) {
    const uint32_t a_dst = smem_base + stage * Cfg::kStageBytes;
    loader.load(g, work.cls, work.gs, opA, opB, a_dst, a_dst + Cfg::kATileBytes, kt);
  };

  float acc[MI][NW / 2];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
    for (int e = 0; e < NW / 2; ++e) acc[mi][e] = 0.0f;
    fence_registers(acc[mi]);
  }

#pragma unroll
  for (int st = 0; st < STAGES - 2; ++st) {
    if (kt_begin + st < kt_end) load_tile(st, kt_begin + st);
    cp_async_commit();
  }

  for (int kt = kt_begin; kt < kt_end; ++kt) {
    cp_async_wait<STAGES - 3>();  // this thread's copies of k-tile kt
    fence_proxy_async();
    wgmma_wait<1>();  // this warpgroup's wgmma of kt - 2 (kt - 1's may still run)
    __syncthreads();  // everyone's copies of kt visible; nobody reads kt - 2's stage any more
    const int next = kt + STAGES - 2;
    if (next < kt_end) load_tile((next - kt_begin) % STAGES, next);
    cp_async_commit();

    const uint32_t tile_a = smem_base + ((kt - kt_begin) % STAGES) * Cfg::kStageBytes;
    const uint32_t tile_b = tile_a + Cfg::kATileBytes;
    // wgmma's A slices (64 K-major rows of 128 bytes, or one 64-position column of MN-major
    // atoms: 8 KiB either way) and its B operand.
    const uint32_t a_src = kSwap ? tile_b : tile_a + wg * MI * 8192;
    const uint32_t b_src = kSwap ? tile_a + wg * NW * 128 : tile_b;
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < Cfg::BK / 16; ++ks) {
      const uint64_t db = smem_desc(b_src + ks * Cfg::kBStep, Cfg::kBLead, 1024);
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
        Wgmma<NW, T>::template mma<Cfg::kTransA, Cfg::kTransB>(
            acc[mi], smem_desc(a_src + mi * 8192 + ks * Cfg::kAStep, Cfg::kALead, 1024), db);
    }
    wgmma_commit();
  }
  wgmma_wait<0>();
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) fence_registers(acc[mi]);
  cp_async_wait<0>();

  // ---- epilogue. wgmma's accumulator layout is mma.sync's m16n8 one: warp w4 of the
  // warpgroup holds rows 16 * w4 + grp (+ 8) of each 64-row slice, columns 8 j + 2 tig (+ 1).
  const int w4 = warp & 3, grp = lane >> 2, tig = lane & 3;
  if constexpr (!kSwap) {
    const bool read_dx = reads_dx<T, kPass>(ep);
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t m = m0 + (wg * MI + mi) * 64 + w4 * 16 + grp + half * 8;
        if (m >= work.gs.M) continue;
        const int64_t row = output_row(g, work, m);
        uint32_t prev[BN / 8];  // the row's dx pairs, all read before any store
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
          const int col = n0 + j * 8 + tig * 2;
          prev[j] = read_dx && col < work.gs.N ? load_pair(ep, work.gs.N, row, col) : 0u;
        }
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
          const int col = n0 + j * 8 + tig * 2;
          if (col >= work.gs.N) continue;
          store_pair(ep, work, row, col, acc[mi][4 * j + 2 * half], acc[mi][4 * j + 2 * half + 1],
                     prev[j]);
        }
      }
  } else {
    // Rows are channels, columns pixels: each thread's adjacent values are adjacent pixels,
    // 2 * C bytes apart in NHWC memory. Through a [pixel][channel] fp32 tile in shared
    // memory (the pipeline's, now idle), then 4 channels of one pixel per thread, so that a
    // warp's stores are whole 32-byte sectors.
    __syncthreads();  // every warpgroup is done reading the pipeline's stages
    float* staged = reinterpret_cast<float*>(smem + (smem_base - smem_addr(smem)));
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
      for (int j = 0; j < NW / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = mi * 64 + w4 * 16 + grp + (e >> 1) * 8;
          const int p = wg * NW + j * 8 + tig * 2 + (e & 1);
          staged[p * Cfg::kStageLd + c] = acc[mi][4 * j + e];
        }
    __syncthreads();
    // Batches of kBatch quads per thread: an accumulating data gradient reads a batch's dx
    // quads before storing any of them (reads_dx).
    constexpr int kQuads = BM * BN / 4, kBatch = 8;
    static_assert(kQuads % (Cfg::kThreads * kBatch) == 0, "whole batches of quads");
    const bool read_dx = reads_dx<T, kPass>(ep);
    // Quad i: pixel p (GEMM row m) and channels c .. c + 3 (column col) of the tile.
    struct Quad {
      int p, c;
      int64_t m;
      int col;
      bool inside;
    };
    const auto quad = [&](int i) {
      Quad q;
      q.p = i / (BN / 4);
      q.c = (i % (BN / 4)) * 4;
      q.m = m0 + q.p;
      q.col = n0 + q.c;
      q.inside = q.m < work.gs.M && q.col < work.gs.N;
      return q;
    };
    for (int i0 = tid; i0 < kQuads; i0 += Cfg::kThreads * kBatch) {
      uint2 prev[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const Quad q = quad(i0 + b * Cfg::kThreads);
        prev[b] = read_dx && q.inside ? load_quad(ep, work.gs.N, output_row(g, work, q.m), q.col)
                                      : uint2{};
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const Quad q = quad(i0 + b * Cfg::kThreads);
        if (!q.inside) continue;
        const float4 v = *reinterpret_cast<const float4*>(staged + q.p * Cfg::kStageLd + q.c);
        store_quad(ep, work, output_row(g, work, q.m), q.col, v, prev[b]);
      }
    }
  }
#endif
}

// The tiles, all with 64-wide k-tiles. Not swapped: two warpgroups (256 threads) except the
// 64-row tiles, which serve the weight gradients of layers with 64 output channels (their
// GEMM has M = 64). Swapped tiles serve fprop and dgrad of layers with 64 or 128 channels;
// the 128 x 64 one on one warpgroup asks for two blocks per SM, so that one block's epilogue
// and prologue overlap the other's main loop. The autotuner keeps whichever is fastest for a
// shape. (Tried and dropped: staging every tile's epilogue through shared memory, 5-10%
// slower on the data gradients, and gathering through L1 with cp.async.ca, no faster.)
constexpr int kFprop = 1 << int(ConvPass::fprop), kDgrad = 1 << int(ConvPass::dgrad),
              kWgrad = 1 << int(ConvPass::wgrad), kAllPasses = kFprop | kDgrad | kWgrad;
struct WgmmaTile {
  int bm, bn, warpgroups, stages;
  bool swap;
  int min_blocks;  // __launch_bounds__'s blocks per SM
  int passes;      // the passes it serves (a mask of 1 << pass): instantiated for those
};
constexpr WgmmaTile kTiles[] = {
    {128, 128, 2, 4, false, 1, kAllPasses},
    {128, 64, 2, 4, false, 1, kAllPasses},
    {256, 128, 2, 4, false, 1, kAllPasses},
    {128, 256, 2, 4, false, 1, kAllPasses},
    {256, 64, 2, 4, false, 1, kAllPasses},
    {64, 128, 1, 4, false, 1, kAllPasses},
    {64, 256, 1, 4, false, 1, kFprop | kWgrad},
    {128, 64, 2, 4, false, 2, kAllPasses},
    {128, 128, 2, 3, false, 2, kAllPasses},
    // swapped: BM pixels x BN channels
    {256, 64, 2, 4, true, 1, kFprop | kDgrad},
    {512, 64, 2, 3, true, 1, kFprop | kDgrad},
    {256, 64, 1, 4, true, 1, kFprop | kDgrad},
    {256, 128, 2, 4, true, 1, kFprop | kDgrad},
    {128, 64, 1, 4, true, 2, kFprop | kDgrad},
};
constexpr int kTileCount = int(sizeof(kTiles) / sizeof(kTiles[0]));
// After the table: conv_wgmma_halo.cu's 3x3 kernel, tiles of their own kind: its shifted
// input copies loaded from L2, then built in shared memory.
constexpr int kHaloTile = kTileCount, kHaloShiftTile = kTileCount + 1;
constexpr bool is_halo(int tile) { return tile == kHaloTile || tile == kHaloShiftTile; }
static_assert(kTileCount + 2 == kWgmmaTileCount, "conv_wgmma.h publishes the count");

template <class T, ConvPass kPass, int BM, int BN, int WG, int STAGES, bool kSwap, int MIN_BLOCKS>
void launch_shape(const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                  int splits, cudaStream_t s) {
  using Cfg = WgmmaConv<T, kPass, BM, BN, WG, STAGES, kSwap>;
  static bool configured = false;
  launch_tiles<T, kPass>(conv_wgmma_kernel<T, kPass, BM, BN, WG, STAGES, kSwap, MIN_BLOCKS>,
                         configured, BM, BN, Cfg::kThreads, Cfg::kSmemBytes, g, a, b, ep, splits,
                         s);
}

template <class T, ConvPass kPass, int kTile>
bool launch_index(const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                  int splits, cudaStream_t s) {
  constexpr WgmmaTile t = kTiles[kTile];
  if constexpr (!(t.passes & (1 << int(kPass)))) {
    return false;
  } else {
    launch_shape<T, kPass, t.bm, t.bn, t.warpgroups, t.stages, t.swap, t.min_blocks>(g, a, b, ep,
                                                                                  splits, s);
    return true;
  }
}

template <class T, ConvPass kPass, int... kTile>
bool launch_any(int tile, const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                int splits, cudaStream_t s, std::integer_sequence<int, kTile...>) {
  return ((tile == kTile && launch_index<T, kPass, kTile>(g, a, b, ep, splits, s)) || ...);
}

// Whether the device has an image of these kernels: asked of one of them, once per device.
bool device_runs_sm90a() {
  static int known[64] = {};  // 0 unknown, 1 yes, 2 no
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return false;
  if (!known[device]) {
    int major = 0, minor = 0;
    cudaFuncAttributes attributes{};
    const bool ok =
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess &&
        major == 9 && minor == 0 &&
        cudaFuncGetAttributes(&attributes,
                              conv_wgmma_kernel<bf16, ConvPass::fprop, 128, 128, 2, 4, false, 1>) ==
            cudaSuccess;
    if (!ok) cudaGetLastError();  // a missing image is an answer, not an error to keep
    known[device] = ok ? 1 : 2;
  }
  return known[device] == 1;
}

}  // namespace

bool wgmma_available() {
  const char* v = std::getenv("TB_CONV_WGMMA");
  if (v && std::strcmp(v, "0") == 0) return false;
  return device_runs_sm90a();
}

int wgmma_tile_count() { return kTileCount + 2; }
// The halo kernel's tile: 4 image rows of 32 pixels by 64 channels.
int wgmma_tile_bm(int tile) { return is_halo(tile) ? 128 : kTiles[tile].bm; }
int wgmma_tile_bn(int tile) { return is_halo(tile) ? 64 : kTiles[tile].bn; }
bool wgmma_tile_serves(int tile, ConvPass pass) {
  if (is_halo(tile)) return true;
  return (kTiles[tile].passes >> int(pass)) & 1;
}
bool wgmma_tile_splits(int tile) { return !is_halo(tile); }
int wgmma_tile_fixed_splits(int tile, ConvPass pass, const ConvGeometry& g, int sm_count) {
  (void)tile;
  return pass == ConvPass::wgrad ? halo_conv_blocks(g, sm_count) : 1;
}
bool wgmma_tile_fits(int tile, ConvPass pass, const ConvGeometry& g) {
  if (is_halo(tile)) return halo_conv_fits(pass, g);
  // The data gradient's loader takes 4 chunks per thread: a gathered k-tile of dy in one
  // filter tap. Every tile needs channel counts of whole 16-byte chunks (mma_eligible).
  return pass != ConvPass::dgrad || g.K % kWgmmaBK == 0;
}
std::string wgmma_tile_name(int tile) {
  if (is_halo(tile))
    return std::string("wgmma 3x3 halo, 4 rows x 32 pixels x 64 channels, persistent") +
           (tile == kHaloShiftTile ? ", shifted in shared memory" : "");
  const WgmmaTile& t = kTiles[tile];
  return "wgmma " + std::to_string(t.bm) + "x" + std::to_string(t.bn) + (t.swap ? " swapped" : "") +
         ", " + std::to_string(t.stages) + " stages, " + std::to_string(t.warpgroups) +
         " warpgroup" + (t.warpgroups > 1 ? "s" : "") +
         (t.min_blocks > 1 ? ", " + std::to_string(t.min_blocks) + " blocks/SM" : "");
}

template <class T, ConvPass kPass>
void wgmma_launch(int tile, const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                  int splits, cudaStream_t s) {
  if (is_halo(tile)) {
    if constexpr (kPass == ConvPass::wgrad)
      return halo_conv_wgrad_launch<T>(tile == kHaloShiftTile, g, a, b, ep.partials, splits, s);
    else
      return halo_conv_launch<T, kPass>(tile == kHaloShiftTile, g, a, b, ep, splits, s);
  }
  if (!launch_any<T, kPass>(tile, g, a, b, ep, splits, s,
                            std::make_integer_sequence<int, kTileCount>{}))
    cuda_fail(cudaErrorInvalidValue, "conv_wgmma: no such tile for this pass", __FILE__,
              __LINE__);
}

#define TB_WGMMA_INSTANTIATE(T)                                                           \
  template void wgmma_launch<T, ConvPass::fprop>(int, const ConvGeometry&, const T*,      \
                                                 const T*, const Epilogue<T>&, int,       \
                                                 cudaStream_t);                           \
  template void wgmma_launch<T, ConvPass::dgrad>(int, const ConvGeometry&, const T*,      \
                                                 const T*, const Epilogue<T>&, int,       \
                                                 cudaStream_t);                           \
  template void wgmma_launch<T, ConvPass::wgrad>(int, const ConvGeometry&, const T*,      \
                                                 const T*, const Epilogue<T>&, int,       \
                                                 cudaStream_t);
TB_WGMMA_INSTANTIATE(bf16)
TB_WGMMA_INSTANTIATE(f16)

}  // namespace tb::gpu
