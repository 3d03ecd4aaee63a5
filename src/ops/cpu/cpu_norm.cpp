// Batch normalisation, parallel over channels: each channel's statistics and gradient sums
// are accumulated by one thread in a fixed order, in double like ref (a channel can hold
// 64*32*32 values), so results do not depend on the thread count.
#include <cmath>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/cpu_op_checks.h"

namespace tb {
namespace {

using cpu_ops::expect;
using cpu_ops::fptr;

// Sums of a channel's values, its images one after the other; four partial sums keep the
// adds independent (a fixed order, so still deterministic).
template <class F>
double channel_sum(const BatchNormParams& p, int64_t c, F&& term) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int n = 0; n < p.N; ++n) {
    const int64_t base = (int64_t(n) * p.C + c) * p.spatial;
    int64_t i = 0;
    for (; i + 4 <= p.spatial; i += 4) {
      s0 += term(base + i);
      s1 += term(base + i + 1);
      s2 += term(base + i + 2);
      s3 += term(base + i + 3);
    }
    for (; i < p.spatial; ++i) s0 += term(base + i);
  }
  return (s0 + s1) + (s2 + s3);
}

template <class F>
void for_channel(const BatchNormParams& p, int64_t c, F&& f) {
  for (int n = 0; n < p.N; ++n) {
    const int64_t base = (int64_t(n) * p.C + c) * p.spatial;
    for (int64_t s = 0; s < p.spatial; ++s) f(base + s);
  }
}

void check_channels(const char* what, std::initializer_list<const Tensor*> ts, int C) {
  for (const Tensor* t : ts) expect(OpKind::batch_norm, what, *t, C);
}

}  // namespace

void CpuBackend::batch_norm_forward_train(const BatchNormParams& p, const Tensor& x,
                                          const Tensor& gamma, const Tensor& beta, const Tensor& y,
                                          const Tensor& running_mean, const Tensor& running_var,
                                          const Tensor& save_mean, const Tensor& save_invstd) {
  constexpr OpKind op = OpKind::batch_norm;
  expect(op, "x", x, p.numel());
  expect(op, "y", y, p.numel());
  check_channels("a per-channel tensor",
                 {&gamma, &beta, &running_mean, &running_var, &save_mean, &save_invstd}, p.C);
  const int64_t m = int64_t(p.N) * p.spatial;
  TB_CHECK(m > 1, "batch norm in training needs more than 1 value per channel, got N={} x {}",
           p.N, p.spatial);
  const float* xd = fptr(x);
  float* yd = fptr(y);
  const float *g = fptr(gamma), *b = fptr(beta);
  float *rm = fptr(running_mean), *rv = fptr(running_var);
  float *sm = fptr(save_mean), *si = fptr(save_invstd);
  pool_->parallel_for(0, p.C, [&](int64_t c) {
    const double mean = channel_sum(p, c, [&](int64_t i) { return double(xd[i]); }) / double(m);
    const double sq = channel_sum(p, c, [&](int64_t i) {
      const double d = double(xd[i]) - mean;
      return d * d;
    });
    const double var = sq / double(m);
    const double invstd = 1.0 / std::sqrt(var + p.eps);
    sm[c] = float(mean);
    si[c] = float(invstd);
    const double unbiased = var * double(m) / double(m - 1);
    rm[c] = float((1.0 - p.momentum) * double(rm[c]) + p.momentum * mean);
    rv[c] = float((1.0 - p.momentum) * double(rv[c]) + p.momentum * unbiased);
    const double scale = double(g[c]) * invstd, shift = double(b[c]);
    for_channel(p, c, [&](int64_t i) { yd[i] = float((double(xd[i]) - mean) * scale + shift); });
  });
}

void CpuBackend::batch_norm_forward_eval(const BatchNormParams& p, const Tensor& x,
                                         const Tensor& gamma, const Tensor& beta,
                                         const Tensor& running_mean, const Tensor& running_var,
                                         const Tensor& y) {
  constexpr OpKind op = OpKind::batch_norm;
  expect(op, "x", x, p.numel());
  expect(op, "y", y, p.numel());
  check_channels("a per-channel tensor", {&gamma, &beta, &running_mean, &running_var}, p.C);
  const float* xd = fptr(x);
  float* yd = fptr(y);
  const float *g = fptr(gamma), *b = fptr(beta), *rm = fptr(running_mean), *rv = fptr(running_var);
  pool_->parallel_for(0, p.C, [&](int64_t c) {
    const double mean = double(rm[c]);
    const double scale = double(g[c]) / std::sqrt(double(rv[c]) + p.eps);
    const double shift = double(b[c]);
    for_channel(p, c, [&](int64_t i) { yd[i] = float((double(xd[i]) - mean) * scale + shift); });
  });
}

// With xhat = (x - mean) * invstd and m values per channel:
//   dbeta = sum(dy), dgamma = sum(dy * xhat),
//   dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma)
void CpuBackend::batch_norm_backward(const BatchNormParams& p, const Tensor& x,
                                     const Tensor& gamma, const Tensor& save_mean,
                                     const Tensor& save_invstd, const Tensor& dy,
                                     const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                     bool accumulate_dx) {
  constexpr OpKind op = OpKind::batch_norm;
  expect(op, "x", x, p.numel());
  expect(op, "dy", dy, p.numel());
  check_channels("a per-channel tensor", {&gamma, &save_mean, &save_invstd, &dgamma, &dbeta}, p.C);
  float* dxd = cpu_ops::optional_ptr(op, "dx", dx, p.numel());
  const float *xd = fptr(x), *dyd = fptr(dy), *g = fptr(gamma);
  const float *sm = fptr(save_mean), *si = fptr(save_invstd);
  float *dg = fptr(dgamma), *db = fptr(dbeta);
  const double m = double(int64_t(p.N) * p.spatial);
  pool_->parallel_for(0, p.C, [&](int64_t c) {
    const double mean = double(sm[c]), invstd = double(si[c]);
    const double sum_dy = channel_sum(p, c, [&](int64_t i) { return double(dyd[i]); });
    const double sum_dy_xhat = channel_sum(p, c, [&](int64_t i) {
      return double(dyd[i]) * (double(xd[i]) - mean) * invstd;
    });
    db[c] = float(sum_dy);
    dg[c] = float(sum_dy_xhat);
    if (!dxd) return;
    const double k = double(g[c]) * invstd / m;
    for_channel(p, c, [&](int64_t i) {
      const double xhat = (double(xd[i]) - mean) * invstd;
      const float v = float(k * (m * double(dyd[i]) - sum_dy - xhat * sum_dy_xhat));
      dxd[i] = accumulate_dx ? dxd[i] + v : v;
    });
  });
}

}  // namespace tb
