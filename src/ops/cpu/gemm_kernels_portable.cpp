// Portable micro-kernel in plain C++: the fallback for CPUs without AVX2+FMA and the path
// that keeps the driver honest on any architecture. The fixed-size inner loops let the
// compiler vectorise with the baseline ISA (SSE2 on x86-64). It uses separate multiply and
// add (no fma contraction is requested), so its results differ in the last bits from the
// SIMD paths; each path on its own is still deterministic.
#include "ops/cpu/gemm_kernels.h"

namespace tb::cpu::detail {
namespace {

constexpr int kMR = 4, kNR = 16;

void kernel_portable(int kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n,
                     const TileStore& st) {
  float acc[kMR][kNR] = {};
  for (int k = 0; k < kc; ++k) {
    for (int r = 0; r < kMR; ++r) {
      const float av = a[r];
      for (int j = 0; j < kNR; ++j) acc[r][j] += av * b[j];
    }
    a += kMR;
    b += kNR;
  }
  for (int r = 0; r < m; ++r) {
    float* row = c + r * ldc;
    for (int j = 0; j < n; ++j) {
      float x = st.alpha * acc[r][j];
      if (st.beta == 1.0f) {
        x = row[j] + x;
      } else if (st.beta != 0.0f) {
        x = st.beta * row[j] + x;
      }
      if (st.bias_row) x += st.bias_row[r];
      if (st.bias_col) x += st.bias_col[j];
      if (st.relu) x = x > 0.0f ? x : 0.0f;
      row[j] = x;
    }
  }
}

const GemmKernel kKernels[] = {
    {Isa::portable, kMR, kNR, kernel_portable, "portable_4x16", pack_kmajor_portable,
     pack_kminor_portable, {}},
};

}  // namespace

void pack_kmajor_portable(const float* src, int64_t ld, int lines, int kc, int width,
                          int64_t sliver, float* dst) {
  for (int s = 0; s < lines; s += width, dst += sliver) {
    const int valid = lines - s < width ? lines - s : width;
    for (int k = 0; k < kc; ++k) {
      const float* line = src + k * ld + s;
      float* d = dst + int64_t(k) * width;
      for (int r = 0; r < valid; ++r) d[r] = line[r];
      for (int r = valid; r < width; ++r) d[r] = 0.0f;
    }
  }
}

void pack_kminor_portable(const float* src, int64_t ld, int lines, int kc, int width,
                          int64_t sliver, float* dst) {
  for (int s = 0; s < lines; s += width, dst += sliver) {
    const int valid = lines - s < width ? lines - s : width;
    // Line by line: each source line is read contiguously, the writes stride by width.
    for (int r = 0; r < valid; ++r) {
      const float* line = src + (s + r) * ld;
      for (int k = 0; k < kc; ++k) dst[int64_t(k) * width + r] = line[k];
    }
    for (int k = 0; k < kc; ++k)
      for (int r = valid; r < width; ++r) dst[int64_t(k) * width + r] = 0.0f;
  }
}

const GemmKernel* portable_gemm_kernels(int* count) {
  *count = int(sizeof(kKernels) / sizeof(kKernels[0]));
  return kKernels;
}

}  // namespace tb::cpu::detail
