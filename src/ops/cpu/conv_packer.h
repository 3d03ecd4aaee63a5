// Implicit im2col: an SgemmBPacker that writes the GEMM's packed B slivers of a convolution's
// im2col matrix straight from the NCHW input, so the matrix is never written to memory and
// read back (that round trip, plus the packer's own copy, cost about as much as a tenth of
// the forward GEMM for the 64-row convs of a ResNet).
//
// The matrix is col[C*k*k, images*P*Q] of images [n0, n0 + images) of x: row (c, r, s),
// column (i, p, q) holds x[n0 + i, c, p*stride - pad + r, q*stride - pad + s], or 0 outside
// the input. Every packed value is a copy or a zero, so the GEMM's results are the same bits
// as with an explicit im2col matrix.
#pragma once
#include <cstdint>

#include "ops/conv2d.h"
#include "ops/cpu/gemm.h"

namespace tb::cpu {

struct ConvColumnsSource {
  Conv2dParams params;  // the convolution (N is ignored: `images` says how many)
  const float* x = nullptr;  // [N, C, H, W], the whole batch
  int n0 = 0;                // first image of the chunk
  int images = 1;            // images in the chunk

  // Packers that read this source (`this` must outlive the sgemm call): op(B) = col for the
  // forward GEMM, op(B) = col^T for the weight gradient dW = dY * col^T.
  SgemmBPacker packer() const;
  SgemmBPacker transposed_packer() const;
};

}  // namespace tb::cpu
