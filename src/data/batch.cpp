// Normalisation statistics and batch assembly (with CIFAR-style augmentation).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "data/data_api.h"

namespace tb {

Normalization compute_normalization(const Subset& train) {
  TB_CHECK(train.data != nullptr, "compute_normalization: subset has no dataset");
  if (train.size() == 0)
    throw InputError("cannot compute normalisation: the training split is empty");
  const Dataset& d = *train.data;
  const int C = d.channels;
  const int64_t plane = int64_t(d.height) * d.width;
  // Integer sums are exact and independent of order; 60000 * 784 * 255^2 is far below 2^64.
  std::vector<uint64_t> sum(size_t(C), 0), sum_sq(size_t(C), 0);
  for (int64_t idx : train.indices) {
    TB_CHECK(idx >= 0 && idx < d.size(), "compute_normalization: index {} out of range", idx);
    const uint8_t* img = d.image(idx);
    for (int c = 0; c < C; ++c) {
      uint64_t s = 0, sq = 0;
      for (int64_t p = 0; p < plane; ++p) {
        const uint64_t v = img[c * plane + p];
        s += v;
        sq += v * v;
      }
      sum[size_t(c)] += s;
      sum_sq[size_t(c)] += sq;
    }
  }
  Normalization norm;
  const double count = double(train.size()) * double(plane);
  for (int c = 0; c < C; ++c) {
    const double mean = double(sum[size_t(c)]) / count / 255.0;
    const double mean_sq = double(sum_sq[size_t(c)]) / count / (255.0 * 255.0);
    const double var = std::max(0.0, mean_sq - mean * mean);
    double std = std::sqrt(var);
    if (std < 1e-8) std = 1.0;  // a constant channel: centre it, but never divide by zero
    norm.mean.push_back(float(mean));
    norm.std.push_back(float(std));
  }
  return norm;
}

void gather_batch(const Subset& subset, const int64_t* positions, int n, const Normalization& norm,
                  const Augmentation& aug, uint64_t seed, uint64_t epoch, float* images,
                  int32_t* labels) {
  TB_CHECK(subset.data != nullptr, "gather_batch: subset has no dataset");
  const Dataset& d = *subset.data;
  const int C = d.channels, H = d.height, W = d.width;
  TB_CHECK(int(norm.mean.size()) == C && int(norm.std.size()) == C,
           "gather_batch: normalisation has {} channels, dataset {}", norm.mean.size(), C);
  const int pad = aug.enabled ? std::max(0, aug.crop_padding) : 0;
  std::vector<float> scale(static_cast<size_t>(C)), bias(static_cast<size_t>(C));
  for (int c = 0; c < C; ++c) {
    scale[size_t(c)] = 1.0f / (255.0f * norm.std[size_t(c)]);
    bias[size_t(c)] = -norm.mean[size_t(c)] / norm.std[size_t(c)];
  }

  for (int b = 0; b < n; ++b) {
    const int64_t pos = positions[b];
    TB_CHECK(pos >= 0 && pos < subset.size(), "gather_batch: position {} out of range", pos);
    const int64_t idx = subset.indices[size_t(pos)];
    TB_CHECK(idx >= 0 && idx < d.size(), "gather_batch: index {} out of range", idx);
    const uint8_t* src = d.image(idx);
    float* dst = images + int64_t(b) * C * H * W;
    if (labels) labels[b] = d.has_labels() ? d.labels[size_t(idx)] : -1;

    // Crop offsets in [0, 2*pad] of the padded image, i.e. a shift in [-pad, pad].
    int dy = 0, dx = 0;
    bool flip = false;
    if (aug.enabled) {
      const uint64_t base = uint64_t(idx) * 4;
      const int span = 2 * pad + 1;
      dy = std::min(int(counter_uniform(seed, epoch, base + 0) * float(span)), span - 1) - pad;
      dx = std::min(int(counter_uniform(seed, epoch, base + 1) * float(span)), span - 1) - pad;
      flip = aug.horizontal_flip && counter_uniform(seed, epoch, base + 2) < 0.5f;
    }
    for (int c = 0; c < C; ++c) {
      const float s = scale[size_t(c)], o = bias[size_t(c)];
      const uint8_t* plane = src + int64_t(c) * H * W;
      float* out = dst + int64_t(c) * H * W;
      for (int y = 0; y < H; ++y) {
        const int sy = y + dy;
        for (int x = 0; x < W; ++x) {
          // Flip the cropped image: output column x shows cropped column W-1-x.
          const int sx = (flip ? W - 1 - x : x) + dx;
          const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
          out[y * W + x] = inside ? float(plane[sy * W + sx]) * s + o : 0.0f;
        }
      }
    }
  }
}

}  // namespace tb
