#include "metrics/gpu_peak.h"

#include <map>
#include <mutex>

#include "core/error.h"
#ifdef TB_HAVE_CUDA
#include "ops/cudnn/gemm_peak.h"
#endif

namespace tb {

std::optional<double> gpu_peak_tflops(const std::string& precision) {
#ifdef TB_HAVE_CUDA
  static std::mutex mutex;
  static std::map<std::string, std::optional<double>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(precision);
  if (it != cache.end()) return it->second;
  std::optional<double> peak;
  try {
    peak = gpu::measure_gemm_peak_tflops(precision);
  } catch (const InputError&) {
    // No GPU here: rows simply carry no GPU percent of peak.
  }
  cache[precision] = peak;
  return peak;
#else
  (void)precision;
  return std::nullopt;
#endif
}

}  // namespace tb
