// The cudnn backend's route for convolutions with few input channels (resnet18's stem: 3
// channels, 3x3, 64 filters): cuDNN runs them without tensor cores, 160 us forward and 175 us
// filter gradient at batch 512 on an H100, 5% of resnet18's step (gpu-notes v16/v18). Here
// the forward and the filter gradient are matrix products on cuBLASLt's tensor-core kernels:
//   forward   y[pixels, K]  = cols[pixels, Kp] * rows[K, Kp]^T
//   wgrad     drows[K, Kp]  = dy[pixels, K]^T * cols[pixels, Kp]      (fp32, summed over chunks)
// with cols the im2col rows of the input (small_channel_kernels.h), built in chunks of images
// in the backend's workspace (at most kChunkBytes, so the route adds little to the peak), and
// built again for the filter gradient rather than kept. The data gradient (never needed for
// a stem) stays with cuDNN.
//
// TB_CUDNN_SMALL_C=gemm (the default), gemm:IMAGES (chunks of that many images, for tests)
// or cudnn (cuDNN for every pass, for comparisons).
//
// The same product serves the forward pass of a 1x1 convolution with stride > 1 (resnet's
// downsampling shortcuts), whose direct cuDNN kernel (implicit_convolve_sgemm) took ~130 us
// at b512 on an H100 for 2 GFLOP (gpu-notes v16): there the rows are the strided pixels,
// gathered, and the filter rows are the backend's K,C weight copy. Its data and filter
// gradients stay with cuDNN, whose kernels for them are tensor-core ones.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>

#include "core/dtype.h"
#include "ops/cuda/conv_kernels.h"
#include "ops/cudnn/cublaslt_linear.h"

namespace tb::gpu {

class SmallChannelConv {
 public:
  using WorkspaceFn = std::function<void*(size_t)>;
  SmallChannelConv(cudaStream_t stream, WorkspaceFn workspace);

  // Whether this route takes g's forward and filter gradient in dtype t.
  bool takes(DType t, const ConvGeometry& g) const;
  // y (dtype t, N,P,Q,K) from x (N,H,W,C) and the fp32 K,C,R,S weights. (The bias stays with
  // the caller: cuBLASLt's BIAS epilogue takes no fp32 bias with this route's 16-bit y.)
  void forward(DType t, const ConvGeometry& g, const void* x, const float* w, void* y);
  // dw (fp32 K,C,R,S, written) from x and dy. (The bias gradient stays with the caller:
  // cuBLASLt's BGRADB epilogue cannot split this product's long k, the pixels, and made
  // alexnet_lite's and cifar_cnn's b64 steps 4% slower on an H100; gpu-notes v19.)
  void backward_filter(DType t, const ConvGeometry& g, const void* x, const void* dy, float* dw);

  // Whether g is a 1x1 convolution with stride > 1, no padding and channel counts that keep
  // rows whole 16-byte vectors, in a 16-bit dtype t: forward_strided_pointwise() takes it.
  static bool takes_strided_pointwise(DType t, const ConvGeometry& g);
  // y (N,P,Q,K) from x (N,H,W,C) and w_rows (K,C in dtype t), in chunks of `chunk_images`
  // images (0: at most kChunkBytes of gathered pixels each).
  void forward_strided_pointwise(DType t, const ConvGeometry& g, const void* x, const void* w_rows,
                                 void* y, int chunk_images);

  static constexpr size_t kChunkBytes = size_t(8) << 20;

 private:
  int chunk_images(DType t, const ConvGeometry& g) const;
  // The workspace as [front bytes][cols bytes][scratch bytes for cuBLASLt], reserved whole
  // before anything is written to it: growing it later would lose what was written.
  char* reserve(size_t front, size_t cols, size_t scratch);

  cudaStream_t stream_;
  WorkspaceFn workspace_;
  CublasLtLinear gemm_;
  size_t scratch_offset_ = 0;  // where cuBLASLt's scratch starts in the workspace
  bool enabled_ = true;
  int forced_chunk_ = 0;  // images per chunk from TB_CUDNN_SMALL_C=gemm:IMAGES; 0: by size
};

}  // namespace tb::gpu
