// Picks how each convolution pass of each shape runs, once: every candidate launch of our
// kernels is timed on the real operands (outputs go to scratch) and the fastest is kept.
// TB_CONV_AUTOTUNE=0 in the environment takes the heuristic choice instead (quicker tests).
#pragma once
#include <array>
#include <functional>
#include <map>

#include "ops/backend.h"
#include "ops/cuda/conv_kernels.h"

namespace tb::gpu {

class ConvAutotuner {
 public:
  // run(launch, workspace, output) enqueues the pass writing `output`; out_bytes sizes the
  // scratch output used while timing.
  using Runner = std::function<void(const ConvLaunch&, void*, void*)>;
  ConvLaunch choose(Backend& backend, cudaStream_t stream, int sm_count, ConvPass pass, DType t,
                    const ConvGeometry& g, size_t out_bytes, const Runner& run);

 private:
  std::map<std::array<int, 13>, ConvLaunch> chosen_;
};

}  // namespace tb::gpu
