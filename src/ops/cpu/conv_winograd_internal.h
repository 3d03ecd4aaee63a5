// Internal to the cpu backend's Winograd convolutions (conv_winograd.cpp: forward and data
// gradient; conv_winograd_wgrad.cpp: weight gradient): what both halves share.
#pragma once
// GCC 12's unpack intrinsics pass an undefined vector as their (unused) merge source, which
// its -Wmaybe-uninitialized reports once they are inlined into the transforms.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "ops/cpu/gemm_kernels.h"

// Only functions marked TB_AVX512 use AVX-512; winograd_tile() and its kin send other CPUs
// to the direct path before any of them runs.
#define TB_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define TB_AVX512_LAMBDA \
  __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define TB_AVX512_INLINE \
  __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl,fma"))) inline

namespace tb::cpu::winograd {

constexpr int kLanes = 16;  // floats per vector: 16 tiles or 16 channels

// The AVX-512 micro-kernel the GEMMs run on, or null where there is none.
const detail::GemmKernel* micro_kernel();

// The output tile TB_CPU_WINOGRAD asks for (4: F(4x4, 3x3), 2: F(2x2, 3x3), 0: the direct
// path) for a forward convolution or a data gradient: 0 (never), backward (data and weight
// gradients only), f2 (the default: and the forward with F(2x2, 3x3)), all (F(4x4, 3x3)
// forward too). Weight gradients go through Winograd under every setting but 0.
int requested_tile(bool data_gradient);

// Floats from one tap's part of a buffer to the next: `floats` rounded up to a multiple of
// 16 (64-byte alignment) and kept off multiples of 1024 (4 KiB). Parts 4 KiB apart fall in
// one L1 set, and a transform touches all of them per vector: with unpadded parts (36 KiB
// apart for layer1) the output transform took as long as the GEMMs.
int64_t tap_stride(int64_t floats);

// F(2x2, 3x3)'s B^T d along a line of 4: d[i * ds] -> o[i * os]. Its constants are all 1.
TB_AVX512_INLINE void input_line2(const __m512* d, int ds, __m512* o, int os) {
  o[0] = _mm512_sub_ps(d[0], d[2 * ds]);
  o[os] = _mm512_add_ps(d[ds], d[2 * ds]);
  o[2 * os] = _mm512_sub_ps(d[2 * ds], d[ds]);
  o[3 * os] = _mm512_sub_ps(d[ds], d[3 * ds]);
}

}  // namespace tb::cpu::winograd
