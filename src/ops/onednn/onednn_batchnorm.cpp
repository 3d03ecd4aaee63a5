// Batch normalisation through oneDNN's batch_normalization primitives, with separate scale
// (gamma) and shift (beta) tensors (use_scale | use_shift). The graph's plain [N, C, spatial]
// data is seen as [N, C, spatial, 1] (one plan serves 1-D and 2-D batch norm) and staged
// into the blocked layout (nChw16c): oneDNN's JIT batch norm runs there, 2-4x faster than
// its plain-layout one even with the reorders in and out counted.
//
// oneDNN returns the batch mean and the biased variance; it keeps no running statistics and
// no 1/sqrt(var + eps). Those follow here in a loop over channels, in double like the ref
// backend (running = (1 - momentum) * running + momentum * batch, with the unbiased
// variance). Backward wants the variance back: it is recovered from the saved invstd.
#include <cmath>
#include <cstring>

#include "ops/onednn/onednn_backend.h"
#include "ops/onednn/onednn_checks.h"
#include "ops/onednn/onednn_state.h"

namespace tb {

using namespace onednn;
using dnnl::memory;
using tag = memory::format_tag;

namespace {

class BatchNormPlan final : public PlanBase {
 public:
  BatchNormPlan(Runtime& rt, const BatchNormParams& p)
      : plain_md_({p.N, p.C, p.spatial, 1}, memory::data_type::f32, tag::nchw),
        data_md_({p.N, p.C, p.spatial, 1}, memory::data_type::f32, rt.blocked_tag()),
        stat_md_({p.C}, memory::data_type::f32, tag::x),
        variance_(rt.make_buffer(sizeof(float) * p.C)),
        unused_shift_(rt.make_buffer(sizeof(float) * p.C)) {
    std::memset(unused_shift_.data(), 0, unused_shift_.bytes());
    using flags = dnnl::normalization_flags;
    const float eps = float(p.eps);
    const flags scale_shift = flags::use_scale | flags::use_shift;
    train_pd_ = dnnl::batch_normalization_forward::primitive_desc(
        dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_training, data_md_, eps,
                                                scale_shift),
        rt.attr(), rt.engine);
    eval_pd_ = dnnl::batch_normalization_forward::primitive_desc(
        dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_inference, data_md_,
                                                eps, scale_shift | flags::use_global_stats),
        rt.attr(), rt.engine);
    bwd_pd_ = dnnl::batch_normalization_backward::primitive_desc(
        dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, data_md_, data_md_,
                                                 eps, scale_shift),
        rt.attr(), rt.engine, train_pd_);
    x_ = InputStage(rt, plain_md_, data_md_, kSlotIn);
    y_ = OutputStage(rt, data_md_, plain_md_, kSlotOut);
  }

  // x, gamma, beta -> y, mean, variance (into the plan's buffer)
  float* forward_train(Runtime& rt, const float* x, const float* gamma, const float* beta,
                       float* y, float* mean) {
    if (!train_.ready())
      train_ = Exec(rt, train_pd_, {{DNNL_ARG_SRC, data_md_}, {DNNL_ARG_DST, data_md_},
                                    {DNNL_ARG_SCALE, stat_md_}, {DNNL_ARG_SHIFT, stat_md_},
                                    {DNNL_ARG_MEAN, stat_md_}, {DNNL_ARG_VARIANCE, stat_md_}});
    float* variance = static_cast<float*>(variance_.data());
    train_.bind(DNNL_ARG_SRC, x_.stage(rt, x));
    train_.bind(DNNL_ARG_DST, y_.target(rt, y, false));
    train_.bind(DNNL_ARG_SCALE, gamma);
    train_.bind(DNNL_ARG_SHIFT, beta);
    train_.bind(DNNL_ARG_MEAN, mean);
    train_.bind(DNNL_ARG_VARIANCE, variance);
    train_.run(rt);
    y_.finish(rt, y, false);
    return variance;
  }

  void forward_eval(Runtime& rt, const float* x, const float* gamma, const float* beta,
                    const float* mean, const float* var, float* y) {
    if (!eval_.ready())
      eval_ = Exec(rt, eval_pd_, {{DNNL_ARG_SRC, data_md_}, {DNNL_ARG_DST, data_md_},
                                  {DNNL_ARG_SCALE, stat_md_}, {DNNL_ARG_SHIFT, stat_md_},
                                  {DNNL_ARG_MEAN, stat_md_}, {DNNL_ARG_VARIANCE, stat_md_}});
    eval_.bind(DNNL_ARG_SRC, x_.stage(rt, x));
    eval_.bind(DNNL_ARG_DST, y_.target(rt, y, false));
    eval_.bind(DNNL_ARG_SCALE, gamma);
    eval_.bind(DNNL_ARG_SHIFT, beta);
    eval_.bind(DNNL_ARG_MEAN, mean);
    eval_.bind(DNNL_ARG_VARIANCE, var);
    eval_.run(rt);
    y_.finish(rt, y, false);
  }

  void backward(Runtime& rt, const BatchNormParams& p, const float* x, const float* gamma,
                const float* mean, const float* invstd, const float* dy, float* dx,
                float* dgamma, float* dbeta, bool accumulate_dx) {
    if (!bwd_.ready()) {
      dy_ = InputStage(rt, plain_md_, data_md_, kSlotExtra);
      dx_ = OutputStage(rt, data_md_, plain_md_, kSlotOut);
      bwd_ = Exec(rt, bwd_pd_, {{DNNL_ARG_SRC, data_md_}, {DNNL_ARG_MEAN, stat_md_},
                                {DNNL_ARG_VARIANCE, stat_md_}, {DNNL_ARG_DIFF_DST, data_md_},
                                {DNNL_ARG_SCALE, stat_md_}, {DNNL_ARG_DIFF_SRC, data_md_},
                                {DNNL_ARG_DIFF_SCALE, stat_md_}, {DNNL_ARG_DIFF_SHIFT, stat_md_},
                                {DNNL_ARG_SHIFT, stat_md_}});
      bwd_.bind(DNNL_ARG_SHIFT, unused_shift_.data());
    }
    // var + eps = 1 / invstd^2 exactly in double; oneDNN adds eps back in float.
    float* variance = static_cast<float*>(variance_.data());
    for (int c = 0; c < p.C; ++c) {
      const double s = double(invstd[c]);
      variance[c] = float(1.0 / (s * s) - p.eps);
    }
    // Without a dx, oneDNN still computes one: it goes to the workspace.
    void* target;
    if (dx) {
      target = dx_.target(rt, dx, accumulate_dx);
    } else {
      rt.reserve(kSlotOut, data_md_.get_size());
      target = rt.slot(kSlotOut);
    }
    bwd_.bind(DNNL_ARG_SRC, x_.stage(rt, x));
    bwd_.bind(DNNL_ARG_MEAN, mean);
    bwd_.bind(DNNL_ARG_VARIANCE, variance);
    bwd_.bind(DNNL_ARG_DIFF_DST, dy_.stage(rt, dy));
    bwd_.bind(DNNL_ARG_SCALE, gamma);
    bwd_.bind(DNNL_ARG_DIFF_SRC, target);
    bwd_.bind(DNNL_ARG_DIFF_SCALE, dgamma);
    bwd_.bind(DNNL_ARG_DIFF_SHIFT, dbeta);
    bwd_.run(rt);
    if (dx) dx_.finish(rt, dx, accumulate_dx);
  }

 private:
  memory::desc plain_md_, data_md_, stat_md_;  // the graph's layout, the primitives', [C]
  Buffer variance_;  // [C]: the batch variance, or the one recovered for backward
  // [C] zeros: oneDNN 2.6's backward asks for the shift (use_shift) though dx does not
  // depend on it, and the backend's interface does not pass beta to backward.
  Buffer unused_shift_;
  dnnl::batch_normalization_forward::primitive_desc train_pd_, eval_pd_;
  dnnl::batch_normalization_backward::primitive_desc bwd_pd_;
  Exec train_, eval_, bwd_;
  InputStage x_, dy_;
  OutputStage y_, dx_;
};

BatchNormPlan& batch_norm_plan(State& s, const BatchNormParams& p) {
  TB_CHECK(p.N > 0 && p.C > 0 && p.spatial > 0 && p.eps > 0,
           "onednn batch_norm: bad params N={} C={} spatial={} eps={}", p.N, p.C, p.spatial,
           p.eps);
  int64_t eps_bits;
  std::memcpy(&eps_bits, &p.eps, sizeof eps_bits);
  const OpKey key = OpKey(kBatchNorm) << p.N << p.C << p.spatial << eps_bits;
  return s.plan<BatchNormPlan>(key, [&] { return std::make_unique<BatchNormPlan>(s.rt, p); });
}

}  // namespace

void OneDnnBackend::batch_norm_forward_train(const BatchNormParams& p, const Tensor& x,
                                             const Tensor& gamma, const Tensor& beta,
                                             const Tensor& y, const Tensor& running_mean,
                                             const Tensor& running_var, const Tensor& save_mean,
                                             const Tensor& save_invstd) {
  constexpr OpKind op = OpKind::batch_norm;
  use_threads();
  const int64_t m = int64_t(p.N) * p.spatial;
  // PyTorch refuses this too: the unbiased variance would divide by zero.
  TB_CHECK(m > 1, "batch norm in training needs more than 1 value per channel, got N={} x {}",
           p.N, p.spatial);
  BatchNormPlan& plan = batch_norm_plan(*state_, p);
  float* mean = f32(op, "save_mean", save_mean, p.C);
  float* invstd = f32(op, "save_invstd", save_invstd, p.C);
  float* rmean = f32(op, "running_mean", running_mean, p.C);
  float* rvar = f32(op, "running_var", running_var, p.C);
  const float* var = plan.forward_train(state_->rt, f32(op, "x", x, p.numel()),
                                        f32(op, "gamma", gamma, p.C), f32(op, "beta", beta, p.C),
                                        f32(op, "y", y, p.numel()), mean);
  const double unbias = double(m) / double(m - 1);
  for (int c = 0; c < p.C; ++c) {
    const double batch_var = double(var[c]);
    invstd[c] = float(1.0 / std::sqrt(batch_var + p.eps));
    rmean[c] = float((1.0 - p.momentum) * double(rmean[c]) + p.momentum * double(mean[c]));
    rvar[c] = float((1.0 - p.momentum) * double(rvar[c]) + p.momentum * batch_var * unbias);
  }
}

void OneDnnBackend::batch_norm_forward_eval(const BatchNormParams& p, const Tensor& x,
                                            const Tensor& gamma, const Tensor& beta,
                                            const Tensor& running_mean,
                                            const Tensor& running_var, const Tensor& y) {
  constexpr OpKind op = OpKind::batch_norm;
  use_threads();
  batch_norm_plan(*state_, p)
      .forward_eval(state_->rt, f32(op, "x", x, p.numel()), f32(op, "gamma", gamma, p.C),
                    f32(op, "beta", beta, p.C), f32(op, "running_mean", running_mean, p.C),
                    f32(op, "running_var", running_var, p.C), f32(op, "y", y, p.numel()));
}

void OneDnnBackend::batch_norm_backward(const BatchNormParams& p, const Tensor& x,
                                        const Tensor& gamma, const Tensor& save_mean,
                                        const Tensor& save_invstd, const Tensor& dy,
                                        const Tensor& dx, const Tensor& dgamma,
                                        const Tensor& dbeta, bool accumulate_dx) {
  constexpr OpKind op = OpKind::batch_norm;
  use_threads();
  batch_norm_plan(*state_, p)
      .backward(state_->rt, p, f32(op, "x", x, p.numel()), f32(op, "gamma", gamma, p.C),
                f32(op, "save_mean", save_mean, p.C), f32(op, "save_invstd", save_invstd, p.C),
                f32(op, "dy", dy, p.numel()), optional_f32(op, "dx", dx, p.numel()),
                f32(op, "dgamma", dgamma, p.C), f32(op, "dbeta", dbeta, p.C), accumulate_dx);
}

}  // namespace tb
