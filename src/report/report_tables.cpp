#include "report/report_tables.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "report/report_format.h"

namespace tb {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double sum_over_epochs(const RunRecord& r, const char* key) {
  const auto it = r.j.find("epochs");
  if (it == r.j.end() || !it->is_array() || it->empty()) return kNaN;
  double total = 0;
  for (const auto& e : *it) total += e.value(key, 0.0);
  return total;
}

std::string epochs_text(const RunRecord& r) {
  const auto it = r.j.find("epochs");
  const size_t done = it != r.j.end() && it->is_array() ? it->size() : 0;
  const double planned = number_at(r.j, {"config", "epochs"});
  if (!std::isfinite(planned)) return done ? std::to_string(done) : kNoValue;
  if (r.status == "completed" || double(done) == planned) return fmt::format("{:g}", planned);
  return fmt::format("{}/{:g}", done, planned);
}

void drop_empty_columns(ReportTable& t) {
  for (size_t c = t.headers.size(); c-- > 0;) {
    bool empty = true;
    for (const auto& row : t.rows) empty = empty && row[c] == kNoValue;
    if (!empty || t.rows.empty()) continue;
    t.headers.erase(t.headers.begin() + long(c));
    t.numeric.erase(t.numeric.begin() + long(c));
    for (auto& row : t.rows) row.erase(row.begin() + long(c));
  }
}

std::string tag_of(const RunRecord& r) {
  if (r.status != "completed") return r.status;
  return r.baseline ? "baseline" : "";
}

}  // namespace

double achieved_gflops(const RunRecord& r) {
  const double tflops = number_at(r.j, {"metrics", "achieved_tflops"});
  if (std::isfinite(tflops)) return tflops * 1e3;
  const double flops = number_at(r.j, {"model", "training_flops_per_image"});
  const double images = number_at(r.j, {"final", "images"});
  const double seconds = number_at(r.j, {"final", "train_seconds"});
  return seconds > 0 ? flops * images / seconds / 1e9 : kNaN;
}

double data_time_fraction(const RunRecord& r) {
  const double data = sum_over_epochs(r, "data_seconds");
  const double compute = sum_over_epochs(r, "compute_seconds");
  return data + compute > 0 ? data / (data + compute) : kNaN;
}

double gpu_utilisation_mean(const RunRecord& r) {
  const auto* devices = r.j.contains("gpu") ? &r.j["gpu"] : nullptr;
  if (!devices || !devices->value("available", false) || !devices->contains("devices")) return kNaN;
  double sum = 0;
  int n = 0;
  for (const auto& d : (*devices)["devices"]) sum += d.value("utilisation_mean", 0.0), ++n;
  return n ? sum / n : kNaN;
}

double gpu_memory_max_bytes(const RunRecord& r) {
  const auto* gpu = r.j.contains("gpu") ? &r.j["gpu"] : nullptr;
  if (!gpu || !gpu->value("available", false) || !gpu->contains("devices")) return kNaN;
  double most = kNaN;
  for (const auto& d : (*gpu)["devices"]) {
    const double used = d.value("memory_used_max_bytes", 0.0);
    most = std::isfinite(most) ? std::max(most, used) : used;
  }
  return most;
}

double gpu_power_mean_watts(const RunRecord& r) {
  const auto* gpu = r.j.contains("gpu") ? &r.j["gpu"] : nullptr;
  if (!gpu || !gpu->value("available", false) || !gpu->contains("devices")) return kNaN;
  double sum = 0;
  for (const auto& d : (*gpu)["devices"]) sum += d.value("power_mean_watts", 0.0);
  return sum > 0 ? sum : kNaN;
}

double energy_per_image_joules(const RunRecord& r) {
  for (const char* key : {"gpu_energy_per_image_joules", "energy_per_image_joules"}) {
    const double given = number_at(r.j, {"metrics", key});
    if (std::isfinite(given)) return given;
  }
  const double energy = number_at(r.j, {"gpu", "energy_joules"});
  const double images = number_at(r.j, {"final", "images"});
  return images > 0 && energy > 0 ? energy / images : kNaN;
}

std::string time_to_target_text(const RunRecord& r) {
  const double target = number_at(r.j, {"metrics", "target_accuracy"});
  const double seconds = number_at(r.j, {"metrics", "time_to_target_seconds"});
  if (!std::isfinite(target) || !std::isfinite(seconds)) return kNoValue;
  const std::string goal = fmt::format("{:g}%", 100 * target);
  return seconds > 0 ? fmt::format("{} to {}", format_seconds(seconds), goal)
                     : fmt::format("never {}", goal);
}

ReportTable runs_table(const std::vector<RunRecord>& runs) {
  ReportTable t;
  t.headers = {"#",          "Workload",  "Run",      "Status",         "Epochs",
               "Train time", "Data time", "Images/s", "Time to target", "Val acc",
               "Test acc"};
  t.numeric = {true, false, false, false, true, true, true, true, true, true, true};
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = runs[i];
    t.rows.push_back({std::to_string(i + 1), r.workload, r.label, r.status, epochs_text(r),
                      format_seconds(number_at(r.j, {"final", "train_seconds"})),
                      format_percent(data_time_fraction(r), 0),
                      format_count(number_at(r.j, {"final", "images_per_second"})),
                      time_to_target_text(r),
                      format_percent(number_at(r.j, {"final", "validation_accuracy"})),
                      format_percent(number_at(r.j, {"final", "test_accuracy"}))});
    t.row_tags.push_back(r.status == "completed" ? "" : r.status);
  }
  drop_empty_columns(t);
  return t;
}

ReportTable efficiency_table(const std::vector<RunRecord>& runs) {
  ReportTable t;
  t.headers = {"#",
               "Workload",
               "Run",
               "GFLOP/s",
               "% of peak",
               "Peak RSS",
               "CPU util",
               "GPU util",
               "GPU memory",
               "GPU power",
               "Energy/image",
               "Latency (batch 1)",
               "Inference images/s"};
  t.numeric = {true, false, false, true, true, true, true, true, true, true, true, true, true};
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = runs[i];
    if (r.status != "completed") continue;
    const double peak = number_at(r.j, {"metrics", "percent_of_peak"});
    const double power = gpu_power_mean_watts(r);
    const double latency = number_at(r.j, {"metrics", "inference", "latency_batch1_seconds"});
    t.rows.push_back(
        {std::to_string(i + 1), r.workload, r.label, format_count(achieved_gflops(r)),
         std::isfinite(peak) ? fmt::format("{:.1f}%", peak) : kNoValue,
         format_bytes(number_at(r.j, {"system", "peak_rss_bytes"})),
         format_percent(number_at(r.j, {"system", "cpu_utilisation"}), 0),
         format_percent(gpu_utilisation_mean(r), 0), format_bytes(gpu_memory_max_bytes(r)),
         std::isfinite(power) ? fmt::format("{:.0f} W", power) : kNoValue,
         format_joules(energy_per_image_joules(r)),
         latency > 0 ? format_seconds(latency) : kNoValue,
         format_count(number_at(r.j, {"metrics", "inference", "throughput_images_per_second"}))});
    t.row_tags.push_back("");
  }
  drop_empty_columns(t);
  return t;
}

ReportTable speedup_table(const std::vector<RunRecord>& runs) {
  ReportTable t;
  t.headers = {"Workload", "Run", "Train time", "Images/s", "Speedup", "Test acc", "Δ test acc"};
  t.numeric = {false, false, true, true, true, true, true};
  // Grouped, baseline first, in the order the runs were given.
  std::vector<std::string> order;
  for (const RunRecord& r : runs)
    if (std::find(order.begin(), order.end(), r.group) == order.end()) order.push_back(r.group);
  for (const std::string& group : order) {
    std::vector<int> members;
    for (size_t i = 0; i < runs.size(); ++i)
      if (runs[i].group == group && runs[i].status == "completed") members.push_back(int(i));
    std::stable_partition(members.begin(), members.end(),
                          [&](int i) { return runs[size_t(i)].baseline; });
    for (int i : members) {
      const RunRecord& r = runs[size_t(i)];
      const RunRecord* base = r.baseline_of >= 0 ? &runs[size_t(r.baseline_of)] : nullptr;
      const double ips = number_at(r.j, {"final", "images_per_second"});
      const double acc = number_at(r.j, {"final", "test_accuracy"});
      const double base_ips = base ? number_at(base->j, {"final", "images_per_second"}) : kNaN;
      const double base_acc = base ? number_at(base->j, {"final", "test_accuracy"}) : kNaN;
      std::string delta = kNoValue;
      if (r.baseline)
        delta = "baseline";
      else if (std::isfinite(acc - base_acc))
        delta = fmt::format("{:+.2f} pp", 100 * (acc - base_acc));
      t.rows.push_back({r.workload, r.label,
                        format_seconds(number_at(r.j, {"final", "train_seconds"})),
                        format_count(ips), format_ratio(base_ips > 0 ? ips / base_ips : kNaN),
                        format_percent(acc), delta});
      t.row_tags.push_back(tag_of(r));
    }
  }
  return t;
}

ReportTable problems_table(const std::vector<RunRecord>& runs) {
  ReportTable t;
  t.headers = {"#", "Workload", "Run", "Status", "Error", "Record"};
  t.numeric = {true, false, false, false, false, false};
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = runs[i];
    if (r.status == "completed") continue;
    std::string error = string_at(r.j, {"error"});
    if (error.empty() && r.status == "interrupted") error = "stopped before the end (Ctrl-C)";
    t.rows.push_back({std::to_string(i + 1), r.workload, r.label, r.status,
                      error.empty() ? kNoValue : error, fmt::format("{}:{}", r.file, r.line)});
    t.row_tags.push_back(r.status);
  }
  return t;
}

std::vector<EnvironmentGroup> environment_groups(const std::vector<RunRecord>& runs) {
  std::vector<EnvironmentGroup> groups;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < runs.size(); ++i) {
    const nlohmann::json& env =
        runs[i].j.contains("environment") ? runs[i].j["environment"] : nlohmann::json::object();
    // The same machine and build: the time of the run does not make a new environment.
    const std::string key =
        fmt::format("{}|{}|{}|{}", string_at(env, {"hostname"}), string_at(env, {"cpu", "model"}),
                    string_at(env, {"compiler"}), string_at(env, {"trainbench", "git_commit"}));
    auto [it, added] = index.emplace(key, groups.size());
    if (added) groups.push_back({env, {}});
    groups[it->second].runs.push_back(int(i));
  }
  return groups;
}

std::vector<std::pair<std::string, std::string>> environment_highlights(
    const EnvironmentGroup& group, const std::vector<RunRecord>& runs) {
  const nlohmann::json& env = group.environment;
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&](const std::string& key, const std::string& value) {
    if (!value.empty()) out.emplace_back(key, value);
  };
  add("CPU", string_at(env, {"cpu", "model"}));
  const double cores = number_at(env, {"cpu", "logical_cores"});
  if (std::isfinite(cores)) add("Cores", fmt::format("{:g} logical", cores));
  add("SIMD", string_at(env, {"cpu", "simd"}));
  const double memory = number_at(env, {"memory_bytes"});
  if (std::isfinite(memory)) add("Memory", format_bytes(memory));
  // GPUs as NVML saw them during the runs (the environment may not name them).
  std::string gpus, driver;
  for (int i : group.runs) {
    const nlohmann::json& j = runs[size_t(i)].j;
    if (!j.contains("gpu") || !j["gpu"].value("available", false)) continue;
    driver = j["gpu"].value("driver_version", "");
    for (const auto& d : j["gpu"]["devices"]) {
      const std::string name = d.value("name", "");
      if (!name.empty() && gpus.find(name) == std::string::npos)
        gpus += (gpus.empty() ? "" : ", ") + name;
    }
  }
  add("GPU", gpus);
  add("Driver", driver);
  add("OS", string_at(env, {"os"}));
  add("Compiler", string_at(env, {"compiler"}));
  const std::string version = string_at(env, {"trainbench", "version"});
  const std::string commit = string_at(env, {"trainbench", "git_commit"});
  if (!version.empty()) add("trainbench", commit.empty() ? version : version + " (" + commit + ")");
  add("Host", string_at(env, {"hostname"}));
  std::string first, last;
  for (int i : group.runs) {
    const std::string t = string_at(runs[size_t(i)].j, {"environment", "time_utc"});
    if (t.empty()) continue;
    if (first.empty() || t < first) first = t;
    if (last.empty() || t > last) last = t;
  }
  add("Recorded", first == last ? first : first + " – " + last);
  return out;
}

std::vector<std::pair<std::string, std::string>> environment_flat(const nlohmann::json& env) {
  std::vector<std::pair<std::string, std::string>> out;
  auto walk = [&](auto&& self, const nlohmann::json& j, const std::string& prefix) -> void {
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it)
        self(self, it.value(), prefix.empty() ? it.key() : prefix + "." + it.key());
    } else if (j.is_array()) {
      std::string joined;
      for (const auto& v : j)
        joined += (joined.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
      out.emplace_back(prefix, joined);
    } else {
      out.emplace_back(prefix, j.is_string() ? j.get<std::string>() : j.dump());
    }
  };
  walk(walk, env, "");
  return out;
}

}  // namespace tb
