// Device time of repeated launches, for choosing between candidate kernels or algorithms.
#pragma once
#include <cuda_runtime_api.h>

#include <functional>

namespace tb::gpu {

// Milliseconds per run of `run` (launches on stream s), over `reps` runs after one warm-up,
// between two events on the stream.
float time_runs(cudaStream_t s, int reps, const std::function<void()>& run);

}  // namespace tb::gpu
