// The GPU monitor through NVML loaded at run time: a machine without NVML or without a GPU
// gets a report saying why (never an error), and with a stand-in NVML (tests/fake_nvml) the
// sampling and both energy paths (driver counter, integrated power) are checked exactly.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "metrics/gpu_monitor.h"
#include "metrics/monitoring_record.h"

namespace tb {
namespace {

// Sets environment variables for one test and restores them after.
struct ScopedEnv {
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  void set(const char* name, const char* value) {
    const char* old = getenv(name);
    saved.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    for (auto it = saved.rbegin(); it != saved.rend(); ++it) {
      if (it->second)
        setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        unsetenv(it->first.c_str());
    }
  }
};

GpuReport run_for(GpuMonitor& m, int milliseconds) {
  m.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds));
  m.stop();
  return m.report();
}

TEST(GpuMonitor, MissingNvmlIsReportedNotFatal) {
  ScopedEnv env;
  env.set("TRAINBENCH_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
  GpuMonitor monitor;
  EXPECT_FALSE(monitor.available());
  EXPECT_NE(monitor.reason().find("/nonexistent/libnvidia-ml.so.1"), std::string::npos)
      << monitor.reason();
  const GpuReport r = run_for(monitor, 10);
  EXPECT_FALSE(r.available);
  EXPECT_TRUE(r.devices.empty());
  EXPECT_EQ(monitor.energy_joules(), 0.0);
  const nlohmann::json j = gpu_summary_json(r);
  EXPECT_EQ(j["available"], false);
  EXPECT_EQ(j["reason"], monitor.reason());
  EXPECT_EQ(j.size(), 2u);
}

TEST(GpuMonitor, ALibraryWithoutNvmlIsRefusedWithTheMissingSymbols) {
  GpuMonitorOptions o;
  o.library = "libz.so.1";
  GpuMonitor monitor(o);
  EXPECT_FALSE(monitor.available());
  EXPECT_NE(monitor.reason().find("nvmlInit_v2"), std::string::npos) << monitor.reason();
}

TEST(GpuMonitor, FakeNvmlInitFailureAndNoDevicesAreReported) {
  ScopedEnv env;
  env.set("TRAINBENCH_NVML_LIBRARY", TB_FAKE_NVML);
  env.set("FAKE_NVML_INIT_FAILS", "1");
  {
    GpuMonitor monitor;
    EXPECT_FALSE(monitor.available());
    EXPECT_NE(monitor.reason().find("Driver Not Loaded"), std::string::npos) << monitor.reason();
  }
  env.set("FAKE_NVML_INIT_FAILS", nullptr);
  env.set("FAKE_NVML_DEVICES", "0");
  GpuMonitor none;
  EXPECT_FALSE(none.available());
  EXPECT_NE(none.reason().find("no GPU"), std::string::npos) << none.reason();
}

TEST(GpuMonitor, FakeNvmlSamplesEveryDeviceAndCountsEnergy) {
  ScopedEnv env;
  env.set("TRAINBENCH_NVML_LIBRARY", TB_FAKE_NVML);
  env.set("FAKE_NVML_DEVICES", "2");
  GpuMonitorOptions o;
  o.period_seconds = 0.02;
  GpuMonitor monitor(o);
  ASSERT_TRUE(monitor.available()) << monitor.reason();
  const GpuReport r = run_for(monitor, 200);
  ASSERT_TRUE(r.available);
  EXPECT_EQ(r.driver_version, "999.99-fake");
  ASSERT_EQ(r.devices.size(), 2u);
  for (const GpuDeviceReport& d : r.devices) {
    const double watts = 150 + 50 * d.index;
    EXPECT_EQ(d.name, "Fake GPU " + std::to_string(d.index));
    EXPECT_EQ(d.memory_total_bytes, 80LL << 30);
    EXPECT_EQ(d.memory_used_max_bytes, 3LL << 30);
    EXPECT_EQ(d.sm_clock_max_mhz, 1980u);
    EXPECT_EQ(d.sm_clock_max_observed_mhz, 1500u);
    EXPECT_DOUBLE_EQ(d.utilisation_mean, 0.42);
    EXPECT_DOUBLE_EQ(d.power_mean_watts, watts);
    EXPECT_EQ(d.energy_source, "counter");
    ASSERT_GE(d.samples.size(), 4u);
    // The counter advanced at constant power since start() (which read it next to t = 0).
    EXPECT_NEAR(d.energy_joules, watts * d.samples.back().t_seconds, watts * 0.01);
    EXPECT_NEAR(d.samples.back().energy_joules, d.energy_joules, 1e-9);
  }
  EXPECT_NEAR(r.energy_joules, r.devices[0].energy_joules + r.devices[1].energy_joules, 1e-9);
  EXPECT_GE(monitor.energy_joules(), r.energy_joules);
}

TEST(GpuMonitor, WithoutAnEnergyCounterPowerIsIntegrated) {
  ScopedEnv env;
  env.set("TRAINBENCH_NVML_LIBRARY", TB_FAKE_NVML);
  env.set("FAKE_NVML_DEVICES", "1");
  env.set("FAKE_NVML_NO_ENERGY_COUNTER", "1");
  GpuMonitorOptions o;
  o.period_seconds = 0.02;
  GpuMonitor monitor(o);
  ASSERT_TRUE(monitor.available()) << monitor.reason();
  const GpuReport r = run_for(monitor, 150);
  ASSERT_EQ(r.devices.size(), 1u);
  const GpuDeviceReport& d = r.devices[0];
  EXPECT_EQ(d.energy_source, "integrated_power");
  // Constant power: the trapezoid rule is exact over the sampled span.
  const double span = d.samples.back().t_seconds - d.samples.front().t_seconds;
  EXPECT_NEAR(d.energy_joules, 150.0 * span, 1e-6);
  const nlohmann::json series = gpu_timeseries_json(r);
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0]["t_seconds"].size(), d.samples.size());
  EXPECT_EQ(series[0]["power_watts"][0], 150.0);
  const nlohmann::json summary = gpu_summary_json(r);
  EXPECT_EQ(summary["devices"][0]["energy_source"], "integrated_power");
}

TEST(GpuMonitor, UnknownDeviceIndexIsReported) {
  ScopedEnv env;
  env.set("TRAINBENCH_NVML_LIBRARY", TB_FAKE_NVML);
  env.set("FAKE_NVML_DEVICES", "1");
  GpuMonitorOptions o;
  o.devices = {3};
  GpuMonitor monitor(o);
  EXPECT_FALSE(monitor.available());
  EXPECT_NE(monitor.reason().find("GPU 3"), std::string::npos) << monitor.reason();
}

}  // namespace
}  // namespace tb
