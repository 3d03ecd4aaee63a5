// Pooling and batch normalisation layers.
#include <fmt/format.h>

#include "nn/layers/layers.h"

namespace tb {

// ---- pooling ------------------------------------------------------------------------------

std::string Pool2dLayer::describe() const {
  return fmt::format("{} {}x{} stride {}{}", type(), kernel_, kernel_, stride_,
                     pad_ ? fmt::format(" pad {}", pad_) : "");
}

Shape Pool2dLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == 1 && inputs[0].rank == 3, "pooling takes one [C,H,W] input");
  in_ = inputs[0];
  const Pool2dParams p = params(1);
  TB_INPUT_CHECK(p.P() > 0 && p.Q() > 0, "input {} is too small for {}x{} pooling",
                 in_.to_string(), kernel_, kernel_);
  return Shape{in_[0], p.P(), p.Q()};
}

Pool2dParams Pool2dLayer::params(int batch) const {
  Pool2dParams p;
  p.N = batch;
  p.C = int(in_[0]);
  p.H = int(in_[1]);
  p.W = int(in_[2]);
  p.kernel = kernel_;
  p.stride = stride_;
  p.pad = pad_;
  return p;
}

void Pool2dLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  if (kind_ == PoolKind::max)
    ctx.backend.max_pool2d_forward(params(ctx.batch), t.x[0], t.y);
  else
    ctx.backend.avg_pool2d_forward(params(ctx.batch), t.x[0], t.y);
}

void Pool2dLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  if (!t.dx[0].defined()) return;
  if (kind_ == PoolKind::max)
    ctx.backend.max_pool2d_backward(params(ctx.batch), t.x[0], t.y, t.dy, t.dx[0],
                                    t.accumulate_dx[0]);
  else
    ctx.backend.avg_pool2d_backward(params(ctx.batch), t.dy, t.dx[0], t.accumulate_dx[0]);
}

std::string GlobalAvgPoolLayer::describe() const {
  return fmt::format("global_avg_pool {} -> {}", in_.to_string(), in_[0]);
}

Shape GlobalAvgPoolLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == 1 && inputs[0].rank == 3, "global pooling takes one [C,H,W] input");
  in_ = inputs[0];
  return Shape{in_[0]};
}

void GlobalAvgPoolLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  ctx.backend.global_avg_pool_forward(params(ctx.batch), t.x[0], t.y);
}

void GlobalAvgPoolLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  if (t.dx[0].defined())
    ctx.backend.global_avg_pool_backward(params(ctx.batch), t.dy, t.dx[0], t.accumulate_dx[0]);
}

// ---- batch norm ---------------------------------------------------------------------------

std::string BatchNormLayer::describe() const {
  return fmt::format("{} {}", type(), in_[0]);
}

Shape BatchNormLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == 1 && (inputs[0].rank == 1 || inputs[0].rank == 3),
           "batch norm takes one [C] or [C,H,W] input");
  in_ = inputs[0];
  return in_;
}

BatchNormParams BatchNormLayer::params(int batch) const {
  BatchNormParams p;
  p.N = batch;
  p.C = int(in_[0]);
  p.spatial = in_.rank == 3 ? int(in_[1] * in_[2]) : 1;
  p.eps = eps_;
  p.momentum = momentum_;
  return p;
}

std::vector<ParamSpec> BatchNormLayer::param_specs() const {
  return {{"weight", Shape{in_[0]}, Init::ones, 1}, {"bias", Shape{in_[0]}, Init::zeros, 1}};
}

std::vector<BufferSpec> BatchNormLayer::buffer_specs() const {
  const Shape c{in_[0]};
  return {{"running_mean", c, DType::f32, true, false, Init::zeros},
          {"running_var", c, DType::f32, true, false, Init::ones},
          {"save_mean", c, DType::f32, false, false, Init::zeros},
          {"save_invstd", c, DType::f32, false, false, Init::zeros}};
}

void BatchNormLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  const BatchNormParams p = params(ctx.batch);
  if (ctx.training)
    ctx.backend.batch_norm_forward_train(p, t.x[0], t.params[0], t.params[1], t.y, t.buffers[0],
                                         t.buffers[1], t.buffers[2], t.buffers[3]);
  else
    ctx.backend.batch_norm_forward_eval(p, t.x[0], t.params[0], t.params[1], t.buffers[0],
                                        t.buffers[1], t.y);
}

void BatchNormLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  ctx.backend.batch_norm_backward(params(ctx.batch), t.x[0], t.params[0], t.buffers[2],
                                  t.buffers[3], t.dy, t.dx[0], t.grads[0], t.grads[1],
                                  t.accumulate_dx[0]);
}

}  // namespace tb
