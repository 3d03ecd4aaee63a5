// Pooling and ReLU through cuDNN for the cudnn backend (cudnnPoolingForward/Backward,
// cudnnActivationForward/Backward), channels-last like every activation of the GPU backends.
//
// Each call returns false where cuDNN refuses the case (a type or shape it does not take),
// and the backend runs its own kernels instead; a refused (op, type) is not asked again.
// Max pooling's backward is not here: ref passes the gradient to the first maximum of each
// window, and cuDNN does not promise which of several equal maxima gets it (ties are common
// in 16-bit types), so the backend's own kernel, which finds the first maximum again from x,
// keeps the ref's semantics after cuDNN's forward.
#pragma once
#include <cudnn.h>

#include <cstdint>
#include <set>
#include <utility>

#include "core/dtype.h"

namespace tb::gpu {

struct CudnnPoolShape {
  int N, C, H, W;       // input, channels-last
  int window_h, window_w, stride, pad;
  int P, Q;             // output height and width
};

class CudnnPoolActivation {
 public:
  explicit CudnnPoolActivation(cudnnHandle_t handle);
  ~CudnnPoolActivation();
  CudnnPoolActivation(const CudnnPoolActivation&) = delete;
  CudnnPoolActivation& operator=(const CudnnPoolActivation&) = delete;

  // y = max(x, 0) over n elements.
  bool relu_forward(DType t, const void* x, void* y, int64_t n);
  // dx (=|+=) dy where y > 0, else 0 (y is the forward's output).
  bool relu_backward(DType t, const void* y, const void* dy, void* dx, int64_t n,
                     bool accumulate);
  // Max or average (padded cells counted, as ref does) pooling forward.
  bool pool_forward(DType t, bool max, const CudnnPoolShape& s, const void* x, void* y);
  // Average pooling's data gradient, dx (=|+=).
  bool avg_pool_backward(DType t, const CudnnPoolShape& s, const void* dy, void* dx,
                         bool accumulate);

 private:
  enum Op { kReluForward, kReluBackward, kPoolForward, kPoolBackward };
  // Sets the shared descriptors for a flat tensor of n elements; false if n is too large.
  bool set_flat(DType t, int64_t n);
  // Sets the pooling and the x / y descriptors; false if cuDNN's output size differs.
  bool set_pool(DType t, bool max, const CudnnPoolShape& s);
  // SUCCESS: true. A refusal (not supported, bad parameter): remembered, false. Else throws.
  bool accepted(cudnnStatus_t status, Op op, DType t, const char* call);
  bool refused(Op op, DType t) const { return refused_.count({op, int(t)}) != 0; }

  cudnnHandle_t handle_;
  cudnnTensorDescriptor_t x_ = nullptr, y_ = nullptr;
  cudnnPoolingDescriptor_t pool_ = nullptr;
  cudnnActivationDescriptor_t relu_ = nullptr;
  std::set<std::pair<int, int>> refused_;
};

}  // namespace tb::gpu
