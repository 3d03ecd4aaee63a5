// Batch normalisation, parallel over channels: each channel's statistics and gradient sums
// are accumulated by one thread in a fixed order, in double like ref (a channel can hold
// 64*32*32 values), so results do not depend on the thread count.
//
// The per-run loops are x86-64-v4 clones (AVX-512) where the CPU has it: sums keep 8 double
// lanes (element i of a run goes to lane i % 8, lanes combined in a fixed order), which GCC
// turns into vector adds, and the apply passes vectorise as they stand. The scalar clones do
// the same arithmetic in the same order, so the bits do not depend on the clone either: FMA
// contraction is off for this file (GCC's GNU C++ mode would otherwise fuse a * b + c in the
// x86-64-v4 clone only).
//
// The fused batch norm + (residual add +) ReLU ops run in the passes of batch norm itself:
// the forward adds the residual and applies the ReLU as y is written (bn(x) is rounded to
// float first, as the separate ops store it); the backward masks dy by y > 0 as it reads it,
// writes dresidual and both gradient sums in one pass, and dx in a second. They give the
// bits of the separate ops (the same per-element arithmetic and the same lanes) with 4
// passes over memory instead of 9 forward, and 2 instead of 5 backward.
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "ops/cpu/channel_sums.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/cpu_op_checks.h"

#define TB_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#define TB_INLINE inline __attribute__((always_inline))
#define TB_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define TB_AVX512_LAMBDA __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl")))

namespace tb {
namespace {

using cpu_ops::expect;
using cpu_ops::fptr;

// f(std::bool_constant<v>{}): a run-time flag as a compile-time one.
template <class F>
TB_INLINE void with_flag(bool v, F&& f) {
  if (v) f(std::true_type{});
  else f(std::false_type{});
}

// The statistics' sums over a run: element i goes to lane i % 8 of accumulator set
// (i / 8) % kSets, and at the end of the run the sets are folded into s in a fixed order,
// (set 0 + set 1) + (set 2 + set 3), set 0 starting from s. One set was one chain of
// dependent vector adds (4 cycles per 8 elements); four keep the adds independent. The order
// depends only on the run length, so the bits do not depend on threads or on the clone.
constexpr int kSets = 4;

template <class Term>
TB_INLINE void add_run(const float* x, int64_t n, cpu::LaneSums& s, Term term) {
  double acc[kSets][8] = {};
  for (int l = 0; l < 8; ++l) acc[0][l] = s.lane[l];
  int64_t i = 0;
  for (; i + 8 * kSets <= n; i += 8 * kSets)
#pragma GCC unroll 4
    for (int b = 0; b < kSets; ++b)
#pragma GCC unroll 8
      for (int l = 0; l < 8; ++l) acc[b][l] += term(x[i + 8 * b + l]);
  // The rest, whole vectors first: a 4x4 layer's runs are 16 long, all of them rest, and
  // the lane loop with its bound check per element stayed scalar.
  int b = 0;
  for (; i + 8 <= n; ++b, i += 8)
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) acc[b][l] += term(x[i + l]);
  for (int l = 0; i + l < n; ++l) acc[b][l] += term(x[i + l]);
  for (int l = 0; l < 8; ++l) s.lane[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
}

// The functions below take one image's span of a channel group (see ChannelGroups): nc
// runs of n values, run c for channel c of the group, each with its own sums and
// coefficients. One call per run cost as much as the run itself where runs are short
// (layer4's are 16 values: a clone's indirect call and the flag dispatch per run).

// s[c] += x[c * n + i] for i in [0, n), in the lanes of add_run.
TB_CLONES void add_values(const float* x, int nc, int64_t n, cpu::LaneSums* s) {
  for (int c = 0; c < nc; ++c) add_run(x + c * n, n, s[c], [](float v) { return double(v); });
}

// s[c] += (x[c * n + i] - mean[c])^2 for i in [0, n), in the lanes of add_run.
TB_CLONES void add_squared_deviations(const float* x, int nc, int64_t n, const double* mean,
                                      cpu::LaneSums* s) {
  for (int c = 0; c < nc; ++c) {
    const double mc = mean[c];
    add_run(x + c * n, n, s[c], [mc](float v) {
      const double d = double(v) - mc;
      return d * d;
    });
  }
}

// y = float((x - mean) * scale + shift), then (+ residual), then relu, as the separate ops.
template <bool kResidual, bool kRelu>
TB_INLINE void apply_loop(const float* x, const float* res, int64_t n, double mean, double scale,
                          double shift, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    float v = float((double(x[i]) - mean) * scale + shift);
    if constexpr (kResidual) v = v + res[i];
    if constexpr (kRelu) v = v > 0.0f ? v : 0.0f;
    y[i] = v;
  }
}

TB_CLONES void apply_runs(const float* x, const float* res, int nc, int64_t n, const double* mean,
                          const double* scale, const double* shift, bool relu, float* y) {
  with_flag(res != nullptr, [&](auto r) {
    with_flag(relu, [&](auto u) {
      for (int c = 0; c < nc; ++c)
        apply_loop<r(), u()>(x + c * n, r() ? res + c * n : nullptr, n, mean[c], scale[c],
                             shift[c], y + c * n);
    });
  });
}

// g = relu'(y) * dy (or dy): sum_g += g, sum_gx += g * (x - mean) * invstd, and dres = g
// (or += g). Element i goes to lane i % 8 of set (i / 8) % 2, and the run ends with
// sum = set 0 + set 1 (set 0 starting from sum): two independent chains of vector adds
// instead of one, as in add_run.
template <bool kRelu, bool kRes, bool kAccRes>  // kRes: write dres, kAccRes: add to it
TB_INLINE void grad_sums_loop(const float* x, const float* dy, const float* y, int64_t n,
                              double mean, double invstd, double (*sg)[8], double (*sgx)[8],
                              float* dres) {
  const auto step = [&](int64_t i, int b, int l) {
    const float d = dy[i];
    float g = d;
    if constexpr (kRelu) g = y[i] > 0.0f ? d : 0.0f;
    if constexpr (kRes && !kAccRes) dres[i] = g;
    if constexpr (kRes && kAccRes) dres[i] += g;
    sg[b][l] += double(g);
    sgx[b][l] += double(g) * (double(x[i]) - mean) * invstd;
  };
  int64_t i = 0;
  for (int b = 0; i + 8 <= n; i += 8, b ^= 1)
    for (int l = 0; l < 8; ++l) step(i + l, b, l);
  const int b = int(i / 8) % 2;
  for (int l = 0; i + l < n; ++l) step(i + l, b, l);
}

// Scalar (and any-ISA) form of the backward's first pass.
template <bool kRelu, bool kRes, bool kAccRes>
void grad_sums_generic(const float* x, const float* dy, const float* y, int64_t n, double mean,
                       double invstd, cpu::LaneSums& sum_g, cpu::LaneSums& sum_gx, float* dres) {
  double sg[2][8] = {}, sgx[2][8] = {};
  for (int l = 0; l < 8; ++l) {
    sg[0][l] = sum_g.lane[l];
    sgx[0][l] = sum_gx.lane[l];
  }
  grad_sums_loop<kRelu, kRes, kAccRes>(x, dy, y, n, mean, invstd, sg, sgx, dres);
  for (int l = 0; l < 8; ++l) {
    sum_g.lane[l] = sg[0][l] + sg[1][l];
    sum_gx.lane[l] = sgx[0][l] + sgx[1][l];
  }
}

struct GradCoefficients {
  double mean, invstd, k, m, sum_g, sum_gx;
};

// dx (+)= k * (m * g - sum_g - xhat * sum_gx), g as in grad_sums_loop.
template <bool kRelu, bool kAccumulate>
TB_INLINE void dx_loop(const float* x, const float* dy, const float* y, int64_t n,
                       const GradCoefficients& c, float* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = dy[i];
    float g = d;
    if constexpr (kRelu) g = y[i] > 0.0f ? d : 0.0f;
    const double xhat = (double(x[i]) - c.mean) * c.invstd;
    const float v = float(c.k * (c.m * double(g) - c.sum_g - xhat * c.sum_gx));
    if constexpr (kAccumulate) dx[i] += v;
    else dx[i] = v;
  }
}

// AVX-512 forms of the two backward passes (GCC keeps the ReLU-masked loops above scalar).
// Eight elements per step, element i of a run in double lane i % 8 as above; the tail is
// masked, so its lanes are those of the generic loops.
TB_AVX512 inline __mmask8 tail_mask(int64_t left) {
  return left >= 8 ? __mmask8(0xFF) : __mmask8((1u << left) - 1u);
}

template <bool kRelu>
TB_AVX512 inline __m256 masked_grad(__mmask8 k, const float* dy, const float* y) {
  const __m256 d = _mm256_maskz_loadu_ps(k, dy);
  if constexpr (!kRelu) return d;
  const __mmask8 pos = _mm256_cmp_ps_mask(_mm256_maskz_loadu_ps(k, y), _mm256_setzero_ps(),
                                          _CMP_GT_OQ);
  return _mm256_maskz_mov_ps(pos, d);
}

// The conversions use the maskz forms (all lanes): the plain ones trip GCC 12
// -Wmaybe-uninitialized false alarms.
template <bool kRelu, bool kRes, bool kAccRes>
TB_AVX512 void grad_sums_avx512(const float* x, const float* dy, const float* y, int64_t n,
                                double mean, double invstd, cpu::LaneSums& sum_g,
                                cpu::LaneSums& sum_gx, float* dres) {
  // Sets 0 and 1 of grad_sums_loop.
  __m512d sg[2] = {_mm512_loadu_pd(sum_g.lane), _mm512_setzero_pd()};
  __m512d sgx[2] = {_mm512_loadu_pd(sum_gx.lane), _mm512_setzero_pd()};
  const __m512d vmean = _mm512_set1_pd(mean), vinv = _mm512_set1_pd(invstd);
  const auto step = [&](int64_t i, int b) TB_AVX512_LAMBDA {
    const __mmask8 k = tail_mask(n - i);
    const __m256 g = masked_grad<kRelu>(k, dy + i, y + i);
    if constexpr (kRes && !kAccRes) _mm256_mask_storeu_ps(dres + i, k, g);
    if constexpr (kRes && kAccRes)
      _mm256_mask_storeu_ps(dres + i, k, _mm256_add_ps(_mm256_maskz_loadu_ps(k, dres + i), g));
    const __m512d gd = _mm512_maskz_cvtps_pd(0xFF, g);
    const __m512d xd = _mm512_maskz_cvtps_pd(0xFF, _mm256_maskz_loadu_ps(k, x + i));
    sg[b] = _mm512_mask_add_pd(sg[b], k, sg[b], gd);
    const __m512d t = _mm512_mul_pd(_mm512_mul_pd(gd, _mm512_sub_pd(xd, vmean)), vinv);
    sgx[b] = _mm512_mask_add_pd(sgx[b], k, sgx[b], t);
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    step(i, 0);
    step(i + 8, 1);
  }
  if (i < n) step(i, 0);
  if (i + 8 < n) step(i + 8, 1);
  _mm512_storeu_pd(sum_g.lane, _mm512_add_pd(sg[0], sg[1]));
  _mm512_storeu_pd(sum_gx.lane, _mm512_add_pd(sgx[0], sgx[1]));
}

template <bool kRelu, bool kAccumulate>
TB_AVX512 void dx_avx512(const float* x, const float* dy, const float* y, int64_t n,
                         const GradCoefficients& c, float* dx) {
  const __m512d mean = _mm512_set1_pd(c.mean), invstd = _mm512_set1_pd(c.invstd);
  const __m512d kk = _mm512_set1_pd(c.k), m = _mm512_set1_pd(c.m);
  const __m512d sum_g = _mm512_set1_pd(c.sum_g), sum_gx = _mm512_set1_pd(c.sum_gx);
  for (int64_t i = 0; i < n; i += 8) {
    const __mmask8 k = tail_mask(n - i);
    const __m512d gd = _mm512_maskz_cvtps_pd(0xFF, masked_grad<kRelu>(k, dy + i, y + i));
    const __m512d xd = _mm512_maskz_cvtps_pd(0xFF, _mm256_maskz_loadu_ps(k, x + i));
    const __m512d xhat = _mm512_mul_pd(_mm512_sub_pd(xd, mean), invstd);
    const __m512d t = _mm512_sub_pd(_mm512_sub_pd(_mm512_mul_pd(m, gd), sum_g),
                                    _mm512_mul_pd(xhat, sum_gx));
    __m256 v = _mm512_maskz_cvtpd_ps(0xFF, _mm512_mul_pd(kk, t));
    if constexpr (kAccumulate) v = _mm256_add_ps(_mm256_maskz_loadu_ps(k, dx + i), v);
    _mm256_mask_storeu_ps(dx + i, k, v);
  }
}

bool use_avx512() { return cpu::active_isa() == cpu::Isa::avx512; }

// The backward's two passes over an image's span of a channel group, as add_values.
void grad_sums_runs(const float* x, const float* dy, const float* y, int nc, int64_t n,
                    const GradCoefficients* k, cpu::LaneSums* sum_g, cpu::LaneSums* sum_gx,
                    float* dres, bool accumulate_dres) {
  const bool vector = use_avx512();
  with_flag(y != nullptr, [&](auto u) {
    with_flag(dres != nullptr, [&](auto r) {
      with_flag(accumulate_dres, [&](auto a) {
        const auto f = vector ? grad_sums_avx512<u(), r(), a()> : grad_sums_generic<u(), r(), a()>;
        for (int c = 0; c < nc; ++c)
          f(x + c * n, dy + c * n, u() ? y + c * n : nullptr, n, k[c].mean, k[c].invstd,
            sum_g[c], sum_gx[c], r() ? dres + c * n : nullptr);
      });
    });
  });
}

void dx_runs(const float* x, const float* dy, const float* y, int nc, int64_t n,
             const GradCoefficients* k, bool accumulate, float* dx) {
  const bool vector = use_avx512();
  with_flag(y != nullptr, [&](auto u) {
    with_flag(accumulate, [&](auto a) {
      for (int c = 0; c < nc; ++c) {
        const float* yc = u() ? y + c * n : nullptr;
        if (vector) dx_avx512<u(), a()>(x + c * n, dy + c * n, yc, n, k[c], dx + c * n);
        else dx_loop<u(), a()>(x + c * n, dy + c * n, yc, n, k[c], dx + c * n);
      }
    });
  });
}

// Channels are worked on in groups, one group per task: the passes of a group go over its
// channels image by image, so each image's part is one contiguous span of memory (a channel
// alone is a 64-byte run per image in a 4x4 layer, and each run started a new stream), and
// the group's data stays in L2 between passes. Each channel still sees its runs in image
// order with the same lanes, so the grouping (a function of the shape) changes no bits.
struct ChannelGroups {
  static constexpr int kMax = 64;
  int size = 1, count = 1;
  // tensors: how many of the group's tensors should stay in L2 together.
  ChannelGroups(const BatchNormParams& p, int tensors) {
    constexpr int64_t kL2Floats = int64_t(1) << 17;  // 512 KiB of the 2 MiB L2
    const int64_t per_channel = int64_t(p.N) * p.spatial * tensors;
    size = int(std::clamp<int64_t>(kL2Floats / per_channel, 1, std::min(kMax, p.C)));
    count = (p.C + size - 1) / size;
  }
};

void check_channels(const char* what, std::initializer_list<const Tensor*> ts, int C) {
  for (const Tensor* t : ts) expect(OpKind::batch_norm, what, *t, C);
}

}  // namespace

void CpuBackend::batch_norm_forward_train(const BatchNormParams& p, const Tensor& x,
                                          const Tensor& gamma, const Tensor& beta, const Tensor& y,
                                          const Tensor& running_mean, const Tensor& running_var,
                                          const Tensor& save_mean, const Tensor& save_invstd) {
  batch_norm_relu_train(p, x, gamma, beta, Tensor(), y, running_mean, running_var, save_mean,
                        save_invstd, false);
}

void CpuBackend::batch_norm_relu_forward_train(const BatchNormParams& p, const Tensor& x,
                                               const Tensor& gamma, const Tensor& beta,
                                               const Tensor& residual, const Tensor& y,
                                               const Tensor& running_mean,
                                               const Tensor& running_var, const Tensor& save_mean,
                                               const Tensor& save_invstd) {
  batch_norm_relu_train(p, x, gamma, beta, residual, y, running_mean, running_var, save_mean,
                        save_invstd, true);
}

void CpuBackend::batch_norm_relu_train(const BatchNormParams& p, const Tensor& x,
                                       const Tensor& gamma, const Tensor& beta,
                                       const Tensor& residual, const Tensor& y,
                                       const Tensor& running_mean, const Tensor& running_var,
                                       const Tensor& save_mean, const Tensor& save_invstd,
                                       bool relu) {
  constexpr OpKind op = OpKind::batch_norm;
  expect(op, "x", x, p.numel());
  expect(op, "y", y, p.numel());
  check_channels("a per-channel tensor",
                 {&gamma, &beta, &running_mean, &running_var, &save_mean, &save_invstd}, p.C);
  const int64_t m = int64_t(p.N) * p.spatial;
  TB_CHECK(m > 1, "batch norm in training needs more than 1 value per channel, got N={} x {}",
           p.N, p.spatial);
  const float* xd = fptr(x);
  const float* res = residual.defined() ? fptr(residual) : nullptr;
  if (res) expect(op, "residual", residual, p.numel());
  float* yd = fptr(y);
  const float *g = fptr(gamma), *b = fptr(beta);
  float *rm = fptr(running_mean), *rv = fptr(running_var);
  float *sm = fptr(save_mean), *si = fptr(save_invstd);
  const ChannelGroups groups(p, 1);
  pool_->parallel_for(0, groups.count, [&](int64_t group) {
    const int c0 = int(group) * groups.size, nc = std::min(groups.size, p.C - c0);
    const auto run = [&](int n, int i) { return (int64_t(n) * p.C + c0 + i) * p.spatial; };
    cpu::LaneSums sum[ChannelGroups::kMax], sq[ChannelGroups::kMax];
    double mean[ChannelGroups::kMax], scale[ChannelGroups::kMax], shift[ChannelGroups::kMax];
    for (int n = 0; n < p.N; ++n) add_values(xd + run(n, 0), nc, p.spatial, sum);
    for (int i = 0; i < nc; ++i) mean[i] = sum[i].total() / double(m);
    for (int n = 0; n < p.N; ++n) add_squared_deviations(xd + run(n, 0), nc, p.spatial, mean, sq);
    for (int i = 0; i < nc; ++i) {
      const int c = c0 + i;
      const double var = sq[i].total() / double(m);
      const double invstd = 1.0 / std::sqrt(var + p.eps);
      sm[c] = float(mean[i]);
      si[c] = float(invstd);
      const double unbiased = var * double(m) / double(m - 1);
      rm[c] = float((1.0 - p.momentum) * double(rm[c]) + p.momentum * mean[i]);
      rv[c] = float((1.0 - p.momentum) * double(rv[c]) + p.momentum * unbiased);
      scale[i] = double(g[c]) * invstd;
      shift[i] = double(b[c]);
    }
    for (int n = 0; n < p.N; ++n)
      apply_runs(xd + run(n, 0), res ? res + run(n, 0) : nullptr, nc, p.spatial, mean, scale,
                 shift, relu, yd + run(n, 0));
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
    for (int n = 0; n < p.N; ++n) {
      const int64_t base = (int64_t(n) * p.C + c) * p.spatial;
      apply_runs(xd + base, nullptr, 1, p.spatial, &mean, &scale, &shift, false, yd + base);
    }
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
  batch_norm_relu_grad(p, x, gamma, save_mean, save_invstd, Tensor(), dy, dx, dgamma, dbeta,
                       Tensor(), accumulate_dx, false);
}

void CpuBackend::batch_norm_relu_backward(const BatchNormParams& p, const Tensor& x,
                                          const Tensor& gamma, const Tensor& /*beta*/,
                                          const Tensor& save_mean, const Tensor& save_invstd,
                                          const Tensor& y, const Tensor& dy, const Tensor& dx,
                                          const Tensor& dgamma, const Tensor& dbeta,
                                          const Tensor& dresidual, bool accumulate_dx,
                                          bool accumulate_dresidual) {
  expect(OpKind::batch_norm, "y", y, p.numel());
  batch_norm_relu_grad(p, x, gamma, save_mean, save_invstd, y, dy, dx, dgamma, dbeta, dresidual,
                       accumulate_dx, accumulate_dresidual);
}

void CpuBackend::batch_norm_relu_grad(const BatchNormParams& p, const Tensor& x,
                                      const Tensor& gamma, const Tensor& save_mean,
                                      const Tensor& save_invstd, const Tensor& y,
                                      const Tensor& dy, const Tensor& dx, const Tensor& dgamma,
                                      const Tensor& dbeta, const Tensor& dresidual,
                                      bool accumulate_dx, bool accumulate_dresidual) {
  constexpr OpKind op = OpKind::batch_norm;
  expect(op, "x", x, p.numel());
  expect(op, "dy", dy, p.numel());
  check_channels("a per-channel tensor", {&gamma, &save_mean, &save_invstd, &dgamma, &dbeta}, p.C);
  float* dxd = cpu_ops::optional_ptr(op, "dx", dx, p.numel());
  float* dres = cpu_ops::optional_ptr(op, "dresidual", dresidual, p.numel());
  const float* yd = y.defined() ? fptr(y) : nullptr;  // null: no ReLU
  const float *xd = fptr(x), *dyd = fptr(dy), *g = fptr(gamma);
  const float *sm = fptr(save_mean), *si = fptr(save_invstd);
  float *dg = fptr(dgamma), *db = fptr(dbeta);
  const double m = double(int64_t(p.N) * p.spatial);
  const ChannelGroups groups(p, 3);
  pool_->parallel_for(0, groups.count, [&](int64_t group) {
    const int c0 = int(group) * groups.size, nc = std::min(groups.size, p.C - c0);
    const auto run = [&](int n, int i) { return (int64_t(n) * p.C + c0 + i) * p.spatial; };
    GradCoefficients k[ChannelGroups::kMax];
    cpu::LaneSums sum_g[ChannelGroups::kMax], sum_gx[ChannelGroups::kMax];
    for (int i = 0; i < nc; ++i) k[i] = {double(sm[c0 + i]), double(si[c0 + i]), 0, m, 0, 0};
    for (int n = 0; n < p.N; ++n)
      grad_sums_runs(xd + run(n, 0), dyd + run(n, 0), yd ? yd + run(n, 0) : nullptr, nc,
                     p.spatial, k, sum_g, sum_gx, dres ? dres + run(n, 0) : nullptr,
                     accumulate_dresidual);
    for (int i = 0; i < nc; ++i) {
      const int c = c0 + i;
      k[i].sum_g = sum_g[i].total();
      k[i].sum_gx = sum_gx[i].total();
      db[c] = float(k[i].sum_g);
      dg[c] = float(k[i].sum_gx);
      k[i].k = double(g[c]) * k[i].invstd / m;
    }
    if (!dxd) return;
    for (int n = 0; n < p.N; ++n)
      dx_runs(xd + run(n, 0), dyd + run(n, 0), yd ? yd + run(n, 0) : nullptr, nc, p.spatial, k,
              accumulate_dx, dxd + run(n, 0));
  });
}

}  // namespace tb
