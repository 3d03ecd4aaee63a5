// Training-mode batch norm through cuDNN (the cudnn backend's own batch norm): channels-last
// activations through cudnnBatchNormalization{ForwardTraining,Backward}Ex, with the ReLU and
// the residual add fused (CUDNN_BATCHNORM_OPS_BN_ACTIVATION / BN_ADD_ACTIVATION), in cuDNN's
// persistent spatial mode by default. These are the kernels PyTorch's eager mode runs for
// channels-last batch norm.
//
// cuDNN keeps the ReLU's mask of each fused forward in a "reserve space" that its backward
// reads, so every fused layer owns one, allocated at the layer's first forward (an uncaptured
// step) and found again by the layer's save_mean buffer, which only that layer writes.
//
// A call returns false where cuDNN does not take the case (a shape or type it refuses, a
// backward it cannot express: accumulating into the residual's gradient, no dx, or a layer
// whose forward did not run here), and the backend runs its own kernels instead. Either
// backward works after either forward: both save the batch mean and 1/sqrt(var + eps).
//
// TB_CUDNN_BATCH_NORM picks, for comparisons: persistent (the default: cuDNN's persistent
// spatial mode), spatial (cuDNN's plain spatial mode) or ours (our kernels for every batch
// norm). On an H100, resnet18 b512 bf16 ran at 73.2-73.5k img/s persistent, 34.0k spatial
// and 67.6-67.9k ours; the reserve spaces cost 16 MiB there and 108 MiB on resnet50
// (docs/gpu-notes.md v10). cuDNN's forward with our backward ran no faster than ours.
#pragma once
#include <cudnn.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>

#include "core/dtype.h"
#include "ops/batchnorm.h"

namespace tb::gpu {

class CudnnBatchNorm {
 public:
  using AllocateFn = std::function<void*(size_t)>;
  using ReleaseFn = std::function<void(void*)>;
  using WorkspaceFn = std::function<void*(size_t)>;
  CudnnBatchNorm(cudnnHandle_t handle, AllocateFn allocate, ReleaseFn release,
                 WorkspaceFn workspace);
  ~CudnnBatchNorm();
  CudnnBatchNorm(const CudnnBatchNorm&) = delete;
  CudnnBatchNorm& operator=(const CudnnBatchNorm&) = delete;

  // y = relu?(bn(x) (+ residual)); residual only with relu. False: run your own kernels.
  bool forward_train(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                     const float* beta, const void* residual, bool relu, void* y,
                     float* running_mean, float* running_var, float* save_mean,
                     float* save_invstd);
  // The backward of forward_train's op for the layer whose statistics are at save_mean; y is
  // the forward's output (with relu), dres the residual's gradient (written, not added).
  // False: run your own kernels.
  bool backward(DType t, const BatchNormParams& p, const void* x, const float* gamma,
                const float* save_mean, const float* save_invstd, const void* y, const void* dy,
                void* dx, float* dgamma, float* dbeta, bool accumulate_dx, void* dres,
                bool accumulate_dres, bool relu);

  // Drops the records (and reserve spaces) of layers whose statistics lay in [base, base + bytes).
  void forget(const void* base, size_t bytes);

 private:
  // Descriptors of one activation shape (NHWC, H = spatial, W = 1) and its per-channel tensors.
  // What cuDNN said for one shape and ops value, asked once: a step that is not captured
  // (--no-graph) runs this code every time.
  struct Sizes {
    bool forward_known = false, backward_known = false, refused = false;
    size_t forward_workspace = 0, reserve = 0, backward_workspace = 0;
  };
  struct Shape {
    cudnnTensorDescriptor_t x = nullptr, channel = nullptr;
    Sizes sizes[3];  // by cudnnBatchNormOps_t
  };
  using ShapeKey = std::tuple<int, int, int, int>;  // dtype, N, C, spatial
  Shape& shape(DType t, const BatchNormParams& p);
  // What a layer's forward ran: the ops, its beta (cuDNN's fused backward reads it) and its
  // reserve space.
  struct Layer {
    int ops = -1;  // none yet
    const float* beta = nullptr;
    void* reserve = nullptr;
    size_t reserve_bytes = 0;
  };
  void* reserve_for(Layer& layer, size_t bytes);

  cudnnHandle_t handle_;
  AllocateFn allocate_;
  ReleaseFn release_;
  WorkspaceFn workspace_;
  std::string setting_;
  int mode_ = 0;  // cudnnBatchNormMode_t
  cudnnActivationDescriptor_t relu_ = nullptr;
  std::map<ShapeKey, Shape> shapes_;
  std::map<const void*, Layer> layers_;  // by save_mean
};

}  // namespace tb::gpu
