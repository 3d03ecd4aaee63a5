// Internal to the CPU GEMM: the micro-kernel interface shared by gemm.cpp and the per-ISA
// kernel files. A micro-kernel multiplies one packed MR x kc sliver of A by one packed
// kc x NR sliver of B and writes the MR x NR tile of C (only its first m rows and n columns:
// edge tiles are zero-padded in the packed operands and cut at the store).
#pragma once
#include <cstdint>

#include "ops/cpu/cpu_features.h"

namespace tb::cpu::detail {

// How a tile is written: C = act(alpha * acc + beta * C + bias). beta == 0 never reads C
// (so NaN garbage there is ignored); beta == 1 is an exact add. Bias and activation are only
// passed on the last K block. bias_row is already offset to the tile's first row, bias_col to
// its first column.
struct TileStore {
  float alpha = 1.0f;
  float beta = 0.0f;
  const float* bias_row = nullptr;
  const float* bias_col = nullptr;
  bool relu = false;
};

// a: packed A sliver [kc][MR], b: packed B sliver [kc][NR] (64-byte aligned), c: the tile's
// top-left element, row stride ldc.
using MicroKernel = void (*)(int kc, const float* a, const float* b, float* c, int64_t ldc,
                             int m, int n, const TileStore& store);

// Packs `lines` lines of length kc of an operand into ceil(lines / width) slivers, each
// dst[kc][width] and sliver_stride floats after the previous one (kc * width, or more when
// several threads pack different k ranges of the same slivers), zero-padding the last
// sliver's lines past `lines` so the micro-kernel never branches on them. Two layouts:
//  - k-major: line element (r, k) is src[k * ld + r] (A transposed, B as is): copies.
//  - k-minor: line element (r, k) is src[r * ld + k] (A as is, B transposed): transposes.
using PackFn = void (*)(const float* src, int64_t ld, int lines, int kc, int width,
                       int64_t sliver_stride, float* dst);

// narrow[v] (optional) computes only the first v * 16 columns of the same NR-wide packed
// sliver, for an edge tile with n <= 16 * v: a conv GEMM's 1024 columns end in a sliver with
// 16 of 48 columns used. Each element's arithmetic is the full kernel's, so the bits match.
constexpr int kMaxNarrow = 4;

// A B sliver read in place (SgemmBRows): row k of the sliver is rows[k] + offsets[v] for
// vector v (16 columns), nothing packed. rows holds kc + kRowsAhead pointers (the kernel
// prefetches that far ahead).
constexpr int kRowsAhead = 8;
using RowsKernel = void (*)(int kc, const float* a, const float* const* rows,
                            const int64_t* offsets, float* c, int64_t ldc, int m, int n,
                            const TileStore& store);

struct GemmKernel {
  Isa isa;
  int mr, nr;
  MicroKernel kernel;
  const char* name;
  PackFn pack_kmajor, pack_kminor;
  MicroKernel narrow[kMaxNarrow];
  // rows[v]: the first v vectors of a sliver read through row pointers (SgemmBRows); all
  // nullptr where the ISA has none.
  RowsKernel rows[kMaxNarrow + 1] = {};
};

// Packers: plain loops (any CPU) and AVX2 (8x8 register transposes; also used by the AVX-512
// kernels, since every AVX-512 CPU has AVX2).
void pack_kmajor_portable(const float* src, int64_t ld, int lines, int kc, int width,
                          int64_t sliver_stride, float* dst);
void pack_kminor_portable(const float* src, int64_t ld, int lines, int kc, int width,
                          int64_t sliver_stride, float* dst);
void pack_kmajor_avx2(const float* src, int64_t ld, int lines, int kc, int width,
                      int64_t sliver_stride, float* dst);
void pack_kminor_avx2(const float* src, int64_t ld, int lines, int kc, int width,
                      int64_t sliver_stride, float* dst);

// The kernels each file provides, best first. Calling one on a CPU without its ISA is
// undefined, so callers check isa_supported() first.
const GemmKernel* avx512_gemm_kernels(int* count);
const GemmKernel* avx2_gemm_kernels(int* count);
const GemmKernel* portable_gemm_kernels(int* count);

}  // namespace tb::cpu::detail
