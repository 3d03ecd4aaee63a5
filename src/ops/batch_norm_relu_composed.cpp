// The fused batch-norm + (residual add +) ReLU ops, run as the separate ops they replace.
// Backends without a fused kernel (ref, cpu, onednn) use these, so their results are those of
// the unfused graph by construction; the add and ReLU run in place, which every backend's
// elementwise ops allow (element i is read before element i is written, by the same thread).
#include "ops/backend.h"

namespace tb {

void Backend::batch_norm_relu_forward_train(const BatchNormParams& p, const Tensor& x,
                                            const Tensor& gamma, const Tensor& beta,
                                            const Tensor& residual, const Tensor& y,
                                            const Tensor& running_mean,
                                            const Tensor& running_var, const Tensor& save_mean,
                                            const Tensor& save_invstd) {
  batch_norm_forward_train(p, x, gamma, beta, y, running_mean, running_var, save_mean,
                           save_invstd);
  if (residual.defined()) add_forward(y, residual, y);
  relu_forward(y, y);
}

void Backend::batch_norm_relu_forward_eval(const BatchNormParams& p, const Tensor& x,
                                           const Tensor& gamma, const Tensor& beta,
                                           const Tensor& residual, const Tensor& running_mean,
                                           const Tensor& running_var, const Tensor& y) {
  batch_norm_forward_eval(p, x, gamma, beta, running_mean, running_var, y);
  if (residual.defined()) add_forward(y, residual, y);
  relu_forward(y, y);
}

void Backend::batch_norm_relu_backward(const BatchNormParams& p, const Tensor& x,
                                       const Tensor& gamma, const Tensor& /*beta*/,
                                       const Tensor& save_mean, const Tensor& save_invstd,
                                       const Tensor& y, const Tensor& dy, const Tensor& dx,
                                       const Tensor& dgamma, const Tensor& dbeta,
                                       const Tensor& dresidual, bool accumulate_dx,
                                       bool accumulate_dresidual) {
  relu_backward(y, dy, dy, false);
  if (dresidual.defined()) copy(dy, dresidual, accumulate_dresidual);
  batch_norm_backward(p, x, gamma, save_mean, save_invstd, dy, dx, dgamma, dbeta, accumulate_dx);
}

}  // namespace tb
