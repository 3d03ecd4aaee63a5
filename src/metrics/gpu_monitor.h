// GPU utilisation, memory, SM clock, power and energy, sampled through NVML on a background
// thread while a run executes. A machine without the NVIDIA driver or without a GPU gives a
// report with available = false and the reason: never an error.
//
//   GpuMonitor monitor;            // every GPU, period 0.25 s
//   monitor.start();
//   ... the run; monitor.energy_joules() at epoch ends gives energy per epoch ...
//   monitor.stop();
//   GpuReport r = monitor.report();
//
// Energy comes from the driver's cumulative counter where the GPU has one (Volta and newer),
// else from the sampled power integrated over time (trapezoids), which misses peaks shorter
// than a period. NVML's power reading is itself averaged (about a second on an H200: a
// kernel that starts drawing 330 W shows ~110 W half a second later), so the counter is the
// figure to trust. Memory used is the whole device's, other processes included.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "metrics/bounded_series.h"
#include "metrics/periodic_sampler.h"

namespace tb {

class NvmlLibrary;

struct GpuSample {
  double t_seconds = 0.0;           // since start()
  double utilisation = 0.0;         // 0..1, busy fraction of NVML's last sample period
  double memory_utilisation = 0.0;  // 0..1, memory-controller busy fraction
  int64_t memory_used_bytes = 0;
  unsigned sm_clock_mhz = 0;
  double power_watts = 0.0;
  double energy_joules = 0.0;  // since start(), cumulative
};

struct GpuDeviceReport {
  int index = 0;  // NVML index (PCI bus order; CUDA's order can differ)
  std::string name;
  int64_t memory_total_bytes = 0;
  unsigned sm_clock_max_mhz = 0;  // the device's maximum SM clock
  std::string energy_source;      // "counter" or "integrated_power"
  std::vector<GpuSample> samples;
  // Summary over the samples.
  double utilisation_mean = 0.0, memory_utilisation_mean = 0.0;
  int64_t memory_used_max_bytes = 0;
  double sm_clock_mean_mhz = 0.0;
  unsigned sm_clock_max_observed_mhz = 0;
  double power_mean_watts = 0.0, power_max_watts = 0.0;
  double energy_joules = 0.0;
};

struct GpuReport {
  bool available = false;
  std::string reason;  // why not, when not available
  std::string library, driver_version;
  double period_seconds = 0.0;
  double wall_seconds = 0.0;
  std::vector<GpuDeviceReport> devices;
  double energy_joules = 0.0;  // all monitored devices
};

struct GpuMonitorOptions {
  double period_seconds = 0.25;
  std::vector<int> devices;  // NVML indices to watch; empty = all
  std::string library;       // "" = $TRAINBENCH_NVML_LIBRARY, else libnvidia-ml.so.1
  size_t max_samples = 4096;
};

class GpuMonitor {
 public:
  explicit GpuMonitor(GpuMonitorOptions options = {});
  ~GpuMonitor();

  bool available() const { return reason_.empty(); }
  const std::string& reason() const { return reason_; }

  void start();
  void stop();  // joins the sampling thread; safe to call twice
  // Energy of all monitored devices since start(), read now (counter or integrated power).
  double energy_joules();
  GpuReport report() const;

 private:
  struct Device;
  void sample(bool closing);
  GpuSample read_device(Device& d, double t);

  GpuMonitorOptions options_;
  std::unique_ptr<NvmlLibrary> nvml_;
  std::string reason_, driver_version_;
  std::vector<Device> devices_;
  double t0_ = 0.0, wall_ = 0.0;
  mutable std::mutex mutex_;
  std::unique_ptr<PeriodicSampler> sampler_;
};

}  // namespace tb
