#include "ops/cudnn/cudnn_batch_norm.h"

#include <cuda_runtime_api.h>

#include <cstdlib>

#include "core/env_choice.h"
#include "core/error.h"
#include "ops/cudnn/cudnn_check.h"
#include "ops/cudnn/cudnn_types.h"

// cuDNN 9 marks its batch-norm entry points deprecated in favour of the graph API, whose
// batch-norm patterns are not offered on every GPU and version this runs on; the legacy
// calls remain the ones PyTorch uses. Their deprecation warnings are expected here only.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace tb::gpu {
namespace {

cudnnBatchNormOps_t ops_for(bool relu, bool residual) {
  if (!relu) return CUDNN_BATCHNORM_OPS_BN;
  return residual ? CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION : CUDNN_BATCHNORM_OPS_BN_ACTIVATION;
}

// A status that means "not this case" (fall back), as opposed to an error.
bool refusal(cudnnStatus_t s) {
  return s == CUDNN_STATUS_NOT_SUPPORTED || s == CUDNN_STATUS_BAD_PARAM ||
         s == CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH;
}

}  // namespace

CudnnBatchNorm::CudnnBatchNorm(cudnnHandle_t handle, AllocateFn allocate, ReleaseFn release,
                               WorkspaceFn workspace)
    : handle_(handle),
      allocate_(std::move(allocate)),
      release_(std::move(release)),
      workspace_(std::move(workspace)) {
  setting_ = env_choice("TB_CUDNN_BATCH_NORM", {"persistent", "spatial", "ours"});
  mode_ = setting_ == "spatial" ? CUDNN_BATCHNORM_SPATIAL : CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
  TB_CUDNN_CHECK(cudnnCreateActivationDescriptor(&relu_));
  TB_CUDNN_CHECK(cudnnSetActivationDescriptor(relu_, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
}

CudnnBatchNorm::~CudnnBatchNorm() {
  for (auto& [key, s] : shapes_) {
    cudnnDestroyTensorDescriptor(s.x);
    cudnnDestroyTensorDescriptor(s.channel);
  }
  cudnnDestroyActivationDescriptor(relu_);
  // The backend is being destroyed: its records of these go with it, so only the memory is
  // freed here (cudaFree waits for the device's work).
  for (auto& [key, layer] : layers_)
    if (layer.reserve) cudaFree(layer.reserve);
}

CudnnBatchNorm::Shape& CudnnBatchNorm::shape(DType t, const BatchNormParams& p) {
  const ShapeKey key{int(t), p.N, p.C, p.spatial};
  auto it = shapes_.find(key);
  if (it != shapes_.end()) return it->second;
  Shape s;
  TB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&s.x));
  TB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(s.x, CUDNN_TENSOR_NHWC, cudnn_type(t), p.N, p.C,
                                            p.spatial, 1));
  TB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&s.channel));
  TB_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(s.channel, s.x, cudnnBatchNormMode_t(mode_)));
  return shapes_[key] = s;
}

void* CudnnBatchNorm::reserve_for(Layer& layer, size_t bytes) {
  if (bytes == 0) return nullptr;
  if (layer.reserve_bytes < bytes) {
    if (layer.reserve) release_(layer.reserve);
    layer.reserve = nullptr;
    layer.reserve = allocate_(bytes);
    layer.reserve_bytes = bytes;
  }
  return layer.reserve;
}

void CudnnBatchNorm::forget(const void* base, size_t bytes) {
  const char* lo = static_cast<const char*>(base);
  for (auto it = layers_.begin(); it != layers_.end();) {
    const char* key = static_cast<const char*>(it->first);
    if (key >= lo && key < lo + bytes) {
      if (it->second.reserve) release_(it->second.reserve);
      it = layers_.erase(it);
    } else {
      ++it;
    }
  }
}

bool CudnnBatchNorm::forward_train(DType t, const BatchNormParams& p, const void* x,
                                   const float* gamma, const float* beta, const void* residual,
                                   bool relu, void* y, float* running_mean, float* running_var,
                                   float* save_mean, float* save_invstd) {
  if (setting_ == "ours" || p.eps < CUDNN_BN_MIN_EPSILON) return false;
  const cudnnBatchNormOps_t ops = ops_for(relu, residual != nullptr);
  Shape& s = shape(t, p);
  Sizes& sizes = s.sizes[ops];
  if (sizes.refused) return false;
  const cudnnBatchNormMode_t mode = cudnnBatchNormMode_t(mode_);
  cudnnActivationDescriptor_t act = relu ? relu_ : nullptr;
  cudnnTensorDescriptor_t z = residual ? s.x : nullptr;
  if (!sizes.forward_known) {
    cudnnStatus_t st = cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
        handle_, mode, ops, s.x, z, s.x, s.channel, act, &sizes.forward_workspace);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(handle_, mode, ops, act, s.x,
                                                                &sizes.reserve);
    sizes.refused = refusal(st);
    if (sizes.refused) return false;
    TB_CUDNN_CHECK(st);
    sizes.forward_known = true;
  }
  Layer& layer = layers_[save_mean];
  void* reserve = reserve_for(layer, sizes.reserve);
  void* ws = sizes.forward_workspace ? workspace_(sizes.forward_workspace) : nullptr;
  const float one = 1.0f, zero = 0.0f;
  const cudnnStatus_t st = cudnnBatchNormalizationForwardTrainingEx(
      handle_, mode, ops, &one, &zero, s.x, x, z, residual, s.x, y, s.channel, gamma, beta,
      p.momentum, running_mean, running_var, p.eps, save_mean, save_invstd, act, ws,
      sizes.forward_workspace, reserve, sizes.reserve);
  sizes.refused = refusal(st);
  if (sizes.refused) {
    forget(save_mean, 1);  // our kernels run this layer from now on
    return false;
  }
  TB_CUDNN_CHECK(st);
  layer.ops = int(ops);
  layer.beta = beta;
  return true;
}

bool CudnnBatchNorm::backward(DType t, const BatchNormParams& p, const void* x,
                              const float* gamma, const float* save_mean,
                              const float* save_invstd, const void* y, const void* dy, void* dx,
                              float* dgamma, float* dbeta, bool accumulate_dx, void* dres,
                              bool accumulate_dres, bool relu) {
  auto it = layers_.find(save_mean);
  if (it == layers_.end() || !dx) return false;
  const Layer& layer = it->second;
  const cudnnBatchNormOps_t ops = ops_for(relu, dres != nullptr);
  // The residual's gradient can only be written, and the forward must have run these ops.
  if (int(ops) != layer.ops || (dres && accumulate_dres)) return false;
  Shape& s = shape(t, p);
  Sizes& sizes = s.sizes[ops];
  const cudnnBatchNormMode_t mode = cudnnBatchNormMode_t(mode_);
  cudnnActivationDescriptor_t act = relu ? relu_ : nullptr;
  cudnnTensorDescriptor_t ydesc = relu ? s.x : nullptr, dz = dres ? s.x : nullptr;
  if (!sizes.backward_known) {
    const cudnnStatus_t st = cudnnGetBatchNormalizationBackwardExWorkspaceSize(
        handle_, mode, ops, s.x, ydesc, s.x, dz, s.x, s.channel, act, &sizes.backward_workspace);
    if (refusal(st)) return false;
    TB_CUDNN_CHECK(st);
    sizes.backward_known = true;
  }
  const size_t ws_bytes = sizes.backward_workspace;
  void* ws = ws_bytes ? workspace_(ws_bytes) : nullptr;
  const float one = 1.0f, zero = 0.0f;
  const float* data_beta = accumulate_dx ? &one : &zero;
  const cudnnStatus_t st = cudnnBatchNormalizationBackwardEx(
      handle_, mode, ops, &one, data_beta, &one, &zero, s.x, x, ydesc, relu ? y : nullptr, s.x, dy,
      dz, dres, s.x, dx, s.channel, gamma, layer.beta, dgamma, dbeta, p.eps, save_mean,
      save_invstd, act, ws, ws_bytes, layer.reserve, layer.reserve_bytes);
  if (refusal(st)) return false;
  TB_CUDNN_CHECK(st);
  return true;
}

}  // namespace tb::gpu
