// Comparing a backend's values with a golden file's (tests/test_golden.cpp): per tensor, the
// largest difference over the kept samples relative to the largest reference sample, and
// the relative difference of the full-tensor L2 norms; a tensor's error is the larger.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "bench/golden_input.h"
#include "train/checkpoint.h"

namespace tb::testing {

inline std::vector<double> golden_doubles(const CheckpointData& file, const std::string& name) {
  const HostTensor* t = file.find(name);
  if (!t || t->dtype != DType::f64) return {};
  std::vector<double> out(t->bytes.size() / sizeof(double));
  if (!out.empty()) std::memcpy(out.data(), t->bytes.data(), t->bytes.size());
  return out;
}

// |a - b| / max|b| over two equally long lists (absolute when b is all zero).
inline double relative_error(const double* a, const double* b, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

// a - b, tensor by tensor.
inline std::vector<std::vector<float>> minus(std::vector<std::vector<float>> a,
                                             const std::vector<std::vector<float>>& b) {
  for (size_t t = 0; t < a.size(); ++t)
    for (size_t i = 0; i < a[t].size(); ++i) a[t][i] -= b[t][i];
  return a;
}

struct TensorError {
  std::string name;
  double error = 0;
  // Where the samples differ most: sample k (element floor(k * n / samples)), our value and
  // the golden's, for failure messages.
  int sample = -1;
  double ours = 0, golden = 0;
};

inline std::ostream& operator<<(std::ostream& out, const TensorError& e) {
  return out << e.name << " (error " << e.error << "; largest difference at sample " << e.sample
             << ": " << e.ours << " here, " << e.golden << " in the golden)";
}

// The error of each of a list of tensors (values as float, one vector per tensor) against
// row t of the golden's [T, samples] and [T, 3] tables.
// norm_only: only the L2-norm error (for bf16, whose per-element rounding makes sums with
// cancellation, such as gradients behind batch norm, too noisy for an element-wise check).
inline std::vector<TensorError> tensor_errors(const std::vector<std::string>& names,
                                              const std::vector<std::vector<float>>& values,
                                              const std::vector<double>& golden_samples_table,
                                              const std::vector<double>& golden_stats_table,
                                              int samples, bool norm_only = false) {
  std::vector<TensorError> out;
  for (size_t t = 0; t < names.size(); ++t) {
    const std::vector<float>& v = values[t];
    const std::vector<float> s = golden_samples(v.data(), int64_t(v.size()), samples);
    const std::vector<double> mine(s.begin(), s.end());
    const double* ref = golden_samples_table.data() + t * size_t(samples);
    const auto stats = golden_stats(v.data(), int64_t(v.size()));
    const double ref_norm = golden_stats_table[t * 3 + 1];
    const double norm_error = ref_norm > 0 ? std::fabs(stats[1] - ref_norm) / ref_norm
                                           : std::fabs(stats[1]);
    TensorError e{names[t], norm_only ? norm_error
                                      : std::max(relative_error(mine.data(), ref, size_t(samples)),
                                                 norm_error)};
    for (int k = 0; k < samples; ++k)
      if (e.sample < 0 || std::fabs(mine[size_t(k)] - ref[k]) > std::fabs(e.ours - e.golden)) {
        e.sample = k;
        e.ours = mine[size_t(k)];
        e.golden = ref[k];
      }
    out.push_back(e);
  }
  return out;
}

inline TensorError worst(const std::vector<TensorError>& errors) {
  TensorError w;
  for (const auto& e : errors) {
    if (std::isnan(e.error)) return e;  // a NaN anywhere is the worst there is
    if (e.error >= w.error) w = e;
  }
  return w;
}

}  // namespace tb::testing
