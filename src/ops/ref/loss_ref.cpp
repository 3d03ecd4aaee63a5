// Softmax cross-entropy with label smoothing. Sums are in double and the row maximum is
// subtracted before exp(), so large logits neither overflow nor lose the small classes.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/ref/ref_kernels.h"

namespace tb::ref {
namespace {

void check_label(const CrossEntropyParams& p, int n, int32_t label) {
  TB_CHECK(label >= 0 && label < p.classes, "cross-entropy: label {} of item {} is outside [0, {})",
           label, n, p.classes);
}

// The smoothed target of class j for an item labelled `label`.
double target(const CrossEntropyParams& p, int32_t label, int j) {
  const double eps = p.label_smoothing;
  return (j == label ? 1.0 - eps : 0.0) + eps / p.classes;
}

}  // namespace

template <class T>
void cross_entropy_forward(const CrossEntropyParams& p, const T* logits, const int32_t* labels,
                           T* probs, T* losses) {
  for (int n = 0; n < p.N; ++n) {
    check_label(p, n, labels[n]);
    const T* row = logits + int64_t(n) * p.classes;
    double max = double(row[0]);
    for (int j = 1; j < p.classes; ++j) max = std::max(max, double(row[j]));
    double sum = 0;
    for (int j = 0; j < p.classes; ++j) sum += std::exp(double(row[j]) - max);
    const double log_sum = std::log(sum);
    double loss = 0;
    for (int j = 0; j < p.classes; ++j) {
      const double log_prob = double(row[j]) - max - log_sum;
      probs[int64_t(n) * p.classes + j] = T(std::exp(log_prob));
      loss -= target(p, labels[n], j) * log_prob;
    }
    losses[n] = T(loss);
  }
}

template <class T>
void cross_entropy_backward(const CrossEntropyParams& p, const T* probs, const int32_t* labels,
                            T* dlogits) {
  const double inv_n = 1.0 / p.N;
  for (int n = 0; n < p.N; ++n) {
    check_label(p, n, labels[n]);
    for (int j = 0; j < p.classes; ++j) {
      const int64_t i = int64_t(n) * p.classes + j;
      dlogits[i] = T((double(probs[i]) - target(p, labels[n], j)) * inv_n);
    }
  }
}

#define TB_INSTANTIATE(T)                                                                         \
  template void cross_entropy_forward<T>(const CrossEntropyParams&, const T*, const int32_t*, T*, \
                                         T*);                                                     \
  template void cross_entropy_backward<T>(const CrossEntropyParams&, const T*, const int32_t*, T*);
TB_INSTANTIATE(float)
TB_INSTANTIATE(double)
#undef TB_INSTANTIATE

}  // namespace tb::ref
