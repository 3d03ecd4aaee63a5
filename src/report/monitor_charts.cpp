#include "report/monitor_charts.h"

#include <fmt/format.h>

#include "report/chart_style.h"

namespace tb {
namespace {

using nlohmann::json;

struct Series {
  std::string name;     // legend entry: the run, and the GPU when a run watched several
  const json* columns;  // {"t_seconds": [...], quantity: [...], ...}
};

json line_chart(const std::string& title, const std::vector<Series>& series, const char* column,
                double scale, const char* y_title, const char* y_format) {
  json values = json::array();
  for (const Series& s : series) {
    const json& t = (*s.columns)["t_seconds"];
    if (!s.columns->contains(column)) continue;
    const json& v = (*s.columns)[column];
    for (size_t i = 0; i < t.size() && i < v.size(); ++i)
      if (v[i].is_number())
        values.push_back({{"run", s.name}, {"t", t[i]}, {"value", v[i].get<double>() * scale}});
  }
  if (values.empty()) return nullptr;
  json spec = base_spec(title);
  spec["data"] = {{"values", values}};
  spec["width"] = 440;
  spec["height"] = 200;
  spec["mark"] = {{"type", "line"}, {"strokeWidth", 1.6}, {"interpolate", "monotone"}};
  spec["encoding"] = {
      {"x", {{"field", "t"}, {"type", "quantitative"}, {"title", "seconds since the run started"}}},
      {"y",
       {{"field", "value"},
        {"type", "quantitative"},
        {"title", y_title},
        {"axis", {{"format", y_format}}}}},
      {"color",
       {{"field", "run"},
        {"type", "nominal"},
        {"title", "run"},
        {"scale", {{"scheme", "tableau10"}}},
        {"legend", {{"orient", "bottom"}, {"columns", 2}}}}},
      {"tooltip", json::array({{{"field", "run"}},
                               {{"field", "t"}, {"format", ".2f"}},
                               {{"field", "value"}, {"format", y_format}, {"title", y_title}}})}};
  return spec;
}

}  // namespace

std::vector<json> monitoring_charts(const std::vector<RunRecord>& runs) {
  std::vector<Series> system, gpu;
  // Run labels are unique within a workload: name the workload too when there are several.
  bool several_workloads = false;
  for (const RunRecord& r : runs) several_workloads |= r.workload != runs.front().workload;
  for (const RunRecord& r : runs) {
    const std::string name = several_workloads ? r.workload + " · " + r.label : r.label;
    if (!r.j.contains("timeseries") || !r.j["timeseries"].is_object()) continue;
    const json& ts = r.j["timeseries"];
    if (ts.contains("system") && ts["system"].contains("t_seconds"))
      system.push_back({name, &ts["system"]});
    if (ts.contains("gpu") && ts["gpu"].is_array()) {
      const bool several = ts["gpu"].size() > 1;
      for (const json& d : ts["gpu"])
        if (d.contains("t_seconds"))
          gpu.push_back(
              {several ? fmt::format("{} · GPU {}", name, d.value("index", 0)) : name, &d});
    }
  }
  std::vector<json> charts = {
      line_chart("Resident memory (RSS)", system, "rss_bytes", 1.0 / (1024 * 1024), "MiB", ",.0f"),
      line_chart("CPU utilisation (share of the cores available)", system, "cpu_utilisation", 1.0,
                 "CPU utilisation", ".0%"),
      line_chart("GPU utilisation", gpu, "utilisation", 1.0, "GPU utilisation", ".0%"),
      line_chart("GPU memory used (whole device)", gpu, "memory_used_bytes",
                 1.0 / (1024.0 * 1024 * 1024), "GiB", ".2f"),
      line_chart("GPU power", gpu, "power_watts", 1.0, "watts", ".0f"),
      line_chart("GPU SM clock", gpu, "sm_clock_mhz", 1.0, "MHz", ".0f")};
  std::erase_if(charts, [](const json& c) { return c.is_null(); });
  return charts;
}

}  // namespace tb
