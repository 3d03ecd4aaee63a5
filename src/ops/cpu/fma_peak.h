// The measured single-precision FMA peak of this machine: the denominator of every
// "percent of peak" we report. Measured, not computed from a spec sheet, because the clock
// under an all-core AVX-512 load (and what a VM really gives us) is what the kernels get.
#pragma once
#include "ops/cpu/cpu_features.h"

namespace tb::cpu {

// GFLOP/s (one FMA on one lane = 2 FLOPs) of `threads` threads (<= 0: cpu_threads()) running
// register-resident FMA chains of the widest ISA the hardware has, for about `seconds`.
// Uses the global pool when it has `threads` threads, else a temporary pool of that size.
double measure_fma_peak_gflops(int threads, double seconds = 0.2);
// The same for a given ISA (for comparing the kernels of one path with that path's peak).
double measure_fma_peak_gflops(int threads, Isa isa, double seconds = 0.2);

}  // namespace tb::cpu
