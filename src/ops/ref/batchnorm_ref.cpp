// Batch normalisation over N and the spatial positions of each channel, PyTorch's semantics.
// Statistics and gradient sums are accumulated in double whatever T is: a channel can hold
// N*H*W = 64*32*32 = 65536 values, enough for float sums to lose digits the oracle must keep.
#include <cmath>

#include "core/error.h"
#include "ops/ref/ref_kernels.h"

namespace tb::ref {
namespace {

// Calls f(value index) for every element of channel c of x[N,C,spatial].
template <class F>
void for_channel(const BatchNormParams& p, int c, F&& f) {
  for (int n = 0; n < p.N; ++n) {
    const int64_t base = (int64_t(n) * p.C + c) * p.spatial;
    for (int64_t s = 0; s < p.spatial; ++s) f(base + s);
  }
}

}  // namespace

template <class T>
void batch_norm_forward_train(const BatchNormParams& p, const T* x, const T* gamma, const T* beta,
                              T* y, T* running_mean, T* running_var, T* save_mean, T* save_invstd) {
  const int64_t m = int64_t(p.N) * p.spatial;
  // PyTorch refuses this too: the unbiased variance would divide by zero.
  TB_CHECK(m > 1, "batch norm in training needs more than 1 value per channel, got N={} x {}",
           p.N, p.spatial);
  for (int c = 0; c < p.C; ++c) {
    double sum = 0;
    for_channel(p, c, [&](int64_t i) { sum += double(x[i]); });
    const double mean = sum / double(m);
    double sq = 0;  // two passes: sum((x - mean)^2) does not cancel like sum(x^2) - m*mean^2
    for_channel(p, c, [&](int64_t i) {
      const double d = double(x[i]) - mean;
      sq += d * d;
    });
    const double var = sq / double(m);
    const double invstd = 1.0 / std::sqrt(var + p.eps);
    save_mean[c] = T(mean);
    save_invstd[c] = T(invstd);
    const double unbiased = var * double(m) / double(m - 1);
    running_mean[c] = T((1.0 - p.momentum) * double(running_mean[c]) + p.momentum * mean);
    running_var[c] = T((1.0 - p.momentum) * double(running_var[c]) + p.momentum * unbiased);

    const double scale = double(gamma[c]) * invstd, shift = double(beta[c]);
    for_channel(p, c, [&](int64_t i) { y[i] = T((double(x[i]) - mean) * scale + shift); });
  }
}

template <class T>
void batch_norm_forward_eval(const BatchNormParams& p, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T* y) {
  for (int c = 0; c < p.C; ++c) {
    const double mean = double(running_mean[c]);
    const double scale = double(gamma[c]) / std::sqrt(double(running_var[c]) + p.eps);
    const double shift = double(beta[c]);
    for_channel(p, c, [&](int64_t i) { y[i] = T((double(x[i]) - mean) * scale + shift); });
  }
}

// With xhat = (x - mean) * invstd and m values per channel:
//   dbeta = sum(dy), dgamma = sum(dy * xhat),
//   dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma)
// (the batch statistics depend on every item, hence the two sums in dx).
template <class T>
void batch_norm_backward(const BatchNormParams& p, const T* x, const T* gamma, const T* save_mean,
                         const T* save_invstd, const T* dy, T* dx, T* dgamma, T* dbeta,
                         bool accumulate_dx) {
  const double m = double(int64_t(p.N) * p.spatial);
  for (int c = 0; c < p.C; ++c) {
    const double mean = double(save_mean[c]), invstd = double(save_invstd[c]);
    double sum_dy = 0, sum_dy_xhat = 0;
    for_channel(p, c, [&](int64_t i) {
      sum_dy += double(dy[i]);
      sum_dy_xhat += double(dy[i]) * (double(x[i]) - mean) * invstd;
    });
    dbeta[c] = T(sum_dy);
    dgamma[c] = T(sum_dy_xhat);
    if (!dx) continue;
    const double k = double(gamma[c]) * invstd / m;
    for_channel(p, c, [&](int64_t i) {
      const double xhat = (double(x[i]) - mean) * invstd;
      const T g = T(k * (m * double(dy[i]) - sum_dy - xhat * sum_dy_xhat));
      dx[i] = accumulate_dx ? dx[i] + g : g;
    });
  }
}

#define TB_INSTANTIATE(T)                                                                         \
  template void batch_norm_forward_train<T>(const BatchNormParams&, const T*, const T*, const T*, \
                                            T*, T*, T*, T*, T*);                                  \
  template void batch_norm_forward_eval<T>(const BatchNormParams&, const T*, const T*, const T*,  \
                                           const T*, const T*, T*);                               \
  template void batch_norm_backward<T>(const BatchNormParams&, const T*, const T*, const T*,      \
                                       const T*, const T*, T*, T*, T*, bool);
TB_INSTANTIATE(float)
TB_INSTANTIATE(double)
#undef TB_INSTANTIATE

}  // namespace tb::ref
