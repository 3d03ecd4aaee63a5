#include "ops/cpu/channel_sums.h"

// x86-64-v4 clones (AVX-512) picked at run time where the CPU has it; the vector and scalar
// clones add the same values in the same lanes, so they give the same bits.
#define TB_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))

namespace tb::cpu {

double LaneSums::total() const {
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

TB_CLONES void add_sum(const float* x, int64_t n, LaneSums& s) {
  double acc[8];
  for (int l = 0; l < 8; ++l) acc[l] = s.lane[l];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += double(x[i + l]);
  for (int l = 0; i + l < n; ++l) acc[l] += double(x[i + l]);
  for (int l = 0; l < 8; ++l) s.lane[l] = acc[l];
}

}  // namespace tb::cpu
