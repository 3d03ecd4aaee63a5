// Convolution entry points: the choice of engine, tile and split count per shape, the
// reduction of split partials, and the weight layout conversion.
#include <algorithm>
#include <string>

#include "ops/cuda/conv_common.cuh"
#include "ops/cuda/pdl.cuh"

namespace tb::gpu {

// Engine entry points (conv_mma.cu, conv_fma.cu).
bool mma_eligible(DType t, const ConvGeometry& g);
int mma_tile_count();
int mma_tile_bm(int tile);
int mma_tile_bn(int tile);
int mma_tile_bk(int tile);
bool mma_tile_serves(int tile, ConvPass pass);
bool mma_tile_splits(int tile);
int mma_tile_fixed_splits(int tile, ConvPass pass, const ConvGeometry& g, int sm_count);
bool mma_tile_fits(int tile, ConvPass pass, const ConvGeometry& g);
std::string mma_tile_name(int tile);
void mma_fprop(const ConvLaunch&, DType, const ConvGeometry&, const void*, const void*,
               const float*, void*, void*, cudaStream_t);
void mma_dgrad(const ConvLaunch&, DType, const ConvGeometry&, const void*, const void*, void*,
               bool, void*, cudaStream_t);
void mma_wgrad(const ConvLaunch&, DType, const ConvGeometry&, const void*, const void*, float*,
               void*, cudaStream_t);
int fma_tile_count();
int fma_tile_size(int tile);
int fma_tile_bk();
void fma_fprop(const ConvLaunch&, DType, const ConvGeometry&, const void*, const void*,
               const float*, void*, void*, cudaStream_t);
void fma_dgrad(const ConvLaunch&, DType, const ConvGeometry&, const void*, const void*, void*,
               bool, void*, cudaStream_t);
void fma_wgrad(const ConvLaunch&, DType, const ConvGeometry&, const void*, const void*, float*,
               void*, cudaStream_t);

namespace {

template <class T, ConvPass kPass>
__global__ void reduce_kernel(ConvGeometry g, int splits, const float* __restrict__ partials,
                              T* out, float* dw, const float* bias, bool accumulate) {
  pdl_begin();
  const GemmSize gs = gemm_size(kPass, g);
  const int64_t total = gs.M * gs.N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = 0.0f;
    for (int z = 0; z < splits; ++z) v += partials[z * total + i];
    if (kPass == ConvPass::wgrad) {
      const int k = int(i / gs.N), col = int(i % gs.N);
      int r, s, c;
      split_reduction(col, g.S, g.C, r, s, c);
      dw[((int64_t(k) * g.C + c) * g.R + r) * g.S + s] = v;
    } else {
      if (kPass == ConvPass::fprop && bias) v += bias[i % gs.N];
      if (kPass == ConvPass::dgrad && accumulate) v += to_float(out[i]);
      out[i] = from_float<T>(v);
    }
  }
}

// ---- Weight layout: fp32 K,C,R,S (the graph's) <-> K,R,S,C in the activation dtype ----
// Per filter k the two layouts are a [C][R*S] matrix and its transpose [R*S][C], so each
// block moves one k's channels [c0, c0 + n) for every r,s through shared memory: its reads
// and its writes are both contiguous runs. (Element-wise loops read or wrote at a stride of C
// or R*S elements, one DRAM sector per element: the resnet18 weight refresh took 101 us on an
// H100 where its 67 MB need ~25.)
constexpr int kTileFloats = 4096;

// Channels per block for a filter of RS = R*S taps; one when a channel's taps overflow the
// tile (filters over 64x64, which then go element by element). A multiple of 8 where the
// tile holds more, so that a block's channels start on a 16-byte vector.
__host__ __device__ inline int tile_channels(int C, int RS) {
  const int fit = RS > kTileFloats ? 1 : kTileFloats / RS;
  if (C <= fit) return C;
  return fit >= 8 ? fit / 8 * 8 : fit;
}

// Block `unit` of one weight tensor: kToKrsc converts fp32 K,C,R,S to T K,R,S,C, otherwise
// T K,R,S,C back to fp32 K,C,R,S.
template <class T, bool kToKrsc>
__device__ __forceinline__ void transpose_block(const void* src, void* dst, int C, int RS,
                                                int64_t unit, float* tile) {
  const int cc = tile_channels(C, RS);
  const int chunks = (C + cc - 1) / cc;
  const int64_t k = unit / chunks;
  const int c0 = int(unit % chunks) * cc;
  const int n = min(cc, C - c0);
  const int64_t row = k * C * RS;  // filter k starts here in both layouts
  if (RS > kTileFloats) {  // one channel, its taps straight through
    for (int rs = threadIdx.x; rs < RS; rs += blockDim.x) {
      const int64_t kcrs = row + int64_t(c0) * RS + rs, krsc = row + int64_t(rs) * C + c0;
      if (kToKrsc)
        static_cast<T*>(dst)[krsc] = from_float<T>(static_cast<const float*>(src)[kcrs]);
      else
        static_cast<float*>(dst)[kcrs] = to_float(static_cast<const T*>(src)[krsc]);
    }
    return;
  }
  // In the tile, channel c's taps are tile[c * RS, (c + 1) * RS): the K,C,R,S order. (Loads
  // batched eight per thread before their stores ran slower on an H100: 66 against 50 us for
  // resnet18's weight refresh; docs/gpu-notes.md v16.)
  const int count = n * RS;
  constexpr int V = Vec16<T>::kCount;
  if (kToKrsc) {
    const float* w = static_cast<const float*>(src) + row + int64_t(c0) * RS;
    for (int i = threadIdx.x; i < count; i += blockDim.x) tile[i] = w[i];
    __syncthreads();
    T* out = static_cast<T*>(dst) + row + c0;
    if (n % V == 0 && C % V == 0) {
      // 16-byte stores (row and c0 are multiples of V) in place of 2-byte ones.
      const int nv = n / V;
      for (int j = threadIdx.x; j < nv * RS; j += blockDim.x) {
        const int rs = j / nv, c = (j - rs * nv) * V;
        Vec16<T> v;
#pragma unroll
        for (int e = 0; e < V; ++e) v.v[e] = from_float<T>(tile[(c + e) * RS + rs]);
        *reinterpret_cast<Vec16<T>*>(out + int64_t(rs) * C + c) = v;
      }
    } else {
      for (int j = threadIdx.x; j < count; j += blockDim.x) {
        const int rs = j / n, c = j - rs * n;
        out[int64_t(rs) * C + c] = from_float<T>(tile[c * RS + rs]);
      }
    }
  } else {
    const T* g = static_cast<const T*>(src) + row + c0;
    if (n % V == 0 && C % V == 0) {
      // 16-byte loads (row and c0 are multiples of V): a thread had one 2-byte load in flight
      // at a time, and layer4's gradients (14 MB moved) took 15 us (ncu, gpu-notes v20).
      const int nv = n / V;
      for (int j = threadIdx.x; j < nv * RS; j += blockDim.x) {
        const int rs = j / nv, c = (j - rs * nv) * V;
        const Vec16<T> v = *reinterpret_cast<const Vec16<T>*>(g + int64_t(rs) * C + c);
#pragma unroll
        for (int e = 0; e < V; ++e) tile[(c + e) * RS + rs] = to_float(v.v[e]);
      }
    } else {
      for (int j = threadIdx.x; j < count; j += blockDim.x) {
        const int rs = j / n, c = j - rs * n;
        tile[c * RS + rs] = to_float(g[int64_t(rs) * C + c]);
      }
    }
    __syncthreads();
    float* out = static_cast<float*>(dst) + row + int64_t(c0) * RS;
    for (int i = threadIdx.x; i < count; i += blockDim.x) out[i] = tile[i];
  }
}

constexpr int kTileThreads = 256;

template <class T, bool kToKrsc>
__global__ void __launch_bounds__(kTileThreads)
    transpose_kernel(const void* src, void* dst, int C, int RS) {
  __shared__ float tile[kTileFloats];
  pdl_begin();
  transpose_block<T, kToKrsc>(src, dst, C, RS, blockIdx.x, tile);
}

// Block b of the concatenation: a binary search for its segment (a few dozen).
template <class T, bool kToKrsc>
__global__ void __launch_bounds__(kTileThreads)
    krsc_segments_kernel(const KrscSegment* segments, int count) {
  __shared__ float tile[kTileFloats];
  pdl_begin();
  const int64_t b = blockIdx.x;
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (segments[mid].begin <= b) lo = mid; else hi = mid - 1;
  }
  const KrscSegment& g = segments[lo];
  if (kToKrsc)
    transpose_block<T, true>(g.kcrs, g.krsc, g.C, g.R * g.S, b - g.begin, tile);
  else
    transpose_block<T, false>(g.krsc, g.kcrs, g.C, g.R * g.S, b - g.begin, tile);
}

// The most fp32 partials one launch may use. Split partials cover the whole output per split:
// resnet18's layer4 weight gradients (512 x 4608) with 8 splits take 75 MB, enough to lift
// our peak device memory above PyTorch's for a few percent of speed on a few small layers.
// Launches over the cap are planned or timed only when no launch of the pass fits it.
constexpr size_t kMaxConvWorkspace = size_t(24) << 20;

int bm_of(bool mma, int tile) { return mma ? mma_tile_bm(tile) : fma_tile_size(tile); }
int bn_of(bool mma, int tile) { return mma ? mma_tile_bn(tile) : fma_tile_size(tile); }

// What one split of a launch covers: its GEMM (the largest parity class's for an mma data
// gradient) and its output tiles (all classes').
struct Work {
  GemmSize gs;
  int64_t tiles;
};
Work work_of(ConvPass pass, bool mma, const ConvGeometry& g, int bm, int bn) {
  const GemmSize gs = mma ? mma_work_size(pass, g) : gemm_size(pass, g);
  const int classes = mma ? mma_classes(pass, g) : 1;
  return {gs, classes * ((gs.M + bm - 1) / bm) * ((gs.N + bn - 1) / bn)};
}

// Splits that bring the grid to about two waves, keeping at least 8 k-tiles per split.
int default_splits(ConvPass pass, const Work& work, int bk, int sm_count) {
  const int64_t tiles = work.tiles;
  const int64_t k_tiles = (work.gs.K + bk - 1) / bk;
  const int64_t want = 2 * int64_t(sm_count);
  if (tiles >= want && pass != ConvPass::wgrad) return 1;
  int64_t splits = (want + tiles - 1) / tiles;
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, k_tiles / 8));
  return int(std::clamp<int64_t>(splits, 1, 128));
}

size_t workspace_bytes(ConvPass pass, const ConvGeometry& g, int splits) {
  const GemmSize gs = gemm_size(pass, g);  // partials cover the whole output
  const bool partial = splits > 1 || pass == ConvPass::wgrad;
  return partial ? size_t(splits) * size_t(gs.M) * size_t(gs.N) * sizeof(float) : 0;
}

ConvLaunch make_launch(ConvPass pass, bool mma, int tile, int splits, const ConvGeometry& g) {
  ConvLaunch l;
  l.tensor_cores = mma;
  l.tile = tile;
  l.splits = splits;
  l.workspace = workspace_bytes(pass, g, splits);
  return l;
}

}  // namespace

void reduce_partials(ConvPass pass, DType t, const ConvGeometry& g, int splits,
                     const float* partials, void* out, const float* bias, bool accumulate,
                     cudaStream_t s) {
  const GemmSize gs = gemm_size(pass, g);
  const unsigned blocks = blocks_for(gs.M * gs.N, 256);
  if (pass == ConvPass::wgrad) {
    launch_kernel(reduce_kernel<float, ConvPass::wgrad>, blocks, 256, 0, s, g, splits, partials,
                  nullptr, static_cast<float*>(out), nullptr, false);
  } else {
    TB_GPU_DISPATCH(t, T, {
      if (pass == ConvPass::fprop)
        launch_kernel(reduce_kernel<T, ConvPass::fprop>, blocks, 256, 0, s, g, splits, partials,
                      static_cast<T*>(out), nullptr, bias, false);
      else
        launch_kernel(reduce_kernel<T, ConvPass::dgrad>, blocks, 256, 0, s, g, splits, partials,
                      static_cast<T*>(out), nullptr, nullptr, accumulate);
    });
  }
}

ConvLaunch plan_conv(ConvPass pass, DType t, const ConvGeometry& g, int sm_count) {
  const bool mma = mma_eligible(t, g);
  const GemmSize gs = mma ? mma_work_size(pass, g) : gemm_size(pass, g);
  int tile;
  if (mma) {
    const bool wide_n = gs.N > 64, tall_m = gs.M > 64;
    tile = tall_m ? (wide_n ? 0 : 1) : (wide_n ? 2 : 3);
  } else {
    tile = (gs.M >= 4096 && gs.N > 64) ? 0 : 1;
  }
  const int bk = mma ? mma_tile_bk(tile) : fma_tile_bk();
  const Work work = work_of(pass, mma, g, bm_of(mma, tile), bn_of(mma, tile));
  int splits = default_splits(pass, work, bk, sm_count);
  // Fewer splits down to one (the least workspace any launch of the pass needs) to fit the cap.
  while (splits > 1 && workspace_bytes(pass, g, splits) > kMaxConvWorkspace) --splits;
  return make_launch(pass, mma, tile, splits, g);
}

int conv_candidates(ConvPass pass, DType t, const ConvGeometry& g, int sm_count, ConvLaunch* out,
                    int max_out) {
  const bool mma = mma_eligible(t, g);
  const int tiles = mma ? mma_tile_count() : fma_tile_count();
  int count = 0;
  for (int tile = 0; tile < tiles; ++tile) {
    if (mma && (!mma_tile_serves(tile, pass) || !mma_tile_fits(tile, pass, g))) continue;
    if (mma && !mma_tile_splits(tile)) {  // a persistent kernel: its own split count
      if (count < max_out)
        out[count++] =
            make_launch(pass, mma, tile, mma_tile_fixed_splits(tile, pass, g, sm_count), g);
      continue;
    }
    const int bk = mma ? mma_tile_bk(tile) : fma_tile_bk();
    const Work work = work_of(pass, mma, g, bm_of(mma, tile), bn_of(mma, tile));
    const int64_t k_tiles = (work.gs.K + bk - 1) / bk;
    const int base = default_splits(pass, work, bk, sm_count);
    // Splitting a grid that already fills the GPU only adds traffic: not worth timing.
    const bool full = pass != ConvPass::wgrad && work.tiles >= sm_count;
    const int options[] = {base, 1, base * 2, base / 2, base * 4};
    for (int splits : options) {
      if (splits < 1 || splits > 256 || splits > k_tiles || (full && splits > 1)) continue;
      bool seen = false;
      for (int i = 0; i < count; ++i) seen |= out[i].tile == tile && out[i].splits == splits;
      if (seen || count == max_out) continue;
      out[count++] = make_launch(pass, mma, tile, splits, g);
    }
  }
  // Keep the launches within the workspace cap or, when none is, the leanest.
  size_t least = SIZE_MAX;
  for (int i = 0; i < count; ++i) least = std::min(least, out[i].workspace);
  const size_t limit = std::max(kMaxConvWorkspace, least);
  int kept = 0;
  for (int i = 0; i < count; ++i)
    if (out[i].workspace <= limit) out[kept++] = out[i];
  return kept;
}

std::string conv_launch_name(const ConvLaunch& l) {
  const std::string tile = l.tensor_cores ? mma_tile_name(l.tile)
                                          : "fma " + std::to_string(fma_tile_size(l.tile)) + "^2";
  return tile + ", " + std::to_string(l.splits) + (l.splits == 1 ? " split" : " splits");
}

void conv_fprop(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* x, const void* w,
                const float* bias, void* y, void* workspace, cudaStream_t s) {
  if (l.tensor_cores)
    mma_fprop(l, t, g, x, w, bias, y, workspace, s);
  else
    fma_fprop(l, t, g, x, w, bias, y, workspace, s);
}

void conv_dgrad(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* dy, const void* w,
                void* dx, bool accumulate, void* workspace, cudaStream_t s) {
  if (l.tensor_cores)
    mma_dgrad(l, t, g, dy, w, dx, accumulate, workspace, s);
  else
    fma_dgrad(l, t, g, dy, w, dx, accumulate, workspace, s);
}

void conv_wgrad(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* x, const void* dy,
                float* dw, void* workspace, cudaStream_t s) {
  if (l.tensor_cores)
    mma_wgrad(l, t, g, x, dy, dw, workspace, s);
  else
    fma_wgrad(l, t, g, x, dy, dw, workspace, s);
}

int64_t krsc_blocks(int K, int C, int R, int S) {
  const int cc = tile_channels(C, R * S);
  return int64_t(K) * ((C + cc - 1) / cc);
}

void weights_to_krsc(DType t, const float* w_kcrs, void* w_krsc, int K, int C, int R, int S,
                     cudaStream_t s) {
  const int64_t blocks = krsc_blocks(K, C, R, S);
  if (blocks == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(transpose_kernel<T, true>, unsigned(blocks), kTileThreads, 0, s,
                  static_cast<const void*>(w_kcrs), w_krsc, C, R * S);
  });
}

template <bool kToKrsc>
void krsc_segments(DType t, const KrscSegment* segments, int count, int64_t blocks,
                   cudaStream_t s) {
  if (count == 0 || blocks == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(krsc_segments_kernel<T, kToKrsc>, unsigned(blocks), kTileThreads, 0, s,
                  segments, count);
  });
}

void weights_to_krsc(DType t, const KrscSegment* segments, int count, int64_t blocks,
                     cudaStream_t s) {
  krsc_segments<true>(t, segments, count, blocks, s);
}

void weights_from_krsc(DType t, const KrscSegment* segments, int count, int64_t blocks,
                       cudaStream_t s) {
  krsc_segments<false>(t, segments, count, blocks, s);
}

void weights_from_krsc(DType t, const void* w_krsc, float* w_kcrs, int K, int C, int R, int S,
                       cudaStream_t s) {
  const int64_t blocks = krsc_blocks(K, C, R, S);
  if (blocks == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(transpose_kernel<T, false>, unsigned(blocks), kTileThreads, 0, s, w_krsc,
                  static_cast<void*>(w_kcrs), C, R * S);
  });
}

}  // namespace tb::gpu
