// Optimizer updates with PyTorch's semantics (torch.optim.SGD / Adam / AdamW, the
// single-tensor path), operation by operation, so golden tests can compare step by step.
// Element arithmetic is float like PyTorch's fp32 parameters; the per-step scalars (bias
// corrections, step size) are computed in double, as Python computes them.
#include <cmath>

#include "ops/ref/ref_kernels.h"

namespace tb::ref {
namespace {

// torch.lerp's formula, which switches form at weight 0.5 to stay accurate near both ends.
float lerp(float start, float end, float weight) {
  return weight < 0.5f ? start + weight * (end - start) : end - (end - start) * (1.0f - weight);
}

}  // namespace

void sgd_update(const SgdUpdateParams& p, float* param, const float* grad, float* momentum_buffer) {
  for (int64_t i = 0; i < p.n; ++i) {
    float g = grad[i];
    if (p.weight_decay != 0.0f) g += p.weight_decay * param[i];
    if (p.momentum != 0.0f) {
      // PyTorch clones g into the buffer on the first step; a zeroed buffer gives the same.
      float& buf = momentum_buffer[i];
      buf = p.momentum * buf + g;
      g = p.nesterov ? g + p.momentum * buf : buf;
    }
    param[i] -= p.lr * g;
  }
}

double clip_grad_norm(float max_norm, float* const* grads, const int64_t* sizes, size_t count) {
  double sum = 0.0;
  for (size_t t = 0; t < count; ++t)
    for (int64_t i = 0; i < sizes[t]; ++i) sum += double(grads[t][i]) * grads[t][i];
  const double norm = std::sqrt(sum);
  // As PyTorch: the factor in float, min(1, ...), applied even when it is 1. A NaN norm
  // (a NaN gradient) gives a NaN factor, and the NaN reaches the update as it would unclipped.
  const float factor = std::fmin(float(max_norm / (norm + kClipNormEpsilon)), 1.0f);
  const float f = std::isnan(norm) ? std::nanf("") : factor;
  for (size_t t = 0; t < count; ++t)
    for (int64_t i = 0; i < sizes[t]; ++i) grads[t][i] *= f;
  return norm;
}

void adam_update(const AdamUpdateParams& p, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq) {
  const double t = double(p.step);
  const double bias_correction1 = 1.0 - std::pow(double(p.beta1), t);
  const double bias_correction2 = 1.0 - std::pow(double(p.beta2), t);
  const float step_size = float(double(p.lr) / bias_correction1);
  const float bias_correction2_sqrt = float(std::sqrt(bias_correction2));
  const float decay_factor = float(1.0 - double(p.lr) * double(p.weight_decay));
  const float one_minus_beta1 = float(1.0 - double(p.beta1));
  const float one_minus_beta2 = float(1.0 - double(p.beta2));
  for (int64_t i = 0; i < p.n; ++i) {
    float g = grad[i];
    if (p.weight_decay != 0.0f) {
      if (p.decoupled_weight_decay)
        param[i] *= decay_factor;  // AdamW: p *= 1 - lr * wd, before the moments
      else
        g += p.weight_decay * param[i];  // Adam: L2 term folded into the gradient
    }
    exp_avg[i] = lerp(exp_avg[i], g, one_minus_beta1);
    exp_avg_sq[i] = p.beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g;
    const float denom = std::sqrt(exp_avg_sq[i]) / bias_correction2_sqrt + p.eps;
    param[i] += (-step_size * exp_avg[i]) / denom;  // addcdiv's order: (value * t1) / t2
  }
}

}  // namespace tb::ref
