// Finite-difference gradient checks, shared by every backend's tests.
//
// The pattern: build a scalar loss from an op's output with a random projection,
// L = sum(r .* y), so that dL/dy = r is a dense, generic upstream gradient. Run the op's
// backward with dy = r to get the analytic gradient of each input, then compare it with
// central differences of L computed in double:
//
//   auto loss = [&] { backend.op_forward(..., x, ..., y); return test::projection(y, r); };
//   loss();  backend.op_backward(..., dy = r, dx, ...);
//   EXPECT_TRUE(test::gradcheck("dx", loss, x.data(), x.size(), dx.data()));
//
// Non-smooth ops need inputs kept away from their kinks (relu near 0, ties in a max pool):
// a step of h must not move any input across one.
#pragma once
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"

namespace tb::test {

struct GradcheckOptions {
  double h = 1e-6;     // central-difference step
  double rtol = 1e-6;  // allowed error relative to the larger of the two gradients
  double atol = 1e-9;  // plus this much absolute error, for gradients at or near zero
};

// dL/dx[i] for i in [0, n) by central differences: (L(x + h e_i) - L(x - h e_i)) / 2h.
// `loss` must recompute everything from x's current contents; x is restored afterwards.
inline std::vector<double> numeric_gradient(const std::function<double()>& loss, double* x,
                                            int64_t n, double h) {
  std::vector<double> grad(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = loss();
    x[i] = saved - h;
    const double minus = loss();
    x[i] = saved;
    grad[static_cast<size_t>(i)] = (plus - minus) / (2 * h);
  }
  return grad;
}

// Passes when |analytic - numeric| <= rtol * max(|analytic|, |numeric|) + atol everywhere;
// on failure names the worst element.
inline ::testing::AssertionResult gradients_match(const std::string& what, const double* analytic,
                                                  const std::vector<double>& numeric,
                                                  const GradcheckOptions& opts = {}) {
  double worst_excess = 0;  // error divided by its allowance; above 1 fails
  size_t worst = 0;
  for (size_t i = 0; i < numeric.size(); ++i) {
    const double error = std::abs(analytic[i] - numeric[i]);
    const double allowed =
        opts.rtol * std::max(std::abs(analytic[i]), std::abs(numeric[i])) + opts.atol;
    const double excess = std::isnan(error) ? INFINITY : error == 0 ? 0 : error / allowed;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (worst_excess <= 1.0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << fmt::format(
             "{}: gradient mismatch at element {} of {}: analytic {:.12g}, numeric {:.12g} "
             "(error {:.3g}, {:.3g}x the allowance rtol={:.3g} atol={:.3g})",
             what, worst, numeric.size(), analytic[worst], numeric[worst],
             std::abs(analytic[worst] - numeric[worst]), worst_excess, opts.rtol, opts.atol);
}

// numeric_gradient() and gradients_match() in one call. Each loss evaluation carries a
// rounding error of about DBL_EPSILON * |L|, which the difference quotient divides by 2h, so
// the absolute tolerance is raised to 10x that noise: with |L| = 20 and h = 1e-6 it is 4e-8,
// far below any real mistake but above what double arithmetic can promise.
inline ::testing::AssertionResult gradcheck(const std::string& what,
                                            const std::function<double()>& loss, double* x,
                                            int64_t n, const double* analytic,
                                            GradcheckOptions opts = {}) {
  const double noise = 10 * DBL_EPSILON * std::max(std::abs(loss()), 1.0) / opts.h;
  opts.atol = std::max(opts.atol, noise);
  return gradients_match(what, analytic, numeric_gradient(loss, x, n, opts.h), opts);
}

// sum_i r[i] * y[i]: the random projection that turns an op's output into a scalar loss.
inline double projection(const std::vector<double>& y, const std::vector<double>& r) {
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) sum += r[i] * y[i];
  return sum;
}

// n values uniform in [lo, hi).
inline std::vector<double> uniform_vector(int64_t n, Rng& rng, double lo = -1.0, double hi = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = rng.uniform(lo, hi);
  return v;
}

// n distinct values in random order, at least `gap` apart: inputs for max-like ops, where a
// tie or a near-tie would make the finite difference cross a kink.
inline std::vector<double> distinct_vector(int64_t n, Rng& rng, double gap = 0.01) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = (double(i) - double(n) / 2) * gap;
  shuffle_indices(v.data(), n, rng);
  return v;
}

}  // namespace tb::test
