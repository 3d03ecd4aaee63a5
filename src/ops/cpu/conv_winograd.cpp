// Winograd F(4x4, 3x3) convolution (see conv_winograd.h). Layout of the three buffers:
//   weights  U[36][Kp/MR][C][MR]   the micro-kernel's packed A slivers, one GEMM per tap
//   inputs   V[36][S][C][NR]       its packed B slivers: S slivers of NR tiles per block
//   outputs  M[36][Kp][T]          the GEMMs' results for the block's T = S * NR tiles
// (each tap's part padded: Geometry::u_tap). Tiles are numbered image by image, row by row; 16
// consecutive tiles are the 16 lanes of the transforms' vectors, so V and M are read and written a
// whole vector at a time and only the input gathers and output scatters touch the activations' NCHW
// layout.
//
// Only the AVX-512 functions below (TB_AVX512) use AVX-512; the rest of this file runs on any
// CPU, and winograd_usable() sends other CPUs to the direct path.
#include "ops/cpu/conv_winograd.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/gemm_kernels.h"
#include "ops/cpu/thread_pool.h"

#define TB_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define TB_AVX512_INLINE \
  __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl,fma"))) inline

namespace tb::cpu {
namespace {

constexpr int kTaps = 36;  // a 6x6 tile
constexpr int kLanes = 16;

// The AVX-512 micro-kernel Winograd's GEMMs run on, or null where there is none.
const detail::GemmKernel* winograd_kernel() {
  if (active_isa() != Isa::avx512) return nullptr;
  int count = 0;
  const detail::GemmKernel* list = detail::avx512_gemm_kernels(&count);
  if (count == 0 || list[0].mr != 8 || list[0].nr % kLanes != 0) return nullptr;
  return &list[0];
}

// TB_CPU_WINOGRAD: 0 (never), dgrad (data gradients: the default), all (forward too).
bool enabled(bool data_gradient) {
  const char* v = std::getenv("TB_CPU_WINOGRAD");
  if (!v || !*v || std::strcmp(v, "dgrad") == 0) return data_gradient;
  if (std::strcmp(v, "all") == 0 || std::strcmp(v, "1") == 0) return true;
  TB_INPUT_CHECK(std::strcmp(v, "0") == 0, "TB_CPU_WINOGRAD must be 0, dgrad or all, got '{}'", v);
  return false;
}

struct Geometry {
  int th = 0, tw = 0;  // tiles per column and per row of an image
  int64_t tiles = 0;   // over the batch
  int mr = 0, nr = 0, kp = 0;
  int slivers = 0, T = 0;  // per block: S slivers of NR tiles
  int64_t blocks = 0;
  // Floats from one tap's part of each buffer to the next: a multiple of 16 (64-byte
  // alignment) that is not a multiple of 1024 (4 KiB). Parts 4 KiB apart fall in one L1 set,
  // and a transform touches all 36 of them per vector: with unpadded parts (36 KiB apart for
  // layer1) the output transform took as long as the GEMMs.
  int64_t u_tap = 0, v_tap = 0, m_tap = 0;
  size_t weights = 0, inputs = 0, outputs = 0;  // floats of one copy
};

int64_t tap_stride(int64_t floats) {
  const int64_t padded = (floats + 15) / 16 * 16;
  return padded % 1024 == 0 ? padded + 16 : padded + (padded % 1024 < 64 ? 32 : 0);
}

// A block's V and M take at most about 1 MiB, so that with the weights' slivers they stay in
// L2 (2 MiB on the development Xeon) from the transform that writes them to the one that
// reads them: 1 to 4 slivers (one for every resnet18 layer; three slivers for layer1 ran its
// forward 10-25% slower). A function of the shape alone.
Geometry geometry(const Conv2dParams& p, const detail::GemmKernel& kern) {
  Geometry g;
  g.th = (p.H + 3) / 4;
  g.tw = (p.W + 3) / 4;
  g.tiles = int64_t(p.N) * g.th * g.tw;
  g.mr = kern.mr;
  g.nr = kern.nr;
  g.kp = (p.K + g.mr - 1) / g.mr * g.mr;
  const size_t per_sliver = size_t(kTaps) * size_t(p.C + g.kp) * size_t(g.nr) * sizeof(float);
  g.slivers = int(std::clamp<size_t>((size_t(1) << 20) / per_sliver, 1, 4));
  g.slivers = int(std::min<int64_t>(g.slivers, (g.tiles + g.nr - 1) / g.nr));
  g.T = g.slivers * g.nr;
  g.blocks = (g.tiles + g.T - 1) / g.T;
  g.u_tap = tap_stride(int64_t(g.kp) * p.C);
  g.v_tap = tap_stride(int64_t(g.slivers) * p.C * g.nr);
  g.m_tap = tap_stride(int64_t(g.kp) * g.T);
  g.weights = size_t(kTaps) * g.u_tap;
  g.inputs = size_t(kTaps) * g.v_tap;
  g.outputs = size_t(kTaps) * g.m_tap;
  return g;
}

// --- transforms (AVX-512) ----------------------------------------------------------------

// o = B^T d along one line of 6: d[i * ds], o[i * os].
TB_AVX512_INLINE void input_line(const __m512* d, int ds, __m512* o, int os) {
  const __m512 d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds],
               d5 = d[5 * ds];
  const __m512 four = _mm512_set1_ps(4.0f), two = _mm512_set1_ps(2.0f),
               minus_five = _mm512_set1_ps(-5.0f);
  o[0] = _mm512_fmadd_ps(four, d0, _mm512_fmadd_ps(minus_five, d2, d4));
  o[os] = _mm512_fnmadd_ps(four, _mm512_add_ps(d1, d2), _mm512_add_ps(d3, d4));
  o[2 * os] = _mm512_fmadd_ps(four, _mm512_sub_ps(d1, d2), _mm512_sub_ps(d4, d3));
  o[3 * os] = _mm512_fmadd_ps(two, _mm512_sub_ps(d3, d1), _mm512_sub_ps(d4, d2));
  o[4 * os] = _mm512_fmadd_ps(two, _mm512_sub_ps(d1, d3), _mm512_sub_ps(d4, d2));
  o[5 * os] = _mm512_fmadd_ps(four, d1, _mm512_fmadd_ps(minus_five, d3, d5));
}

// o = G g along one line of 3 taps: g[i * gs] -> o[i * os], 6 values.
TB_AVX512_INLINE void weight_line(const __m512* g, int gs, __m512* o, int os) {
  const __m512 g0 = g[0], g1 = g[gs], g2 = g[2 * gs];
  const __m512 sixth = _mm512_set1_ps(1.0f / 6.0f), twelfth = _mm512_set1_ps(1.0f / 12.0f),
               twentyfourth = _mm512_set1_ps(1.0f / 24.0f);
  const __m512 outer = _mm512_add_ps(g0, g2);
  o[0] = _mm512_mul_ps(_mm512_set1_ps(0.25f), g0);
  o[os] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6.0f), _mm512_add_ps(outer, g1));
  o[2 * os] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6.0f), _mm512_sub_ps(outer, g1));
  const __m512 even = _mm512_fmadd_ps(twentyfourth, g0, _mm512_mul_ps(sixth, g2));
  o[3 * os] = _mm512_fmadd_ps(twelfth, g1, even);
  o[4 * os] = _mm512_fnmadd_ps(twelfth, g1, even);
  o[5 * os] = g2;
}

// o = A^T m along one line of 6: m[i * ms] -> o[i * os], 4 values.
TB_AVX512_INLINE void output_line(const __m512* m, int ms, __m512* o, int os) {
  const __m512 m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms];
  const __m512 sum12 = _mm512_add_ps(m1, m2), diff12 = _mm512_sub_ps(m1, m2);
  const __m512 sum34 = _mm512_add_ps(m3, m4), diff34 = _mm512_sub_ps(m3, m4);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], sum12), sum34);
  o[os] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), diff34, diff12);
  o[2 * os] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), sum34, sum12);
  o[3 * os] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), diff34, diff12), m[5 * ms]);
}

// U for output channels [k0, k0 + 16) (lanes; those >= K give zeros, the padding of Kp).
TB_AVX512 void transform_weights(const Conv2dParams& p, const Geometry& g, const float* w, int k0,
                                 float* U) {
  const int C = p.C;
  const __mmask16 valid = __mmask16((1u << std::min(kLanes, p.K - k0)) - 1u);
  const __m512i lane_offset =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(C * 9));
  const int slivers_k = g.kp / g.mr;
  const int kb = k0 / g.mr;
  for (int c = 0; c < C; ++c) {
    const float* base = w + (int64_t(k0) * C + c) * 9;
    __m512 taps[9], half[18], u[kTaps];
    for (int t = 0; t < 9; ++t)
      taps[t] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, lane_offset, base + t, 4);
    for (int s = 0; s < 3; ++s) weight_line(taps + s, 3, half + s, 3);       // rows: G g
    for (int i = 0; i < 6; ++i) weight_line(half + 3 * i, 1, u + 6 * i, 1);  // columns: (G g) G^T
    for (int x = 0; x < kTaps; ++x) {
      float* dst = U + x * g.u_tap + (int64_t(kb) * C + c) * g.mr;
      _mm256_storeu_ps(dst, _mm512_castps512_ps256(u[x]));
      if (kb + 1 < slivers_k)
        _mm256_storeu_ps(dst + int64_t(C) * g.mr, _mm512_extractf32x8_ps(u[x], 1));
    }
  }
}

// Per-lane tile coordinates of the 16 tiles from `first` (lanes past the last tile are off).
struct Lanes {
  __m512i n, row, col;  // image, top row and left column of the 4x4 output tile
  __mmask16 valid;
};

TB_AVX512 Lanes tile_lanes(const Geometry& g, int64_t first) {
  alignas(64) int32_t n[kLanes], row[kLanes], col[kLanes];
  const int per_image = g.th * g.tw;
  for (int l = 0; l < kLanes; ++l) {
    const int64_t t = std::min(first + l, g.tiles - 1);
    const int64_t within = t % per_image;
    n[l] = int32_t(t / per_image);
    row[l] = int32_t(within / g.tw) * 4;
    col[l] = int32_t(within % g.tw) * 4;
  }
  const int64_t left = g.tiles - first;
  return {_mm512_load_si512(n), _mm512_load_si512(row), _mm512_load_si512(col),
          left >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << std::max<int64_t>(left, 0)) - 1u)};
}

// Lanes whose coordinate base + offset lies in [0, limit).
TB_AVX512_INLINE __mmask16 inside(__m512i base, int offset, int limit, __mmask16 lanes) {
  const __m512i v = _mm512_add_epi32(base, _mm512_set1_epi32(offset));
  return _mm512_mask_cmpge_epi32_mask(lanes, v, _mm512_setzero_si512()) &
         _mm512_cmplt_epi32_mask(v, _mm512_set1_epi32(limit));
}

// V for the block's tiles from t0, channels [c0, c1).
TB_AVX512 void transform_inputs(const Conv2dParams& p, const Geometry& g, const float* x,
                                int64_t t0, int c0, int c1, float* V) {
  const int H = p.H, W = p.W, C = p.C;
  const int64_t hw = int64_t(H) * W;
  for (int group = 0; group < g.T / kLanes; ++group) {
    const Lanes lanes = tile_lanes(g, t0 + int64_t(group) * kLanes);
    __mmask16 row_ok[6], col_ok[6];
    for (int i = 0; i < 6; ++i) {
      row_ok[i] = inside(lanes.row, i - 1, H, lanes.valid);
      col_ok[i] = inside(lanes.col, i - 1, W, lanes.valid);
    }
    // Index of the patch's top-left element (row - 1, col - 1) in channel 0 of image n.
    const __m512i origin = _mm512_add_epi32(
        _mm512_mullo_epi32(lanes.n, _mm512_set1_epi32(int32_t(C * hw))),
        _mm512_add_epi32(_mm512_mullo_epi32(_mm512_sub_epi32(lanes.row, _mm512_set1_epi32(1)),
                                            _mm512_set1_epi32(W)),
                         _mm512_sub_epi32(lanes.col, _mm512_set1_epi32(1))));
    const int sliver = group * kLanes / g.nr, offset = group * kLanes % g.nr;
    for (int c = c0; c < c1; ++c) {
      const float* xc = x + c * hw;
      __m512 d[kTaps], t[kTaps];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j)
          d[6 * i + j] = _mm512_mask_i32gather_ps(
              _mm512_setzero_ps(), __mmask16(row_ok[i] & col_ok[j]),
              _mm512_add_epi32(origin, _mm512_set1_epi32(i * W + j)), xc, 4);
      for (int j = 0; j < 6; ++j) input_line(d + j, 6, t + j, 6);          // B^T d
      for (int i = 0; i < 6; ++i) input_line(t + 6 * i, 1, d + 6 * i, 1);  // (B^T d) B
      for (int xi = 0; xi < kTaps; ++xi)
        _mm512_store_ps(V + xi * g.v_tap + (int64_t(sliver) * C + c) * g.nr + offset, d[xi]);
    }
  }
}

// y for output channels [k0, k1) of the block's tiles from t0: A^T M A (+ y) (+ bias) (ReLU).
// Each output row of the 16 tiles is transposed in registers (4x4 within each 128-bit lane),
// so that a tile's row of 4 outputs is one 16-byte store: scatters (16 elements each, one
// per output position) took a third of layer1's forward.
TB_AVX512 void transform_outputs(const Conv2dParams& p, const Geometry& g, const float* M,
                                 int64_t t0, int k0, int k1, const float* bias, bool accumulate,
                                 bool relu, float* y) {
  const int H = p.H, W = p.W, K = p.K;
  const int64_t hw = int64_t(H) * W;
  for (int group = 0; group < g.T / kLanes; ++group) {
    const int64_t first = t0 + int64_t(group) * kLanes;
    if (first >= g.tiles) break;
    // Per tile: where its top-left output lies in channel 0, how many of its 4 rows and 4
    // columns are inside the image (0 rows for lanes past the last tile).
    int64_t at[kLanes];
    int rows[kLanes];
    __mmask8 cols[kLanes];
    const int per_image = g.th * g.tw;
    for (int l = 0; l < kLanes; ++l) {
      const int64_t t = first + l;
      const int64_t within = t % per_image;
      const int row = int(within / g.tw) * 4, col = int(within % g.tw) * 4;
      at[l] = (t / per_image) * K * hw + int64_t(row) * W + col;
      rows[l] = t < g.tiles ? std::min(4, H - row) : 0;
      cols[l] = __mmask8((1u << std::min(4, W - col)) - 1u);
    }
    for (int k = k0; k < k1; ++k) {
      __m512 m[kTaps], s[24], o[16];
      for (int xi = 0; xi < kTaps; ++xi)
        m[xi] = _mm512_load_ps(M + xi * g.m_tap + int64_t(k) * g.T + group * kLanes);
      for (int j = 0; j < 6; ++j) output_line(m + j, 6, s + j, 6);          // A^T m: 4 rows of 6
      for (int a = 0; a < 4; ++a) output_line(s + 6 * a, 1, o + 4 * a, 1);  // (A^T m) A
      float* yk = y + k * hw;
      const __m128 b = _mm_set1_ps(bias ? bias[k] : 0.0f);
      for (int a = 0; a < 4; ++a) {
        // o[4a + c] holds output (a, c) of the 16 tiles; r[q] lane L: row a of tile 4L + q.
        const __m512 lo01 = _mm512_unpacklo_ps(o[4 * a], o[4 * a + 1]);
        const __m512 hi01 = _mm512_unpackhi_ps(o[4 * a], o[4 * a + 1]);
        const __m512 lo23 = _mm512_unpacklo_ps(o[4 * a + 2], o[4 * a + 3]);
        const __m512 hi23 = _mm512_unpackhi_ps(o[4 * a + 2], o[4 * a + 3]);
        const __m512 r[4] = {
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(lo01), _mm512_castps_pd(lo23))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(lo01), _mm512_castps_pd(lo23))),
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(hi01), _mm512_castps_pd(hi23))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(hi01), _mm512_castps_pd(hi23)))};
        for (int l = 0; l < kLanes; ++l) {
          if (a >= rows[l]) continue;
          __m128 v;
          switch (l / 4) {  // the 128-bit lane: an immediate operand
            case 0:
              v = _mm512_extractf32x4_ps(r[l % 4], 0);
              break;
            case 1:
              v = _mm512_extractf32x4_ps(r[l % 4], 1);
              break;
            case 2:
              v = _mm512_extractf32x4_ps(r[l % 4], 2);
              break;
            default:
              v = _mm512_extractf32x4_ps(r[l % 4], 3);
              break;
          }
          float* dst = yk + at[l] + int64_t(a) * W;
          if (accumulate) v = _mm_add_ps(_mm_maskz_loadu_ps(cols[l], dst), v);
          if (bias) v = _mm_add_ps(v, b);
          if (relu) v = _mm_max_ps(v, _mm_setzero_ps());
          _mm_mask_storeu_ps(dst, cols[l], v);
        }
      }
    }
  }
}

// The 36 GEMMs' micro-kernel calls for taps and row slivers [item0, item1) of one block:
// item = tap * (Kp / MR) + row sliver; each runs over the block's S column slivers.
void multiply(const Conv2dParams& p, const Geometry& g, const detail::GemmKernel& kern,
              const float* U, const float* V, float* M, int64_t item0, int64_t item1) {
  const int slivers_k = g.kp / g.mr;
  const detail::TileStore store;  // C = A * B
  for (int64_t item = item0; item < item1; ++item) {
    const int64_t tap = item / slivers_k, kb = item % slivers_k;
    const float* a = U + tap * g.u_tap + kb * p.C * g.mr;
    for (int s = 0; s < g.slivers; ++s) {
      const float* b = V + tap * g.v_tap + int64_t(s) * p.C * g.nr;
      float* c = M + tap * g.m_tap + kb * g.mr * g.T + s * g.nr;
      kern.kernel(p.C, a, b, c, g.T, g.mr, g.nr, store);
    }
  }
}

}  // namespace

bool winograd_usable(const Conv2dParams& p, bool data_gradient) {
  constexpr int64_t kIndexLimit = std::numeric_limits<int32_t>::max();
  // Below 16 channels the GEMMs are too short for the micro-kernel (a stem's 3 channels);
  // past 1024 the packed slivers outgrow the caches the blocking assumes.
  return p.kernel == 3 && p.stride == 1 && p.pad == 1 && p.C >= 16 && p.K >= 16 && p.C <= 1024 &&
         p.x_numel() < kIndexLimit && p.y_numel() < kIndexLimit && winograd_kernel() != nullptr &&
         enabled(data_gradient);
}

const char* winograd_setting() {
  if (!winograd_kernel()) return "off (no AVX-512 micro-kernel)";
  if (enabled(false)) return "forward and data gradients";
  return enabled(true) ? "data gradients" : "off";
}

WinogradScratch winograd_scratch_floats(const Conv2dParams& p, int threads) {
  const detail::GemmKernel* kern = winograd_kernel();
  TB_CHECK(kern, "winograd: no AVX-512 micro-kernel on this CPU");
  const Geometry g = geometry(p, *kern);
  // Each thread works on blocks of its own when there are enough of them (see below).
  const size_t copies = g.blocks >= 2 * threads ? size_t(threads) : 1;
  const auto padded = [](size_t floats) { return (floats + 15) / 16 * 16; };
  return {g.weights, padded(g.inputs) * copies, padded(g.outputs) * copies};
}

void winograd_conv3x3(ThreadPool& pool, const Conv2dParams& p, const float* x, const float* w,
                      const float* bias, float* y, bool accumulate, bool relu, float* weights_buf,
                      float* inputs_buf, float* outputs_buf) {
  const detail::GemmKernel* kern = winograd_kernel();
  TB_CHECK(kern && p.kernel == 3 && p.stride == 1 && p.pad == 1,
           "winograd: asked for a convolution it does not take");
  TB_CHECK(!(relu && accumulate), "winograd: a fused ReLU cannot accumulate into y");
  const Geometry g = geometry(p, *kern);
  pool.parallel_for(0, (p.K + kLanes - 1) / kLanes, [&](int64_t group) {
    transform_weights(p, g, w, int(group) * kLanes, weights_buf);
  });
  const int64_t items = int64_t(kTaps) * (g.kp / g.mr);
  const int threads = pool.size();
  const auto padded = [](size_t floats) { return (floats + 15) / 16 * 16; };
  if (g.blocks >= 2 * threads) {
    // Enough blocks: each thread takes whole blocks from a counter (the vCPUs of a shared VM
    // are not equally fast), with its own V and M.
    std::atomic<int64_t> next{0};
    pool.run([&](int thread, int) {
      float* V = inputs_buf + thread * padded(g.inputs);
      float* M = outputs_buf + thread * padded(g.outputs);
      for (int64_t b = next++; b < g.blocks; b = next++) {
        const int64_t t0 = b * g.T;
        transform_inputs(p, g, x, t0, 0, p.C, V);
        multiply(p, g, *kern, weights_buf, V, M, 0, items);
        transform_outputs(p, g, M, t0, 0, p.K, bias, accumulate, relu, y);
      }
    });
    return;
  }
  // Few blocks (small images, or many threads): the threads share each block, phase by phase.
  for (int64_t b = 0; b < g.blocks; ++b) {
    const int64_t t0 = b * g.T;
    pool.parallel_for_range(0, p.C, [&](int64_t lo, int64_t hi) {
      transform_inputs(p, g, x, t0, int(lo), int(hi), inputs_buf);
    });
    pool.parallel_for_range(0, items, [&](int64_t lo, int64_t hi) {
      multiply(p, g, *kern, weights_buf, inputs_buf, outputs_buf, lo, hi);
    });
    pool.parallel_for_range(0, p.K, [&](int64_t lo, int64_t hi) {
      transform_outputs(p, g, outputs_buf, t0, int(lo), int(hi), bias, accumulate, relu, y);
    });
  }
}

}  // namespace tb::cpu
