// Launchers of the batch-norm kernels (batchnorm.cu). Activations are seen as rows x C with
// the channel innermost, which is both the channels-last 2-D case (rows = N*H*W) and the
// 1-D case (rows = N). Statistics, parameters and their gradients are fp32.
//
// Reductions are deterministic: each block reduces a fixed range of rows in a fixed order
// into a partial sum, and one thread per channel adds the partials in order (in double).
// Variance sums are shifted by the channel's first value, so sum(x^2) - sum(x)^2 / m does not
// cancel when the mean is large next to the spread.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "ops/batchnorm.h"

namespace tb::gpu {

// Scratch bytes the forward or backward pass needs for rows x C.
size_t batch_norm_workspace_bytes(int64_t rows, int C);

void batch_norm_forward_train(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                              const float* beta, void* y, float* running_mean, float* running_var,
                              float* save_mean, float* save_invstd, void* workspace,
                              cudaStream_t s);
void batch_norm_forward_eval(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                             const float* beta, const float* running_mean,
                             const float* running_var, void* y, void* workspace, cudaStream_t s);
// dx may be null (only the parameter gradients are wanted).
void batch_norm_backward(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                         const float* save_mean, const float* save_invstd, const void* dy,
                         void* dx, float* dgamma, float* dbeta, bool accumulate, void* workspace,
                         cudaStream_t s);

// Batch norm fused with the ReLU, and with a residual add before the ReLU when residual is
// not null: y = relu(bn(x) + residual), in the plain op's three launches (the ReLU and add
// run in the apply pass). Intermediate values are rounded to the activation type as the
// separate kernels store them, so results equal the unfused ops bit for bit.
void batch_norm_relu_forward_train(DType t, const BatchNormParams& p, const void* x,
                                   const float* gamma, const float* beta, const void* residual,
                                   void* y, float* running_mean, float* running_var,
                                   float* save_mean, float* save_invstd, void* workspace,
                                   cudaStream_t s);
void batch_norm_relu_forward_eval(DType t, const BatchNormParams& p, const void* x,
                                  const float* gamma, const float* beta,
                                  const float* running_mean, const float* running_var,
                                  const void* residual, void* y, void* workspace, cudaStream_t s);
// The gradient through the ReLU is dy where y > 0, else 0; it feeds the batch-norm backward
// and, when dresidual is not null, is written (or added) there. dx may be null. With beta
// (the forward's) and no residual, y > 0 is rebuilt from x, gamma, beta and the saved
// statistics exactly as batch_norm_relu_forward_train decided it, and y is not read: the
// backward then reads two activation-sized tensors where it read three. Only for statistics
// that batch_norm_relu_forward_train wrote (another library's arithmetic differs).
void batch_norm_relu_backward(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                              const float* beta, const float* save_mean, const float* save_invstd,
                              const void* y, const void* dy, void* dx, float* dgamma, float* dbeta,
                              bool accumulate_dx, void* dresidual, bool accumulate_dresidual,
                              void* workspace, cudaStream_t s);

// Deterministic column sums: out[k] = sum over rows of y[rows, K], for bias gradients.
size_t column_sum_workspace_bytes(int64_t rows, int K);
void column_sum(DType t, const void* y, int64_t rows, int K, float* out, void* workspace,
                cudaStream_t s);

}  // namespace tb::gpu
