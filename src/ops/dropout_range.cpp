#include "ops/dropout_range.h"

#include <bit>

#include "core/rng.h"

namespace tb {

// One splitmix64 round per element (the full three-round hash was 4.5 ns an element, 6% of a
// cifar_cnn step). The 64-bit multiplies vectorise with AVX-512DQ, so GCC also builds an
// x86-64-v4 clone, picked at run time where the CPU has it.
__attribute__((target_clones("arch=x86-64-v4", "default"))) void dropout_range(
    uint64_t key, float p, float scale, int64_t begin, int64_t end, const float* x, float* y,
    uint8_t* mask) {
  for (int64_t i = begin; i < end; ++i) {
    const bool keep = counter_uniform_keyed(key, uint64_t(i)) >= p;
    mask[i] = keep ? 1 : 0;
    y[i] = keep ? x[i] * scale : 0.0f;
  }
}

// The select as a bit mask (all ones where kept), so no element takes a branch: the masks are
// random, and a branch per element mispredicted at 3 ns an element. A dropped element is +0
// whatever dy holds, as ref's select gives.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void
dropout_backward_range(float scale, int64_t begin, int64_t end, const float* __restrict dy,
                       const uint8_t* __restrict mask, float* __restrict dx, bool accumulate) {
  auto grad = [&](int64_t i) {
    const uint32_t kept = std::bit_cast<uint32_t>(dy[i] * scale) & (0u - uint32_t(mask[i]));
    return std::bit_cast<float>(kept);
  };
  if (accumulate) {
    for (int64_t i = begin; i < end; ++i) dx[i] += grad(i);
  } else {
    for (int64_t i = begin; i < end; ++i) dx[i] = grad(i);
  }
}

}  // namespace tb
