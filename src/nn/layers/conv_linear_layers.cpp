// Convolution and fully connected layers.
#include <fmt/format.h>

#include "nn/layers/layers.h"

namespace tb {

// ---- conv2d -------------------------------------------------------------------------------

std::string Conv2dLayer::describe() const {
  return fmt::format("conv2d {}x{} {}->{} stride {} pad {}{}{}", kernel_, kernel_, in_[0], out_,
                     stride_, pad_, bias_ ? "" : " no-bias", relu_ ? " (fused: relu)" : "");
}

Shape Conv2dLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == 1 && inputs[0].rank == 3, "conv2d takes one [C,H,W] input");
  in_ = inputs[0];
  const Conv2dParams p = params(1);
  TB_INPUT_CHECK(p.P() > 0 && p.Q() > 0,
                 "input {} is too small for a {}x{} convolution with stride {} and pad {}",
                 in_.to_string(), kernel_, kernel_, stride_, pad_);
  return Shape{out_, p.P(), p.Q()};
}

Conv2dParams Conv2dLayer::params(int batch) const {
  Conv2dParams p;
  p.N = batch;
  p.C = int(in_[0]);
  p.H = int(in_[1]);
  p.W = int(in_[2]);
  p.K = out_;
  p.kernel = kernel_;
  p.stride = stride_;
  p.pad = pad_;
  p.has_bias = bias_;
  p.relu = relu_;
  return p;
}

std::vector<ParamSpec> Conv2dLayer::param_specs() const {
  const int64_t fan_in = in_[0] * kernel_ * kernel_;
  std::vector<ParamSpec> specs{
      {"weight", Shape{out_, in_[0], kernel_, kernel_}, Init::fan_in_uniform, fan_in}};
  if (bias_) specs.push_back({"bias", Shape{out_}, Init::fan_in_uniform, fan_in});
  return specs;
}

void Conv2dLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  ctx.backend.conv2d_forward(params(ctx.batch), t.x[0], t.params[0],
                             bias_ ? t.params[1] : Tensor{}, t.y);
}

// The fused ReLU's backward masks dy where it lies: only this layer reads dy, and the graph
// has summed every consumer's gradient into it before this runs.
static void mask_relu_gradient(const LayerTensors& t, const RunContext& ctx) {
  ctx.backend.relu_backward(t.y, t.dy, t.dy, false);
}

void Conv2dLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  if (relu_) mask_relu_gradient(t, ctx);
  ctx.backend.conv2d_backward(params(ctx.batch), t.x[0], t.params[0], t.dy, t.dx[0],
                              t.grads[0], bias_ ? t.grads[1] : Tensor{}, t.accumulate_dx[0]);
}

double Conv2dLayer::forward_flops() const { return params(1).forward_flops(); }

// ---- linear -------------------------------------------------------------------------------

std::string LinearLayer::describe() const {
  return fmt::format("linear {}->{}{}{}", in_features_, out_, bias_ ? "" : " no-bias",
                     relu_ ? " (fused: relu)" : "");
}

Shape LinearLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == 1 && inputs[0].rank == 1, "linear takes one flat input");
  in_features_ = int(inputs[0][0]);
  return Shape{out_};
}

std::vector<ParamSpec> LinearLayer::param_specs() const {
  std::vector<ParamSpec> specs{
      {"weight", Shape{out_, in_features_}, Init::fan_in_uniform, in_features_}};
  if (bias_) specs.push_back({"bias", Shape{out_}, Init::fan_in_uniform, in_features_});
  return specs;
}

void LinearLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  ctx.backend.linear_forward(params(ctx.batch), t.x[0], t.params[0],
                             bias_ ? t.params[1] : Tensor{}, t.y);
}

void LinearLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  if (relu_) mask_relu_gradient(t, ctx);
  ctx.backend.linear_backward(params(ctx.batch), t.x[0], t.params[0], t.dy, t.dx[0],
                              t.grads[0], bias_ ? t.grads[1] : Tensor{}, t.accumulate_dx[0]);
}

}  // namespace tb
