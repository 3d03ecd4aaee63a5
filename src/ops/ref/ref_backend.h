// The `ref` backend: the plain-loop kernels of ref_kernels.h behind the Backend interface,
// in fp32 and fp64 (the optimizer updates in fp32 only). It is the oracle: correct and
// readable first, single-threaded, synchronous, host memory.
#pragma once
#include <memory>
#include <string>

#include "ops/backend.h"

namespace tb {

class RefBackend final : public Backend {
 public:
  std::string name() const override { return "ref"; }
  Device device() const override { return Device{DeviceKind::cpu, 0}; }
  bool supports(OpKind op, DType dtype) const override;

  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void fill_zero(const Tensor& t) override;

  void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& y) override;
  void conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& dy,
                       const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                       bool accumulate_dx) override;
  void linear_forward(const LinearParams& p, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& y) override;
  void linear_backward(const LinearParams& p, const Tensor& x, const Tensor& w, const Tensor& dy,
                       const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                       bool accumulate_dx) override;
  void relu_forward(const Tensor& x, const Tensor& y) override;
  void relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx,
                     bool accumulate_dx) override;
  void max_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) override;
  void max_pool2d_backward(const Pool2dParams& p, const Tensor& x, const Tensor& y,
                           const Tensor& dy, const Tensor& dx, bool accumulate_dx) override;
  void avg_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) override;
  void avg_pool2d_backward(const Pool2dParams& p, const Tensor& dy, const Tensor& dx,
                           bool accumulate_dx) override;
  void global_avg_pool_forward(const GlobalPoolParams& p, const Tensor& x,
                               const Tensor& y) override;
  void global_avg_pool_backward(const GlobalPoolParams& p, const Tensor& dy, const Tensor& dx,
                                bool accumulate_dx) override;
  void batch_norm_forward_train(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                                const Tensor& beta, const Tensor& y, const Tensor& running_mean,
                                const Tensor& running_var, const Tensor& save_mean,
                                const Tensor& save_invstd) override;
  void batch_norm_forward_eval(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                               const Tensor& beta, const Tensor& running_mean,
                               const Tensor& running_var, const Tensor& y) override;
  void batch_norm_backward(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                           const Tensor& save_mean, const Tensor& save_invstd, const Tensor& dy,
                           const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                           bool accumulate_dx) override;
  void dropout_forward(const DropoutParams& p, const Tensor& x, const Tensor& y,
                       const Tensor& mask) override;
  void dropout_backward(const DropoutParams& p, const Tensor& dy, const Tensor& mask,
                        const Tensor& dx, bool accumulate_dx) override;
  void add_forward(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void copy(const Tensor& src, const Tensor& dst, bool accumulate) override;
  void cross_entropy_forward(const CrossEntropyParams& p, const Tensor& logits,
                             const Tensor& labels, const Tensor& probs,
                             const Tensor& losses) override;
  void cross_entropy_backward(const CrossEntropyParams& p, const Tensor& probs,
                              const Tensor& labels, const Tensor& dlogits) override;
  void sgd_update(const SgdUpdateParams& p, const Tensor& param, const Tensor& grad,
                  const Tensor& momentum_buffer) override;
  void adam_update(const AdamUpdateParams& p, const Tensor& param, const Tensor& grad,
                   const Tensor& exp_avg, const Tensor& exp_avg_sq) override;
};

std::unique_ptr<Backend> make_ref_backend();

}  // namespace tb
