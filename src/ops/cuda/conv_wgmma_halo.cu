// A 3x3 stride-1 convolution over 64-channel, 32-pixel-wide images that reads each input pixel
// from L2 a few times instead of nine: resnet's layer1 (and resnet50's 3x3 bottleneck convs).
//
// The implicit-GEMM tiles (conv_wgmma.cu) gather one filter tap per k-tile, so every input
// pixel crosses from L2 into shared memory once per tap: 9 x 67 MB for layer1's forward at
// batch 512, where the kernel ran at ~200 TFLOP/s against cuDNN's ~400 (gpu-notes v6, v18).
// Here a block instead keeps its output channels' weights for all nine taps in shared memory
// for the whole launch (persistent: one block per SM walks tiles of 4 image rows), and per
// tile loads the input rows the tile touches, h0 - 1 .. h0 + 4, three times: shifted by one
// pixel left, not shifted, shifted right (the missing column reads zeros, which is the
// padding). Each copy holds 6 image rows of 32 pixels back to back, so for tap (r, s) the 128
// input pixels the tile's 128 output pixels read are 4 consecutive rows of copy s, starting at
// row r: an ordinary K-major operand, 128 bytes (64 channels) per pixel, in wgmma's 128-byte
// swizzle. L2 traffic per output pixel: 3 copies x 6/4 rows = 4.5 pixels, not 9.
//
// The data gradient of the same shapes is the same convolution of dy with the filters
// flipped and transposed: tap (r, s) takes w[k][2 - r][2 - s][c] with k, the reduction, on
// rows and c along them, which is wgmma's MN-major B operand: the same bytes in shared
// memory, read with the transpose bit.
//
// Loads for the next tile (cp.async, double-buffered) overlap this tile's 36 wgmma per
// warpgroup; the two warpgroups each take two of the tile's four output rows. A second form
// (kShift) loads only the unshifted copy and builds the other two in shared memory; the
// autotuner keeps whichever is faster. The filter gradient walks the same tiles
// (conv_halo_wgrad_kernel below).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "ops/cuda/conv_tile_loader.cuh"
#include "ops/cuda/conv_wgmma.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/wgmma_ops.cuh"
#include "ops/cuda/wgmma_sync.cuh"

namespace tb::gpu {
namespace {

constexpr int kTileRows = 4;                                      // output image rows per tile
constexpr int kWidth = 32;                                        // pixels per image row
constexpr int kChannels = 64;                                     // reduction channels (128 bytes)
constexpr int kInRows = kTileRows + 2;                            // input rows a tile reads
constexpr int kTilePixels = kTileRows * kWidth;                   // output pixels per tile: 128
constexpr int kCopyBytes = kInRows * kWidth * 128;                // one shifted copy: 24 KiB
constexpr int kHaloBytes = 3 * kCopyBytes;                        // the three copies of one tile
constexpr int kTapBytes = 64 * 128;                               // 64 output channels x 64 inputs
constexpr int kWeightBytes = 9 * kTapBytes;                       // all nine taps: 72 KiB
constexpr int kThreads = 256;                                     // two warpgroups
constexpr int kSmemBytes = kWeightBytes + 2 * kHaloBytes + 1024;  // + alignment slack
static_assert(kThreads == 8 * kWidth, "a thread per (pixel column, 16-byte chunk)");
static_assert(kSmemBytes <= 227 * 1024, "within an H100 block's shared memory");

// Byte offset of 16-byte chunk `chunk` of pixel `column` of input row `row` in one copy (the
// 128-byte swizzle: K-major rows of one pixel, or MN-major atoms of 8 pixels, alike).
__device__ __forceinline__ uint32_t halo_offset(int row, int column, int chunk) {
  return uint32_t((row * kWidth + column) * 128 + ((chunk ^ (column & 7)) << 4));
}

// Issues the cp.async copies of a tile's input rows h0 - 1 .. h0 + 4 into `dst`: all three
// shifted copies, or (kShift) the unshifted one alone. Outside the image: zeros. kCount
// threads share the work.
template <class T, bool kShift, int kCount>
__device__ __forceinline__ void load_halo(const ConvGeometry& g, const T* in, int image, int h0,
                                          uint32_t dst) {
  const T* base = in + int64_t(image) * g.H * kWidth * kChannels;
  constexpr int kFirst = kShift ? 1 : 0, kCopies = kShift ? 1 : 3;
#pragma unroll
  for (int q = threadIdx.x; q < kCopies * kInRows * kWidth * 8; q += kCount) {
    const int chunk = q & 7, column = (q >> 3) & (kWidth - 1), k = q >> 8;
    const int s = kFirst + k / kInRows, row = k % kInRows;
    const int h = h0 - 1 + row, x = column + s - 1;
    const bool ok = h >= 0 && h < g.H && x >= 0 && x < kWidth;
    const T* src = ok ? base + (int64_t(h) * kWidth + x) * kChannels + chunk * 8 : in;
    cp_async16(dst + s * kCopyBytes + halo_offset(row, column, chunk), src, ok);
  }
}

// kShift's second step, once the unshifted copy is in: copy 0 gets pixel x - 1 at column x,
// copy 2 pixel x + 1, and the column past the image edge zeros (the padding).
template <int kCount>
__device__ __forceinline__ void shift_halo(unsigned char* copies) {
#pragma unroll
  for (int q = threadIdx.x; q < kInRows * kWidth * 8; q += kCount) {
    const int chunk = q & 7, column = (q >> 3) & (kWidth - 1), row = q >> 8;
#pragma unroll
    for (int side = 0; side < 2; ++side) {
      const int from = column + (side ? 1 : -1);
      uint4 v = make_uint4(0, 0, 0, 0);
      if (from >= 0 && from < kWidth)
        v = *reinterpret_cast<const uint4*>(copies + kCopyBytes + halo_offset(row, from, chunk));
      *reinterpret_cast<uint4*>(copies + (side ? 2 : 0) * kCopyBytes +
                                halo_offset(row, column, chunk)) = v;
    }
  }
}

// kShift: only the unshifted copy comes from L2, and the block builds the two shifted ones
// from it in shared memory (1.5 input pixels of L2 traffic per output pixel instead of 4.5,
// for a second barrier and 12 shared-memory copies per thread and tile).
template <class T, ConvPass kPass, bool kShift>
__global__ void __launch_bounds__(kThreads, 1)
    conv_halo_kernel(ConvGeometry g, const T* __restrict__ in, const T* __restrict__ w,
                     Epilogue<T> ep, int tiles) {
  pdl_begin();
#ifdef TB_WGMMA_DEVICE
  constexpr bool kDgrad = kPass == ConvPass::dgrad;
  extern __shared__ unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const uint32_t weights = (smem_addr(smem) + 1023u) & ~1023u;
  const uint32_t halo = weights + kWeightBytes;
  const int n0 = blockIdx.y * 64;  // this block's output channels
  const int out_channels = kDgrad ? g.C : g.K;
  const int tiles_per_image = (g.H + kTileRows - 1) / kTileRows;
  // Every thread copies one 16-byte chunk of a weight row per step.
  const int chunk = tid & 7, column = tid >> 3;

  // Weights, rows of 64 reduction values (fprop) or of 64 output channels (dgrad), 128 bytes
  // each, in the swizzle both operand orientations share at this width.
#pragma unroll
  for (int j = 0; j < 9 * 64 / 32; ++j) {
    const int q = column + 32 * j, tap = q >> 6, row = q & 63;
    const T* src = kDgrad ? w + (int64_t(row) * 9 + (8 - tap)) * g.C + n0 + chunk * 8
                          : w + (int64_t(n0 + row) * 9 + tap) * kChannels + chunk * 8;
    cp_async16(weights + tap * kTapBytes + row * 128 + ((chunk ^ (row & 7)) << 4), src, true);
  }
  const auto load = [&](int tile, uint32_t dst) {
    load_halo<T, kShift, kThreads>(g, in, tile / tiles_per_image,
                                   (tile % tiles_per_image) * kTileRows, dst);
  };

  int tile = blockIdx.x;
  if (tile < tiles) load(tile, halo);
  cp_async_commit();  // the weights and the first tile
  const int w4 = warp & 3, grp = lane >> 2, tig = lane & 3;
  // wgmma's B operand per 16-wide k step: K-major rows advance 32 bytes, MN-major ones two
  // 8-row groups; the leading offset only matters for MN-major tiles wider than 64.
  constexpr uint32_t kBStep = kDgrad ? 2048 : 32, kBLead = kDgrad ? 64 * 128 : 16;
  for (int i = 0; tile < tiles; ++i, tile += gridDim.x) {
    const uint32_t cur = halo + (i & 1) * kHaloBytes;
    if (tile + int(gridDim.x) < tiles) load(tile + gridDim.x, halo + ((i + 1) & 1) * kHaloBytes);
    cp_async_commit();
    cp_async_wait<1>();  // this thread's copies of this tile (and the weights)
    if constexpr (kShift) {
      __syncthreads();  // everyone's: the unshifted copy is whole
      shift_halo<kThreads>(smem + (cur - smem_addr(smem)));
    }
    fence_proxy_async();
    __syncthreads();  // everyone's

    float acc[32];
#pragma unroll
    for (int e = 0; e < 32; ++e) acc[e] = 0.0f;
    fence_registers(acc);
    wgmma_fence();
#pragma unroll
    for (int tap = 0; tap < 9; ++tap) {
      const int r = tap / 3, s = tap % 3;
      // This warpgroup's 64 output pixels (rows 2 wg, 2 wg + 1 of the tile) under tap (r, s):
      // 64 consecutive pixels of copy s from its row 2 wg + r.
      const uint32_t a = cur + s * kCopyBytes + (2 * wg + r) * kWidth * 128;
      const uint32_t b = weights + tap * kTapBytes;
#pragma unroll
      for (int ks = 0; ks < kChannels / 16; ++ks)
        Wgmma<64, T>::template mma<0, kDgrad ? 1 : 0>(acc, smem_desc(a + ks * 32, 16, 1024),
                                                      smem_desc(b + ks * kBStep, kBLead, 1024));
    }
    wgmma_commit();
    wgmma_wait<0>();
    fence_registers(acc);

    // Epilogue: warp w4 holds pixels 16 w4 + grp (+ 8) of the warpgroup's 64, channels
    // 8 j + 2 tig (+ 1).
    const int image = tile / tiles_per_image, h0 = (tile % tiles_per_image) * kTileRows;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int p = wg * 64 + w4 * 16 + grp + half * 8;
      const int h = h0 + p / kWidth;
      if (h >= g.H) continue;
      T* dst =
          ep.out + ((int64_t(image) * g.H + h) * kWidth + p % kWidth) * out_channels + n0 + 2 * tig;
      uint32_t prev[8];  // an accumulating gradient's dx pairs, all read before any store
#pragma unroll
      for (int j = 0; j < 8; ++j)
        prev[j] = kDgrad && ep.accumulate ? *reinterpret_cast<const uint32_t*>(dst + 8 * j) : 0u;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        float v0 = acc[4 * j + 2 * half], v1 = acc[4 * j + 2 * half + 1];
        if (!kDgrad && ep.bias) {
          v0 += ep.bias[n0 + 8 * j + 2 * tig];
          v1 += ep.bias[n0 + 8 * j + 2 * tig + 1];
        }
        if (kDgrad && ep.accumulate) {
          T had[2];
          *reinterpret_cast<uint32_t*>(had) = prev[j];
          v0 += to_float(had[0]);
          v1 += to_float(had[1]);
        }
        T pair[2] = {from_float<T>(v0), from_float<T>(v1)};
        *reinterpret_cast<uint32_t*>(dst + 8 * j) = *reinterpret_cast<const uint32_t*>(pair);
      }
    }
    __syncthreads();  // nobody reads this tile's copies any more: the next loads may land
  }
  cp_async_wait<0>();
#endif
}

// The filter gradient over the same tiles: dw[k][r][s][c] = sum over output pixels p of
// dy[p][k] * x[p + (r - 1, s - 1)][c]. Per tile, dy's 128 pixels x 64 channels are wgmma's A
// (k along the rows: MN-major) and the input pixels under tap (r, s), the same 4 rows of copy
// s as above, its B (c along the rows: MN-major); the reduction runs over the tile's pixels.
// Three warpgroups, one per filter row r, each keep three 64 x 64 fp32 accumulators (taps
// (r, 0..2)) over every tile the block walks, and write them once as this block's partial
// sums: [block][k][(r, s, c)], which reduce_partials() adds in block order (deterministic) into
// the fp32 K,C,R,S gradient.
constexpr int kWgradThreads = 384;
constexpr int kDyBytes = kTilePixels * 128;         // dy's tile: 16 KiB
constexpr int kWgradStage = kDyBytes + kHaloBytes;  // one buffer: dy, then the three copies
constexpr int kWgradSmemBytes = 2 * kWgradStage + 1024;
static_assert(kWgradSmemBytes <= 227 * 1024, "within an H100 block's shared memory");

template <class T, bool kShift>
__global__ void __launch_bounds__(kWgradThreads, 1)
    conv_halo_wgrad_kernel(ConvGeometry g, const T* __restrict__ dy, const T* __restrict__ x,
                           float* __restrict__ partials, int tiles) {
  pdl_begin();
#ifdef TB_WGMMA_DEVICE
  extern __shared__ unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const uint32_t stage0 = (smem_addr(smem) + 1023u) & ~1023u;
  const int tiles_per_image = (g.H + kTileRows - 1) / kTileRows;
  const auto load = [&](int tile, uint32_t dst) {
    const int image = tile / tiles_per_image, h0 = (tile % tiles_per_image) * kTileRows;
    // dy's rows past the image are zeros, so the input rows they would meet add nothing.
    for (int q = tid; q < kTilePixels * 8; q += kWgradThreads) {
      const int chunk = q & 7, p = q >> 3, h = h0 + p / kWidth;
      const bool ok = h < g.H;
      const T* src =
          ok ? dy + ((int64_t(image) * g.H + h) * kWidth + p % kWidth) * kChannels + chunk * 8 : dy;
      cp_async16(dst + p * 128 + ((chunk ^ (p & 7)) << 4), src, ok);
    }
    load_halo<T, kShift, kWgradThreads>(g, x, image, h0, dst + kDyBytes);
  };

  float acc[3][32];
#pragma unroll
  for (int s = 0; s < 3; ++s) {
#pragma unroll
    for (int e = 0; e < 32; ++e) acc[s][e] = 0.0f;
    fence_registers(acc[s]);
  }
  int tile = blockIdx.x;
  if (tile < tiles) load(tile, stage0);
  cp_async_commit();
  for (int i = 0; tile < tiles; ++i, tile += gridDim.x) {
    const uint32_t cur = stage0 + (i & 1) * kWgradStage;
    if (tile + int(gridDim.x) < tiles) load(tile + gridDim.x, stage0 + ((i + 1) & 1) * kWgradStage);
    cp_async_commit();
    cp_async_wait<1>();
    if constexpr (kShift) {
      __syncthreads();
      shift_halo<kWgradThreads>(smem + (cur + kDyBytes - smem_addr(smem)));
    }
    fence_proxy_async();
    __syncthreads();
    wgmma_fence();
    // Warpgroup wg is filter row r = wg: input rows r .. r + 3 of each copy.
#pragma unroll
    for (int s = 0; s < 3; ++s) {
      const uint32_t b = cur + kDyBytes + s * kCopyBytes + wg * kWidth * 128;
#pragma unroll
      for (int ks = 0; ks < kTilePixels / 16; ++ks)
        Wgmma<64, T>::template mma<1, 1>(acc[s], smem_desc(cur + ks * 2048, 64 * 128, 1024),
                                         smem_desc(b + ks * 2048, 64 * 128, 1024));
    }
    wgmma_commit();
    wgmma_wait<0>();
#pragma unroll
    for (int s = 0; s < 3; ++s) fence_registers(acc[s]);
    __syncthreads();  // nobody reads this buffer any more: the next loads may land
  }
  cp_async_wait<0>();

  // This block's sums: warp w4 holds rows k = 16 w4 + grp (+ 8), columns c = 8 j + 2 tig (+ 1).
  const int w4 = warp & 3, grp = lane >> 2, tig = lane & 3;
  constexpr int kRow = 9 * kChannels;  // (r, s, c) per output channel
#pragma unroll
  for (int s = 0; s < 3; ++s)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int k = w4 * 16 + grp + half * 8;
      float* dst = partials + (int64_t(blockIdx.x) * kChannels + k) * kRow +
                   (wg * 3 + s) * kChannels + 2 * tig;
#pragma unroll
      for (int j = 0; j < 8; ++j)
        *reinterpret_cast<float2*>(dst + 8 * j) =
            make_float2(acc[s][4 * j + 2 * half], acc[s][4 * j + 2 * half + 1]);
    }
#endif
}

int sm_count_of_current_device() {
  static int counts[64] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return 1;
  if (!counts[device]) {
    int n = 0;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n < 1)
      n = 1;
    counts[device] = n;
  }
  return counts[device];
}

}  // namespace

bool halo_conv_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("TB_CONV_HALO");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return enabled;
}

bool halo_conv_fits(ConvPass pass, const ConvGeometry& g) {
  if (!halo_conv_enabled()) return false;
  const bool shape = g.R == 3 && g.S == 3 && g.stride == 1 && g.pad == 1 && g.W == kWidth &&
                     g.Q == kWidth && g.P == g.H && g.H > 0 && g.N > 0;
  if (!shape) return false;
  if (pass == ConvPass::fprop) return g.C == kChannels && g.K % 64 == 0;
  if (pass == ConvPass::dgrad) return g.K == kChannels && g.C % 64 == 0;
  return g.C == kChannels && g.K == kChannels;
}

int tile_count(const ConvGeometry& g) { return g.N * ((g.H + kTileRows - 1) / kTileRows); }

template <class T, ConvPass kPass, bool kShift>
void halo_launch(const ConvGeometry& g, const T* in, const T* w, const Epilogue<T>& ep,
                 cudaStream_t s) {
  static bool configured = false;
  auto kernel = conv_halo_kernel<T, kPass, kShift>;
  if (!configured) {
    TB_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
    configured = true;
  }
  const int out_channels = kPass == ConvPass::dgrad ? g.C : g.K;
  launch_kernel(kernel,
                dim3(unsigned(halo_conv_blocks(g, sm_count_of_current_device())),
                     unsigned(out_channels / 64)),
                kThreads, kSmemBytes, s, g, in, w, ep, tile_count(g));
}

template <class T, ConvPass kPass>
void halo_conv_launch(bool shift, const ConvGeometry& g, const T* in, const T* w,
                      const Epilogue<T>& ep, int splits, cudaStream_t s) {
  if (splits != 1 || ep.partials || !halo_conv_fits(kPass, g))
    cuda_fail(cudaErrorInvalidValue, "conv_wgmma_halo: shape or split count not served", __FILE__,
              __LINE__);
  if (shift)
    halo_launch<T, kPass, true>(g, in, w, ep, s);
  else
    halo_launch<T, kPass, false>(g, in, w, ep, s);
}

int halo_conv_blocks(const ConvGeometry& g, int sm_count) {
  return std::max(1, std::min(tile_count(g), sm_count));
}

template <class T>
void halo_conv_wgrad_launch(bool shift, const ConvGeometry& g, const T* dy, const T* x,
                            float* partials, int splits, cudaStream_t s) {
  // The plan's split count (halo_conv_blocks() when it was made) is the grid: one partial per
  // block, which is the layout reduce_partials() adds. Any count is correct; a block without
  // a tile writes zeros.
  if (!partials || splits < 1 || !halo_conv_fits(ConvPass::wgrad, g))
    cuda_fail(cudaErrorInvalidValue, "conv_wgmma_halo: weight gradient not served as planned",
              __FILE__, __LINE__);
  const int blocks = splits;
  const auto run = [&](auto kernel, bool& configured) {
    if (!configured) {
      TB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         kWgradSmemBytes));
      configured = true;
    }
    launch_kernel(kernel, dim3(unsigned(blocks)), kWgradThreads, kWgradSmemBytes, s, g, dy, x,
                  partials, tile_count(g));
  };
  static bool configured[2] = {false, false};
  if (shift)
    run(conv_halo_wgrad_kernel<T, true>, configured[1]);
  else
    run(conv_halo_wgrad_kernel<T, false>, configured[0]);
}

#define TB_HALO_INSTANTIATE(T)                                                               \
  template void halo_conv_launch<T, ConvPass::fprop>(                                        \
      bool, const ConvGeometry&, const T*, const T*, const Epilogue<T>&, int, cudaStream_t); \
  template void halo_conv_launch<T, ConvPass::dgrad>(                                        \
      bool, const ConvGeometry&, const T*, const T*, const Epilogue<T>&, int, cudaStream_t);
TB_HALO_INSTANTIATE(bf16)
template void halo_conv_wgrad_launch<bf16>(bool, const ConvGeometry&, const bf16*, const bf16*,
                                           float*, int, cudaStream_t);
template void halo_conv_wgrad_launch<f16>(bool, const ConvGeometry&, const f16*, const f16*, float*,
                                          int, cudaStream_t);
TB_HALO_INSTANTIATE(f16)

}  // namespace tb::gpu
