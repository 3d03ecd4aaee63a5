// Inverted dropout: in training, each element is kept with probability 1 - p and scaled by
// 1 / (1 - p). The keep decision for element i is counter_uniform(seed, stream, i) >= p, so
// every backend draws the same mask for the same (seed, stream).
#pragma once
#include <cstdint>

namespace tb {

struct DropoutParams {
  int64_t numel = 0;
  float p = 0.5f;
  uint64_t seed = 0;    // the run's seed
  uint64_t stream = 0;  // distinct per layer and per step
};

}  // namespace tb
