// Single-precision GEMM for the CPU backend, row-major:
//   C[M,N] = act(alpha * op(A)[M,K] * op(B)[K,N] + beta * C + bias)
// where op(A) = A (stored M x K, row stride lda) or A^T (stored K x M), likewise for B.
//
// BLIS/GotoBLAS structure: B is packed into K-block x N-block panels, A into cache-sized
// blocks, and a register-tiled micro-kernel chosen at run time for the CPU (AVX-512, AVX2+FMA
// or portable C++) computes MR x NR tiles of C. Threads share B panels or pack their own, take
// work from atomic counters (cores of a shared VM differ in speed), and a small C with a long
// K (a convolution's weight gradient) is split along K into fixed chunks summed in order.
// Packing buffers are thread-local and only grow: after the first call of a given size,
// sgemm allocates nothing. See docs/cpu-gemm.md.
//
// Determinism: every element of C gets one summation order that depends only on the shape
// (the K blocking and any K split are never derived from the thread count or timing), so
// results are bit-identical for any number of threads. Different ISAs give different bits.
#pragma once
#include <cstdint>

#include "ops/cpu/cpu_features.h"

namespace tb::cpu {

class ThreadPool;

// Applied while C is written, after alpha/beta: bias first, then ReLU.
struct SgemmEpilogue {
  const float* bias_row = nullptr;  // [M]: bias_row[i] added to row i (conv: per channel)
  const float* bias_col = nullptr;  // [N]: bias_col[j] added to column j (linear layers)
  bool relu = false;
};

// Overrides of the automatic cache blocking, for tuning experiments (0 = automatic). The
// results are deterministic for fixed values; changing kc changes the summation order.
struct GemmBlocking {
  int kc = 0, mc = 0, nc = 0;
};

// Produces B on the fly instead of reading a matrix (B and ldb are then ignored): for a
// convolution, the columns of the im2col matrix straight from the input, so the im2col matrix
// never exists in memory. pack(ctx, k0, kc, j0, n, nr, sliver_stride, dst) writes rows
// [k0, k0 + kc) x columns [j0, j0 + n) of op(B) as ceil(n / nr) slivers: element (k0 + k,
// j0 + s * nr + c) goes to dst[s * sliver_stride + k * nr + c], with zeros for the columns
// past n in the last sliver. It is called concurrently from several threads for disjoint
// row ranges, and must depend on nothing but its arguments (results stay bit-identical).
struct SgemmBPacker {
  void (*pack)(const void* ctx, int k0, int kc, int j0, int n, int nr, int64_t sliver_stride,
               float* dst) = nullptr;
  const void* ctx = nullptr;
};

// B read in place by the micro-kernel, never packed: row k of op(B) is a run of memory
// starting at a pointer (rows(ctx, k0, kc, out) writes those of rows [k0, k0 + kc)), and
// column n of every row lies col_offset(n) floats into it, where col_offsets(ctx, j0, n, out)
// writes the offsets of columns j0, j0 + 16, ... (< j0 + n), each the first of 16 consecutive
// floats. For a conv's weight gradient: the rows are pixels of a zero-padded channels-last
// copy of x and the columns (tap, channel) pairs, so B is col^T without a transpose. Needs
// a micro-kernel with rows variants (every AVX-512 one); sgemm fails otherwise.
struct SgemmBRows {
  void (*rows)(const void* ctx, int k0, int kc, const float** out) = nullptr;
  void (*col_offsets)(const void* ctx, int j0, int n, int64_t* out) = nullptr;
  const void* ctx = nullptr;
};

struct SgemmOptions {
  const SgemmEpilogue* epilogue = nullptr;
  // A already packed by sgemm_pack_a. A itself must still be passed: a split-K GEMM packs its
  // K chunks from it, so whether A comes packed never changes the summation order.
  const float* a_packed = nullptr;
  SgemmBPacker b_packer{};         // pack == nullptr: B is a matrix
  SgemmBRows b_rows{};             // rows != nullptr: B is read through row pointers
  ThreadPool* pool = nullptr;      // nullptr: cpu_pool()
  int isa = -1;                    // an Isa value, or -1 for active_isa()
  const char* kernel = nullptr;    // a micro-kernel by name (overrides isa), for tuning
  GemmBlocking blocking{};
};

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc, const SgemmOptions& options);

// A packed once for many sgemm calls or threads that share it (a conv's weights: one call
// per chunk of images, or one call whose column panels go to several threads, each of which
// would otherwise pack all of A): sgemm_pack_a writes op(A) (M x K) in the layout sgemm packs
// A into for these options (micro-kernel, K blocks), sgemm_packed_a_floats floats of it. Pass
// it as SgemmOptions::a_packed with the same M, K and options: the same values as packing.
size_t sgemm_packed_a_floats(int M, int K, const SgemmOptions& options);
void sgemm_pack_a(bool trans_a, int M, int K, const float* A, int lda,
                  const SgemmOptions& options, float* out);

// The micro-kernel sgemm would use for `isa` (for reports), e.g. "avx512_14x32".
const char* gemm_kernel_name(Isa isa);
// Every micro-kernel compiled in for `isa`, separated by spaces.
const char* gemm_kernel_names(Isa isa);

}  // namespace tb::cpu
