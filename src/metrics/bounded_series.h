// A time series with a fixed capacity, for monitors that may run for hours: storage is
// reserved once, and when it fills up every second sample is dropped and from then on only
// every second offered sample is kept. A long run ends with an evenly thinned series instead
// of unbounded memory or a cut-off tail. Samples should hold cumulative quantities (CPU
// seconds, joules) so that thinning loses resolution, never totals.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tb {

template <typename Sample>
class BoundedSeries {
 public:
  explicit BoundedSeries(size_t capacity = 4096) : capacity_(capacity < 4 ? 4 : capacity) {
    samples_.reserve(capacity_);
  }

  // Keeps the sample unless thinning says to skip it. The first and the last offered
  // samples matter most (they bracket the window), so callers mark the closing one `final`.
  void offer(const Sample& s, bool final = false) {
    const bool keep = final || offered_ % stride_ == 0;
    ++offered_;
    if (!keep) return;
    if (samples_.size() == capacity_) thin();
    samples_.push_back(s);
  }

  const std::vector<Sample>& samples() const { return samples_; }
  const Sample* last() const { return samples_.empty() ? nullptr : &samples_.back(); }
  int64_t stride() const { return stride_; }
  void clear() {
    samples_.clear();
    offered_ = 0;
    stride_ = 1;
  }

 private:
  void thin() {
    size_t out = 0;
    for (size_t i = 0; i < samples_.size(); i += 2) samples_[out++] = samples_[i];
    samples_.resize(out);
    stride_ *= 2;
  }

  size_t capacity_;
  std::vector<Sample> samples_;
  int64_t offered_ = 0;
  int64_t stride_ = 1;
};

}  // namespace tb
