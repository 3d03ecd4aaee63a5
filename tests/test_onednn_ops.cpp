// The onednn backend's ops against the ref backend, forward and backward, over many shapes
// (odd sizes, stride 2 and 3, padding, batch 1, with and without bias). The oracle runs in
// double on the same inputs, so the error measured is onednn's own: norm-wise relative
// error <= 1e-4 (oneDNN sums in its own order and in fp32). Loops with ref's arithmetic
// (dropout, optimizer updates, copies) must match exactly.
#ifdef TB_HAVE_ONEDNN
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "ops/onednn/onednn_backend.h"
#include "ops/ref/ref_backend.h"

namespace tb {
namespace {

using Vecf = std::vector<float>;
using Vecd = std::vector<double>;

constexpr double kTolerance = 1e-4;

Tensor tf(Vecf& v, Shape s) { return Tensor(v.data(), DType::f32, s); }
Tensor td(Vecd& v, Shape s) { return Tensor(v.data(), DType::f64, s); }
Vecd to_d(const Vecf& v) { return Vecd(v.begin(), v.end()); }

// ||got - want|| / ||want|| (absolute when want is zero).
double rel_error(const Vecf& got, const Vecd& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += want[i] * want[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

class OneDnnOps : public ::testing::Test {
 protected:
  Vecf uniform(int64_t n, float lo = -1, float hi = 1) {
    Vecf v(static_cast<size_t>(n));
    for (float& x : v) x = float(rng.uniform(lo, hi));
    return v;
  }
  OneDnnBackend dnn{2};
  std::unique_ptr<Backend> ref = make_ref_backend();
  Rng rng{20240917};
};

// --- convolution -------------------------------------------------------------------------

struct ConvCase {
  int N, C, H, W, K, kernel, stride, pad;
  bool bias;
};

class OneDnnConv : public OneDnnOps, public ::testing::WithParamInterface<ConvCase> {};

TEST_P(OneDnnConv, MatchesRefForwardAndBackward) {
  const ConvCase c = GetParam();
  const Conv2dParams p{c.N, c.C, c.H, c.W, c.K, c.kernel, c.stride, c.pad, c.bias};
  const Shape xs{p.N, p.C, p.H, p.W}, ws{p.K, p.C, p.kernel, p.kernel},
      ys{p.N, p.K, p.P(), p.Q()}, bs{p.K};
  Vecf x = uniform(p.x_numel()), w = uniform(p.w_numel()), b = uniform(p.K);
  Vecf dy = uniform(p.y_numel()), dx0 = uniform(p.x_numel()), y(p.y_numel());
  Vecd xd = to_d(x), wd = to_d(w), bd = to_d(b), dyd = to_d(dy), yd(y.size());
  auto bias_f = [&](Vecf& v) { return c.bias ? tf(v, bs) : Tensor(); };
  auto bias_d = [&](Vecd& v) { return c.bias ? td(v, bs) : Tensor(); };

  dnn.conv2d_forward(p, tf(x, xs), tf(w, ws), bias_f(b), tf(y, ys));
  ref->conv2d_forward(p, td(xd, xs), td(wd, ws), bias_d(bd), td(yd, ys));
  EXPECT_LE(rel_error(y, yd), kTolerance) << "y";

  for (bool accumulate : {false, true}) {
    Vecf dx = accumulate ? dx0 : uniform(p.x_numel()), dw(w.size(), 7.0f), db(b.size(), 7.0f);
    Vecd dxd = to_d(dx0), dwd(w.size()), dbd(b.size());
    dnn.conv2d_backward(p, tf(x, xs), tf(w, ws), tf(dy, ys), tf(dx, xs), tf(dw, ws), bias_f(db),
                        accumulate);
    ref->conv2d_backward(p, td(xd, xs), td(wd, ws), td(dyd, ys), td(dxd, xs), td(dwd, ws),
                         bias_d(dbd), accumulate);
    EXPECT_LE(rel_error(dx, dxd), kTolerance) << "dx, accumulate " << accumulate;
    EXPECT_LE(rel_error(dw, dwd), kTolerance) << "dw";
    if (c.bias) EXPECT_LE(rel_error(db, dbd), kTolerance) << "dbias";
  }

  // No dx wanted (the first layer): only the parameter gradients.
  Vecf dw(w.size()), db(b.size());
  Vecd dxd(x.size()), dwd(w.size()), dbd(b.size());
  dnn.conv2d_backward(p, tf(x, xs), tf(w, ws), tf(dy, ys), Tensor(), tf(dw, ws), bias_f(db), false);
  ref->conv2d_backward(p, td(xd, xs), td(wd, ws), td(dyd, ys), td(dxd, xs), td(dwd, ws),
                       bias_d(dbd), false);
  EXPECT_LE(rel_error(dw, dwd), kTolerance) << "dw without dx";
}

INSTANTIATE_TEST_SUITE_P(Shapes, OneDnnConv,
                         ::testing::Values(ConvCase{1, 1, 5, 5, 1, 1, 1, 0, false},
                                           ConvCase{2, 3, 7, 9, 5, 3, 1, 1, true},
                                           ConvCase{2, 3, 32, 32, 16, 3, 1, 1, true},
                                           ConvCase{3, 16, 9, 9, 32, 3, 2, 1, false},
                                           ConvCase{2, 32, 8, 8, 64, 1, 2, 0, false},
                                           ConvCase{2, 17, 11, 13, 19, 5, 2, 2, true},
                                           ConvCase{1, 64, 4, 4, 64, 3, 1, 1, false},
                                           ConvCase{4, 1, 28, 28, 8, 5, 1, 0, true},
                                           ConvCase{2, 5, 6, 6, 7, 3, 3, 0, true},
                                           ConvCase{1, 16, 1, 1, 16, 3, 1, 1, false},
                                           ConvCase{2, 64, 16, 16, 128, 3, 2, 1, false}));

// --- linear ------------------------------------------------------------------------------

TEST_F(OneDnnOps, LinearMatchesRefForwardAndBackward) {
  const LinearParams cases[] = {{1, 7, 3, true},    {4, 512, 10, true}, {5, 33, 17, false},
                                {8, 1024, 512, true}, {2, 3, 1, false}, {3, 4096, 9, true}};
  for (const LinearParams& p : cases) {
    SCOPED_TRACE(::testing::Message() << p.N << "x" << p.in << " -> " << p.out);
    const Shape xs{p.N, p.in}, ws{p.out, p.in}, ys{p.N, p.out}, bs{p.out};
    Vecf x = uniform(xs.numel()), w = uniform(ws.numel()), b = uniform(p.out);
    Vecf dy = uniform(ys.numel()), dx0 = uniform(xs.numel()), y(ys.numel());
    Vecd xd = to_d(x), wd = to_d(w), bd = to_d(b), dyd = to_d(dy), yd(y.size());
    auto bias_f = [&](Vecf& v) { return p.has_bias ? tf(v, bs) : Tensor(); };
    auto bias_d = [&](Vecd& v) { return p.has_bias ? td(v, bs) : Tensor(); };
    dnn.linear_forward(p, tf(x, xs), tf(w, ws), bias_f(b), tf(y, ys));
    ref->linear_forward(p, td(xd, xs), td(wd, ws), bias_d(bd), td(yd, ys));
    EXPECT_LE(rel_error(y, yd), kTolerance) << "y";
    for (bool accumulate : {false, true}) {
      Vecf dx = accumulate ? dx0 : uniform(xs.numel()), dw(w.size()), db(b.size());
      Vecd dxd = to_d(dx0), dwd(w.size()), dbd(b.size());
      dnn.linear_backward(p, tf(x, xs), tf(w, ws), tf(dy, ys), tf(dx, xs), tf(dw, ws),
                          bias_f(db), accumulate);
      ref->linear_backward(p, td(xd, xs), td(wd, ws), td(dyd, ys), td(dxd, xs), td(dwd, ws),
                           bias_d(dbd), accumulate);
      EXPECT_LE(rel_error(dx, dxd), kTolerance) << "dx, accumulate " << accumulate;
      EXPECT_LE(rel_error(dw, dwd), kTolerance) << "dw";
      if (p.has_bias) EXPECT_LE(rel_error(db, dbd), kTolerance) << "dbias";
    }
  }
}

// --- pooling -----------------------------------------------------------------------------

struct PoolCase {
  int N, C, H, W, kernel, stride, pad;
};

class OneDnnPool : public OneDnnOps, public ::testing::WithParamInterface<PoolCase> {};

TEST_P(OneDnnPool, MaxAndAverageMatchRef) {
  const PoolCase c = GetParam();
  const Pool2dParams p{c.N, c.C, c.H, c.W, c.kernel, c.stride, c.pad};
  const Shape xs{p.N, p.C, p.H, p.W}, ys{p.N, p.C, p.P(), p.Q()};
  Vecf x = uniform(p.x_numel()), dy = uniform(p.y_numel()), dx0 = uniform(p.x_numel());
  Vecd xd = to_d(x), dyd = to_d(dy);
  for (bool max : {true, false}) {
    SCOPED_TRACE(max ? "max" : "avg");
    Vecf y(p.y_numel());
    Vecd yd(y.size());
    if (max) {
      dnn.max_pool2d_forward(p, tf(x, xs), tf(y, ys));
      ref->max_pool2d_forward(p, td(xd, xs), td(yd, ys));
    } else {
      dnn.avg_pool2d_forward(p, tf(x, xs), tf(y, ys));
      ref->avg_pool2d_forward(p, td(xd, xs), td(yd, ys));
    }
    EXPECT_LE(rel_error(y, yd), kTolerance) << "y";
    for (bool accumulate : {false, true}) {
      Vecf dx = accumulate ? dx0 : uniform(p.x_numel());
      Vecd dxd = to_d(dx0);
      if (max) {
        dnn.max_pool2d_backward(p, tf(x, xs), tf(y, ys), tf(dy, ys), tf(dx, xs), accumulate);
        ref->max_pool2d_backward(p, td(xd, xs), td(yd, ys), td(dyd, ys), td(dxd, xs), accumulate);
      } else {
        dnn.avg_pool2d_backward(p, tf(dy, ys), tf(dx, xs), accumulate);
        ref->avg_pool2d_backward(p, td(dyd, ys), td(dxd, xs), accumulate);
      }
      EXPECT_LE(rel_error(dx, dxd), kTolerance) << "dx, accumulate " << accumulate;
    }
  }
}

TEST_P(OneDnnPool, MaxPoolBackwardWithoutItsForwardRecomputesTheArgmax) {
  const PoolCase c = GetParam();
  const Pool2dParams p{c.N, c.C, c.H, c.W, c.kernel, c.stride, c.pad};
  const Shape xs{p.N, p.C, p.H, p.W}, ys{p.N, p.C, p.P(), p.Q()};
  Vecf x = uniform(p.x_numel()), dy = uniform(p.y_numel()), y(p.y_numel()), dx(p.x_numel());
  Vecd xd = to_d(x), dyd = to_d(dy), yd(y.size()), dxd(x.size());
  ref->max_pool2d_forward(p, td(xd, xs), td(yd, ys));
  for (size_t i = 0; i < y.size(); ++i) y[i] = float(yd[i]);
  dnn.max_pool2d_backward(p, tf(x, xs), tf(y, ys), tf(dy, ys), tf(dx, xs), false);
  ref->max_pool2d_backward(p, td(xd, xs), td(yd, ys), td(dyd, ys), td(dxd, xs), false);
  EXPECT_LE(rel_error(dx, dxd), kTolerance);
}

INSTANTIATE_TEST_SUITE_P(Shapes, OneDnnPool,
                         ::testing::Values(PoolCase{2, 3, 8, 8, 2, 2, 0},
                                           PoolCase{1, 5, 7, 9, 2, 2, 0},
                                           PoolCase{2, 4, 9, 9, 3, 2, 1},
                                           PoolCase{3, 2, 6, 5, 3, 1, 1},
                                           PoolCase{1, 16, 16, 16, 2, 2, 0},
                                           PoolCase{2, 3, 5, 5, 5, 1, 2}));

TEST_F(OneDnnOps, GlobalAveragePoolMatchesRef) {
  const GlobalPoolParams cases[] = {{2, 3, 5, 7}, {1, 64, 4, 4}, {4, 512, 1, 1}, {3, 9, 8, 8}};
  for (const GlobalPoolParams& p : cases) {
    SCOPED_TRACE(::testing::Message() << p.N << "x" << p.C << "x" << p.H << "x" << p.W);
    const Shape xs{p.N, p.C, p.H, p.W}, ys{p.N, p.C};
    Vecf x = uniform(xs.numel()), y(ys.numel()), dy = uniform(ys.numel()), dx0 = uniform(xs.numel());
    Vecd xd = to_d(x), yd(y.size()), dyd = to_d(dy);
    dnn.global_avg_pool_forward(p, tf(x, xs), tf(y, ys));
    ref->global_avg_pool_forward(p, td(xd, xs), td(yd, ys));
    EXPECT_LE(rel_error(y, yd), kTolerance);
    for (bool accumulate : {false, true}) {
      Vecf dx = accumulate ? dx0 : uniform(xs.numel());
      Vecd dxd = to_d(dx0);
      dnn.global_avg_pool_backward(p, tf(dy, ys), tf(dx, xs), accumulate);
      ref->global_avg_pool_backward(p, td(dyd, ys), td(dxd, xs), accumulate);
      EXPECT_LE(rel_error(dx, dxd), kTolerance) << "accumulate " << accumulate;
    }
  }
}

// --- batch norm --------------------------------------------------------------------------

TEST_F(OneDnnOps, BatchNormMatchesRefInTrainingEvalAndBackward) {
  const BatchNormParams cases[] = {{4, 3, 25, 1e-5, 0.1},  {2, 16, 64, 1e-5, 0.1},
                                   {8, 7, 1, 1e-5, 0.3},   {1, 5, 9, 1e-3, 0.1},
                                   {16, 512, 1, 1e-5, 0.1}, {3, 4, 49, 1e-5, 0.0}};
  for (const BatchNormParams& p : cases) {
    SCOPED_TRACE(::testing::Message() << p.N << "x" << p.C << "x" << p.spatial);
    const Shape xs{p.N, p.C, p.spatial}, cs{p.C};
    // Shifted and scaled so the statistics are not trivially 0 and 1.
    Vecf x = uniform(p.numel(), -2.0f, 5.0f), gamma = uniform(p.C, 0.5f, 1.5f);
    Vecf beta = uniform(p.C), rmean = uniform(p.C), rvar = uniform(p.C, 0.5f, 2.0f);
    Vecf y(x.size()), mean(p.C), invstd(p.C);
    Vecd xd = to_d(x), gd = to_d(gamma), bd = to_d(beta), rmd = to_d(rmean), rvd = to_d(rvar);
    Vecd yd(y.size()), meand(p.C), invd(p.C);
    dnn.batch_norm_forward_train(p, tf(x, xs), tf(gamma, cs), tf(beta, cs), tf(y, xs),
                                 tf(rmean, cs), tf(rvar, cs), tf(mean, cs), tf(invstd, cs));
    ref->batch_norm_forward_train(p, td(xd, xs), td(gd, cs), td(bd, cs), td(yd, xs),
                                  td(rmd, cs), td(rvd, cs), td(meand, cs), td(invd, cs));
    EXPECT_LE(rel_error(y, yd), kTolerance) << "y";
    EXPECT_LE(rel_error(mean, meand), kTolerance) << "save_mean";
    EXPECT_LE(rel_error(invstd, invd), kTolerance) << "save_invstd";
    EXPECT_LE(rel_error(rmean, rmd), kTolerance) << "running_mean";
    EXPECT_LE(rel_error(rvar, rvd), kTolerance) << "running_var";

    Vecf ye(y.size());
    Vecd yed(y.size());
    dnn.batch_norm_forward_eval(p, tf(x, xs), tf(gamma, cs), tf(beta, cs), tf(rmean, cs),
                                tf(rvar, cs), tf(ye, xs));
    ref->batch_norm_forward_eval(p, td(xd, xs), td(gd, cs), td(bd, cs), td(rmd, cs), td(rvd, cs),
                                 td(yed, xs));
    EXPECT_LE(rel_error(ye, yed), kTolerance) << "eval y";

    // Backward from the oracle's saved statistics, so both start from the same numbers.
    Vecf dy = uniform(p.numel()), dx0 = uniform(p.numel());
    Vecf mean_f(meand.begin(), meand.end()), invstd_f(invd.begin(), invd.end());
    Vecd dyd = to_d(dy), mean_r = to_d(mean_f), invstd_r = to_d(invstd_f);
    for (int variant = 0; variant < 3; ++variant) {  // overwrite, accumulate, no dx
      const bool accumulate = variant == 1, no_dx = variant == 2;
      Vecf dx = accumulate ? dx0 : uniform(p.numel()), dgamma(p.C), dbeta(p.C);
      Vecd dxd = to_d(dx0), dgd(p.C), dbd(p.C);
      dnn.batch_norm_backward(p, tf(x, xs), tf(gamma, cs), tf(mean_f, cs), tf(invstd_f, cs),
                              tf(dy, xs), no_dx ? Tensor() : tf(dx, xs), tf(dgamma, cs),
                              tf(dbeta, cs), accumulate);
      ref->batch_norm_backward(p, td(xd, xs), td(gd, cs), td(mean_r, cs), td(invstd_r, cs),
                               td(dyd, xs), td(dxd, xs), td(dgd, cs), td(dbd, cs), accumulate);
      if (!no_dx) EXPECT_LE(rel_error(dx, dxd), kTolerance) << "dx, accumulate " << accumulate;
      EXPECT_LE(rel_error(dgamma, dgd), kTolerance) << "dgamma";
      EXPECT_LE(rel_error(dbeta, dbd), kTolerance) << "dbeta";
    }
  }
}

// --- element-wise ------------------------------------------------------------------------

TEST_F(OneDnnOps, ReluAndAddMatchRef) {
  for (int64_t n : {1, 37, 1000, 65536 + 5}) {
    const Shape s{n};
    Vecf x = uniform(n), b = uniform(n), y(n), dy = uniform(n), dx0 = uniform(n), sum(n);
    Vecd xd = to_d(x), bd = to_d(b), yd(n), dyd = to_d(dy), sumd(n);
    dnn.relu_forward(tf(x, s), tf(y, s));
    ref->relu_forward(td(xd, s), td(yd, s));
    EXPECT_EQ(rel_error(y, yd), 0.0) << n;
    for (bool accumulate : {false, true}) {
      Vecf dx = accumulate ? dx0 : uniform(n);
      Vecd dxd = to_d(dx0);
      dnn.relu_backward(tf(y, s), tf(dy, s), tf(dx, s), accumulate);
      ref->relu_backward(td(yd, s), td(dyd, s), td(dxd, s), accumulate);
      EXPECT_LE(rel_error(dx, dxd), 1e-7) << n << " accumulate " << accumulate;
    }
    dnn.add_forward(tf(x, s), tf(b, s), tf(sum, s));
    ref->add_forward(td(xd, s), td(bd, s), td(sumd, s));
    EXPECT_LE(rel_error(sum, sumd), 1e-7) << n;
  }
}

TEST_F(OneDnnOps, CopyAndDropoutMatchRefExactly) {
  for (int64_t n : {3, 4097, 200001}) {
    const Shape s{n};
    Vecf src = uniform(n), dst = uniform(n), dst_ref = dst;
    dnn.copy(tf(src, s), tf(dst, s), true);
    ref->copy(tf(src, s), tf(dst_ref, s), true);
    EXPECT_EQ(dst, dst_ref);
    dnn.copy(tf(src, s), tf(dst, s), false);
    EXPECT_EQ(dst, src);

    const DropoutParams p{n, 0.3f, 99, 1234};
    Vecf y(n), y_ref(n), dy = uniform(n), dx = uniform(n), dx_ref = dx;
    std::vector<uint8_t> mask(n), mask_ref(n);
    dnn.dropout_forward(p, tf(src, s), tf(y, s), Tensor(mask.data(), DType::u8, s));
    ref->dropout_forward(p, tf(src, s), tf(y_ref, s), Tensor(mask_ref.data(), DType::u8, s));
    EXPECT_EQ(mask, mask_ref);
    EXPECT_EQ(y, y_ref);
    dnn.dropout_backward(p, tf(dy, s), Tensor(mask.data(), DType::u8, s), tf(dx, s), true);
    ref->dropout_backward(p, tf(dy, s), Tensor(mask.data(), DType::u8, s), tf(dx_ref, s), true);
    EXPECT_EQ(dx, dx_ref);
  }
}

}  // namespace
}  // namespace tb
#endif  // TB_HAVE_ONEDNN
