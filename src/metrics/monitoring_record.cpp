#include "metrics/monitoring_record.h"

#include <cmath>

namespace tb {
namespace {

// Three significant decimals are plenty for sampled quantities and keep lines short.
double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

}  // namespace

nlohmann::json system_summary_json(const SystemReport& r) {
  return {{"sample_period_seconds", r.period_seconds},
          {"samples", r.samples.size()},
          {"wall_seconds", r.wall_seconds},
          {"cpu_user_seconds", r.cpu_user_seconds},
          {"cpu_system_seconds", r.cpu_system_seconds},
          {"cores", r.cores},
          {"cpu_cores_busy", r.cpu_cores_busy},
          {"cpu_utilisation", r.cpu_utilisation},
          {"rss_start_bytes", r.rss_start_bytes},
          {"rss_max_sampled_bytes", r.rss_max_sampled_bytes},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"peak_rss_scope", r.peak_rss_since_start ? "run" : "process"}};
}

nlohmann::json gpu_summary_json(const GpuReport& r) {
  if (!r.available) return {{"available", false}, {"reason", r.reason}};
  nlohmann::json devices = nlohmann::json::array();
  for (const GpuDeviceReport& d : r.devices)
    devices.push_back({{"index", d.index},
                       {"name", d.name},
                       {"memory_total_bytes", d.memory_total_bytes},
                       {"memory_used_max_bytes", d.memory_used_max_bytes},
                       {"utilisation_mean", d.utilisation_mean},
                       {"memory_utilisation_mean", d.memory_utilisation_mean},
                       {"sm_clock_mean_mhz", d.sm_clock_mean_mhz},
                       {"sm_clock_max_observed_mhz", d.sm_clock_max_observed_mhz},
                       {"sm_clock_max_mhz", d.sm_clock_max_mhz},
                       {"power_mean_watts", d.power_mean_watts},
                       {"power_max_watts", d.power_max_watts},
                       {"energy_joules", d.energy_joules},
                       {"energy_source", d.energy_source}});
  return {{"available", true},
          {"driver_version", r.driver_version},
          {"sample_period_seconds", r.period_seconds},
          {"wall_seconds", r.wall_seconds},
          {"energy_joules", r.energy_joules},
          {"devices", devices}};
}

nlohmann::json system_timeseries_json(const SystemReport& r) {
  nlohmann::json t = nlohmann::json::array(), rss = nlohmann::json::array(),
                 cpu = nlohmann::json::array(), util = nlohmann::json::array();
  const std::vector<double> u = r.interval_utilisation();
  for (size_t i = 0; i < r.samples.size(); ++i) {
    t.push_back(round3(r.samples[i].t_seconds));
    cpu.push_back(round3(r.samples[i].cpu_seconds));
    rss.push_back(r.samples[i].rss_bytes);
    // The first sample opens the window: no interval, so no utilisation yet.
    util.push_back(i == 0 ? nlohmann::json(nullptr) : nlohmann::json(round3(u[i])));
  }
  return {{"t_seconds", t}, {"cpu_seconds", cpu}, {"cpu_utilisation", util}, {"rss_bytes", rss}};
}

nlohmann::json gpu_timeseries_json(const GpuReport& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const GpuDeviceReport& d : r.devices) {
    nlohmann::json t = nlohmann::json::array(), util = nlohmann::json::array(),
                   mem_util = nlohmann::json::array(), mem = nlohmann::json::array(),
                   clock = nlohmann::json::array(), power = nlohmann::json::array(),
                   energy = nlohmann::json::array();
    for (const GpuSample& s : d.samples) {
      t.push_back(round3(s.t_seconds));
      util.push_back(round3(s.utilisation));
      mem_util.push_back(round3(s.memory_utilisation));
      mem.push_back(s.memory_used_bytes);
      clock.push_back(s.sm_clock_mhz);
      power.push_back(round3(s.power_watts));
      energy.push_back(round3(s.energy_joules));
    }
    out.push_back({{"index", d.index},
                   {"t_seconds", t},
                   {"utilisation", util},
                   {"memory_utilisation", mem_util},
                   {"memory_used_bytes", mem},
                   {"sm_clock_mhz", clock},
                   {"power_watts", power},
                   {"energy_joules", energy}});
  }
  return out;
}

void add_monitoring(nlohmann::json& record, const SystemReport& system, const GpuReport& gpu) {
  record["system"] = system_summary_json(system);
  record["gpu"] = gpu_summary_json(gpu);
  record["timeseries"] = {{"system", system_timeseries_json(system)},
                          {"gpu", gpu_timeseries_json(gpu)}};
}

}  // namespace tb
