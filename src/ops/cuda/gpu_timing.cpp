#include "ops/cuda/gpu_timing.h"

#include "ops/cuda/cuda_check.h"

namespace tb::gpu {

float time_runs(cudaStream_t s, int reps, const std::function<void()>& run) {
  cudaEvent_t a, b;
  TB_CUDA_CHECK(cudaEventCreate(&a));
  TB_CUDA_CHECK(cudaEventCreate(&b));
  run();
  TB_CUDA_CHECK(cudaEventRecord(a, s));
  for (int i = 0; i < reps; ++i) run();
  TB_CUDA_CHECK(cudaEventRecord(b, s));
  TB_CUDA_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  TB_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / float(reps);
}

}  // namespace tb::gpu
