// Wall-clock timing. Callers synchronise the backend before reading a clock around device
// work; this only reads the host's monotonic clock.
#pragma once
#include <chrono>

namespace tb {

inline double now_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

class Stopwatch {
 public:
  Stopwatch() : start_(now_seconds()) {}
  double seconds() const { return now_seconds() - start_; }
  void restart() { start_ = now_seconds(); }

 private:
  double start_;
};

}  // namespace tb
