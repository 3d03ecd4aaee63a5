// A background thread that calls one function at a fixed period until stopped: the sampling
// loop the system and GPU monitors share. The first call happens in start() and the last in
// stop(), both on the caller's thread, so even a window shorter than one period yields two
// samples that bracket it exactly.
#pragma once
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace tb {

class PeriodicSampler {
 public:
  // sample(closing): closing is true only for the call made by stop().
  explicit PeriodicSampler(std::function<void(bool closing)> sample) : sample_(std::move(sample)) {}
  ~PeriodicSampler() { stop(); }
  PeriodicSampler(const PeriodicSampler&) = delete;
  PeriodicSampler& operator=(const PeriodicSampler&) = delete;

  void start(double period_seconds) {
    if (thread_.joinable()) return;
    stopping_ = false;
    sample_(false);
    const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(period_seconds));
    thread_ = std::thread([this, period] {
      // Absolute deadlines: a slow sample does not make the whole series drift.
      auto next = std::chrono::steady_clock::now() + period;
      std::unique_lock lock(mutex_);
      while (!cv_.wait_until(lock, next, [this] { return stopping_; })) {
        lock.unlock();
        sample_(false);
        lock.lock();
        next += period;
        const auto now = std::chrono::steady_clock::now();
        if (next < now) next = now + period;  // fell behind (suspended): skip, don't burst
      }
    });
  }

  // Joins the thread, then takes the closing sample. Safe to call twice.
  void stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    sample_(true);
  }

  bool running() const { return thread_.joinable(); }

 private:
  std::function<void(bool)> sample_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tb
