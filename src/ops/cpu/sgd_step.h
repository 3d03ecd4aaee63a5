// The SGD update's per-element loop, vectorised. Written as a lambda over the update's
// params it stayed scalar: the flags were tested per element and, since w could alias the
// params, lr was reloaded from memory for every element. Here the flags are template
// parameters and the pointers restrict. The float operations per element are ref's, in
// ref's order (no contraction into FMA in ISO C++ mode), so the bits are ref's on any ISA.
#pragma once
#include <cstdint>

namespace tb::cpu {

struct SgdStep {
  float lr = 0, weight_decay = 0, momentum = 0;
  bool nesterov = false;
};

// For i in [0, n): g = grad[i] (+ weight_decay * w[i]); with buf: buf[i] = momentum *
// buf[i] + g, g = nesterov ? g + momentum * buf[i] : buf[i]; then w[i] -= lr * g.
// buf may be null (no momentum). w, grad and buf must not overlap.
void sgd_step(const SgdStep& s, float* w, const float* grad, float* buf, int64_t n);

}  // namespace tb::cpu
