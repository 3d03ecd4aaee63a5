#include "ops/cudnn/cudnn_pool_activation.h"

#include <fmt/format.h>

#include <cstdio>
#include <limits>

#include "ops/cudnn/cudnn_check.h"
#include "ops/cudnn/cudnn_types.h"

namespace tb::gpu {

CudnnPoolActivation::CudnnPoolActivation(cudnnHandle_t handle) : handle_(handle) {
  TB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_));
  TB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_));
  TB_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&pool_));
  TB_CUDNN_CHECK(cudnnCreateActivationDescriptor(&relu_));
  TB_CUDNN_CHECK(
      cudnnSetActivationDescriptor(relu_, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
}

CudnnPoolActivation::~CudnnPoolActivation() {
  cudnnDestroyActivationDescriptor(relu_);
  cudnnDestroyPoolingDescriptor(pool_);
  cudnnDestroyTensorDescriptor(y_);
  cudnnDestroyTensorDescriptor(x_);
}

bool CudnnPoolActivation::accepted(cudnnStatus_t status, Op op, DType t, const char* call) {
  if (status == CUDNN_STATUS_SUCCESS) return true;
  if (status == CUDNN_STATUS_NOT_SUPPORTED || status == CUDNN_STATUS_BAD_PARAM) {
    // Said once per (op, type), so that a run shows which of its ops left cuDNN.
    if (refused_.insert({op, int(t)}).second)
      fmt::print(stderr, "cudnn: {} refused {} ({}); the backend's own kernel runs it\n", call,
                 dtype_name(t), cudnnGetErrorString(status));
    return false;
  }
  cudnn_fail(status, call, __FILE__, __LINE__);
}

bool CudnnPoolActivation::set_flat(DType t, int64_t n) {
  if (n <= 0 || n > std::numeric_limits<int>::max()) return false;
  // Elementwise: any shape with n elements; one row of n.
  TB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_, CUDNN_TENSOR_NCHW, cudnn_type(t), 1, 1, 1, int(n)));
  return true;
}

bool CudnnPoolActivation::set_pool(DType t, bool max, const CudnnPoolShape& s) {
  const cudnnDataType_t dt = cudnn_type(t);
  TB_CUDNN_CHECK(cudnnSetPooling2dDescriptor(
      pool_, max ? CUDNN_POOLING_MAX_DETERMINISTIC : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING,
      CUDNN_PROPAGATE_NAN, s.window_h, s.window_w, s.pad, s.pad, s.stride, s.stride));
  TB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_, CUDNN_TENSOR_NHWC, dt, s.N, s.C, s.H, s.W));
  int n = 0, c = 0, p = 0, q = 0;
  TB_CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(pool_, x_, &n, &c, &p, &q));
  if (n != s.N || c != s.C || p != s.P || q != s.Q) return false;
  TB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_, CUDNN_TENSOR_NHWC, dt, s.N, s.C, s.P, s.Q));
  return true;
}

bool CudnnPoolActivation::relu_forward(DType t, const void* x, void* y, int64_t n) {
  if (refused(kReluForward, t) || !set_flat(t, n)) return false;
  const float one = 1.0f, zero = 0.0f;
  return accepted(cudnnActivationForward(handle_, relu_, &one, x_, x, &zero, x_, y),
                  kReluForward, t, "cudnnActivationForward");
}

bool CudnnPoolActivation::relu_backward(DType t, const void* y, const void* dy, void* dx,
                                        int64_t n, bool accumulate) {
  if (refused(kReluBackward, t) || !set_flat(t, n)) return false;
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  // The forward's input is not kept; y stands in for it: y > 0 exactly where x > 0.
  return accepted(
      cudnnActivationBackward(handle_, relu_, &one, x_, y, x_, dy, x_, y, &beta, x_, dx),
      kReluBackward, t, "cudnnActivationBackward");
}

bool CudnnPoolActivation::pool_forward(DType t, bool max, const CudnnPoolShape& s,
                                       const void* x, void* y) {
  if (refused(kPoolForward, t) || !set_pool(t, max, s)) return false;
  const float one = 1.0f, zero = 0.0f;
  return accepted(cudnnPoolingForward(handle_, pool_, &one, x_, x, &zero, y_, y), kPoolForward,
                  t, "cudnnPoolingForward");
}

bool CudnnPoolActivation::avg_pool_backward(DType t, const CudnnPoolShape& s, const void* dy,
                                            void* dx, bool accumulate) {
  if (refused(kPoolBackward, t) || !set_pool(t, false, s)) return false;
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  // Average pooling's gradient reads neither the forward's input nor its output; cuDNN's
  // signature asks for both, so dy and dx stand in (same shapes as y and x).
  return accepted(cudnnPoolingBackward(handle_, pool_, &one, y_, dy, y_, dy, x_, dx, &beta, x_, dx),
                  kPoolBackward, t, "cudnnPoolingBackward");
}

}  // namespace tb::gpu
