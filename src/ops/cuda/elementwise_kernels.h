// Launchers of the elementwise and data-movement kernels (elementwise.cu). Pointers are device
// memory; `dtype` is the element type of the activation tensors; every launch goes on `stream`.
// 4-D activations of the GPU backends are channels-last (N,H,W,C) in memory while their
// shape still reads [N,C,H,W]; flat tensors ([N,F]) hold features in the graph's C,H,W order.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"
#include "ops/cuda/gpu_step_state.h"
#include "ops/dropout.h"

namespace tb::gpu {

void relu_forward(DType t, const void* x, void* y, int64_t n, cudaStream_t s);
void relu_backward(DType t, const void* y, const void* dy, void* dx, int64_t n, bool accumulate,
                   cudaStream_t s);
void add_forward(DType t, const void* a, const void* b, void* y, int64_t n, cudaStream_t s);
// dst (=|+=) src, converting between any two of fp32, bf16, fp16.
void convert_copy(DType src_t, const void* src, DType dst_t, void* dst, int64_t n, bool accumulate,
                  cudaStream_t s);
// Flatten forward: channels-last x[N,H,W,C] -> y[N, C*H*W] in C,H,W order (and dtype
// conversion); backward the reverse. accumulate adds into the destination.
void nhwc_to_flat(DType src_t, const void* src, DType dst_t, void* dst, int N, int C, int H, int W,
                  bool accumulate, cudaStream_t s);
void flat_to_nhwc(DType src_t, const void* src, DType dst_t, void* dst, int N, int C, int H, int W,
                  bool accumulate, cudaStream_t s);
// Dropout with the mask drawn per element from its index in the graph's N,C,H,W order, so
// that the mask equals the ref backend's; `hw` and `channels` describe a channels-last
// tensor (hw = 1 for flat ones). With `state`, the stream's step part comes from state->step.
void dropout_forward(DType t, const DropoutParams& p, int channels, int64_t hw, const void* x,
                     void* y, uint8_t* mask, const GpuStepState* state, cudaStream_t s);
void dropout_backward(DType t, const DropoutParams& p, const void* dy, const uint8_t* mask,
                      void* dx, bool accumulate, cudaStream_t s);
// y[m, k] += bias[k] (fp32 bias) over rows of K channels.
void add_bias(DType t, void* y, const float* bias, int64_t rows, int K, cudaStream_t s);

}  // namespace tb::gpu
