// A convolution with few input channels (a network's stem: 3 colour channels) as one matrix
// product: each output pixel's receptive field becomes one row of C*R*S values (im2col),
// padded with zeros to Kp, a multiple of 8, so that rows are whole 16-byte vectors. cuDNN
// runs such convolutions without tensor cores (gpu-notes v16/v18); as a product of
// [pixels x Kp] by [Kp x K] they run on cuBLASLt's (ops/cudnn/small_channel_conv.h).
#pragma once
#include <cuda_runtime_api.h>

#include "core/dtype.h"
#include "ops/cuda/conv_kernels.h"

namespace tb::gpu {

// Row length of the product: C*R*S rounded up to a multiple of 8.
inline int small_channel_row(const ConvGeometry& g) { return (g.C * g.R * g.S + 7) / 8 * 8; }

// cols[m][j] (dtype t), m over images [n0, n0 + count) x P x Q, j = (r*S + s)*C + c < C*R*S:
// x[n][p*stride - pad + r][q*stride - pad + s][c], or 0 off the image and for j >= C*R*S.
void im2col_rows(DType t, const void* x, const ConvGeometry& g, int n0, int count, void* cols,
                 cudaStream_t s);
// rows[k][j] (dtype t) = w[k][c][r][s] (fp32 K,C,R,S) for j = (r*S + s)*C + c, 0 up to Kp.
void pack_filter_rows(DType t, const float* w, const ConvGeometry& g, void* rows, cudaStream_t s);
// w[k][c][r][s] (fp32) = rows[k][(r*S + s)*C + c] (fp32, row length Kp): the inverse.
void unpack_filter_rows(const float* rows, const ConvGeometry& g, float* w, cudaStream_t s);

}  // namespace tb::gpu
