#include "metrics/system_monitor.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/timer.h"

namespace tb {
namespace {

// User and system CPU time of the whole process (all threads). getrusage reports the same
// utime and stime as /proc/self/stat, but in microseconds instead of 10 ms clock ticks:
// at a 0.25 s period, ticks would quantise one interval's utilisation to 4% of a core.
void process_cpu_seconds(double& user, double& system) {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  user = double(u.ru_utime.tv_sec) + u.ru_utime.tv_usec * 1e-6;
  system = double(u.ru_stime.tv_sec) + u.ru_stime.tv_usec * 1e-6;
}

int cores_available() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return int(std::max<long>(1, sysconf(_SC_NPROCESSORS_ONLN)));
}

// The value in kB after `key` ("VmRSS:") in /proc/self/status text, in bytes.
int64_t status_field_bytes(const char* text, const char* key) {
  const char* p = std::strstr(text, key);
  if (!p) return 0;
  return std::strtoll(p + std::strlen(key), nullptr, 10) * 1024;
}

bool reset_peak_rss() {
  const int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

}  // namespace

// A fixed buffer and plain read(): this runs on the sampling thread every period and should
// not allocate or pull in iostreams.
RssReading read_process_rss() {
  char text[8192];
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  size_t used = 0;
  ssize_t n;
  while (used < sizeof text - 1 && (n = read(fd, text + used, sizeof text - 1 - used)) > 0)
    used += size_t(n);
  close(fd);
  text[used] = '\0';
  return {status_field_bytes(text, "VmRSS:"), status_field_bytes(text, "VmHWM:")};
}

std::vector<double> SystemReport::interval_utilisation() const {
  std::vector<double> u(samples.size(), 0.0);
  for (size_t i = 1; i < samples.size(); ++i) {
    const double dt = samples[i].t_seconds - samples[i - 1].t_seconds;
    const double dc = samples[i].cpu_seconds - samples[i - 1].cpu_seconds;
    u[i] = dt > 0 ? std::max(0.0, dc / dt / cores) : 0.0;
  }
  return u;
}

SystemMonitor::SystemMonitor(SystemMonitorOptions options)
    : options_(options), series_(options.max_samples) {}

SystemMonitor::~SystemMonitor() { stop(); }

void SystemMonitor::start() {
  if (sampler_ && sampler_->running()) return;
  {
    std::lock_guard lock(mutex_);
    series_.clear();
    cores_ = cores_available();
    hwm_reset_ = options_.reset_peak_rss && reset_peak_rss();
    process_cpu_seconds(user0_, system0_);
    t0_ = now_seconds();
    user_ = system_ = wall_ = 0.0;
    rss_start_ = read_process_rss().rss_bytes;
    rss_max_ = hwm_ = rss_start_;
  }
  sampler_ = std::make_unique<PeriodicSampler>([this](bool closing) { sample(closing); });
  sampler_->start(options_.period_seconds);
}

void SystemMonitor::stop() {
  if (sampler_) sampler_->stop();
}

void SystemMonitor::sample(bool closing) {
  double user = 0, system = 0;
  process_cpu_seconds(user, system);
  const double t = now_seconds() - t0_;
  const RssReading rss = read_process_rss();
  std::lock_guard lock(mutex_);
  user_ = user - user0_;
  system_ = system - system0_;
  wall_ = t;
  rss_max_ = std::max(rss_max_, rss.rss_bytes);
  hwm_ = std::max(hwm_, rss.peak_bytes);
  series_.offer({t, user_ + system_, rss.rss_bytes}, closing);
}

SystemReport SystemMonitor::report() const {
  std::lock_guard lock(mutex_);
  SystemReport r;
  r.period_seconds = options_.period_seconds;
  r.wall_seconds = wall_;
  r.cpu_user_seconds = user_;
  r.cpu_system_seconds = system_;
  r.cores = cores_;
  r.cpu_cores_busy = wall_ > 0 ? (user_ + system_) / wall_ : 0.0;
  r.cpu_utilisation = r.cpu_cores_busy / cores_;
  r.rss_start_bytes = rss_start_;
  r.rss_max_sampled_bytes = rss_max_;
  r.peak_rss_bytes = std::max(hwm_, rss_max_);
  r.peak_rss_since_start = hwm_reset_;
  r.samples = series_.samples();
  return r;
}

}  // namespace tb
