#include "ops/cuda/conv_autotune.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <limits>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/gpu_timing.h"

namespace tb::gpu {
namespace {

bool autotune_enabled() {
  const char* v = std::getenv("TB_CONV_AUTOTUNE");
  return !(v && std::strcmp(v, "0") == 0);
}

// TB_CONV_AUTOTUNE_LOG=1: every timed candidate and the choice, on stderr.
bool autotune_log() {
  const char* v = std::getenv("TB_CONV_AUTOTUNE_LOG");
  return v && *v && std::strcmp(v, "0") != 0;
}

// Names the kernels' tile list in cache keys: a cached tile index means nothing to another
// list, so change this whenever conv_mma.cu's, conv_wgmma.cu's or conv_fma.cu's tiles change.
constexpr const char* kKernelSet = "conv-v9";

}  // namespace

std::string ConvAutotuner::cache_key(ConvPass pass, DType t, const ConvGeometry& g,
                                     bool accumulate) const {
  static const char* kPass[] = {"fprop", "dgrad", "wgrad"};
  // The wgmma tiles may be switched off (TB_CONV_WGMMA=0): a choice made without them is not
  // the choice with them, and the other way round.
  return fmt::format("{} {}{}|{}|{}{}|n{} c{} h{} w{} k{} r{} s{} stride{} pad{}", device_,
                     kKernelSet,
                     wgmma_available() ? (halo_conv_enabled() ? "+wgmma+halo" : "+wgmma") : "",
                     dtype_name(t), kPass[int(pass)], accumulate ? "+acc" : "", g.N, g.C, g.H, g.W,
                     g.K, g.R, g.S, g.stride, g.pad);
}

ConvLaunch ConvAutotuner::choose(Backend& backend, cudaStream_t stream, int sm_count, ConvPass pass,
                                 DType t, const ConvGeometry& g, size_t out_bytes,
                                 const Runner& run, bool accumulate) {
  const std::array<int, 14> key{int(pass), int(t), g.N,      g.C,   g.H, g.W, g.K,
                                g.R,       g.S,    g.stride, g.pad, g.P, g.Q, int(accumulate)};
  auto it = chosen_.find(key);
  if (it != chosen_.end()) return it->second;
  ConvLaunch best = plan_conv(pass, t, g, sm_count);
  // A shape that differs from a timed one only in its batch (an epoch's last, partial batch)
  // takes the timed shape's tile and split, when they apply to it, instead of a second search.
  for (const auto& [other, launch] : chosen_) {
    std::array<int, 14> mine = key;
    mine[2] = other[2];
    if (other != mine || other[2] == g.N) continue;
    ConvLaunch candidates[kMaxConvCandidates];
    const int count = conv_candidates(pass, t, g, sm_count, candidates, kMaxConvCandidates);
    for (int i = 0; i < count; ++i)
      if (candidates[i].tile == launch.tile && candidates[i].splits == launch.splits &&
          candidates[i].tensor_cores == launch.tensor_cores) {
        chosen_[key] = candidates[i];
        return candidates[i];
      }
    break;
  }
  if (autotune_enabled()) {
    ConvLaunch candidates[kMaxConvCandidates];
    const int count = conv_candidates(pass, t, g, sm_count, candidates, kMaxConvCandidates);
    const std::string cache_key_text = cache_key(pass, t, g, accumulate);
    if (const auto hit = cache_.find(cache_key_text); hit && hit->is_object()) {
      // Taken only if it is still one of this shape's candidates.
      auto number = [&](const char* name) {
        return hit->contains(name) && (*hit)[name].is_number_integer() ? (*hit)[name].get<int>()
                                                                        : -1;
      };
      const int tile = number("tile"), splits = number("splits");
      const bool tensor_cores = hit->contains("tensor_cores") && (*hit)["tensor_cores"] == true;
      for (int i = 0; i < count; ++i)
        if (candidates[i].tile == tile && candidates[i].splits == splits &&
            candidates[i].tensor_cores == tensor_cores) {
          chosen_[key] = candidates[i];
          return candidates[i];
        }
    }
    size_t ws_bytes = 0;
    for (int i = 0; i < count; ++i) ws_bytes = std::max(ws_bytes, candidates[i].workspace);
    void* scratch_out = backend.allocate(out_bytes);
    if (accumulate) TB_CUDA_CHECK(cudaMemsetAsync(scratch_out, 0, out_bytes, stream));
    void* scratch_ws = ws_bytes ? backend.allocate(ws_bytes) : nullptr;
    float best_ms = std::numeric_limits<float>::max();
    const bool log = autotune_log();
    for (int i = 0; i < count; ++i) {
      const float ms = time_runs(stream, 3, [&] { run(candidates[i], scratch_ws, scratch_out); });
      if (log) fmt::print(stderr, "autotune {}: {:.4f} ms  {}\n", cache_key_text, ms,
                          conv_launch_name(candidates[i]));
      if (ms < best_ms) {
        best_ms = ms;
        best = candidates[i];
      }
    }
    if (log) fmt::print(stderr, "autotune {}: chose {} ({:.4f} ms)\n", cache_key_text,
                        conv_launch_name(best), best_ms);
    TB_CUDA_CHECK(cudaStreamSynchronize(stream));
    backend.release(scratch_out);
    if (scratch_ws) backend.release(scratch_ws);
    ++searches_;
    cache_.store(cache_key_text, {{"tile", best.tile},
                                  {"splits", best.splits},
                                  {"tensor_cores", best.tensor_cores},
                                  {"ms", best_ms}});
  }
  chosen_[key] = best;
  return best;
}

}  // namespace tb::gpu
