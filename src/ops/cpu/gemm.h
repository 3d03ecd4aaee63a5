// Single-precision GEMM for the CPU backend, row-major:
//   C[M,N] = act(alpha * op(A)[M,K] * op(B)[K,N] + beta * C + bias)
// where op(A) = A (stored M x K, row stride lda) or A^T (stored K x M), likewise for B.
//
// BLIS/GotoBLAS structure: B is packed into a K-block x N-block panel, A into cache-sized
// blocks, and a register-tiled micro-kernel chosen at run time for the CPU (AVX-512, AVX2+FMA
// or portable C++) computes MR x NR tiles of C. Packing buffers are thread-local and only grow,
// so after the first call of a given size sgemm allocates nothing.
//
// Determinism: every element of C is computed by one thread with one summation order that
// depends only on the shape (the K blocking is never derived from the thread count), so
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

struct SgemmOptions {
  const SgemmEpilogue* epilogue = nullptr;
  ThreadPool* pool = nullptr;      // nullptr: cpu_pool()
  int isa = -1;                    // an Isa value, or -1 for active_isa()
  const char* kernel = nullptr;    // a micro-kernel name (gemm_kernel_names()), for tuning
  GemmBlocking blocking{};
};

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc, const SgemmOptions& options);

// The micro-kernel sgemm would use for `isa` (for reports), e.g. "avx512_14x32".
const char* gemm_kernel_name(Isa isa);
// Every micro-kernel compiled in for `isa`, separated by spaces.
const char* gemm_kernel_names(Isa isa);

}  // namespace tb::cpu
