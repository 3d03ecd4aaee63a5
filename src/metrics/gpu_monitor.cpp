#include "metrics/gpu_monitor.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/timer.h"
#include "metrics/nvml_library.h"

namespace tb {

struct GpuMonitor::Device {
  nvml::Device handle = nullptr;
  GpuDeviceReport info;  // identity; the summary is filled in by report()
  bool has_counter = false;
  unsigned long long counter0_mj = 0;
  BoundedSeries<GpuSample> series;
  // Running totals over every sample taken, thinned or not.
  int64_t count = 0;
  double utilisation_sum = 0, memory_utilisation_sum = 0, clock_sum = 0, power_sum = 0;
  int64_t memory_max = 0;
  unsigned clock_max = 0;
  double power_max = 0;
  double last_t = -1, last_power = 0, energy = 0;

  explicit Device(size_t capacity) : series(capacity) {}
};

GpuMonitor::GpuMonitor(GpuMonitorOptions options) : options_(std::move(options)) {
  nvml_ = std::make_unique<NvmlLibrary>(options_.library);
  if (!nvml_->available()) {
    reason_ = nvml_->reason();
    return;
  }
  char text[96] = {0};
  if (nvml_->driver_version(text, sizeof text) == nvml::kSuccess) driver_version_ = text;
  unsigned count = 0;
  const nvml::Return r = nvml_->device_count(&count);
  if (r != nvml::kSuccess) {
    reason_ = fmt::format("NVML could not count GPUs: {}", nvml_->error_text(r));
    return;
  }
  if (count == 0) {
    reason_ = "NVML found no GPU on this machine";
    return;
  }
  std::vector<int> wanted = options_.devices;
  if (wanted.empty())
    for (unsigned i = 0; i < count; ++i) wanted.push_back(int(i));
  for (int index : wanted) {
    if (index < 0 || unsigned(index) >= count) {
      reason_ = fmt::format("GPU {} requested, but NVML sees {} GPU(s)", index, count);
      devices_.clear();
      return;
    }
    Device d(options_.max_samples);
    if (const nvml::Return e = nvml_->device_by_index(unsigned(index), &d.handle);
        e != nvml::kSuccess) {
      reason_ = fmt::format("NVML could not open GPU {}: {}", index, nvml_->error_text(e));
      devices_.clear();
      return;
    }
    d.info.index = index;
    char name[96] = {0};
    if (nvml_->device_name(d.handle, name, sizeof name) == nvml::kSuccess) d.info.name = name;
    nvml::Memory mem{};
    if (nvml_->memory_info(d.handle, &mem) == nvml::kSuccess)
      d.info.memory_total_bytes = int64_t(mem.total);
    nvml_->max_clock_info(d.handle, nvml::kClockSm, &d.info.sm_clock_max_mhz);
    devices_.push_back(std::move(d));
  }
}

GpuMonitor::~GpuMonitor() {
  if (sampler_) sampler_->stop();
}

void GpuMonitor::start() {
  if (!available() || (sampler_ && sampler_->running())) return;
  {
    std::lock_guard lock(mutex_);
    t0_ = now_seconds();
    wall_ = 0;
    for (Device& d : devices_) {
      Device fresh(options_.max_samples);
      fresh.handle = d.handle;
      fresh.info = d.info;
      fresh.has_counter = nvml_->total_energy &&
                          nvml_->total_energy(d.handle, &fresh.counter0_mj) == nvml::kSuccess;
      fresh.info.energy_source = fresh.has_counter ? "counter" : "integrated_power";
      d = std::move(fresh);
    }
  }
  sampler_ = std::make_unique<PeriodicSampler>([this](bool closing) { sample(closing); });
  sampler_->start(options_.period_seconds);
}

void GpuMonitor::stop() {
  if (sampler_) sampler_->stop();
}

// Reads one device and updates its totals; a value NVML does not support on this GPU
// stays 0.
GpuSample GpuMonitor::read_device(Device& d, double t) {
  GpuSample s;
  s.t_seconds = t;
  nvml::Utilization u{};
  if (nvml_->utilization(d.handle, &u) == nvml::kSuccess) {
    s.utilisation = u.gpu / 100.0;
    s.memory_utilisation = u.memory / 100.0;
  }
  nvml::Memory mem{};
  if (nvml_->memory_info(d.handle, &mem) == nvml::kSuccess) s.memory_used_bytes = int64_t(mem.used);
  nvml_->clock_info(d.handle, nvml::kClockSm, &s.sm_clock_mhz);
  unsigned milliwatts = 0;
  if (nvml_->power_usage(d.handle, &milliwatts) == nvml::kSuccess) s.power_watts = milliwatts / 1e3;
  unsigned long long mj = 0;
  if (d.has_counter && nvml_->total_energy(d.handle, &mj) == nvml::kSuccess)
    d.energy = double(mj - d.counter0_mj) / 1e3;
  else if (!d.has_counter && d.last_t >= 0)
    d.energy += 0.5 * (s.power_watts + d.last_power) * (t - d.last_t);
  s.energy_joules = d.energy;
  d.last_t = t;
  d.last_power = s.power_watts;
  ++d.count;
  d.utilisation_sum += s.utilisation;
  d.memory_utilisation_sum += s.memory_utilisation;
  d.clock_sum += s.sm_clock_mhz;
  d.power_sum += s.power_watts;
  d.memory_max = std::max(d.memory_max, s.memory_used_bytes);
  d.clock_max = std::max(d.clock_max, s.sm_clock_mhz);
  d.power_max = std::max(d.power_max, s.power_watts);
  return s;
}

void GpuMonitor::sample(bool closing) {
  std::lock_guard lock(mutex_);
  const double t = now_seconds() - t0_;
  wall_ = t;
  for (Device& d : devices_) {
    d.series.offer(read_device(d, t), closing);
  }
}

double GpuMonitor::energy_joules() {
  std::lock_guard lock(mutex_);
  double total = 0;
  for (Device& d : devices_) {
    unsigned long long mj = 0;
    if (d.has_counter && nvml_->total_energy(d.handle, &mj) == nvml::kSuccess)
      total += double(mj - d.counter0_mj) / 1e3;
    else
      total += d.energy;
  }
  return total;
}

GpuReport GpuMonitor::report() const {
  std::lock_guard lock(mutex_);
  GpuReport r;
  r.available = available();
  r.reason = reason_;
  r.library = nvml_->path();
  r.driver_version = driver_version_;
  r.period_seconds = options_.period_seconds;
  r.wall_seconds = wall_;
  for (const Device& d : devices_) {
    GpuDeviceReport g = d.info;
    g.samples = d.series.samples();
    if (d.count > 0) {
      g.utilisation_mean = d.utilisation_sum / d.count;
      g.memory_utilisation_mean = d.memory_utilisation_sum / d.count;
      g.sm_clock_mean_mhz = d.clock_sum / d.count;
      g.power_mean_watts = d.power_sum / d.count;
    }
    g.memory_used_max_bytes = d.memory_max;
    g.sm_clock_max_observed_mhz = d.clock_max;
    g.power_max_watts = d.power_max;
    g.energy_joules = d.energy;
    r.energy_joules += d.energy;
    r.devices.push_back(std::move(g));
  }
  return r;
}

}  // namespace tb
