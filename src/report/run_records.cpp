#include "report/run_records.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include "core/error.h"
#include "metrics/results.h"

namespace tb {
namespace {

const nlohmann::json* find_at(const nlohmann::json& j, std::initializer_list<const char*> path) {
  const nlohmann::json* at = &j;
  for (const char* key : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

}  // namespace

double number_at(const nlohmann::json& j, std::initializer_list<const char*> path) {
  const nlohmann::json* v = find_at(j, path);
  return v && v->is_number() ? v->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

std::string string_at(const nlohmann::json& j, std::initializer_list<const char*> path) {
  const nlohmann::json* v = find_at(j, path);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

std::vector<RunRecord> load_run_records(const std::vector<std::string>& paths) {
  std::vector<RunRecord> runs;
  for (const std::string& path : paths) {
    std::ifstream in(path);
    TB_INPUT_CHECK(in, "cannot read results file {}", path);
    std::string text;
    int line = 0;
    while (std::getline(in, text)) {
      ++line;
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      RunRecord r;
      r.file = path;
      r.line = line;
      try {
        r.j = nlohmann::json::parse(text);
      } catch (const nlohmann::json::parse_error& e) {
        throw InputError(
            fmt::format("{}:{}: not a JSON object (parse error at byte {})", path, line, e.byte));
      }
      TB_INPUT_CHECK(r.j.is_object() && r.j.value("schema", "") == "trainbench.run",
                     "{}:{}: not a trainbench results record (no \"schema\": \"trainbench.run\")",
                     path, line);
      const int version = r.j.value("schema_version", 0);
      TB_INPUT_CHECK(version >= 1 && version <= kResultsSchemaVersion,
                     "{}:{}: schema_version {} is not one this trainbench reads (1 to {}); a "
                     "newer trainbench wrote it",
                     path, line, version, kResultsSchemaVersion);
      runs.push_back(std::move(r));
    }
  }
  TB_INPUT_CHECK(!runs.empty(), "no results records in {}",
                 fmt::join(paths.begin(), paths.end(), ", "));
  return runs;
}

namespace {

int threads_of(const RunRecord& r) {
  const double used = number_at(r.j, {"metrics", "threads_used"});
  if (std::isfinite(used) && used > 0) return int(used);
  if (r.impl == "ref") return 1;  // the oracle is single-threaded whatever --threads says
  const double t = number_at(r.j, {"config", "threads"});
  if (std::isfinite(t) && t > 0) return int(t);
  const double cores = number_at(r.j, {"environment", "cpu", "logical_cores"});
  return std::isfinite(cores) && cores > 0 ? int(cores) : 0;
}

bool is_gpu_run(const RunRecord& r) {
  if (string_at(r.j, {"metrics", "device"}).rfind("GPU", 0) == 0) return true;
  if (r.impl == "pytorch") return string_at(r.j, {"config", "pytorch", "device"}) == "cuda";
  return r.impl == "cuda" || r.impl == "cudnn";
}

std::string device_of(const RunRecord& r) {
  if (is_gpu_run(r)) return "GPU";
  const int threads = threads_of(r);
  if (threads <= 0) return "CPU";
  return fmt::format("CPU · {} thread{}", threads, threads == 1 ? "" : "s");
}

std::string config_number(const RunRecord& r, const char* key) {
  const double v = number_at(r.j, {"config", key});
  return std::isfinite(v) ? fmt::format("{:g}", v) : std::string("?");
}

// The settings that make runs comparable (the study runner's group): a workload's name
// shows those that vary in the report.
std::vector<std::pair<std::string, std::string>> workload_attributes(const RunRecord& r) {
  return {{"batch", "bs " + config_number(r, "batch_size")},
          {"precision", string_at(r.j, {"config", "precision"})},
          {"epochs", config_number(r, "epochs") + " ep"},
          {"optimizer", string_at(r.j, {"config", "optimizer"})},
          {"lr", "lr " + config_number(r, "lr")}};
}

// Other settings that can tell two runs of a workload apart, named in run labels.
std::vector<std::pair<std::string, std::string>> label_attributes(const RunRecord& r) {
  return {{"schedule", string_at(r.j, {"config", "schedule"})},
          {"limit", "limit " + config_number(r, "limit")},
          {"seed", "seed " + config_number(r, "seed")}};
}

bool matches_baseline_spec(const RunRecord& r, const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string impl = spec.substr(0, colon);
  if (r.impl != impl) return false;
  if (colon == std::string::npos) return true;
  return std::to_string(threads_of(r)) == spec.substr(colon + 1);
}

bool marked_baseline(const RunRecord& r) {
  const nlohmann::json* study = r.j.contains("study") ? &r.j["study"] : nullptr;
  return r.j.value("baseline", false) ||
         (study && study->is_object() && study->value("baseline", false));
}

}  // namespace

void describe_runs(std::vector<RunRecord>& runs, const std::string& baseline_spec) {
  std::map<std::string, std::set<std::string>> values;  // attribute -> values seen
  for (RunRecord& r : runs) {
    r.status = r.j.value("status", "completed");
    r.impl = string_at(r.j, {"config", "impl"});
    if (r.impl.empty()) r.impl = "?";
    r.device = device_of(r);
    for (const auto& [name, value] : workload_attributes(r)) values[name].insert(value);
    for (const auto& [name, value] : label_attributes(r)) values[name].insert(value);
  }
  std::map<std::string, int> seen;
  for (RunRecord& r : runs) {
    const std::string model = string_at(r.j, {"config", "model"});
    const std::string dataset = string_at(r.j, {"config", "dataset"});
    r.workload =
        fmt::format("{} · {}", model.empty() ? "?" : model, dataset.empty() ? "?" : dataset);
    for (const auto& [name, value] : workload_attributes(r))
      if (values[name].size() > 1) r.workload += " · " + value;
    r.group = string_at(r.j, {"study", "group"});
    if (r.group.empty()) r.group = r.workload;
    std::string device = r.device;
    if (device.rfind("CPU · ", 0) == 0) device = device.substr(std::string("CPU · ").size());
    r.label = r.impl + " · " + device;
    for (const auto& [name, value] : label_attributes(r))
      if (values[name].size() > 1) r.label += " · " + value;
    // Unique within the workload: charts and tables always show the two together.
    const int n = ++seen[r.workload + "|" + r.label];
    if (n > 1) r.label += fmt::format(" #{}", n);
  }

  // Baselines per group: a marked record wins, then --baseline, then the first completed.
  const bool spec_matches = std::any_of(runs.begin(), runs.end(), [&](const RunRecord& r) {
    return r.status == "completed" && matches_baseline_spec(r, baseline_spec);
  });
  TB_INPUT_CHECK(baseline_spec.empty() || spec_matches,
                 "--baseline {}: no completed run has that implementation (and thread count)",
                 baseline_spec);
  std::map<std::string, int> base;
  for (int pass = 0; pass < 3; ++pass)
    for (size_t i = 0; i < runs.size(); ++i) {
      const RunRecord& r = runs[i];
      if (base.count(r.group) || r.status != "completed") continue;
      const bool pick = pass == 0 ? marked_baseline(r)
                        : pass == 1
                            ? !baseline_spec.empty() && matches_baseline_spec(r, baseline_spec)
                            : baseline_spec.empty();
      if (pick) base[r.group] = int(i);
    }
  for (size_t i = 0; i < runs.size(); ++i) {
    auto it = base.find(runs[i].group);
    runs[i].baseline_of = it == base.end() ? -1 : it->second;
    runs[i].baseline = runs[i].baseline_of == int(i);
  }
}

std::string shared_settings(const std::vector<RunRecord>& runs) {
  if (runs.empty()) return "";
  std::string out;
  for (const auto& [name, value] : workload_attributes(runs.front())) {
    bool same = true;
    for (const RunRecord& r : runs)
      for (const auto& [n, v] : workload_attributes(r)) same = same && (n != name || v == value);
    if (same) out += (out.empty() ? "" : ", ") + value;
  }
  return out;
}

std::vector<RunRecord> read_runs(const std::vector<std::string>& paths,
                                 const std::string& baseline_spec, int* other_kinds) {
  std::vector<RunRecord> all = load_run_records(paths), runs;
  for (RunRecord& r : all)
    if (r.j.value("kind", "train") == "train") runs.push_back(std::move(r));
  if (other_kinds) *other_kinds = int(all.size() - runs.size());
  TB_INPUT_CHECK(!runs.empty(),
                 "no training runs in {} ({} record(s) of other kinds, such as throughput "
                 "measurements, which reports do not cover)",
                 fmt::join(paths.begin(), paths.end(), ", "), all.size());
  describe_runs(runs, baseline_spec);
  return runs;
}

}  // namespace tb
