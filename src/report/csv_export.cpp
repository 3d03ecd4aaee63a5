#include "report/csv_export.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "report/report_tables.h"

namespace tb {
namespace {

std::string number_text(double v) {
  if (!std::isfinite(v)) return "";
  return fmt::format("{}", v);  // shortest text that reads back as the same double
}

struct Column {
  std::string name;
  std::function<std::string(const RunRecord&)> value;
};

Column config_string(const char* key) {
  return {key, [key](const RunRecord& r) { return string_at(r.j, {"config", key}); }};
}
Column config_number(const char* key) {
  return {key, [key](const RunRecord& r) { return number_text(number_at(r.j, {"config", key})); }};
}
Column derived(const char* name, double (*f)(const RunRecord&)) {
  return {name, [f](const RunRecord& r) { return number_text(f(r)); }};
}

}  // namespace

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string results_csv(const std::vector<RunRecord>& runs) {
  std::vector<Column> columns = {
      {"file", [](const RunRecord& r) { return r.file; }},
      {"line", [](const RunRecord& r) { return std::to_string(r.line); }},
      {"time_utc",
       [](const RunRecord& r) {
         return string_at(r.j, {"environment", "time_utc"});
       }},
      {"kind", [](const RunRecord& r) { return string_at(r.j, {"kind"}); }},
      {"status", [](const RunRecord& r) { return r.status; }},
      {"run", [](const RunRecord& r) { return r.label; }},
      {"device", [](const RunRecord& r) { return r.device; }},
      {"baseline", [](const RunRecord& r) { return std::string(r.baseline ? "true" : "false"); }},
      {"study",
       [](const RunRecord& r) {
         return string_at(r.j, {"study", "name"});
       }},
      config_string("model"),
      config_string("dataset"),
      config_string("impl"),
      config_number("threads"),
      config_string("precision"),
      config_number("batch_size"),
      config_number("epochs"),
      config_string("optimizer"),
      config_number("lr"),
      config_string("schedule"),
      config_number("limit"),
      config_number("seed"),
      {"parameters",
       [](const RunRecord& r) {
         return number_text(number_at(r.j, {"model", "parameters"}));
       }},
      {"training_flops_per_image", [](const RunRecord& r) {
         return number_text(number_at(r.j, {"model", "training_flops_per_image"}));
       }}};

  // Every scalar under "final" that any record has, in first-seen order (the confusion
  // matrix is an array and stays in the JSON).
  std::vector<std::string> final_keys;
  for (const RunRecord& r : runs)
    if (r.j.contains("final") && r.j["final"].is_object())
      for (auto it = r.j["final"].begin(); it != r.j["final"].end(); ++it)
        if (it.value().is_primitive() &&
            std::find(final_keys.begin(), final_keys.end(), it.key()) == final_keys.end())
          final_keys.push_back(it.key());
  for (const std::string& key : final_keys)
    columns.push_back({key, [key](const RunRecord& r) {
                         const auto& v = r.j["final"];
                         if (!v.contains(key)) return std::string();
                         const auto& x = v[key];
                         return x.is_string()   ? x.get<std::string>()
                                : x.is_number() ? number_text(x.get<double>())
                                                : x.dump();
                       }});

  // The study runner's per-run metrics (and the nested inference figures), by the same
  // union rule; names already taken keep their first meaning.
  std::vector<std::pair<std::string, std::vector<std::string>>> metric_paths;
  auto taken = [&](const std::string& name) {
    return std::any_of(columns.begin(), columns.end(),
                       [&](const Column& c) { return c.name == name; }) ||
           std::any_of(metric_paths.begin(), metric_paths.end(),
                       [&](const auto& m) { return m.first == name; });
  };
  for (const RunRecord& r : runs) {
    if (!r.j.contains("metrics") || !r.j["metrics"].is_object()) continue;
    for (auto it = r.j["metrics"].begin(); it != r.j["metrics"].end(); ++it) {
      if (it.value().is_primitive() && !taken(it.key()))
        metric_paths.push_back({it.key(), {it.key()}});
      else if (it.value().is_object())
        for (auto in = it.value().begin(); in != it.value().end(); ++in)
          if (in.value().is_primitive() && !taken(it.key() + "_" + in.key()))
            metric_paths.push_back({it.key() + "_" + in.key(), {it.key(), in.key()}});
    }
  }
  for (const auto& [name, path] : metric_paths)
    columns.push_back({name, [path](const RunRecord& r) {
                         const nlohmann::json* v = &r.j["metrics"];
                         for (const std::string& key : path) {
                           if (!v->is_object() || !v->contains(key)) return std::string();
                           v = &(*v)[key];
                         }
                         return v->is_string()   ? v->get<std::string>()
                                : v->is_number() ? number_text(v->get<double>())
                                                 : v->dump();
                       }});

  for (const char* key : {"cpu_utilisation", "cpu_cores_busy", "peak_rss_bytes"})
    columns.push_back({key, [key](const RunRecord& r) {
                         return number_text(number_at(r.j, {"system", key}));
                       }});
  columns.push_back(derived("data_time_fraction", data_time_fraction));
  columns.push_back(derived("achieved_gflops", achieved_gflops));
  columns.push_back(derived("gpu_utilisation_mean", gpu_utilisation_mean));
  columns.push_back(derived("gpu_memory_used_max_bytes", gpu_memory_max_bytes));
  columns.push_back(derived("gpu_power_mean_watts", gpu_power_mean_watts));
  columns.push_back({"gpu_energy_joules", [](const RunRecord& r) {
                       return number_text(number_at(r.j, {"gpu", "energy_joules"}));
                     }});
  columns.push_back(derived("energy_per_image_joules", energy_per_image_joules));
  columns.push_back({"hostname", [](const RunRecord& r) {
                       return string_at(r.j, {"environment", "hostname"});
                     }});
  columns.push_back({"cpu_model", [](const RunRecord& r) {
                       return string_at(r.j, {"environment", "cpu", "model"});
                     }});
  columns.push_back({"git_commit", [](const RunRecord& r) {
                       return string_at(r.j, {"environment", "trainbench", "git_commit"});
                     }});
  columns.push_back({"error", [](const RunRecord& r) { return string_at(r.j, {"error"}); }});

  std::string out;
  for (size_t c = 0; c < columns.size(); ++c) {
    if (c) out += ',';
    out += csv_field(columns[c].name);
  }
  out += "\r\n";
  for (const RunRecord& r : runs) {
    for (size_t c = 0; c < columns.size(); ++c) {
      if (c) out += ',';
      out += csv_field(columns[c].value(r));
    }
    out += "\r\n";
  }
  return out;
}

}  // namespace tb
