// AVX2 + FMA micro-kernel, 6 x 16: 12 ymm accumulators, 2 B vectors and a broadcast fit the
// 16 ymm registers. Per-function target attributes keep the rest of the binary baseline.
#include <immintrin.h>

#include <algorithm>

#include "ops/cpu/gemm_kernels.h"

#define TB_AVX2 __attribute__((target("avx2,fma")))

namespace tb::cpu::detail {
namespace {

// Lane mask for the first `lanes` (clamped to 0..8) floats of a ymm vector.
TB_AVX2 __m256i lane_mask(int lanes) {
  lanes = lanes < 0 ? 0 : lanes > 8 ? 8 : lanes;
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int MR, int NV>
TB_AVX2 void kernel_avx2(int kc, const float* a, const float* b, float* c, int64_t ldc, int m,
                         int n, const TileStore& st) {
  constexpr int NR = NV * 8;
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();

#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
    if (r < m) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);

#pragma GCC unroll 4
  for (int k = 0; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(b + v * 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      __m256 av = _mm256_broadcast_ss(a + r);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
    a += MR;
    b += NR;
  }

  __m256i mask[NV];
  __m256 bias_col[NV];
  const __m256 alpha = _mm256_set1_ps(st.alpha), beta = _mm256_set1_ps(st.beta);
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    mask[v] = lane_mask(n - v * 8);
    bias_col[v] = st.bias_col ? _mm256_maskload_ps(st.bias_col + v * 8, mask[v]) : zero;
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    if (r >= m) break;
    float* row = c + r * ldc;
    const __m256 bias_row = _mm256_set1_ps(st.bias_row ? st.bias_row[r] : 0.0f);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m256 x = _mm256_mul_ps(acc[r][v], alpha);
      if (st.beta == 1.0f) {
        x = _mm256_add_ps(_mm256_maskload_ps(row + v * 8, mask[v]), x);
      } else if (st.beta != 0.0f) {
        x = _mm256_fmadd_ps(beta, _mm256_maskload_ps(row + v * 8, mask[v]), x);
      }
      if (st.bias_row) x = _mm256_add_ps(x, bias_row);
      if (st.bias_col) x = _mm256_add_ps(x, bias_col[v]);
      if (st.relu) x = _mm256_max_ps(x, zero);
      _mm256_maskstore_ps(row + v * 8, mask[v], x);
    }
  }
}

// Transposes the 8x8 block whose rows start at src[i * ld] into dst[j * dst_ld] (rows of 8).
TB_AVX2 inline void transpose_8x8(const float* src, int64_t ld, float* dst, int64_t dst_ld) {
  __m256 r[8], t[8], u[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {  // rows 0-3, then 4-7
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_ps(dst + j * dst_ld, _mm256_permute2f128_ps(u[j], u[4 + j], 0x20));
    _mm256_storeu_ps(dst + (j + 4) * dst_ld, _mm256_permute2f128_ps(u[j], u[4 + j], 0x31));
  }
}

const GemmKernel kKernels[] = {
    {Isa::avx2, 6, 16, kernel_avx2<6, 2>, "avx2_6x16", pack_kmajor_avx2, pack_kminor_avx2, {}},
};

}  // namespace

namespace {

// Copies `valid` (<= width) floats of one line to dst and zero-fills it up to width.
TB_AVX2 inline void copy_line(const float* src, int valid, int width, float* dst) {
  if (valid == width && width % 8 == 0) {
    for (int v = 0; v < width; v += 8) _mm256_storeu_ps(dst + v, _mm256_loadu_ps(src + v));
    return;
  }
  // The store mask stops at width, so the last line of a sliver never writes past it.
  for (int v = 0; v < width; v += 8)
    _mm256_maskstore_ps(dst + v, lane_mask(width - v),
                        _mm256_maskload_ps(src + v, lane_mask(valid - v)));
}

// One sliver of the k-minor layout: 8-line x 8-k blocks by register transposes, leftover
// lines and k values by plain loops.
TB_AVX2 void transpose_sliver(const float* src, int64_t ld, int valid, int kc, int width,
                              float* dst) {
  const int lines8 = valid / 8 * 8, k8 = kc / 8 * 8;
  for (int r = 0; r < lines8; r += 8) {
    for (int k = 0; k < k8; k += 8)
      transpose_8x8(src + r * ld + k, ld, dst + int64_t(k) * width + r, width);
    for (int k = k8; k < kc; ++k)
      for (int i = 0; i < 8; ++i) dst[int64_t(k) * width + r + i] = src[(r + i) * ld + k];
  }
  for (int r = lines8; r < valid; ++r) {
    const float* line = src + r * ld;
    for (int k = 0; k < kc; ++k) dst[int64_t(k) * width + r] = line[k];
  }
  if (valid < width)
    for (int k = 0; k < kc; ++k)
      for (int r = valid; r < width; ++r) dst[int64_t(k) * width + r] = 0.0f;
}

}  // namespace

// k outer, slivers inner: each k line of the source is read from start to end in one pass,
// which the hardware prefetcher follows (sliver by sliver it would see hundreds of streams).
TB_AVX2 void pack_kmajor_avx2(const float* src, int64_t ld, int lines, int kc, int width,
                              int64_t sliver, float* dst) {
  for (int k = 0; k < kc; ++k) {
    const float* line = src + k * ld;
    float* d = dst + int64_t(k) * width;
    for (int s = 0; s < lines; s += width, d += sliver)
      copy_line(line + s, std::min(width, lines - s), width, d);
  }
}

TB_AVX2 void pack_kminor_avx2(const float* src, int64_t ld, int lines, int kc, int width,
                              int64_t sliver, float* dst) {
  for (int s = 0; s < lines; s += width, dst += sliver)
    transpose_sliver(src + s * ld, ld, std::min(width, lines - s), kc, width, dst);
}

const GemmKernel* avx2_gemm_kernels(int* count) {
  *count = int(sizeof(kKernels) / sizeof(kKernels[0]));
  return kKernels;
}

}  // namespace tb::cpu::detail
