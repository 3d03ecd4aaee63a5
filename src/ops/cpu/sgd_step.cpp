#include "ops/cpu/sgd_step.h"

// C++ mode contracts a * b + c into an FMA where the ISA has one (the x86-64-v4 clone), which
// rounds once instead of twice: ref's bits need the separate multiply and add.
#pragma GCC optimize("fp-contract=off")

#include <type_traits>

namespace tb::cpu {
namespace {

template <bool kDecay, bool kMomentum, bool kNesterov>
inline __attribute__((always_inline)) void sgd_loop(const SgdStep& s, float* __restrict w,
                                                    const float* __restrict grad,
                                                    float* __restrict buf, int64_t n) {
  const float lr = s.lr, decay = s.weight_decay, momentum = s.momentum;
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    if constexpr (kDecay) g += decay * w[i];
    if constexpr (kMomentum) {
      buf[i] = momentum * buf[i] + g;
      g = kNesterov ? g + momentum * buf[i] : buf[i];
    }
    w[i] -= lr * g;
  }
}

// x86-64-v4 (AVX-512) where the CPU has it; the loop is memory-bound, but the scalar form
// was not.
__attribute__((target_clones("arch=x86-64-v4", "default"))) void sgd_dispatch(
    const SgdStep& s, float* w, const float* grad, float* buf, int64_t n) {
  const bool decay = s.weight_decay != 0.0f;
  if (!buf) {
    if (decay) sgd_loop<true, false, false>(s, w, grad, buf, n);
    else sgd_loop<false, false, false>(s, w, grad, buf, n);
  } else if (s.nesterov) {
    if (decay) sgd_loop<true, true, true>(s, w, grad, buf, n);
    else sgd_loop<false, true, true>(s, w, grad, buf, n);
  } else {
    if (decay) sgd_loop<true, true, false>(s, w, grad, buf, n);
    else sgd_loop<false, true, false>(s, w, grad, buf, n);
  }
}

}  // namespace

void sgd_step(const SgdStep& s, float* w, const float* grad, float* buf, int64_t n) {
  sgd_dispatch(s, w, grad, buf, n);
}

}  // namespace tb::cpu
