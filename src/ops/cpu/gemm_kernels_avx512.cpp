// AVX-512 micro-kernels. Compiled with per-function target attributes (not file flags) so
// the library still runs on CPUs without AVX-512; gemm.cpp only calls them after checking.
//
// Shape: MR rows x NV*16 columns of accumulators held in zmm registers. Each k step loads NV
// vectors of B and broadcasts MR scalars of A: MR*NV FMAs per MR+NV loads. With 32 zmm
// registers, MR*NV + NV <= 31 leaves room for one broadcast.
#include <immintrin.h>

#include "ops/cpu/gemm_kernels.h"

#define TB_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

namespace tb::cpu::detail {
namespace {

// Writes the MR x (NV * 16) accumulators to the tile: act(alpha * acc + beta * C + bias),
// only the first m rows and n columns.
template <int MR, int NV>
TB_AVX512 __attribute__((always_inline)) inline void store_tile(__m512 (&acc)[MR][NV], float* c,
                                                                int64_t ldc, int m, int n,
                                                                const TileStore& st) {
  // The common tile: full, alpha 1, no bias, no ReLU, C overwritten or added to. Its plain
  // stores skip the general path's masks and per-vector checks (about 5% of a 288-deep
  // kernel call). acc * 1 is acc, and the add is the general path's, so the bits match.
  if (m == MR && n == NV * 16 && st.alpha == 1.0f && !st.bias_row && !st.bias_col &&
      !st.relu && (st.beta == 0.0f || st.beta == 1.0f)) {
    if (st.beta == 0.0f) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + r * ldc + v * 16, acc[r][v]);
    } else {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          float* p = c + r * ldc + v * 16;
          _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), acc[r][v]));
        }
    }
    return;
  }
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    int lanes = n - v * 16;
    lanes = lanes < 0 ? 0 : lanes > 16 ? 16 : lanes;
    mask[v] = __mmask16((1u << lanes) - 1u);
  }
  const __m512 alpha = _mm512_set1_ps(st.alpha), beta = _mm512_set1_ps(st.beta);
  const __m512 zero = _mm512_setzero_ps();
  __m512 bias_col[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v)
    bias_col[v] = st.bias_col ? _mm512_maskz_loadu_ps(mask[v], st.bias_col + v * 16) : zero;
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= m) break;
    float* row = c + r * ldc;
    const __m512 bias_row = _mm512_set1_ps(st.bias_row ? st.bias_row[r] : 0.0f);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m512 x = _mm512_mul_ps(acc[r][v], alpha);
      if (st.beta == 1.0f) {
        x = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], row + v * 16), x);
      } else if (st.beta != 0.0f) {
        x = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask[v], row + v * 16), x);
      }
      if (st.bias_row) x = _mm512_add_ps(x, bias_row);
      if (st.bias_col) x = _mm512_add_ps(x, bias_col[v]);
      // maskz form: the plain _mm512_max_ps trips a GCC 12 -Wmaybe-uninitialized false alarm.
      if (st.relu) x = _mm512_maskz_max_ps(mask[v], x, zero);
      _mm512_mask_storeu_ps(row + v * 16, mask[v], x);
    }
  }
}

// NS: the packed sliver's width in vectors; only its first NV vectors are computed (NV < NS:
// a narrow edge-tile kernel).
template <int MR, int NV, int NS = NV>
TB_AVX512 void kernel_avx512(int kc, const float* a, const float* b, float* c, int64_t ldc,
                             int m, int n, const TileStore& st) {
  constexpr int NR = NS * 16;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();

  // The C tile is read (or written) right after the loop: start fetching it now.
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      if (r < m) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + v * 16), _MM_HINT_T0);

#pragma GCC unroll 2
  for (int k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + v * 16);
    // Prefetch the A and B data a few iterations ahead; the packed slivers are contiguous.
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a + 8 * MR), _MM_HINT_T0);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    a += MR;
    b += NR;
  }

  store_tile<MR, NV>(acc, c, ldc, m, n, st);
}

// B read through row pointers (SgemmBRows): per k, NV loads at rows[k] + offsets[v] instead
// of the packed sliver; the same MR * NV FMAs per k over the same A sliver, so the same bits
// as kernel_avx512 on the packed copy.
template <int MR, int NV>
TB_AVX512 void rows_avx512(int kc, const float* a, const float* const* rows, const int64_t* off,
                           float* c, int64_t ldc, int m, int n, const TileStore& st) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      if (r < m) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + v * 16), _MM_HINT_T0);
  int64_t o[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) o[v] = off[v];

#pragma GCC unroll 2
  for (int k = 0; k < kc; ++k) {
    const float* row = rows[k];
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(row + o[v]);
    // The rows are scattered (a pixel row ends every W rows, and a sliver uses 3 lines of
    // each): fetch the ones kRowsAhead further on.
    const float* ahead = rows[k + kRowsAhead];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      _mm_prefetch(reinterpret_cast<const char*>(ahead + o[v]), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a + 8 * MR), _MM_HINT_T0);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    a += MR;
  }
  store_tile<MR, NV>(acc, c, ldc, m, n, st);
}

// Best first. 8x48 measured fastest on Zen 4 for both large squares and the few-row
// (64-channel) convolution GEMMs, where MR = 8 divides the row count exactly; the others stay
// for tuning on other cores (TRAINBENCH_GEMM_KERNEL in bench_gemm).
const GemmKernel kKernels[] = {
    {Isa::avx512, 8, 48, kernel_avx512<8, 3>, "avx512_8x48", pack_kmajor_avx2, pack_kminor_avx2,
     {nullptr, kernel_avx512<8, 1, 3>, kernel_avx512<8, 2, 3>, nullptr},
     {nullptr, rows_avx512<8, 1>, rows_avx512<8, 2>, rows_avx512<8, 3>, nullptr}},
    {Isa::avx512, 14, 32, kernel_avx512<14, 2>, "avx512_14x32", pack_kmajor_avx2,
     pack_kminor_avx2, {nullptr, kernel_avx512<14, 1, 2>, nullptr, nullptr},
     {nullptr, rows_avx512<14, 1>, rows_avx512<14, 2>, nullptr, nullptr}},
    {Isa::avx512, 6, 64, kernel_avx512<6, 4>, "avx512_6x64", pack_kmajor_avx2, pack_kminor_avx2,
     {nullptr, kernel_avx512<6, 1, 4>, kernel_avx512<6, 2, 4>, kernel_avx512<6, 3, 4>},
     {nullptr, rows_avx512<6, 1>, rows_avx512<6, 2>, rows_avx512<6, 3>, rows_avx512<6, 4>}},
};
}  // namespace

const GemmKernel* avx512_gemm_kernels(int* count) {
  *count = int(sizeof(kKernels) / sizeof(kKernels[0]));
  return kKernels;
}

}  // namespace tb::cpu::detail
