// Softmax cross-entropy and the optimizer updates. Cross-entropy is ref's arithmetic (double
// sums, max subtracted), one row per item, parallel over items. The updates repeat ref's
// float operations in the same order per element (PyTorch's single-tensor semantics), so they
// match ref bit for bit; they are split over the pool in static chunks.
#include <algorithm>
#include <cmath>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/cpu_op_checks.h"
#include "ops/cpu/sgd_step.h"

namespace tb {
namespace {

using cpu_ops::expect;
using cpu_ops::fptr;

void check_label(const CrossEntropyParams& p, int n, int32_t label) {
  TB_CHECK(label >= 0 && label < p.classes, "cross-entropy: label {} of item {} is outside [0, {})",
           label, n, p.classes);
}

double target(const CrossEntropyParams& p, int32_t label, int j) {
  const double eps = p.label_smoothing;
  return (j == label ? 1.0 - eps : 0.0) + eps / p.classes;
}

// torch.lerp's formula, which switches form at weight 0.5 to stay accurate near both ends.
float lerp(float start, float end, float weight) {
  return weight < 0.5f ? start + weight * (end - start) : end - (end - start) * (1.0f - weight);
}

}  // namespace

void CpuBackend::cross_entropy_forward(const CrossEntropyParams& p, const Tensor& logits,
                                       const Tensor& labels, const Tensor& probs,
                                       const Tensor& losses) {
  constexpr OpKind op = OpKind::softmax_cross_entropy;
  expect(op, "logits", logits, int64_t(p.N) * p.classes);
  expect(op, "labels", labels, p.N, DType::i32);
  expect(op, "probs", probs, int64_t(p.N) * p.classes);
  expect(op, "losses", losses, p.N);
  const float* ld = fptr(logits);
  const int32_t* lab = static_cast<const int32_t*>(labels.data);
  float *pd = fptr(probs), *loss_d = fptr(losses);
  for (int n = 0; n < p.N; ++n) check_label(p, n, lab[n]);  // before any thread starts
  cpu_ops::parallel_elements(*pool_, p.N, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      const float* row = ld + n * p.classes;
      double max = double(row[0]);
      for (int j = 1; j < p.classes; ++j) max = std::max(max, double(row[j]));
      double sum = 0;
      for (int j = 0; j < p.classes; ++j) sum += std::exp(double(row[j]) - max);
      const double log_sum = std::log(sum);
      double loss = 0;
      for (int j = 0; j < p.classes; ++j) {
        const double log_prob = double(row[j]) - max - log_sum;
        pd[n * p.classes + j] = float(std::exp(log_prob));
        loss -= target(p, lab[n], j) * log_prob;
      }
      loss_d[n] = float(loss);
    }
  });
}

void CpuBackend::cross_entropy_backward(const CrossEntropyParams& p, const Tensor& probs,
                                        const Tensor& labels, const Tensor& dlogits) {
  constexpr OpKind op = OpKind::softmax_cross_entropy;
  expect(op, "probs", probs, int64_t(p.N) * p.classes);
  expect(op, "labels", labels, p.N, DType::i32);
  expect(op, "dlogits", dlogits, int64_t(p.N) * p.classes);
  const float* pd = fptr(probs);
  const int32_t* lab = static_cast<const int32_t*>(labels.data);
  float* dd = fptr(dlogits);
  const double inv_n = 1.0 / p.N;
  for (int n = 0; n < p.N; ++n) {
    check_label(p, n, lab[n]);
    for (int j = 0; j < p.classes; ++j) {
      const int64_t i = int64_t(n) * p.classes + j;
      dd[i] = float((double(pd[i]) - target(p, lab[n], j)) * inv_n);
    }
  }
}

void CpuBackend::sgd_update(const SgdUpdateParams& p, const Tensor& param, const Tensor& grad,
                            const Tensor& momentum_buffer) {
  constexpr OpKind op = OpKind::sgd_update;
  expect(op, "param", param, p.n);
  expect(op, "grad", grad, p.n);
  float* buf = p.momentum != 0.0f ? cpu_ops::needed_ptr(op, "momentum_buffer", true,
                                                        momentum_buffer, p.n)
                                  : nullptr;
  float* w = fptr(param);
  const float* gd = fptr(grad);
  const cpu::SgdStep step{p.lr, p.weight_decay, p.momentum, p.nesterov};
  cpu_ops::parallel_elements(*pool_, p.n, [&](int64_t lo, int64_t hi) {
    cpu::sgd_step(step, w + lo, gd + lo, buf ? buf + lo : nullptr, hi - lo);
  });
}

void CpuBackend::adam_update(const AdamUpdateParams& p, const Tensor& param, const Tensor& grad,
                             const Tensor& exp_avg, const Tensor& exp_avg_sq) {
  constexpr OpKind op = OpKind::adam_update;
  TB_CHECK(p.step >= 1, "cpu adam_update: step {} (steps count from 1)", p.step);
  expect(op, "param", param, p.n);
  expect(op, "grad", grad, p.n);
  expect(op, "exp_avg", exp_avg, p.n);
  expect(op, "exp_avg_sq", exp_avg_sq, p.n);
  const double t = double(p.step);
  const double bias_correction1 = 1.0 - std::pow(double(p.beta1), t);
  const double bias_correction2 = 1.0 - std::pow(double(p.beta2), t);
  const float step_size = float(double(p.lr) / bias_correction1);
  const float bias_correction2_sqrt = float(std::sqrt(bias_correction2));
  const float decay_factor = float(1.0 - double(p.lr) * double(p.weight_decay));
  const float one_minus_beta1 = float(1.0 - double(p.beta1));
  const float one_minus_beta2 = float(1.0 - double(p.beta2));
  float *w = fptr(param), *m = fptr(exp_avg), *v = fptr(exp_avg_sq);
  const float* gd = fptr(grad);
  cpu_ops::parallel_elements(*pool_, p.n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float g = gd[i];
      if (p.weight_decay != 0.0f) {
        if (p.decoupled_weight_decay)
          w[i] *= decay_factor;
        else
          g += p.weight_decay * w[i];
      }
      m[i] = lerp(m[i], g, one_minus_beta1);
      v[i] = p.beta2 * v[i] + one_minus_beta2 * g * g;
      const float denom = std::sqrt(v[i]) / bias_correction2_sqrt + p.eps;
      w[i] += (-step_size * m[i]) / denom;
    }
  });
}

}  // namespace tb
