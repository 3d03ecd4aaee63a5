// ReLU through oneDNN's eltwise primitives and add through its binary primitive, on flat
// 1-D views (element-wise ops do not care about the shape). ReLU's backward uses the
// eltwise_relu_use_dst_for_bwd algorithm because the backend's interface hands it y, not x.
#include "ops/onednn/onednn_backend.h"
#include "ops/onednn/onednn_checks.h"
#include "ops/onednn/onednn_state.h"

namespace tb {

using namespace onednn;
using dnnl::memory;

namespace {

memory::desc flat_desc(int64_t n) {
  return memory::desc({n}, memory::data_type::f32, memory::format_tag::a);
}

class ReluPlan final : public PlanBase {
 public:
  ReluPlan(Runtime& rt, int64_t n) : md_(flat_desc(n)) {
    const auto alg = dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
    fwd_pd_ = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg, md_, 0.0f, 0.0f),
        rt.attr(), rt.engine);
    bwd_pd_ = dnnl::eltwise_backward::primitive_desc(
        dnnl::eltwise_backward::desc(alg, md_, md_, 0.0f, 0.0f), rt.attr(), rt.engine, fwd_pd_);
  }

  void forward(Runtime& rt, const float* x, float* y) {
    if (!fwd_.ready()) fwd_ = Exec(rt, fwd_pd_, {{DNNL_ARG_SRC, md_}, {DNNL_ARG_DST, md_}});
    fwd_.bind(DNNL_ARG_SRC, x);
    fwd_.bind(DNNL_ARG_DST, y);
    fwd_.run(rt);
  }

  void backward(Runtime& rt, const float* y, const float* dy, float* dx, bool accumulate_dx) {
    if (!bwd_.ready()) {
      dx_ = OutputStage(rt, md_, md_, kSlotOut);
      bwd_ = Exec(rt, bwd_pd_,
                  {{DNNL_ARG_DST, md_}, {DNNL_ARG_DIFF_DST, md_}, {DNNL_ARG_DIFF_SRC, md_}});
    }
    bwd_.bind(DNNL_ARG_DST, y);
    bwd_.bind(DNNL_ARG_DIFF_DST, dy);
    bwd_.bind(DNNL_ARG_DIFF_SRC, dx_.target(rt, dx, accumulate_dx));
    bwd_.run(rt);
    dx_.finish(rt, dx, accumulate_dx);
  }

 private:
  memory::desc md_;
  dnnl::eltwise_forward::primitive_desc fwd_pd_;
  dnnl::eltwise_backward::primitive_desc bwd_pd_;
  Exec fwd_, bwd_;
  OutputStage dx_;
};

class AddPlan final : public PlanBase {
 public:
  AddPlan(Runtime& rt, int64_t n) : md_(flat_desc(n)) {
    const dnnl::binary::primitive_desc pd(
        dnnl::binary::desc(dnnl::algorithm::binary_add, md_, md_, md_), rt.attr(), rt.engine);
    exec_ = Exec(rt, pd, {{DNNL_ARG_SRC_0, md_}, {DNNL_ARG_SRC_1, md_}, {DNNL_ARG_DST, md_}});
  }

  void run(Runtime& rt, const float* a, const float* b, float* y) {
    exec_.bind(DNNL_ARG_SRC_0, a);
    exec_.bind(DNNL_ARG_SRC_1, b);
    exec_.bind(DNNL_ARG_DST, y);
    exec_.run(rt);
  }

 private:
  memory::desc md_;
  Exec exec_;
};

}  // namespace

void OneDnnBackend::relu_forward(const Tensor& x, const Tensor& y) {
  constexpr OpKind op = OpKind::relu;
  use_threads();
  const int64_t n = x.numel();
  const float* xp = f32(op, "x", x, n);
  float* yp = f32(op, "y", y, n);
  if (n == 0) return;
  state_->plan<ReluPlan>(OpKey(kRelu) << n, [&] { return std::make_unique<ReluPlan>(state_->rt, n); })
      .forward(state_->rt, xp, yp);
}

void OneDnnBackend::relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx,
                                  bool accumulate_dx) {
  constexpr OpKind op = OpKind::relu;
  use_threads();
  const int64_t n = y.numel();
  const float* yp = f32(op, "y", y, n);
  const float* dyp = f32(op, "dy", dy, n);
  float* dxp = optional_f32(op, "dx", dx, n);
  if (!dxp || n == 0) return;
  state_->plan<ReluPlan>(OpKey(kRelu) << n, [&] { return std::make_unique<ReluPlan>(state_->rt, n); })
      .backward(state_->rt, yp, dyp, dxp, accumulate_dx);
}

void OneDnnBackend::add_forward(const Tensor& a, const Tensor& b, const Tensor& y) {
  constexpr OpKind op = OpKind::add;
  use_threads();
  const int64_t n = a.numel();
  const float* ap = f32(op, "a", a, n);
  const float* bp = f32(op, "b", b, n);
  float* yp = f32(op, "y", y, n);
  if (n == 0) return;
  state_->plan<AddPlan>(OpKey(kAdd) << n, [&] { return std::make_unique<AddPlan>(state_->rt, n); })
      .run(state_->rt, ap, bp, yp);
}

}  // namespace tb
