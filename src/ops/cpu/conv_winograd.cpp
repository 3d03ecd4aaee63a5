// Winograd F(4x4, 3x3) convolution (see conv_winograd.h). Layout of the three buffers:
//   weights  U[36][Kp/MR][C][MR]   the micro-kernel's packed A slivers, one GEMM per tap
//   inputs   V[36][S][C][NR]       its packed B slivers: S slivers of NR tiles per block
//   outputs  M[36][Kp][T]          the GEMMs' results for the block's T = S * NR tiles
// (each tap's part padded: Geometry::u_tap). Tiles are numbered image by image, row by row; 16
// consecutive tiles are the 16 lanes of the transforms' vectors, so V and M are read and written a
// whole vector at a time and only the input gathers and output scatters touch the activations' NCHW
// layout.
// The weight gradient is in conv_winograd_wgrad.cpp.
#include "ops/cpu/conv_winograd.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "ops/cpu/conv_winograd_internal.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/thread_pool.h"

namespace tb::cpu {
namespace winograd {

// Where Winograd runs unless TB_CPU_WINOGRAD says otherwise (requested_tile()).
constexpr const char* kDefaultSetting = "f2";

const detail::GemmKernel* micro_kernel() {
  if (active_isa() != Isa::avx512) return nullptr;
  int count = 0;
  const detail::GemmKernel* list = detail::avx512_gemm_kernels(&count);
  if (count == 0 || list[0].mr != 8 || list[0].nr % kLanes != 0) return nullptr;
  return &list[0];
}

int requested_tile(bool data_gradient) {
  // Read at every convolution (tests switch it), so no allocation here.
  const char* v = std::getenv("TB_CPU_WINOGRAD");
  const char* setting = v && *v ? v : kDefaultSetting;
  if (std::strcmp(setting, "0") == 0) return 0;
  if (std::strcmp(setting, "backward") == 0) return data_gradient ? 4 : 0;
  if (std::strcmp(setting, "f2") == 0) return data_gradient ? 4 : 2;
  TB_INPUT_CHECK(std::strcmp(setting, "all") == 0,
                 "TB_CPU_WINOGRAD must be 0, backward, f2 or all, got '{}'", setting);
  return 4;
}

int64_t tap_stride(int64_t floats) {
  const int64_t padded = (floats + 15) / 16 * 16;
  return padded % 1024 == 0 ? padded + 16 : padded + (padded % 1024 < 64 ? 32 : 0);
}

}  // namespace winograd

namespace {

using namespace winograd;

// Floats of one copy of a per-thread buffer, rounded to 64 bytes.
size_t per_thread_floats(size_t floats) { return (floats + 15) / 16 * 16; }

struct Geometry {
  int m = 4, alpha = 6, taps = 36;  // output tile m x m from an input tile alpha x alpha
  int th = 0, tw = 0;  // tiles per column and per row of an image
  int64_t tiles = 0;   // over the batch
  int mr = 0, nr = 0, kp = 0;
  int slivers = 0, T = 0;  // per block: S slivers of NR tiles
  int64_t blocks = 0;
  // Floats from one tap's part of each buffer to the next (tap_stride).
  int64_t u_tap = 0, v_tap = 0, m_tap = 0;
  size_t weights = 0, inputs = 0, outputs = 0;  // floats of one copy
};

// A block's V and M take at most about 1 MiB, so that with the weights' slivers they stay in
// L2 (2 MiB on the development Xeon) from the transform that writes them to the one that
// reads them: 1 to 4 slivers (one for every resnet18 layer; three slivers for layer1 ran its
// forward 10-25% slower). A function of the shape alone.
Geometry geometry(const Conv2dParams& p, const detail::GemmKernel& kern, int m) {
  Geometry g;
  g.m = m;
  g.alpha = m + 2;
  g.taps = g.alpha * g.alpha;
  g.th = (p.H + m - 1) / m;
  g.tw = (p.W + m - 1) / m;
  g.tiles = int64_t(p.N) * g.th * g.tw;
  g.mr = kern.mr;
  g.nr = kern.nr;
  g.kp = (p.K + g.mr - 1) / g.mr * g.mr;
  const size_t per_sliver = size_t(g.taps) * size_t(p.C + g.kp) * size_t(g.nr) * sizeof(float);
  g.slivers = int(std::clamp<size_t>((size_t(1) << 20) / per_sliver, 1, 4));
  g.slivers = int(std::min<int64_t>(g.slivers, (g.tiles + g.nr - 1) / g.nr));
  g.T = g.slivers * g.nr;
  g.blocks = (g.tiles + g.T - 1) / g.T;
  g.u_tap = tap_stride(int64_t(g.kp) * p.C);
  g.v_tap = tap_stride(int64_t(g.slivers) * p.C * g.nr);
  g.m_tap = tap_stride(int64_t(g.kp) * g.T);
  g.weights = size_t(g.taps) * g.u_tap;
  g.inputs = size_t(g.taps) * g.v_tap;
  g.outputs = size_t(g.taps) * g.m_tap;
  return g;
}

// --- transforms (AVX-512) ----------------------------------------------------------------

// F(4x4, 3x3). o = B^T d along one line of 6: d[i * ds], o[i * os].
TB_AVX512_INLINE void input_line4(const __m512* d, int ds, __m512* o, int os) {
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
TB_AVX512_INLINE void weight_line4(const __m512* g, int gs, __m512* o, int os) {
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
TB_AVX512_INLINE void output_line4(const __m512* m, int ms, __m512* o, int os) {
  const __m512 m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms];
  const __m512 sum12 = _mm512_add_ps(m1, m2), diff12 = _mm512_sub_ps(m1, m2);
  const __m512 sum34 = _mm512_add_ps(m3, m4), diff34 = _mm512_sub_ps(m3, m4);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], sum12), sum34);
  o[os] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), diff34, diff12);
  o[2 * os] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), sum34, sum12);
  o[3 * os] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), diff34, diff12), m[5 * ms]);
}

// F(2x2, 3x3): every constant is 1 or 1/2, so the transforms round nothing beyond their
// additions. G g (4 values from 3 taps), A^T m (2 values from 4); B^T d is input_line2.
TB_AVX512_INLINE void weight_line2(const __m512* g, int gs, __m512* o, int os) {
  const __m512 half = _mm512_set1_ps(0.5f), outer = _mm512_add_ps(g[0], g[2 * gs]);
  o[0] = g[0];
  o[os] = _mm512_mul_ps(half, _mm512_add_ps(outer, g[gs]));
  o[2 * os] = _mm512_mul_ps(half, _mm512_sub_ps(outer, g[gs]));
  o[3 * os] = g[2 * gs];
}
TB_AVX512_INLINE void output_line2(const __m512* m, int ms, __m512* o, int os) {
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], m[ms]), m[2 * ms]);
  o[os] = _mm512_sub_ps(_mm512_sub_ps(m[ms], m[2 * ms]), m[3 * ms]);
}

// The three line transforms of F(M x M, 3x3).
using LineFn = void (*)(const __m512*, int, __m512*, int);
template <int M>
struct Lines {
  static constexpr LineFn input = M == 4 ? input_line4 : input_line2;
  static constexpr LineFn weight = M == 4 ? weight_line4 : weight_line2;
  static constexpr LineFn output = M == 4 ? output_line4 : output_line2;
};

// U for output channels [k0, k0 + 16) (lanes; those >= K give zeros, the padding of Kp).
template <int M>
TB_AVX512 void transform_weights(const Conv2dParams& p, const Geometry& g, const float* w, int k0,
                                 float* U) {
  constexpr int A = M + 2;
  const int C = p.C;
  const __mmask16 valid = __mmask16((1u << std::min(kLanes, p.K - k0)) - 1u);
  const __m512i lane_offset =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(C * 9));
  const int slivers_k = g.kp / g.mr;
  const int kb = k0 / g.mr;
  for (int c = 0; c < C; ++c) {
    const float* base = w + (int64_t(k0) * C + c) * 9;
    __m512 taps[9], half[3 * A], u[A * A];
    for (int t = 0; t < 9; ++t)
      taps[t] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, lane_offset, base + t, 4);
    for (int s = 0; s < 3; ++s) Lines<M>::weight(taps + s, 3, half + s, 3);       // rows: G g
    for (int i = 0; i < A; ++i) Lines<M>::weight(half + 3 * i, 1, u + A * i, 1);  // (G g) G^T
    for (int x = 0; x < A * A; ++x) {
      float* dst = U + x * g.u_tap + (int64_t(kb) * C + c) * g.mr;
      _mm256_storeu_ps(dst, _mm512_castps512_ps256(u[x]));
      if (kb + 1 < slivers_k)
        _mm256_storeu_ps(dst + int64_t(C) * g.mr, _mm512_extractf32x8_ps(u[x], 1));
    }
  }
}

// Per-lane tile coordinates of the 16 tiles from `first` (lanes past the last tile are off).
struct Lanes {
  __m512i n, row, col;  // image, top row and left column of the output tile
  __mmask16 valid;
};

TB_AVX512 Lanes tile_lanes(const Geometry& g, int64_t first) {
  alignas(64) int32_t n[kLanes], row[kLanes], col[kLanes];
  const int per_image = g.th * g.tw;
  for (int l = 0; l < kLanes; ++l) {
    const int64_t t = std::min(first + l, g.tiles - 1);
    const int64_t within = t % per_image;
    n[l] = int32_t(t / per_image);
    row[l] = int32_t(within / g.tw) * g.m;
    col[l] = int32_t(within % g.tw) * g.m;
  }
  const int64_t left = g.tiles - first;
  return {_mm512_load_si512(n), _mm512_load_si512(row), _mm512_load_si512(col),
          left >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << std::max<int64_t>(left, 0)) - 1u)};
}

// 128-bit lane `lane` of r (the instruction takes it as an immediate).
TB_AVX512_INLINE __m128 extract_lane(__m512 r, int lane) {
  switch (lane) {
    case 0:
      return _mm512_extractf32x4_ps(r, 0);
    case 1:
      return _mm512_extractf32x4_ps(r, 1);
    case 2:
      return _mm512_extractf32x4_ps(r, 2);
    default:
      return _mm512_extractf32x4_ps(r, 3);
  }
}

// Lanes whose coordinate base + offset lies in [0, limit).
TB_AVX512_INLINE __mmask16 inside(__m512i base, int offset, int limit, __mmask16 lanes) {
  const __m512i v = _mm512_add_epi32(base, _mm512_set1_epi32(offset));
  return _mm512_mask_cmpge_epi32_mask(lanes, v, _mm512_setzero_si512()) &
         _mm512_cmplt_epi32_mask(v, _mm512_set1_epi32(limit));
}

// V for the block's tiles from t0, channels [c0, c1).
template <int M>
TB_AVX512 void transform_inputs(const Conv2dParams& p, const Geometry& g, const float* x,
                                int64_t t0, int c0, int c1, float* V) {
  constexpr int A = M + 2;
  const int H = p.H, W = p.W, C = p.C;
  const int64_t hw = int64_t(H) * W;
  for (int group = 0; group < g.T / kLanes; ++group) {
    const Lanes lanes = tile_lanes(g, t0 + int64_t(group) * kLanes);
    __mmask16 row_ok[A], col_ok[A];
    for (int i = 0; i < A; ++i) {
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
      __m512 d[A * A], t[A * A];
      for (int i = 0; i < A; ++i)
        for (int j = 0; j < A; ++j)
          d[A * i + j] = _mm512_mask_i32gather_ps(
              _mm512_setzero_ps(), __mmask16(row_ok[i] & col_ok[j]),
              _mm512_add_epi32(origin, _mm512_set1_epi32(i * W + j)), xc, 4);
      for (int j = 0; j < A; ++j) Lines<M>::input(d + j, A, t + j, A);          // B^T d
      for (int i = 0; i < A; ++i) Lines<M>::input(t + A * i, 1, d + A * i, 1);  // (B^T d) B
      for (int xi = 0; xi < A * A; ++xi)
        _mm512_store_ps(V + xi * g.v_tap + (int64_t(sliver) * C + c) * g.nr + offset, d[xi]);
    }
  }
}

// y for output channels [k0, k1) of the block's tiles from t0: A^T M A (+ y) (+ bias) (ReLU).
// Each output row of the 16 tiles is transposed in registers (4x4 within each 128-bit lane),
// so that a tile's row of 4 outputs is one 16-byte store: scatters (16 elements each, one
// per output position) took a third of layer1's forward.
template <int M>
TB_AVX512 void transform_outputs(const Conv2dParams& p, const Geometry& g, const float* Mbuf,
                                 int64_t t0, int k0, int k1, const float* bias, bool accumulate,
                                 bool relu, float* y) {
  constexpr int A = M + 2;
  const int H = p.H, W = p.W, K = p.K;
  const int64_t hw = int64_t(H) * W;
  for (int group = 0; group < g.T / kLanes; ++group) {
    const int64_t first = t0 + int64_t(group) * kLanes;
    if (first >= g.tiles) break;
    // Per tile: where its top-left output lies in channel 0, how many of its M rows and M
    // columns are inside the image (0 rows for lanes past the last tile).
    int64_t at[kLanes];
    int rows[kLanes];
    __mmask8 cols[kLanes];
    const int per_image = g.th * g.tw;
    for (int l = 0; l < kLanes; ++l) {
      const int64_t t = first + l;
      const int64_t within = t % per_image;
      const int row = int(within / g.tw) * M, col = int(within % g.tw) * M;
      at[l] = (t / per_image) * K * hw + int64_t(row) * W + col;
      rows[l] = t < g.tiles ? std::min(M, H - row) : 0;
      cols[l] = __mmask8((1u << std::min(M, W - col)) - 1u);
    }
    // F(2x2) on images whose tile rows are a multiple of 8 tiles (16 pixels), every tile
    // whole: each half of a group lies side by side in one tile row (groups start at
    // multiples of 16 tiles).
    const bool whole_row = M == 2 && g.tw % (kLanes / 2) == 0 && H % 2 == 0 && W % 2 == 0 &&
                           first + kLanes <= g.tiles;
    for (int k = k0; k < k1; ++k) {
      __m512 m[A * A], s[M * A], o[M * M];
      for (int xi = 0; xi < A * A; ++xi)
        m[xi] = _mm512_load_ps(Mbuf + xi * g.m_tap + int64_t(k) * g.T + group * kLanes);
      for (int j = 0; j < A; ++j) Lines<M>::output(m + j, A, s + j, A);          // A^T m: M rows
      for (int a = 0; a < M; ++a) Lines<M>::output(s + A * a, 1, o + M * a, 1);  // (A^T m) A
      float* yk = y + k * hw;
      const __m128 b = _mm_set1_ps(bias ? bias[k] : 0.0f);
      const auto finish = [&](__m128 v, float* dst, __mmask8 mask) TB_AVX512_LAMBDA {
        if (accumulate) v = _mm_add_ps(_mm_maskz_loadu_ps(mask, dst), v);
        if (bias) v = _mm_add_ps(v, b);
        if (relu) v = _mm_max_ps(v, _mm_setzero_ps());
        _mm_mask_storeu_ps(dst, mask, v);
      };
      if constexpr (M == 2) {
        // lo lane L: row a of tiles 4L and 4L + 1 (two floats each); hi: of 4L + 2, 4L + 3.
        if (whole_row) {
          // Each 8 tiles side by side: row a of them is 16 floats of y, lanes in the order
          // lo.0 hi.0 lo.1 hi.1 (tiles 0-7) and lo.2 hi.2 lo.3 hi.3 (tiles 8-15, in the same
          // tile row or the next). Two stores instead of 16 masked ones; the same arithmetic
          // per element.
          const auto finish16 = [&](__m512 v, float* dst) TB_AVX512_LAMBDA {
            if (accumulate) v = _mm512_add_ps(_mm512_loadu_ps(dst), v);
            if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[k]));
            if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
            _mm512_storeu_ps(dst, v);
          };
          for (int a = 0; a < 2; ++a) {
            const __m512 lo = _mm512_unpacklo_ps(o[2 * a], o[2 * a + 1]);
            const __m512 hi = _mm512_unpackhi_ps(o[2 * a], o[2 * a + 1]);
            const __m512 left = _mm512_shuffle_f32x4(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
            const __m512 right = _mm512_shuffle_f32x4(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));
            finish16(_mm512_shuffle_f32x4(left, left, _MM_SHUFFLE(3, 1, 2, 0)),
                     yk + at[0] + int64_t(a) * W);
            finish16(_mm512_shuffle_f32x4(right, right, _MM_SHUFFLE(3, 1, 2, 0)),
                     yk + at[kLanes / 2] + int64_t(a) * W);
          }
          continue;
        }
        // A tile in the upper half is stored from 2 floats before its place, masked.
        for (int a = 0; a < 2; ++a) {
          const __m512 r[2] = {_mm512_unpacklo_ps(o[2 * a], o[2 * a + 1]),
                               _mm512_unpackhi_ps(o[2 * a], o[2 * a + 1])};
          for (int l = 0; l < kLanes; ++l) {
            if (a >= rows[l]) continue;
            const __m128 v = extract_lane(r[(l % 4) / 2], l / 4);
            float* dst = yk + at[l] + int64_t(a) * W;
            if (l % 2 == 0)
              finish(v, dst, cols[l]);
            else
              finish(v, dst - 2, __mmask8(cols[l] << 2));
          }
        }
        continue;
      }
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
        for (int l = 0; l < kLanes; ++l)
          if (a < rows[l])
            finish(extract_lane(r[l % 4], l / 4), yk + at[l] + int64_t(a) * W, cols[l]);
      }
    }
  }
}

// The per-tap GEMMs' micro-kernel calls for taps and row slivers [item0, item1) of a block:
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

int winograd_tile(const Conv2dParams& p, bool data_gradient) {
  constexpr int64_t kIndexLimit = std::numeric_limits<int32_t>::max();
  // Below 16 channels the GEMMs are too short for the micro-kernel (a stem's 3 channels);
  // past 1024 the packed slivers outgrow the caches the blocking assumes.
  if (p.kernel != 3 || p.stride != 1 || p.pad != 1 || p.C < 16 || p.K < 16 || p.C > 1024 ||
      p.x_numel() >= kIndexLimit || p.y_numel() >= kIndexLimit || !micro_kernel())
    return 0;
  // F(4x4) gives way to F(2x2) where the batch has fewer than 128 of its tiles (resnet18's
  // layer4 at batch 64: 64). Its 36 x K x C transformed weights are rebuilt per call and then
  // serve too few tiles: layer4's forward took 27-29 ms with F(4x4) against 18-21 with F(2x2),
  // whose weights are 16 x K x C.
  const int m = requested_tile(data_gradient);
  const int64_t tiles4 = int64_t(p.N) * ((p.H + 3) / 4) * ((p.W + 3) / 4);
  return m == 4 && tiles4 < 128 ? 2 : m;
}

const char* winograd_setting() {
  if (!micro_kernel()) return "off (no AVX-512 micro-kernel)";
  // F(4x4) where it is asked for means F(2x2) for layers of few tiles (winograd_tile).
  if (requested_tile(false) == 4) return "F(4x4) forward and data gradients, weight gradients";
  if (requested_tile(false) == 2) return "F(2x2) forward, F(4x4) data gradients, weight gradients";
  return requested_tile(true) ? "F(4x4) data gradients, weight gradients" : "off";
}

WinogradScratch winograd_scratch_floats(const Conv2dParams& p, int tile, int threads) {
  const detail::GemmKernel* kern = micro_kernel();
  TB_CHECK(kern && (tile == 2 || tile == 4), "winograd: no F({0}x{0}) here", tile);
  const Geometry g = geometry(p, *kern, tile);
  // Each thread works on blocks of its own when there are enough of them (see run()).
  const size_t copies = g.blocks >= 2 * threads ? size_t(threads) : 1;
  return {g.weights, per_thread_floats(g.inputs) * copies, per_thread_floats(g.outputs) * copies};
}

namespace {

template <int M>
void run(ThreadPool& pool, const Conv2dParams& p, const detail::GemmKernel* kern, const float* x,
         const float* w, const float* bias, float* y, bool accumulate, bool relu,
         float* weights_buf, float* inputs_buf, float* outputs_buf) {
  const Geometry g = geometry(p, *kern, M);
  pool.parallel_for(0, (p.K + kLanes - 1) / kLanes, [&](int64_t group) {
    transform_weights<M>(p, g, w, int(group) * kLanes, weights_buf);
  });
  const int64_t items = int64_t(g.taps) * (g.kp / g.mr);
  const int threads = pool.size();
  if (g.blocks >= 2 * threads) {
    // Enough blocks: each thread takes whole blocks from a counter (the vCPUs of a shared VM
    // are not equally fast), with its own V and M.
    std::atomic<int64_t> next{0};
    pool.run([&](int thread, int) {
      float* V = inputs_buf + thread * per_thread_floats(g.inputs);
      float* Mb = outputs_buf + thread * per_thread_floats(g.outputs);
      for (int64_t b = next++; b < g.blocks; b = next++) {
        const int64_t t0 = b * g.T;
        transform_inputs<M>(p, g, x, t0, 0, p.C, V);
        multiply(p, g, *kern, weights_buf, V, Mb, 0, items);
        transform_outputs<M>(p, g, Mb, t0, 0, p.K, bias, accumulate, relu, y);
      }
    });
    return;
  }
  // Few blocks (small images, or many threads): the threads share each block, phase by phase.
  for (int64_t b = 0; b < g.blocks; ++b) {
    const int64_t t0 = b * g.T;
    pool.parallel_for_range(0, p.C, [&](int64_t lo, int64_t hi) {
      transform_inputs<M>(p, g, x, t0, int(lo), int(hi), inputs_buf);
    });
    pool.parallel_for_range(0, items, [&](int64_t lo, int64_t hi) {
      multiply(p, g, *kern, weights_buf, inputs_buf, outputs_buf, lo, hi);
    });
    pool.parallel_for_range(0, p.K, [&](int64_t lo, int64_t hi) {
      transform_outputs<M>(p, g, outputs_buf, t0, int(lo), int(hi), bias, accumulate, relu, y);
    });
  }
}

}  // namespace

void winograd_conv3x3(ThreadPool& pool, const Conv2dParams& p, int tile, const float* x,
                      const float* w, const float* bias, float* y, bool accumulate, bool relu,
                      float* weights_buf, float* inputs_buf, float* outputs_buf) {
  const detail::GemmKernel* kern = micro_kernel();
  TB_CHECK(kern && (tile == 2 || tile == 4) && p.kernel == 3 && p.stride == 1 && p.pad == 1,
           "winograd: asked for a convolution it does not take");
  TB_CHECK(!(relu && accumulate), "winograd: a fused ReLU cannot accumulate into y");
  if (tile == 4)
    run<4>(pool, p, kern, x, w, bias, y, accumulate, relu, weights_buf, inputs_buf, outputs_buf);
  else
    run<2>(pool, p, kern, x, w, bias, y, accumulate, relu, weights_buf, inputs_buf, outputs_buf);
}

}  // namespace tb::cpu
