// Layers with no parameters that act element by element or only move data: ReLU, dropout,
// flatten, residual add.
#include <fmt/format.h>

#include "nn/layers/layers.h"

namespace tb {

// ---- relu ---------------------------------------------------------------------------------

Shape ReluLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == 1, "relu takes one input");
  return inputs[0];
}

void ReluLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  ctx.backend.relu_forward(t.x[0], t.y);
}

void ReluLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  if (t.dx[0].defined()) ctx.backend.relu_backward(t.y, t.dy, t.dx[0], t.accumulate_dx[0]);
}

// ---- dropout ------------------------------------------------------------------------------

std::string DropoutLayer::describe() const { return fmt::format("dropout p={}", p_); }

Shape DropoutLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == 1, "dropout takes one input");
  TB_INPUT_CHECK(p_ >= 0.0f && p_ < 1.0f, "dropout probability must be in [0, 1), got {}", p_);
  in_ = inputs[0];
  return in_;
}

std::vector<BufferSpec> DropoutLayer::buffer_specs() const {
  return {{"mask", in_, DType::u8, /*persistent=*/false, /*per_item=*/true}};
}

// Each (step, layer) pair gets its own stream, so masks never repeat and a resumed run draws
// the same masks as an uninterrupted one.
DropoutParams DropoutLayer::params(const RunContext& ctx, int64_t numel) const {
  DropoutParams p;
  p.numel = numel;
  p.p = p_;
  p.seed = ctx.seed;
  p.stream = (ctx.step << 16) ^ uint64_t(ctx.layer_index);
  return p;
}

void DropoutLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  if (!ctx.training || p_ == 0.0f) {
    ctx.backend.copy(t.x[0], t.y, false);
    return;
  }
  ctx.backend.dropout_forward(params(ctx, t.y.numel()), t.x[0], t.y, t.buffers[0]);
}

void DropoutLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  if (!t.dx[0].defined()) return;
  if (p_ == 0.0f) {
    ctx.backend.copy(t.dy, t.dx[0], t.accumulate_dx[0]);
    return;
  }
  ctx.backend.dropout_backward(params(ctx, t.dy.numel()), t.dy, t.buffers[0], t.dx[0],
                               t.accumulate_dx[0]);
}

// ---- flatten ------------------------------------------------------------------------------

std::string FlattenLayer::describe() const {
  return fmt::format("flatten {} -> {}", in_.to_string(), in_.numel());
}

Shape FlattenLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == 1, "flatten takes one input");
  in_ = inputs[0];
  return Shape{in_.numel()};
}

// The copy sees the 4-D input and the flat output (equal element counts): a backend that
// keeps 4-D activations channels-last converts to the C,H,W feature order here.
void FlattenLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  ctx.backend.copy(t.x[0], t.y, false);
}

void FlattenLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  if (t.dx[0].defined())
    ctx.backend.copy(t.dy, t.dx[0], t.accumulate_dx[0]);
}

// ---- add ----------------------------------------------------------------------------------

Shape AddLayer::infer(const std::vector<Shape>& inputs) {
  TB_CHECK(inputs.size() == 2, "add takes two inputs");
  TB_CHECK(inputs[0] == inputs[1], "add needs equal shapes, got {} and {}",
           inputs[0].to_string(), inputs[1].to_string());
  return inputs[0];
}

void AddLayer::forward(const LayerTensors& t, const RunContext& ctx) {
  ctx.backend.add_forward(t.x[0], t.x[1], t.y);
}

void AddLayer::backward(const LayerTensors& t, const RunContext& ctx) {
  for (int i = 0; i < 2; ++i)
    if (t.dx[i].defined()) ctx.backend.copy(t.dy, t.dx[i], t.accumulate_dx[i]);
}

}  // namespace tb
