// Layers that the graph's fusion pass makes from chains of simpler ones.
#include <fmt/format.h>

#include "nn/layers/layers.h"

namespace tb {

const char* BatchNormReluLayer::type() const {
  const bool flat = std::string(bn_.type()) == "batch_norm1d";
  if (residual_) return flat ? "batch_norm1d_add_relu" : "batch_norm2d_add_relu";
  return flat ? "batch_norm1d_relu" : "batch_norm2d_relu";
}

std::string BatchNormReluLayer::describe() const {
  return fmt::format("{} (fused: {}relu)", bn_.describe(), residual_ ? "add, " : "");
}

Shape BatchNormReluLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == (residual_ ? 2u : 1u), "{} takes {} input(s)", type(),
           residual_ ? 2 : 1);
  const Shape out = bn_.infer({inputs[0]});
  if (residual_)
    TB_CHECK(inputs[1] == out, "residual {} does not match {}", inputs[1].to_string(),
             out.to_string());
  return out;
}

void BatchNormReluLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  const BatchNormParams p = bn_.params(ctx.batch);
  const Tensor residual = residual_ ? t.x[1] : Tensor{};
  if (ctx.training)
    ctx.backend.batch_norm_relu_forward_train(p, t.x[0], t.params[0], t.params[1], residual, t.y,
                                              t.buffers[0], t.buffers[1], t.buffers[2],
                                              t.buffers[3]);
  else
    ctx.backend.batch_norm_relu_forward_eval(p, t.x[0], t.params[0], t.params[1], residual,
                                             t.buffers[0], t.buffers[1], t.y);
}

void BatchNormReluLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  const Tensor dresidual = residual_ ? t.dx[1] : Tensor{};
  const bool accumulate_residual = residual_ && t.accumulate_dx[1];
  ctx.backend.batch_norm_relu_backward(
      bn_.params(ctx.batch), t.x[0], t.params[0], t.params[1], t.buffers[2], t.buffers[3], t.y,
      t.dy, t.dx[0], t.grads[0], t.grads[1], dresidual, t.accumulate_dx[0], accumulate_residual);
}

}  // namespace tb
