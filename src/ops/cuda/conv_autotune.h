// Picks how each convolution pass of each shape runs, once: every candidate launch of our
// kernels is timed on the real operands (outputs go to scratch) and the fastest is kept.
// TB_CONV_AUTOTUNE=0 in the environment takes the heuristic choice instead (quicker tests).
// TB_CONV_AUTOTUNE_LOG=1 prints every timed candidate and the choice on stderr.
// Timed choices go into the algorithm cache (ops/algorithm_cache.h), so later runs on the
// same GPU skip the timing.
#pragma once
#include <array>
#include <functional>
#include <map>
#include <string>

#include "ops/algorithm_cache.h"
#include "ops/backend.h"
#include "ops/cuda/conv_kernels.h"

namespace tb::gpu {

class ConvAutotuner {
 public:
  // run(launch, workspace, output) enqueues the pass writing `output`; out_bytes sizes the
  // scratch output used while timing. accumulate: a data gradient added into dx, chosen apart
  // from the plain one (its epilogue also reads dx; the scratch output starts zeroed).
  using Runner = std::function<void(const ConvLaunch&, void*, void*)>;
  ConvLaunch choose(Backend& backend, cudaStream_t stream, int sm_count, ConvPass pass, DType t,
                    const ConvGeometry& g, size_t out_bytes, const Runner& run,
                    bool accumulate = false);
  // Names the GPU in cache keys; set before the first choose().
  void set_device(const std::string& name) { device_ = name; }
  int searches() const { return searches_; }
  const AlgorithmCache& cache() const { return cache_; }

 private:
  std::string cache_key(ConvPass pass, DType t, const ConvGeometry& g, bool accumulate) const;

  std::map<std::array<int, 14>, ConvLaunch> chosen_;
  AlgorithmCache cache_;
  std::string device_;
  int searches_ = 0;
};

}  // namespace tb::gpu
