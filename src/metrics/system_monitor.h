// Process CPU use and memory, sampled on a background thread while a run executes:
// CPU utilisation = process CPU time / wall time / cores available to the process, resident
// set size over time, and the peak RSS (the kernel's high-water mark, VmHWM).
//
//   SystemMonitor monitor;        // period 0.25 s
//   monitor.start();
//   ... the run ...
//   monitor.stop();
//   SystemReport r = monitor.report();
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "metrics/bounded_series.h"
#include "metrics/periodic_sampler.h"

namespace tb {

struct SystemSample {
  double t_seconds = 0.0;    // since start()
  double cpu_seconds = 0.0;  // process user + system CPU time since start(), cumulative
  int64_t rss_bytes = 0;
};

struct SystemReport {
  double period_seconds = 0.0;
  double wall_seconds = 0.0;
  double cpu_user_seconds = 0.0, cpu_system_seconds = 0.0;
  int cores = 1;                 // CPUs this process may run on (its affinity mask)
  double cpu_cores_busy = 0.0;   // CPU seconds / wall seconds: average cores kept busy
  double cpu_utilisation = 0.0;  // cpu_cores_busy / cores, 0..1
  int64_t rss_start_bytes = 0;
  int64_t rss_max_sampled_bytes = 0;
  int64_t peak_rss_bytes = 0;         // VmHWM when stopped
  bool peak_rss_since_start = false;  // VmHWM was reset at start(); else it covers the process
  std::vector<SystemSample> samples;
  // CPU utilisation (0..1) over the interval ending at samples[i]; [0] opens the window: 0.
  std::vector<double> interval_utilisation() const;
};

struct SystemMonitorOptions {
  double period_seconds = 0.25;
  // Reset the kernel's peak-RSS counter at start() (writes 5 to /proc/self/clear_refs), so
  // that the peak belongs to this run and not to an earlier one in the same process.
  bool reset_peak_rss = true;
  size_t max_samples = 4096;
};

class SystemMonitor {
 public:
  explicit SystemMonitor(SystemMonitorOptions options = {});
  ~SystemMonitor();

  void start();
  void stop();  // joins the sampling thread; safe to call twice
  // The series and summary so far (complete once stopped).
  SystemReport report() const;

 private:
  void sample(bool closing);

  SystemMonitorOptions options_;
  int cores_ = 1;
  double t0_ = 0.0, user0_ = 0.0, system0_ = 0.0;
  double user_ = 0.0, system_ = 0.0;  // latest, relative to start
  double wall_ = 0.0;
  int64_t rss_start_ = 0, rss_max_ = 0, hwm_ = 0;
  bool hwm_reset_ = false;
  mutable std::mutex mutex_;
  BoundedSeries<SystemSample> series_;
  std::unique_ptr<PeriodicSampler> sampler_;
};

// The process's current and peak resident set size from /proc/self/status (0 if unreadable).
struct RssReading {
  int64_t rss_bytes = 0, peak_bytes = 0;
};
RssReading read_process_rss();

}  // namespace tb
