// Double-precision sums over float runs for per-channel reductions (the conv bias gradient;
// batch norm keeps its inline loops, since a call per run costs too much when the runs are
// single values, as in BatchNorm1d). A running sum in one double register waits 4 cycles
// per add; these keep 8 independent lanes instead, which GCC turns into one AVX-512 (or
// four SSE2) vector adds per 8 floats. Element i always goes to lane i % 8 of its run, and
// the lanes are combined in a fixed order at the end, so the result depends only on the
// data and the run boundaries, never on threads or timing.
#pragma once
#include <cstdint>

namespace tb::cpu {

struct LaneSums {
  double lane[8] = {};
  double total() const;  // ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
};

// s += x[i] for i in [0, n).
void add_sum(const float* x, int64_t n, LaneSums& s);

}  // namespace tb::cpu
