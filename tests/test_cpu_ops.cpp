// The cpu backend's ops against the ref backend, forward and backward, over many shapes (odd
// sizes, stride 2 and 3, padding, batch 1, kernels 1/3/5, with and without bias, chunks of
// several images and partial last chunks): norm-wise relative error <= 1e-4, and the same
// bits with 1, 2 and 3 threads. Ops with ref's per-element arithmetic (dropout, copies,
// optimizer updates) must match ref exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/ref/ref_backend.h"
#include "test_util.h"

namespace tb {
namespace {

using Vecf = std::vector<float>;
using Outputs = std::vector<Vecf>;

constexpr double kTolerance = 1e-4;

Tensor tf(Vecf& v, Shape s) { return Tensor(v.data(), DType::f32, s); }
Tensor tf(Vecf& v) { return Tensor(v.data(), DType::f32, Shape{int64_t(v.size())}); }

Vecf uniform(Rng& rng, int64_t n, float lo = -1, float hi = 1) {
  Vecf v(static_cast<size_t>(n));
  for (float& x : v) x = float(rng.uniform(lo, hi));
  return v;
}

double rel_error(const Vecf& got, const Vecf& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

bool same_bits(const Vecf& a, const Vecf& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs `run` on ref and on cpu backends of 1, 2, 3 and 8 threads: every output within
// `tolerance` of ref (0: identical to ref), and identical across the thread counts. (8 makes
// the forward convolution cut smaller image chunks: ConvPlan.)
void expect_matches_ref(const std::string& what, const std::function<Outputs(Backend&)>& run,
                        double tolerance = kTolerance) {
  auto ref = make_ref_backend();
  const Outputs want = run(*ref);
  Outputs first;
  for (int threads : {1, 2, 3, 8}) {
    CpuBackend cpu(threads);
    const Outputs got = run(cpu);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      if (tolerance == 0) {
        EXPECT_TRUE(same_bits(got[i], want[i])) << what << ": output " << i << ", " << threads
                                                << " threads, differs from ref";
      } else {
        EXPECT_LE(rel_error(got[i], want[i]), tolerance)
            << what << ": output " << i << ", " << threads << " threads";
      }
      if (threads > 1) {
        EXPECT_TRUE(same_bits(got[i], first[i]))
            << what << ": output " << i << " differs between 1 and " << threads << " threads";
      }
    }
    if (threads == 1) first = got;
  }
}

TEST(CpuBackend, IsRegisteredUnderItsName) {
  const auto names = backend_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "cpu"), names.end());
  EXPECT_FALSE(backend_description("cpu").empty());
  auto backend = make_backend("cpu", 2);
  EXPECT_EQ(backend->name(), "cpu");
  EXPECT_TRUE(backend->supports(OpKind::conv2d, DType::f32));
  EXPECT_FALSE(backend->supports(OpKind::conv2d, DType::f64));
  EXPECT_EQ(static_cast<CpuBackend&>(*backend).threads(), 2);
}

// --- convolution -------------------------------------------------------------------------

struct ConvCase {
  int N, C, H, W, K, kernel, stride, pad;
  bool bias;
};

class CpuConv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(CpuConv, MatchesRefForwardAndBackwardWithAnyThreadCount) {
  const ConvCase c = GetParam();
  const Conv2dParams p{c.N, c.C, c.H, c.W, c.K, c.kernel, c.stride, c.pad, c.bias};
  const Shape xs{p.N, p.C, p.H, p.W}, ws{p.K, p.C, p.kernel, p.kernel},
      ys{p.N, p.K, p.P(), p.Q()}, bs{p.K};
  Rng rng(7);
  const Vecf x = uniform(rng, p.x_numel()), w = uniform(rng, p.w_numel()), b = uniform(rng, p.K);
  const Vecf dy = uniform(rng, p.y_numel()), dx0 = uniform(rng, p.x_numel());
  // Winograd (conv_winograd.h) in the data gradient only, then in the forward with F(2x2)
  // (the default) and with F(4x4).
  for (const char* winograd : {"backward", "f2", "all"}) {
    testing::ScopedEnv env("TB_CPU_WINOGRAD", winograd);
    expect_matches_ref(std::string("conv2d, winograd ") + winograd, [&](Backend& be) {
      Vecf xv = x, wv = w, bv = b, dyv = dy, y(p.y_numel());
      auto bias = [&](Vecf& v) { return c.bias ? tf(v, bs) : Tensor(); };
      be.conv2d_forward(p, tf(xv, xs), tf(wv, ws), bias(bv), tf(y, ys));
      Conv2dParams fused = p;  // conv2d_relu: the ReLU in the GEMM's epilogue
      fused.relu = true;
      Vecf y_relu(p.y_numel(), 7.0f);
      be.conv2d_forward(fused, tf(xv, xs), tf(wv, ws), bias(bv), tf(y_relu, ys));
      Outputs out{y, y_relu};
      for (bool accumulate : {false, true}) {
        Vecf dx = accumulate ? dx0 : Vecf(x.size(), 7.0f), dw(w.size(), 7.0f), db(b.size(), 7.0f);
        be.conv2d_backward(p, tf(xv, xs), tf(wv, ws), tf(dyv, ys), tf(dx, xs), tf(dw, ws), bias(db),
                           accumulate);
        out.push_back(dx);
        out.push_back(dw);
        if (c.bias) out.push_back(db);
      }
      Vecf dw(w.size()), db(b.size());  // no dx wanted (the first layer)
      be.conv2d_backward(p, tf(xv, xs), tf(wv, ws), tf(dyv, ys), Tensor(), tf(dw, ws), bias(db),
                         false);
      out.push_back(dw);
      return out;
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuConv,
                         ::testing::Values(ConvCase{1, 1, 5, 5, 1, 1, 1, 0, false},
                                           ConvCase{2, 3, 7, 9, 5, 3, 1, 1, true},
                                           ConvCase{5, 3, 32, 32, 8, 3, 1, 1, true},
                                           ConvCase{7, 4, 17, 19, 6, 3, 1, 1, false},
                                           ConvCase{3, 16, 9, 9, 32, 3, 2, 1, false},
                                           ConvCase{2, 32, 8, 8, 64, 1, 2, 0, false},
                                           ConvCase{5, 8, 32, 32, 16, 1, 1, 0, true},
                                           ConvCase{3, 8, 12, 12, 16, 1, 1, 0, false},
                                           ConvCase{2, 17, 11, 13, 19, 5, 2, 2, true},
                                           ConvCase{1, 64, 4, 4, 64, 3, 1, 1, false},
                                           ConvCase{4, 1, 28, 28, 8, 5, 1, 0, true},
                                           ConvCase{2, 5, 6, 6, 7, 3, 3, 0, true},
                                           ConvCase{1, 16, 1, 1, 16, 3, 1, 1, false},
                                           ConvCase{2, 64, 16, 16, 128, 3, 2, 1, false},
                                           // channels-last weight gradient: several images
                                           // per chunk, several chunks, a short last one
                                           ConvCase{9, 32, 16, 16, 16, 3, 1, 1, true},
                                           ConvCase{2, 16, 8, 8, 8, 5, 1, 2, false},
                                           // 3 forward chunks of 6 images at up to 3
                                           // threads, 8 chunks of 2 at 8 threads
                                           ConvCase{16, 8, 14, 14, 16, 3, 1, 1, true},
                                           // one-image chunks read in place with no padded
                                           // grid (W a multiple of 16); F(2x2) on whole tile
                                           // rows (16 and 8 tiles wide): the forward, and with
                                           // one image the data gradient too, accumulating or
                                           // not
                                           ConvCase{2, 16, 32, 32, 16, 3, 1, 1, true},
                                           ConvCase{1, 16, 32, 32, 16, 3, 1, 1, false},
                                           ConvCase{1, 16, 16, 16, 32, 3, 1, 1, false},
                                           // stride-2 col2im over rows of 16 and more
                                           ConvCase{2, 16, 40, 40, 16, 3, 2, 1, false}));

// Winograd (conv_winograd.h) takes 3x3 stride-1 convolutions with 16 or more channels where
// the CPU has AVX-512. Its rounding differs from a direct sum; this bounds how much, forward
// then data gradient, on resnet18-like layers (ref's 1e-4 above is the contract; this is what
// each achieves), and checks the off switch.
TEST(CpuConvWinograd, StaysWithinAFewRoundingsOfRef) {
  // The first three have 128 or more F(4x4) tiles (the third with partial ones), so F(4x4)
  // runs where asked; the last two have fewer and run F(2x2) (winograd_tile()).
  for (const ConvCase c :
       {ConvCase{2, 64, 32, 32, 64, 3, 1, 1, false}, ConvCase{8, 64, 16, 16, 32, 3, 1, 1, false},
        ConvCase{3, 32, 28, 30, 48, 3, 1, 1, false}, ConvCase{4, 512, 2, 2, 512, 3, 1, 1, false},
        ConvCase{4, 128, 4, 4, 128, 3, 1, 1, false}}) {
    const Conv2dParams p{c.N, c.C, c.H, c.W, c.K, c.kernel, c.stride, c.pad, false};
    const Shape xs{p.N, p.C, p.H, p.W}, ws{p.K, p.C, 3, 3}, ys{p.N, p.K, p.H, p.W}, bs{p.K};
    Rng rng(3);
    Vecf x = uniform(rng, p.x_numel()), w = uniform(rng, p.w_numel()), b = uniform(rng, p.K);
    Vecf dy = uniform(rng, p.y_numel()), dx0 = uniform(rng, p.x_numel());
    // y, then dx (accumulated into dx0: the residual case) after it.
    auto forward = [&](Backend& be) {
      Vecf y(p.y_numel()), dx = dx0, dw(p.w_numel());
      be.conv2d_forward(p, tf(x, xs), tf(w, ws), c.bias ? tf(b, bs) : Tensor(), tf(y, ys));
      be.conv2d_backward(p, tf(x, xs), tf(w, ws), tf(dy, ys), tf(dx, xs), tf(dw, ws), Tensor(),
                         true);
      for (size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];
      y.insert(y.end(), dx.begin(), dx.end());
      return y;
    };
    auto ref = make_ref_backend();
    const Vecf want = forward(*ref);
    CpuBackend cpu(2);
    const size_t ny = size_t(p.y_numel());
    const Vecf want_y(want.begin(), want.begin() + ny), want_dx(want.begin() + ny, want.end());
    // {forward error, data gradient error}
    const auto run_with = [&](const char* setting) {
      testing::ScopedEnv env("TB_CPU_WINOGRAD", setting);
      const Vecf got = forward(cpu);
      return std::pair{rel_error(Vecf(got.begin(), got.begin() + ny), want_y),
                       rel_error(Vecf(got.begin() + ny, got.end()), want_dx)};
    };
    const auto f2 = run_with("f2"), f4 = run_with("all"), direct = run_with("0");
    std::printf(
        "C=%d K=%d %dx%d, norm-wise against ref: forward F(2x2) %.2e, F(4x4) %.2e, "
        "direct %.2e; data gradient F(4x4) %.2e, direct %.2e\n",
        c.C, c.K, c.H, c.W, f2.first, f4.first, direct.first, f4.second, direct.second);
    EXPECT_LE(f2.first, 2e-6);
    EXPECT_LE(f4.first, 1e-5);
    EXPECT_LE(f4.second, 1e-5);
    EXPECT_LE(std::max(direct.first, direct.second), 1e-6);
  }
}

// --- linear ------------------------------------------------------------------------------

TEST(CpuOps, LinearMatchesRefForwardAndBackward) {
  for (const LinearParams p : {LinearParams{1, 7, 3, true}, LinearParams{5, 33, 17, false},
                               LinearParams{8, 512, 10, true}, LinearParams{13, 200, 129, true}}) {
    Rng rng(3);
    const Vecf x = uniform(rng, int64_t(p.N) * p.in), w = uniform(rng, int64_t(p.out) * p.in);
    const Vecf b = uniform(rng, p.out), dy = uniform(rng, int64_t(p.N) * p.out);
    const Vecf dx0 = uniform(rng, int64_t(p.N) * p.in);
    expect_matches_ref("linear", [&](Backend& be) {
      Vecf xv = x, wv = w, bv = b, dyv = dy, y(size_t(p.N) * p.out);
      auto bias = [&](Vecf& v) { return p.has_bias ? tf(v) : Tensor(); };
      be.linear_forward(p, tf(xv), tf(wv), bias(bv), tf(y));
      LinearParams fused = p;  // linear_relu
      fused.relu = true;
      Vecf y_relu(size_t(p.N) * p.out, 3.0f);
      be.linear_forward(fused, tf(xv), tf(wv), bias(bv), tf(y_relu));
      Outputs out{y, y_relu};
      for (bool accumulate : {false, true}) {
        Vecf dx = accumulate ? dx0 : Vecf(x.size(), 3.0f), dw(w.size(), 3.0f), db(b.size(), 3.0f);
        be.linear_backward(p, tf(xv), tf(wv), tf(dyv), tf(dx), tf(dw), bias(db), accumulate);
        out.push_back(dx);
        out.push_back(dw);
        if (p.has_bias) out.push_back(db);
      }
      return out;
    });
  }
}

// --- pooling -----------------------------------------------------------------------------

TEST(CpuOps, PoolingMatchesRef) {
  for (const Pool2dParams p :
       {Pool2dParams{2, 3, 8, 8, 2, 2, 0}, Pool2dParams{3, 5, 9, 7, 2, 2, 0},
        Pool2dParams{2, 4, 11, 11, 3, 2, 1}, Pool2dParams{1, 2, 6, 6, 3, 1, 0},
        Pool2dParams{4, 64, 32, 32, 2, 2, 0}}) {
    Rng rng(11);
    Vecf x = uniform(rng, p.x_numel());
    for (int i = 0; i < 40; ++i) x[size_t(rng.below(x.size()))] = 0.5f;  // ties: first max wins
    const Vecf dy = uniform(rng, p.y_numel()), dx0 = uniform(rng, p.x_numel());
    const Shape xs{p.N, p.C, p.H, p.W}, ys{p.N, p.C, p.P(), p.Q()};
    expect_matches_ref("pooling", [&](Backend& be) {
      Vecf xv = x, dyv = dy, y(p.y_numel()), ya(p.y_numel());
      be.max_pool2d_forward(p, tf(xv, xs), tf(y, ys));
      be.avg_pool2d_forward(p, tf(xv, xs), tf(ya, ys));
      Outputs out{y, ya};
      for (bool accumulate : {false, true}) {
        Vecf dx = accumulate ? dx0 : Vecf(x.size(), 5.0f), dxa = dx;
        be.max_pool2d_backward(p, tf(xv, xs), tf(y, ys), tf(dyv, ys), tf(dx, xs), accumulate);
        be.avg_pool2d_backward(p, tf(dyv, ys), tf(dxa, xs), accumulate);
        out.push_back(dx);
        out.push_back(dxa);
      }
      return out;
    }, 1e-6);
  }
  const GlobalPoolParams g{3, 7, 5, 6};
  Rng rng(12);
  const Vecf x = uniform(rng, 3 * 7 * 30), dy = uniform(rng, 21), dx0 = uniform(rng, 3 * 7 * 30);
  expect_matches_ref("global average pool", [&](Backend& be) {
    Vecf xv = x, dyv = dy, y(21), dx(x.size(), 1.0f), dxa = dx0;
    be.global_avg_pool_forward(g, tf(xv), tf(y));
    be.global_avg_pool_backward(g, tf(dyv), tf(dx), false);
    be.global_avg_pool_backward(g, tf(dyv), tf(dxa), true);
    return Outputs{y, dx, dxa};
  }, 1e-6);
}

// --- batch norm --------------------------------------------------------------------------

TEST(CpuOps, BatchNormMatchesRefInTrainingEvalAndBackward) {
  for (const BatchNormParams p : {BatchNormParams{4, 3, 25, 1e-5, 0.1}, BatchNormParams{7, 16, 1},
                                  BatchNormParams{2, 33, 64, 1e-3, 0.2}}) {
    Rng rng(13);
    const Vecf x = uniform(rng, p.numel(), -2, 3), g = uniform(rng, p.C), b = uniform(rng, p.C);
    const Vecf rm0 = uniform(rng, p.C), rv0 = uniform(rng, p.C, 0.5f, 2.0f);
    const Vecf dy = uniform(rng, p.numel()), dx0 = uniform(rng, p.numel());
    expect_matches_ref("batch norm", [&](Backend& be) {
      Vecf xv = x, gv = g, bv = b, rm = rm0, rv = rv0, dyv = dy;
      Vecf y(x.size()), ye(x.size()), sm(p.C), si(p.C);
      be.batch_norm_forward_train(p, tf(xv), tf(gv), tf(bv), tf(y), tf(rm), tf(rv), tf(sm), tf(si));
      be.batch_norm_forward_eval(p, tf(xv), tf(gv), tf(bv), tf(rm), tf(rv), tf(ye));
      Outputs out{y, ye, rm, rv, sm, si};
      for (bool accumulate : {false, true}) {
        Vecf dx = accumulate ? dx0 : Vecf(x.size(), 2.0f), dg(p.C), db(p.C);
        be.batch_norm_backward(p, tf(xv), tf(gv), tf(sm), tf(si), tf(dyv), tf(dx), tf(dg), tf(db),
                               accumulate);
        out.push_back(dx);
        out.push_back(dg);
        out.push_back(db);
      }
      return out;
    }, 1e-6);
  }
}

// The fused batch norm + (residual add +) ReLU: ref runs the separate ops; cpu fuses them
// into batch norm's passes, and must also give the bits of its own separate ops.
TEST(CpuOps, BatchNormReluMatchesRefAndTheSeparateCpuOps) {
  for (const BatchNormParams p : {BatchNormParams{4, 3, 25, 1e-5, 0.1}, BatchNormParams{7, 16, 1},
                                  BatchNormParams{2, 33, 64, 1e-3, 0.2}}) {
    for (bool residual : {false, true}) {
      Rng rng(15);
      const Vecf x = uniform(rng, p.numel(), -2, 3), g = uniform(rng, p.C), b = uniform(rng, p.C);
      const Vecf rm0 = uniform(rng, p.C), rv0 = uniform(rng, p.C, 0.5f, 2.0f);
      const Vecf r = uniform(rng, p.numel()), dy = uniform(rng, p.numel());
      const Vecf dx0 = uniform(rng, p.numel()), dr0 = uniform(rng, p.numel());
      const auto fused = [&](Backend& be) {
        Outputs out;
        for (bool accumulate : {false, true}) {
          Vecf xv = x, gv = g, bv = b, rm = rm0, rv = rv0, rr = r, dyv = dy;
          Vecf y(x.size()), sm(p.C), si(p.C), dg(p.C), db(p.C);
          Vecf dx = accumulate ? dx0 : Vecf(x.size(), 2.0f), dr = accumulate ? dr0 : Vecf(x.size());
          const Tensor res = residual ? tf(rr) : Tensor(), dres = residual ? tf(dr) : Tensor();
          be.batch_norm_relu_forward_train(p, tf(xv), tf(gv), tf(bv), res, tf(y), tf(rm), tf(rv),
                                           tf(sm), tf(si));
          be.batch_norm_relu_backward(p, tf(xv), tf(gv), tf(bv), tf(sm), tf(si), tf(y), tf(dyv),
                                      tf(dx), tf(dg), tf(db), dres, accumulate, accumulate);
          for (const Vecf* v : {&y, &rm, &rv, &sm, &si, &dx, &dg, &db, &dr}) out.push_back(*v);
        }
        return out;
      };
      expect_matches_ref(residual ? "batch norm + add + relu" : "batch norm + relu", fused, 1e-6);
      // The separate ops on cpu, as the unfused graph runs them.
      CpuBackend cpu(2);
      const Outputs got = fused(cpu);
      Outputs want;
      for (bool accumulate : {false, true}) {
        Vecf xv = x, gv = g, bv = b, rm = rm0, rv = rv0, rr = r, gd(x.size());
        Vecf y(x.size()), sm(p.C), si(p.C), dg(p.C), db(p.C), dyv = dy;
        Vecf dx = accumulate ? dx0 : Vecf(x.size(), 2.0f), dr = accumulate ? dr0 : Vecf(x.size());
        cpu.batch_norm_forward_train(p, tf(xv), tf(gv), tf(bv), tf(y), tf(rm), tf(rv), tf(sm),
                                     tf(si));
        if (residual) cpu.add_forward(tf(y), tf(rr), tf(y));
        cpu.relu_forward(tf(y), tf(y));
        cpu.relu_backward(tf(y), tf(dyv), tf(gd), false);
        if (residual) cpu.copy(tf(gd), tf(dr), accumulate);
        cpu.batch_norm_backward(p, tf(xv), tf(gv), tf(sm), tf(si), tf(gd), tf(dx), tf(dg), tf(db),
                                accumulate);
        for (const Vecf* v : {&y, &rm, &rv, &sm, &si, &dx, &dg, &db, &dr}) want.push_back(*v);
      }
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(same_bits(got[i], want[i])) << "output " << i << (residual ? " (residual)" : "");
    }
  }
}

// --- elementwise, dropout ----------------------------------------------------------------

TEST(CpuOps, ElementwiseOpsMatchRefExactly) {
  Rng rng(14);
  const int64_t n = 100003;  // large enough for the parallel path, odd for the tails
  const Vecf a = uniform(rng, n), b = uniform(rng, n), d0 = uniform(rng, n);
  expect_matches_ref("relu, add, copy", [&](Backend& be) {
    Vecf av = a, bv = b, y(n), s(n), c(n), ca = d0, dx(n, 1.0f), dxa = d0;
    be.relu_forward(tf(av), tf(y));
    be.relu_backward(tf(y), tf(bv), tf(dx), false);
    be.relu_backward(tf(y), tf(bv), tf(dxa), true);
    be.add_forward(tf(av), tf(bv), tf(s));
    be.copy(tf(av), tf(c), false);
    be.copy(tf(av), tf(ca), true);
    return Outputs{y, dx, dxa, s, c, ca};
  }, 0);
  for (float p : {0.0f, 0.25f, 0.5f, 1.0f}) {
    expect_matches_ref("dropout", [&](Backend& be) {
      const DropoutParams dp{n, p, 42, 7};
      Vecf av = a, bv = b, y(n), dx(n), dxa = d0;
      std::vector<uint8_t> mask(n);
      Tensor m(mask.data(), DType::u8, Shape{n});
      be.dropout_forward(dp, tf(av), tf(y), m);
      be.dropout_backward(dp, tf(bv), m, tf(dx), false);
      be.dropout_backward(dp, tf(bv), m, tf(dxa), true);
      Vecf maskf(mask.begin(), mask.end());
      return Outputs{y, dx, dxa, maskf};
    }, 0);
  }
}

// --- loss, optimizer updates -------------------------------------------------------------

TEST(CpuOps, CrossEntropyAndOptimizerUpdatesMatchRefExactly) {
  Rng rng(5);
  const Vecf logits = uniform(rng, 70, -4, 4);
  expect_matches_ref("cross-entropy", [&](Backend& be) {
    const CrossEntropyParams ce{7, 10, 0.1f};
    std::vector<int32_t> labels{0, 9, 3, 3, 5, 1, 7};
    Tensor lab(labels.data(), DType::i32, Shape{7});
    Vecf lv = logits, probs(70), losses(7), dlogits(70);
    be.cross_entropy_forward(ce, tf(lv), lab, tf(probs), tf(losses));
    be.cross_entropy_backward(ce, tf(probs), lab, tf(dlogits));
    return Outputs{probs, losses, dlogits};
  }, 0);
  const int64_t n = 100003;
  const Vecf w0 = uniform(rng, n), g = uniform(rng, n), buf0 = uniform(rng, n);
  for (bool nesterov : {false, true})
    for (float momentum : {0.0f, 0.9f})
      expect_matches_ref("sgd", [&](Backend& be) {
        const SgdUpdateParams p{n, 0.05f, momentum, 1e-4f, nesterov};
        Vecf w = w0, gv = g, buf = buf0;
        for (int step = 0; step < 3; ++step) be.sgd_update(p, tf(w), tf(gv), tf(buf));
        return Outputs{w, buf};
      }, 0);
  for (bool decoupled : {false, true})
    expect_matches_ref("adam", [&](Backend& be) {
      Vecf w = w0, gv = g, m(n), v(n);
      for (int64_t step = 1; step <= 3; ++step) {
        const AdamUpdateParams p{n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, decoupled, step};
        be.adam_update(p, tf(w), tf(gv), tf(m), tf(v));
      }
      return Outputs{w, m, v};
    }, 0);
}

}  // namespace
}  // namespace tb
