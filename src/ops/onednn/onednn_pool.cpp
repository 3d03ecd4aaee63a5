// Max, average and global average pooling through oneDNN's pooling primitives, on the
// graph's plain NCHW layout (pooling is memory-bound: a reorder would cost as much as the
// op). Average pooling counts padded cells (pooling_avg_include_padding), like PyTorch.
//
// Max-pool backward reads the argmax oneDNN's forward recorded in a workspace. The
// workspaces are kept per (x, y) pair of tensors, allocated the first time a pair is seen;
// a backward whose pair has no workspace yet (the forward ran elsewhere) recomputes it.
#include <memory>
#include <vector>

#include "ops/onednn/onednn_backend.h"
#include "ops/onednn/onednn_checks.h"
#include "ops/onednn/onednn_state.h"

namespace tb {

using namespace onednn;
using dnnl::memory;
using tag = memory::format_tag;

namespace {

struct PoolShape {
  int N, C, H, W, kernel_h, kernel_w, stride, pad, P, Q;
};

class PoolPlan final : public PlanBase {
 public:
  PoolPlan(Runtime& rt, const PoolShape& s, dnnl::algorithm alg)
      : x_md_({s.N, s.C, s.H, s.W}, memory::data_type::f32, tag::nchw),
        y_md_({s.N, s.C, s.P, s.Q}, memory::data_type::f32, tag::nchw) {
    const memory::dims strides{s.stride, s.stride}, kernel{s.kernel_h, s.kernel_w},
        pad{s.pad, s.pad};
    fwd_pd_ = dnnl::pooling_forward::primitive_desc(
        dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training, alg, x_md_, y_md_,
                                    strides, kernel, pad, pad),
        rt.attr(), rt.engine);
    bwd_pd_ = dnnl::pooling_backward::primitive_desc(
        dnnl::pooling_backward::desc(alg, x_md_, y_md_, strides, kernel, pad, pad), rt.attr(),
        rt.engine, fwd_pd_);
    ws_md_ = fwd_pd_.workspace_desc();
  }

  void forward(State& s, const void* x, void* y) {
    Runtime& rt = s.rt;
    run_forward(rt, x, y, has_workspace() ? workspace_for(rt, x, y).data() : nullptr);
  }

  // x and y are only read for max pooling's workspace.
  void backward(State& s, const void* x, const void* y, const void* dy, void* dx,
                bool accumulate_dx) {
    Runtime& rt = s.rt;
    if (!bwd_.ready()) {
      dx_ = OutputStage(rt, x_md_, x_md_, kSlotOut);
      if (has_workspace())
        bwd_ = Exec(rt, bwd_pd_, {{DNNL_ARG_DIFF_DST, y_md_}, {DNNL_ARG_DIFF_SRC, x_md_},
                                  {DNNL_ARG_WORKSPACE, ws_md_}});
      else
        bwd_ = Exec(rt, bwd_pd_, {{DNNL_ARG_DIFF_DST, y_md_}, {DNNL_ARG_DIFF_SRC, x_md_}});
    }
    if (has_workspace()) {
      Buffer* ws = find_workspace(x, y);
      if (!ws) {  // recompute the argmax; y itself stays untouched
        ws = &workspace_for(rt, x, y);
        rt.reserve(kSlotIn, y_md_.get_size());
        run_forward(rt, x, rt.slot(kSlotIn), ws->data());
      }
      bwd_.bind(DNNL_ARG_WORKSPACE, ws->data());
    }
    bwd_.bind(DNNL_ARG_DIFF_DST, dy);
    bwd_.bind(DNNL_ARG_DIFF_SRC, dx_.target(rt, dx, accumulate_dx));
    bwd_.run(rt);
    dx_.finish(rt, dx, accumulate_dx);
  }

  void forget_addresses(const char* begin, const char* end) override {
    auto inside = [&](const void* p) {
      return static_cast<const char*>(p) >= begin && static_cast<const char*>(p) < end;
    };
    std::erase_if(workspaces_, [&](const Workspace& w) { return inside(w.x) || inside(w.y); });
  }

 private:
  struct Workspace {
    const void* x;
    const void* y;
    Buffer buffer;
  };

  void run_forward(Runtime& rt, const void* x, void* y, void* workspace) {
    if (!fwd_.ready()) {
      if (has_workspace())
        fwd_ = Exec(rt, fwd_pd_, {{DNNL_ARG_SRC, x_md_}, {DNNL_ARG_DST, y_md_},
                                  {DNNL_ARG_WORKSPACE, ws_md_}});
      else
        fwd_ = Exec(rt, fwd_pd_, {{DNNL_ARG_SRC, x_md_}, {DNNL_ARG_DST, y_md_}});
    }
    fwd_.bind(DNNL_ARG_SRC, x);
    fwd_.bind(DNNL_ARG_DST, y);
    if (workspace) fwd_.bind(DNNL_ARG_WORKSPACE, workspace);
    fwd_.run(rt);
  }

  bool has_workspace() const { return ws_md_.get_size() > 0; }

  Buffer* find_workspace(const void* x, const void* y) {
    for (Workspace& w : workspaces_)
      if (w.x == x && w.y == y) return &w.buffer;
    return nullptr;
  }

  Buffer& workspace_for(Runtime& rt, const void* x, const void* y) {
    if (Buffer* b = find_workspace(x, y)) return *b;
    workspaces_.push_back({x, y, rt.make_buffer(ws_md_.get_size())});
    return workspaces_.back().buffer;
  }

  memory::desc x_md_, y_md_, ws_md_;
  dnnl::pooling_forward::primitive_desc fwd_pd_;
  dnnl::pooling_backward::primitive_desc bwd_pd_;
  Exec fwd_, bwd_;
  OutputStage dx_;
  std::vector<Workspace> workspaces_;
};

void check_pool(OpKind op, const Pool2dParams& p) {
  // PyTorch's rule; it also guarantees every window holds at least one real cell.
  TB_CHECK(p.N > 0 && p.C > 0 && p.kernel > 0 && p.stride > 0 && p.pad >= 0 &&
               2 * p.pad <= p.kernel,
           "onednn {}: bad params kernel={} stride={} pad={} (pad must be at most kernel/2)",
           op_name(op), p.kernel, p.stride, p.pad);
  TB_CHECK(p.P() > 0 && p.Q() > 0, "onednn {}: a {}x{} window does not fit a {}x{} input",
           op_name(op), p.kernel, p.kernel, p.H, p.W);
}

PoolPlan& pool_plan(State& s, PlanKind kind, const Pool2dParams& p) {
  check_pool(kind == kMaxPool ? OpKind::max_pool2d : OpKind::avg_pool2d, p);
  const OpKey key = OpKey(kind) << p.N << p.C << p.H << p.W << p.kernel << p.stride << p.pad;
  return s.plan<PoolPlan>(key, [&] {
    const PoolShape shape{p.N, p.C, p.H, p.W, p.kernel, p.kernel, p.stride, p.pad, p.P(), p.Q()};
    return std::make_unique<PoolPlan>(s.rt, shape,
                                      kind == kMaxPool ? dnnl::algorithm::pooling_max
                                                       : dnnl::algorithm::pooling_avg_include_padding);
  });
}

PoolPlan& global_pool_plan(State& s, const GlobalPoolParams& p) {
  TB_CHECK(p.N > 0 && p.C > 0 && p.H > 0 && p.W > 0, "onednn global_avg_pool: bad params {}x{}x{}x{}",
           p.N, p.C, p.H, p.W);
  const OpKey key = OpKey(kGlobalPool) << p.N << p.C << p.H << p.W;
  return s.plan<PoolPlan>(key, [&] {
    const PoolShape shape{p.N, p.C, p.H, p.W, p.H, p.W, 1, 0, 1, 1};
    return std::make_unique<PoolPlan>(s.rt, shape, dnnl::algorithm::pooling_avg_include_padding);
  });
}

}  // namespace

void OneDnnBackend::max_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) {
  constexpr OpKind op = OpKind::max_pool2d;
  use_threads();
  pool_plan(*state_, kMaxPool, p)
      .forward(*state_, f32(op, "x", x, p.x_numel()), f32(op, "y", y, p.y_numel()));
}

void OneDnnBackend::max_pool2d_backward(const Pool2dParams& p, const Tensor& x, const Tensor& y,
                                        const Tensor& dy, const Tensor& dx, bool accumulate_dx) {
  constexpr OpKind op = OpKind::max_pool2d;
  use_threads();
  PoolPlan& plan = pool_plan(*state_, kMaxPool, p);
  float* dxp = optional_f32(op, "dx", dx, p.x_numel());
  if (!dxp) return;
  plan.backward(*state_, f32(op, "x", x, p.x_numel()), f32(op, "y", y, p.y_numel()),
                f32(op, "dy", dy, p.y_numel()), dxp, accumulate_dx);
}

void OneDnnBackend::avg_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) {
  constexpr OpKind op = OpKind::avg_pool2d;
  use_threads();
  pool_plan(*state_, kAvgPool, p)
      .forward(*state_, f32(op, "x", x, p.x_numel()), f32(op, "y", y, p.y_numel()));
}

void OneDnnBackend::avg_pool2d_backward(const Pool2dParams& p, const Tensor& dy, const Tensor& dx,
                                        bool accumulate_dx) {
  constexpr OpKind op = OpKind::avg_pool2d;
  use_threads();
  PoolPlan& plan = pool_plan(*state_, kAvgPool, p);
  float* dxp = optional_f32(op, "dx", dx, p.x_numel());
  if (!dxp) return;
  plan.backward(*state_, nullptr, nullptr, f32(op, "dy", dy, p.y_numel()), dxp, accumulate_dx);
}

void OneDnnBackend::global_avg_pool_forward(const GlobalPoolParams& p, const Tensor& x,
                                            const Tensor& y) {
  constexpr OpKind op = OpKind::global_avg_pool;
  use_threads();
  const int64_t planes = int64_t(p.N) * p.C;
  global_pool_plan(*state_, p)
      .forward(*state_, f32(op, "x", x, planes * p.H * p.W), f32(op, "y", y, planes));
}

void OneDnnBackend::global_avg_pool_backward(const GlobalPoolParams& p, const Tensor& dy,
                                             const Tensor& dx, bool accumulate_dx) {
  constexpr OpKind op = OpKind::global_avg_pool;
  use_threads();
  const int64_t planes = int64_t(p.N) * p.C;
  PoolPlan& plan = global_pool_plan(*state_, p);
  float* dxp = optional_f32(op, "dx", dx, planes * p.H * p.W);
  if (!dxp) return;
  plan.backward(*state_, nullptr, nullptr, f32(op, "dy", dy, planes), dxp, accumulate_dx);
}

}  // namespace tb
