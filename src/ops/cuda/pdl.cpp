#include <cuda_runtime_api.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "ops/cuda/cuda_check.h"

namespace tb::gpu {

bool pdl_enabled() {
  // Off unless TB_PDL=1: on an H100 (2026-12-06) it made our resnet18 step 5% slower at
  // batch 512 and 2% at batch 64 (docs/gpu-notes.md, v11). Read at every launch (a few
  // hundred per uncaptured step; replays launch nothing), so a test can switch it between
  // two graphs.
  const char* v = std::getenv("TB_PDL");
  if (!(v && std::strcmp(v, "1") == 0)) return false;
  // Per device: 0 not asked yet, 1 no, 2 yes.
  static std::array<std::atomic<int>, 64> state{};
  int device = 0;
  TB_CUDA_CHECK(cudaGetDevice(&device));
  if (device < 0 || device >= int(state.size())) return false;
  int s = state[device].load(std::memory_order_relaxed);
  if (s == 0) {
    int major = 0;
    TB_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    s = major >= 9 ? 2 : 1;
    state[device].store(s, std::memory_order_relaxed);
  }
  return s == 2;
}

}  // namespace tb::gpu
