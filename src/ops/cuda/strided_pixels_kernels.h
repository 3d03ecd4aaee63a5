// Moving every stride-th pixel of a channels-last activation to and from a dense tensor.
// A 1x1 convolution with stride s and no padding reads only the pixels (s*p, s*q): gathering
// them first turns it into a stride-1 1x1 convolution (one dense GEMM), which vendor
// libraries run several times faster than their strided 1x1 kernels (docs/gpu-notes.md).
#pragma once
#include <cuda_runtime_api.h>

#include "core/dtype.h"

namespace tb::gpu {

// Output size of the gather along one axis: ceil(extent / stride).
inline int strided_extent(int extent, int stride) { return (extent - 1) / stride + 1; }

// xs[n][p][q][:] <- x[n][p*stride][q*stride][:] (x is N,H,W,C; xs is N,P,Q,C; dtype t).
void gather_strided_pixels(DType t, const void* x, int N, int H, int W, int C, int stride,
                           void* xs, cudaStream_t s);
// The transpose: dx[n][p*stride][q*stride][:] (=|+=) dxs[n][p][q][:]. Without accumulate
// every other pixel of dx is zeroed; with it, only the strided pixels are touched.
void scatter_strided_pixels(DType t, const void* dxs, int N, int H, int W, int C, int stride,
                            void* dx, bool accumulate, cudaStream_t s);

}  // namespace tb::gpu
