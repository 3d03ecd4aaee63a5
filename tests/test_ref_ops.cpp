// Tests of the ref backend, the oracle: finite-difference gradients of every op in double,
// hand-computed forward values, the accumulate convention, float/double agreement, the
// optimizer updates against PyTorch's formulas and the dropout mask's reproducibility.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "gradcheck.h"
#include "ops/ref/ref_backend.h"

namespace tb {
namespace {

using Vec = std::vector<double>;
using test::gradcheck;
using test::projection;

Tensor f64(Vec& v, Shape s) { return Tensor(v.data(), DType::f64, s); }
Tensor flat(Vec& v) { return f64(v, Shape{int64_t(v.size())}); }

class RefOps : public ::testing::Test {
 protected:
  Vec uniform(int64_t n, double lo = -1, double hi = 1) {
    return test::uniform_vector(n, rng, lo, hi);
  }
  std::unique_ptr<Backend> be = make_ref_backend();
  Rng rng{20240601};
};

// --- finite-difference gradients ---------------------------------------------------------

struct ConvCase {
  int N, C, H, W, K, kernel, stride, pad;
  bool bias;
};

class ConvGradient : public RefOps, public ::testing::WithParamInterface<ConvCase> {};

TEST_P(ConvGradient, MatchesFiniteDifferences) {
  const ConvCase c = GetParam();
  const Conv2dParams p{c.N, c.C, c.H, c.W, c.K, c.kernel, c.stride, c.pad, c.bias};
  Vec x = uniform(p.x_numel()), w = uniform(p.w_numel()), b = uniform(p.K);
  Vec r = uniform(p.y_numel()), y(p.y_numel());
  const Shape xs{p.N, p.C, p.H, p.W}, ws{p.K, p.C, p.kernel, p.kernel}, ys{p.N, p.K, p.P(), p.Q()};
  auto bias = [&](Vec& v) { return c.bias ? f64(v, Shape{p.K}) : Tensor(); };
  auto loss = [&] {
    be->conv2d_forward(p, f64(x, xs), f64(w, ws), bias(b), f64(y, ys));
    return projection(y, r);
  };
  loss();
  Vec dx(x.size()), dw(w.size()), db(b.size());
  be->conv2d_backward(p, f64(x, xs), f64(w, ws), f64(r, ys), f64(dx, xs), f64(dw, ws), bias(db),
                      false);
  EXPECT_TRUE(gradcheck("conv dx", loss, x.data(), x.size(), dx.data()));
  EXPECT_TRUE(gradcheck("conv dw", loss, w.data(), w.size(), dw.data()));
  if (c.bias) {
    EXPECT_TRUE(gradcheck("conv dbias", loss, b.data(), b.size(), db.data()));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvGradient,
                         ::testing::Values(ConvCase{1, 1, 5, 5, 1, 1, 1, 0, false},
                                           ConvCase{3, 2, 5, 6, 3, 1, 2, 0, true},
                                           ConvCase{1, 2, 5, 5, 3, 3, 1, 1, true},
                                           ConvCase{3, 2, 7, 6, 2, 3, 2, 1, false},
                                           ConvCase{2, 3, 6, 5, 2, 3, 1, 0, true},
                                           ConvCase{1, 2, 9, 8, 2, 5, 2, 2, true},
                                           ConvCase{3, 1, 7, 5, 2, 5, 1, 2, false},
                                           ConvCase{2, 2, 11, 11, 2, 5, 1, 0, true}));

TEST_F(RefOps, LinearGradient) {
  for (bool has_bias : {true, false}) {
    const LinearParams p{3, 11, 4, has_bias};  // in = 11 exercises the 8-lane dot's tail
    Vec x = uniform(p.N * p.in), w = uniform(p.out * p.in), b = uniform(p.out);
    Vec r = uniform(p.N * p.out), y(r.size());
    auto bias = [&](Vec& v) { return has_bias ? flat(v) : Tensor(); };
    auto loss = [&] {
      be->linear_forward(p, f64(x, {p.N, p.in}), flat(w), bias(b), f64(y, {p.N, p.out}));
      return projection(y, r);
    };
    loss();
    Vec dx(x.size()), dw(w.size()), db(b.size());
    be->linear_backward(p, flat(x), flat(w), flat(r), flat(dx), flat(dw), bias(db), false);
    EXPECT_TRUE(gradcheck("linear dx", loss, x.data(), x.size(), dx.data()));
    EXPECT_TRUE(gradcheck("linear dw", loss, w.data(), w.size(), dw.data()));
    if (has_bias) {
      EXPECT_TRUE(gradcheck("linear dbias", loss, b.data(), b.size(), db.data()));
    }
  }
}

TEST_F(RefOps, ReluGradient) {
  Vec x = uniform(60, 0.1, 1.0), r = uniform(60), y(60), dx(60);
  for (size_t i = 0; i < x.size(); i += 2) x[i] = -x[i];  // away from the kink at 0
  auto loss = [&] {
    be->relu_forward(flat(x), flat(y));
    return projection(y, r);
  };
  loss();
  be->relu_backward(flat(y), flat(r), flat(dx), false);
  EXPECT_TRUE(gradcheck("relu dx", loss, x.data(), x.size(), dx.data()));
}

TEST_F(RefOps, PoolGradients) {
  const Pool2dParams cases[] = {
      {2, 2, 6, 6, 2, 2, 0}, {2, 2, 7, 6, 3, 2, 1}, {1, 3, 5, 5, 3, 1, 1}};
  for (const Pool2dParams& p : cases) {
    const Shape xs{p.N, p.C, p.H, p.W}, ys{p.N, p.C, p.P(), p.Q()};
    Vec x = test::distinct_vector(p.x_numel(), rng), r = uniform(p.y_numel()), y(r.size());
    Vec dx(x.size());
    auto max_loss = [&] {
      be->max_pool2d_forward(p, f64(x, xs), f64(y, ys));
      return projection(y, r);
    };
    max_loss();
    be->max_pool2d_backward(p, f64(x, xs), f64(y, ys), f64(r, ys), f64(dx, xs), false);
    EXPECT_TRUE(gradcheck("max_pool dx", max_loss, x.data(), x.size(), dx.data()));

    auto avg_loss = [&] {
      be->avg_pool2d_forward(p, f64(x, xs), f64(y, ys));
      return projection(y, r);
    };
    avg_loss();
    be->avg_pool2d_backward(p, f64(r, ys), f64(dx, xs), false);
    EXPECT_TRUE(gradcheck("avg_pool dx", avg_loss, x.data(), x.size(), dx.data()));
  }
}

TEST_F(RefOps, GlobalAvgPoolGradient) {
  const GlobalPoolParams p{2, 3, 3, 4};
  Vec x = uniform(72), r = uniform(6), y(6), dx(72);
  auto loss = [&] {
    be->global_avg_pool_forward(p, flat(x), flat(y));
    return projection(y, r);
  };
  loss();
  be->global_avg_pool_backward(p, flat(r), flat(dx), false);
  EXPECT_TRUE(gradcheck("global_avg_pool dx", loss, x.data(), x.size(), dx.data()));
}

TEST_F(RefOps, BatchNormGradient) {
  const BatchNormParams cases[] = {{3, 2, 9}, {5, 4, 1}};  // 2-D (3x3 planes) and 1-D
  for (const BatchNormParams& p : cases) {
    Vec x = uniform(p.numel(), -2, 3), gamma = uniform(p.C, 0.5, 1.5), beta = uniform(p.C);
    Vec r = uniform(p.numel()), y(p.numel()), rm(p.C, 0.0), rv(p.C, 1.0), mean(p.C), invstd(p.C);
    auto loss = [&] {
      be->batch_norm_forward_train(p, flat(x), flat(gamma), flat(beta), flat(y), flat(rm), flat(rv),
                                   flat(mean), flat(invstd));
      return projection(y, r);
    };
    loss();
    Vec dx(x.size()), dgamma(p.C), dbeta(p.C);
    be->batch_norm_backward(p, flat(x), flat(gamma), flat(mean), flat(invstd), flat(r), flat(dx),
                            flat(dgamma), flat(dbeta), false);
    EXPECT_TRUE(gradcheck("batch_norm dx", loss, x.data(), x.size(), dx.data()));
    EXPECT_TRUE(gradcheck("batch_norm dgamma", loss, gamma.data(), p.C, dgamma.data()));
    EXPECT_TRUE(gradcheck("batch_norm dbeta", loss, beta.data(), p.C, dbeta.data()));
  }
}

TEST_F(RefOps, DropoutGradient) {
  const DropoutParams p{200, 0.4f, 7, 3};
  Vec x = uniform(200), r = uniform(200), y(200), dx(200);
  std::vector<uint8_t> mask(200);
  const Tensor m(mask.data(), DType::u8, Shape{200});
  auto loss = [&] {
    be->dropout_forward(p, flat(x), flat(y), m);
    return projection(y, r);
  };
  loss();
  be->dropout_backward(p, flat(r), m, flat(dx), false);
  EXPECT_TRUE(gradcheck("dropout dx", loss, x.data(), x.size(), dx.data()));
}

TEST_F(RefOps, AddGradient) {
  Vec a = uniform(30), b = uniform(30), r = uniform(30), y(30), da(30), db(30);
  auto loss = [&] {
    be->add_forward(flat(a), flat(b), flat(y));
    return projection(y, r);
  };
  loss();
  be->copy(flat(r), flat(da), false);  // add's backward: each input receives dy
  be->copy(flat(r), flat(db), false);
  EXPECT_TRUE(gradcheck("add da", loss, a.data(), a.size(), da.data()));
  EXPECT_TRUE(gradcheck("add db", loss, b.data(), b.size(), db.data()));
}

TEST_F(RefOps, CrossEntropyGradient) {
  for (float smoothing : {0.0f, 0.1f}) {
    const CrossEntropyParams p{4, 5, smoothing};
    Vec logits = uniform(20, -3, 3), probs(20), losses(4), dlogits(20);
    std::vector<int32_t> labels{0, 4, 2, 2};
    const Tensor lab(labels.data(), DType::i32, Shape{4});
    auto loss = [&] {  // the batch mean, whose gradient the backward returns
      be->cross_entropy_forward(p, flat(logits), lab, flat(probs), flat(losses));
      return (losses[0] + losses[1] + losses[2] + losses[3]) / 4;
    };
    loss();
    be->cross_entropy_backward(p, flat(probs), lab, flat(dlogits));
    EXPECT_TRUE(gradcheck("cross_entropy dlogits", loss, logits.data(), 20, dlogits.data()));
  }
}

// --- forward values computed by hand -----------------------------------------------------

TEST_F(RefOps, ConvForwardHandValues) {
  Vec x{1, 2, 3, 4, 5, 6, 7, 8, 9}, y(4);
  Vec diag{1, 0, 0, -1}, bias{0.5};  // y = x[i][j] - x[i+1][j+1] + 0.5 = -3.5 everywhere
  be->conv2d_forward({1, 1, 3, 3, 1, 2, 1, 0, true}, flat(x), flat(diag), flat(bias), flat(y));
  EXPECT_EQ(y, (Vec{-3.5, -3.5, -3.5, -3.5}));
  Vec ones(9, 1.0), y3(9);  // 3x3 box sum with zero padding 1
  be->conv2d_forward({1, 1, 3, 3, 1, 3, 1, 1, false}, flat(x), flat(ones), Tensor(), flat(y3));
  EXPECT_EQ(y3, (Vec{12, 21, 16, 27, 45, 33, 24, 39, 28}));
  Vec y2(4);  // stride 2, pad 1: the windows centred on the corners
  be->conv2d_forward({1, 1, 3, 3, 1, 3, 2, 1, false}, flat(x), flat(ones), Tensor(), flat(y2));
  EXPECT_EQ(y2, (Vec{12, 16, 24, 28}));
}

TEST_F(RefOps, LinearForwardHandValues) {
  Vec x{1, 2, 3, -1}, w{1, 1, 2, -1}, b{0.5, 0}, y(4);  // two items, in = out = 2
  be->linear_forward({2, 2, 2, true}, flat(x), flat(w), flat(b), flat(y));
  EXPECT_EQ(y, (Vec{3.5, 0, 2.5, 7}));
}

TEST_F(RefOps, PoolForwardHandValues) {
  Vec x(16), y(4);
  for (int i = 0; i < 16; ++i) x[i] = i;  // 4x4 plane 0..15
  be->max_pool2d_forward({1, 1, 4, 4, 2, 2, 0}, flat(x), flat(y));
  EXPECT_EQ(y, (Vec{5, 7, 13, 15}));
  be->avg_pool2d_forward({1, 1, 4, 4, 2, 2, 0}, flat(x), flat(y));
  EXPECT_EQ(y, (Vec{2.5, 4.5, 10.5, 12.5}));
  // Kernel 3, stride 2, pad 1: padded cells count in the divisor (always 9).
  be->avg_pool2d_forward({1, 1, 4, 4, 3, 2, 1}, flat(x), flat(y));
  EXPECT_DOUBLE_EQ(y[0], (0 + 1 + 4 + 5) / 9.0);
  EXPECT_DOUBLE_EQ(y[1], (1 + 2 + 3 + 5 + 6 + 7) / 9.0);
  EXPECT_DOUBLE_EQ(y[3], (5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15) / 9.0);
  be->max_pool2d_forward({1, 1, 4, 4, 3, 2, 1}, flat(x), flat(y));
  EXPECT_EQ(y, (Vec{5, 7, 13, 15}));
  Vec g(1);
  be->global_avg_pool_forward({1, 1, 4, 4}, flat(x), flat(g));
  EXPECT_DOUBLE_EQ(g[0], 7.5);
}

TEST_F(RefOps, MaxPoolGradientGoesToFirstMaximum) {
  Vec x{3, 3, 3, 1}, dy{2}, y(1), dx(4);
  be->max_pool2d_backward({1, 1, 2, 2, 2, 2, 0}, flat(x), flat(y), flat(dy), flat(dx), false);
  EXPECT_EQ(dx, (Vec{2, 0, 0, 0}));
}

TEST_F(RefOps, SoftmaxCrossEntropyHandValues) {
  // log softmax of (1, 2, 3) = (1, 2, 3) - log(e + e^2 + e^3)
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  std::vector<int32_t> labels{2, 0};
  const Tensor lab(labels.data(), DType::i32, Shape{2});
  Vec logits{1, 2, 3, 1001, 1002, 1003}, probs(6), losses(2);  // the same row shifted by 1000
  be->cross_entropy_forward({2, 3, 0.0f}, flat(logits), lab, flat(probs), flat(losses));
  for (int j = 0; j < 3; ++j) {
    EXPECT_NEAR(probs[j], std::exp(j + 1 - lse), 1e-15);
    EXPECT_NEAR(probs[3 + j], probs[j], 1e-15);  // no overflow for large logits
  }
  EXPECT_NEAR(losses[0], lse - 3, 1e-14);
  EXPECT_NEAR(losses[1], lse - 1, 1e-12);
  const float eps = 0.1f;  // smoothed target (eps/3, eps/3, 1 - eps + eps/3) for label 2
  be->cross_entropy_forward({2, 3, eps}, flat(logits), lab, flat(probs), flat(losses));
  const double e = eps;
  EXPECT_NEAR(losses[0], (1 - e) * (lse - 3) + e / 3 * (3 * lse - 6), 1e-12);
  std::vector<int32_t> bad{0, 3};
  EXPECT_THROW(be->cross_entropy_forward({2, 3, 0.0f}, flat(logits),
                                         Tensor(bad.data(), DType::i32, Shape{2}), flat(probs),
                                         flat(losses)),
               InternalError);
}

TEST_F(RefOps, BatchNormTrainingNormalisesAndUpdatesRunningStats) {
  // 1-D, one channel, batch (1, 2, 3, 4): mean 2.5, biased var 1.25, unbiased 5/3.
  Vec x{1, 2, 3, 4}, y(4), gamma{1}, beta{0}, rm{0}, rv{1}, mean(1), invstd(1);
  const BatchNormParams p{4, 1, 1, 1e-5, 0.1};
  be->batch_norm_forward_train(p, flat(x), flat(gamma), flat(beta), flat(y), flat(rm), flat(rv),
                               flat(mean), flat(invstd));
  EXPECT_DOUBLE_EQ(mean[0], 2.5);
  EXPECT_NEAR(invstd[0], 1 / std::sqrt(1.25 + 1e-5), 1e-15);
  EXPECT_NEAR(rm[0], 0.9 * 0 + 0.1 * 2.5, 1e-15);
  EXPECT_NEAR(rv[0], 0.9 * 1 + 0.1 * (5.0 / 3.0), 1e-15);  // PyTorch: unbiased variance
  EXPECT_NEAR(y[0], -1.5 / std::sqrt(1.25 + 1e-5), 1e-15);

  // 2-D with an affine transform: each channel of y has mean beta, variance ~gamma^2.
  const BatchNormParams q{4, 3, 25};
  Vec x2 = uniform(q.numel(), -3, 5), y2(q.numel()), g2{1, 2, 0.5}, b2{0, -1, 3};
  Vec rm2(3, 0.0), rv2(3, 1.0), mean2(3), invstd2(3);
  be->batch_norm_forward_train(q, flat(x2), flat(g2), flat(b2), flat(y2), flat(rm2), flat(rv2),
                               flat(mean2), flat(invstd2));
  for (int c = 0; c < 3; ++c) {
    double sum = 0, sq = 0;
    for (int n = 0; n < 4; ++n)
      for (int s = 0; s < 25; ++s) sum += y2[(n * 3 + c) * 25 + s];
    const double m = sum / 100;
    for (int n = 0; n < 4; ++n)
      for (int s = 0; s < 25; ++s) sq += std::pow(y2[(n * 3 + c) * 25 + s] - m, 2);
    EXPECT_NEAR(m, b2[c], 1e-12);
    EXPECT_NEAR(sq / 100, g2[c] * g2[c], 1e-4 * g2[c] * g2[c]);  // eps shrinks it slightly
  }
}

TEST_F(RefOps, BatchNormEvalUsesRunningStats) {
  Vec x{1, 2, 3, 4}, y(4), gamma{2, 1}, beta{1, 0}, rm{1, -1}, rv{4, 0.25};
  be->batch_norm_forward_eval({2, 2, 1, 0.0}, flat(x), flat(gamma), flat(beta), flat(rm), flat(rv),
                              flat(y));
  // item 0: (1 - 1)/2*2 + 1, (2 + 1)/0.5; item 1: (3 - 1)/2*2 + 1, (4 + 1)/0.5
  EXPECT_EQ(y, (Vec{1, 6, 3, 10}));
}

// --- the accumulate convention ----------------------------------------------------------

// backward(dx, accumulate) must overwrite whatever dx held with accumulate false, and add
// to it with accumulate true: twice onto zeros gives twice the gradient.
void check_accumulate(const char* what, size_t n, const std::function<void(Vec&, bool)>& backward) {
  Vec once(n, 123.0), twice(n, 0.0);
  backward(once, false);
  backward(twice, true);
  backward(twice, true);
  for (size_t i = 0; i < n; ++i) ASSERT_NEAR(twice[i], 2 * once[i], 1e-12) << what << " at " << i;
  double norm = 0;
  for (double v : once) norm += std::abs(v);
  EXPECT_GT(norm, 0) << what << ": the gradient is all zeros, the check proves nothing";
}

TEST_F(RefOps, BackwardAccumulatesWhenAsked) {
  const Conv2dParams cp{2, 2, 5, 5, 3, 3, 2, 1, true};
  Vec cx = uniform(cp.x_numel()), cw = uniform(cp.w_numel()), cdy = uniform(cp.y_numel());
  Vec cdw(cw.size()), cdb(3);
  check_accumulate("conv2d", cx.size(), [&](Vec& dx, bool acc) {
    be->conv2d_backward(cp, flat(cx), flat(cw), flat(cdy), flat(dx), flat(cdw), flat(cdb), acc);
  });
  const LinearParams lp{3, 5, 4, true};
  Vec lx = uniform(15), lw = uniform(20), ldy = uniform(12), ldw(20), ldb(4);
  check_accumulate("linear", lx.size(), [&](Vec& dx, bool acc) {
    be->linear_backward(lp, flat(lx), flat(lw), flat(ldy), flat(dx), flat(ldw), flat(ldb), acc);
  });
  Vec y = uniform(50), dy = uniform(50);
  check_accumulate("relu", 50,
                   [&](Vec& dx, bool acc) { be->relu_backward(flat(y), flat(dy), flat(dx), acc); });
  check_accumulate("copy", 50, [&](Vec& dx, bool acc) { be->copy(flat(dy), flat(dx), acc); });
  const Pool2dParams pp{1, 2, 5, 5, 3, 2, 1};
  Vec px = test::distinct_vector(50, rng), py(pp.y_numel()), pdy = uniform(pp.y_numel());
  check_accumulate("max_pool2d", 50, [&](Vec& dx, bool acc) {
    be->max_pool2d_backward(pp, flat(px), flat(py), flat(pdy), flat(dx), acc);
  });
  check_accumulate("avg_pool2d", 50, [&](Vec& dx, bool acc) {
    be->avg_pool2d_backward(pp, flat(pdy), flat(dx), acc);
  });
  Vec gdy = uniform(2);
  check_accumulate("global_avg_pool", 50, [&](Vec& dx, bool acc) {
    be->global_avg_pool_backward({1, 2, 5, 5}, flat(gdy), flat(dx), acc);
  });
  const BatchNormParams bp{5, 2, 5};
  Vec gamma{1.5, 0.5}, mean{0.1, -0.2}, invstd{1.2, 0.8}, dgamma(2), dbeta(2);
  check_accumulate("batch_norm", 50, [&](Vec& dx, bool acc) {
    be->batch_norm_backward(bp, flat(y), flat(gamma), flat(mean), flat(invstd), flat(dy), flat(dx),
                            flat(dgamma), flat(dbeta), acc);
  });
  std::vector<uint8_t> mask(50);
  for (size_t i = 0; i < 50; ++i) mask[i] = i % 3 != 0;
  check_accumulate("dropout", 50, [&](Vec& dx, bool acc) {
    be->dropout_backward({50, 0.3f, 1, 1}, flat(dy), Tensor(mask.data(), DType::u8, Shape{50}),
                         flat(dx), acc);
  });
}

TEST_F(RefOps, ParameterGradientsAreOverwrittenAndDxIsOptional) {
  const Conv2dParams cp{2, 2, 6, 6, 3, 3, 1, 1, true};
  Vec x = uniform(cp.x_numel()), w = uniform(cp.w_numel()), dy = uniform(cp.y_numel());
  Vec dx(x.size()), dw(w.size()), db(3), dw2(w.size(), 99.0), db2(3, 99.0);
  be->conv2d_backward(cp, flat(x), flat(w), flat(dy), flat(dx), flat(dw), flat(db), false);
  be->conv2d_backward(cp, flat(x), flat(w), flat(dy), Tensor(), flat(dw2), flat(db2), true);
  EXPECT_EQ(dw, dw2);
  EXPECT_EQ(db, db2);
  const LinearParams lp{3, 6, 2, true};
  Vec lx = uniform(18), lw = uniform(12), ldy = uniform(6), ldx(18), ldw(12), ldb(2);
  Vec ldw2(12, -5.0), ldb2(2, -5.0);
  be->linear_backward(lp, flat(lx), flat(lw), flat(ldy), flat(ldx), flat(ldw), flat(ldb), false);
  be->linear_backward(lp, flat(lx), flat(lw), flat(ldy), Tensor(), flat(ldw2), flat(ldb2), true);
  EXPECT_EQ(ldw, ldw2);
  EXPECT_EQ(ldb, ldb2);
  const BatchNormParams bp{4, 2, 3};
  Vec bx = uniform(24), gamma{1, 2}, mean{0, 0.1}, invstd{1, 2}, bdy = uniform(24), bdx(24);
  Vec dg(2), dbeta(2), dg2(2, 7.0), dbeta2(2, 7.0);
  be->batch_norm_backward(bp, flat(bx), flat(gamma), flat(mean), flat(invstd), flat(bdy), flat(bdx),
                          flat(dg), flat(dbeta), false);
  be->batch_norm_backward(bp, flat(bx), flat(gamma), flat(mean), flat(invstd), flat(bdy), Tensor(),
                          flat(dg2), flat(dbeta2), true);
  EXPECT_EQ(dg, dg2);
  EXPECT_EQ(dbeta, dbeta2);
}

// --- float against double ----------------------------------------------------------------

// max |float - double| relative to max |double|.
double float_error(const std::vector<float>& f, const Vec& d) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    err = std::max(err, std::abs(double(f[i]) - d[i]));
    scale = std::max(scale, std::abs(d[i]));
  }
  return err / scale;
}

std::vector<float> to_float(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }
Tensor f32(std::vector<float>& v) { return Tensor(v.data(), DType::f32, Shape{int64_t(v.size())}); }

TEST_F(RefOps, FloatAgreesWithDouble) {
  const Conv2dParams cp{2, 16, 12, 12, 8, 3, 1, 1, true};
  Vec x = uniform(cp.x_numel()), w = uniform(cp.w_numel()), b = uniform(8), y(cp.y_numel());
  std::vector<float> xf = to_float(x), wf = to_float(w), bf = to_float(b), yf(y.size());
  be->conv2d_forward(cp, flat(x), flat(w), flat(b), flat(y));
  be->conv2d_forward(cp, f32(xf), f32(wf), f32(bf), f32(yf));
  EXPECT_LT(float_error(yf, y), 1e-5);
  const LinearParams lp{4, 300, 7, true};
  Vec lx = uniform(1200), lw = uniform(2100), lb = uniform(7), ly(28);
  std::vector<float> lxf = to_float(lx), lwf = to_float(lw), lbf = to_float(lb), lyf(28);
  be->linear_forward(lp, flat(lx), flat(lw), flat(lb), flat(ly));
  be->linear_forward(lp, f32(lxf), f32(lwf), f32(lbf), f32(lyf));
  EXPECT_LT(float_error(lyf, ly), 1e-5);
}

// --- optimizer updates against PyTorch's documented formulas, in double --------------------

void sgd_reference(const SgdUpdateParams& p, Vec& param, const Vec& grad, Vec& buf) {
  const double lr = p.lr, mu = p.momentum, wd = p.weight_decay;
  for (size_t i = 0; i < param.size(); ++i) {
    double g = grad[i] + wd * param[i];
    if (mu != 0) {
      buf[i] = mu * buf[i] + g;
      g = p.nesterov ? g + mu * buf[i] : buf[i];
    }
    param[i] -= lr * g;
  }
}

void adam_reference(const AdamUpdateParams& p, Vec& param, const Vec& grad, Vec& m, Vec& v) {
  const double lr = p.lr, b1 = p.beta1, b2 = p.beta2, wd = p.weight_decay, t = double(p.step);
  for (size_t i = 0; i < param.size(); ++i) {
    double g = grad[i];
    if (p.decoupled_weight_decay)
      param[i] *= 1 - lr * wd;
    else
      g += wd * param[i];
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    const double m_hat = m[i] / (1 - std::pow(b1, t)), v_hat = v[i] / (1 - std::pow(b2, t));
    param[i] -= lr * m_hat / (std::sqrt(v_hat) + p.eps);
  }
}

void expect_close(const std::vector<float>& f, const Vec& d, const char* what, int step) {
  for (size_t i = 0; i < d.size(); ++i)
    ASSERT_NEAR(f[i], d[i], 1e-6 * std::max(1.0, std::abs(d[i])))
        << what << " step " << step << " at " << i;
}

TEST_F(RefOps, SgdMatchesPyTorchFormulas) {
  const SgdUpdateParams cases[] = {{64, 0.1f, 0.0f, 0.0f, false},
                                   {64, 0.1f, 0.9f, 0.0f, false},
                                   {64, 0.1f, 0.9f, 0.0f, true},
                                   {64, 0.05f, 0.9f, 0.1f, false},
                                   {64, 0.05f, 0.9f, 0.1f, true}};
  for (const SgdUpdateParams& p : cases) {
    Vec param = uniform(64), buf(64, 0.0);
    std::vector<float> pf = to_float(param), bf(64, 0.0f);
    for (int step = 1; step <= 3; ++step) {
      Vec grad = uniform(64);
      std::vector<float> gf = to_float(grad);
      be->sgd_update(p, f32(pf), f32(gf), p.momentum != 0 ? f32(bf) : Tensor());
      sgd_reference(p, param, grad, buf);
      expect_close(pf, param, p.nesterov ? "sgd nesterov" : "sgd", step);
    }
  }
}

TEST_F(RefOps, AdamMatchesPyTorchFormulas) {
  for (auto [wd, decoupled] : {std::pair{0.0f, false}, {0.1f, false}, {0.1f, true}}) {
    AdamUpdateParams p{64, 0.01f, 0.9f, 0.999f, 1e-8f, wd, decoupled, 1};
    Vec param = uniform(64), m(64, 0.0), v(64, 0.0);
    std::vector<float> pf = to_float(param), mf(64, 0.0f), vf(64, 0.0f);
    for (p.step = 1; p.step <= 3; ++p.step) {
      Vec grad = uniform(64);
      std::vector<float> gf = to_float(grad);
      be->adam_update(p, f32(pf), f32(gf), f32(mf), f32(vf));
      adam_reference(p, param, grad, m, v);
      expect_close(pf, param, decoupled ? "adamw" : "adam", int(p.step));
      expect_close(mf, m, "exp_avg", int(p.step));
      expect_close(vf, v, "exp_avg_sq", int(p.step));
    }
  }
}

// --- dropout masks -----------------------------------------------------------------------

TEST_F(RefOps, DropoutMaskIsReproducibleAndKeepsOneMinusP) {
  const int64_t n = 100000;
  const DropoutParams p{n, 0.3f, 11, 5};
  Vec x = uniform(n), y(n);
  std::vector<uint8_t> a(n), b(n), c(n);
  auto run = [&](const DropoutParams& q, std::vector<uint8_t>& mask) {
    be->dropout_forward(q, flat(x), flat(y), Tensor(mask.data(), DType::u8, Shape{n}));
  };
  run({n, 0.3f, 11, 6}, c);
  run(p, b);
  run(p, a);
  EXPECT_EQ(a, b);
  int64_t kept = 0, differ = 0;
  for (int64_t i = 0; i < n; ++i) {
    kept += a[i];
    differ += a[i] != c[i];
    ASSERT_EQ(a[i], counter_uniform(11, 5, i) >= 0.3f ? 1 : 0) << i;
    ASSERT_NEAR(y[i], a[i] ? x[i] / (1 - double(0.3f)) : 0.0, 1e-15) << i;
  }
  EXPECT_NEAR(double(kept) / n, 0.7, 0.01);
  EXPECT_GT(differ, n / 4);  // independent masks differ in 2 * 0.3 * 0.7 = 42% of places
  run({n, 0.0f, 11, 5}, a);  // p = 0 keeps everything unchanged
  EXPECT_EQ(std::count(a.begin(), a.end(), 1), n);
  EXPECT_EQ(y, x);
}

// --- the backend around the kernels ------------------------------------------------------

TEST_F(RefOps, BackendMemoryAndCapabilities) {
  EXPECT_EQ(be->name(), "ref");
  EXPECT_EQ(be->device(), (Device{DeviceKind::cpu, 0}));
  EXPECT_TRUE(be->supports(OpKind::conv2d, DType::f32));
  EXPECT_TRUE(be->supports(OpKind::batch_norm, DType::f64));
  EXPECT_FALSE(be->supports(OpKind::conv2d, DType::bf16));
  EXPECT_TRUE(be->supports(OpKind::adam_update, DType::f32));
  EXPECT_FALSE(be->supports(OpKind::sgd_update, DType::f64));
  const size_t before = be->allocation_count();
  void* a = be->allocate(100);
  void* z = be->allocate(0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  EXPECT_NE(z, nullptr);
  EXPECT_EQ(be->allocation_count(), before + 2);
  const float src[3] = {1, 2, 3};
  float back[3] = {};
  be->copy_from_host(a, src, sizeof src);
  be->copy_to_host(back, a, sizeof back);
  EXPECT_EQ(back[2], 3.0f);
  be->fill_zero(Tensor(a, DType::f32, Shape{3}));
  be->copy_to_host(back, a, sizeof back);
  EXPECT_EQ(back[2], 0.0f);
  be->release(a);
  be->release(z);
}

TEST_F(RefOps, RejectsUnsupportedDtypesAndWrongShapes) {
  std::vector<uint16_t> half(8);
  const Tensor h(half.data(), DType::bf16, Shape{8});
  try {
    be->relu_forward(h, h);
    FAIL() << "bf16 relu should throw";
  } catch (const InternalError& e) {
    EXPECT_NE(std::string(e.what()).find("relu"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
  Vec x(6), w(6), y(3);  // linear 2x3 -> 2x2 needs y of 4
  EXPECT_THROW(be->linear_forward({2, 3, 2, false}, flat(x), flat(w), Tensor(), flat(y)),
               InternalError);
  std::vector<float> wf(6);  // mixed dtypes
  Vec y4(4);
  EXPECT_THROW(be->linear_forward({2, 3, 2, false}, flat(x), f32(wf), Tensor(), flat(y4)),
               InternalError);
  Vec pool(4);  // pad above kernel/2, which PyTorch rejects too
  EXPECT_THROW(be->max_pool2d_forward({1, 1, 2, 2, 2, 1, 2}, flat(pool), flat(pool)),
               InternalError);
}

}  // namespace
}  // namespace tb
