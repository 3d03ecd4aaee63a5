// Launchers of the pooling kernels (pool.cu) over channels-last activations x[N,H,W,C].
// Semantics are the ref backend's (ops/pool.h): windows clipped to the image, the first
// maximum (rows, then columns, strict >) takes the gradient, average pooling divides by the
// full window. Backward passes gather per input element, so no two threads write one value.
#pragma once
#include <cuda_runtime_api.h>

#include "core/dtype.h"
#include "ops/pool.h"

namespace tb::gpu {

void max_pool2d_forward(DType t, const Pool2dParams& p, const void* x, void* y, cudaStream_t s);
void max_pool2d_backward(DType t, const Pool2dParams& p, const void* x, const void* dy, void* dx,
                         bool accumulate, cudaStream_t s);
void avg_pool2d_forward(DType t, const Pool2dParams& p, const void* x, void* y, cudaStream_t s);
void avg_pool2d_backward(DType t, const Pool2dParams& p, const void* dy, void* dx, bool accumulate,
                         cudaStream_t s);
// x[N,H,W,C] -> y[N,C]
void global_avg_pool_forward(DType t, const GlobalPoolParams& p, const void* x, void* y,
                             cudaStream_t s);
void global_avg_pool_backward(DType t, const GlobalPoolParams& p, const void* dy, void* dx,
                              bool accumulate, cudaStream_t s);

}  // namespace tb::gpu
