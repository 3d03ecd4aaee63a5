// Optimizer update rules over flat parameter arrays, with PyTorch's semantics so that
// golden tests can compare step by step.
#pragma once
#include <cstdint>

namespace tb {

// SGD: g += wd * p; buf = momentum * buf + g; g = nesterov ? g + momentum * buf : buf;
// p -= lr * g. With momentum 0 the buffer is unused.
struct SgdUpdateParams {
  int64_t n = 0;
  float lr = 0.01f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

// Gradient clipping by global norm, torch.nn.utils.clip_grad_norm_'s rule: with
// norm = sqrt(sum of every gradient element squared), all gradients are multiplied by
// min(1, max_norm / (norm + 1e-6)). On a GPU with a loss scale, the norm is that of the
// unscaled gradients (the scaled ones divided by the step's loss scale).
constexpr float kClipNormEpsilon = 1e-6f;

// Adam / AdamW at step t (t starts at 1). Adam adds wd * p to the gradient; AdamW
// (decoupled) multiplies p by (1 - lr * wd) first.
struct AdamUpdateParams {
  int64_t n = 0;
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  bool decoupled_weight_decay = false;
  int64_t step = 1;
};

}  // namespace tb
