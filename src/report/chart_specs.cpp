#include "report/chart_specs.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "report/chart_style.h"
#include "report/monitor_charts.h"

namespace tb {
namespace {

using nlohmann::json;

// Workloads in the order they first appear.
std::vector<std::string> workloads_of(const std::vector<RunRecord>& runs) {
  std::vector<std::string> out;
  for (const RunRecord& r : runs)
    if (std::find(out.begin(), out.end(), r.workload) == out.end()) out.push_back(r.workload);
  return out;
}

// Horizontal bars, one row of bars per workload, runs on the y axis in the order given.
json faceted_bars(const std::string& title, const std::vector<std::string>& workloads, json values,
                  json x, json color, json tooltip) {
  json y = {{"field", "run"},
            {"type", "nominal"},
            {"title", nullptr},
            {"sort", nullptr},
            {"axis", {{"labelLimit", 320}}}};
  json bars = {{"mark", {{"type", "bar"}, {"cornerRadiusEnd", 2}, {"height", {{"band", 0.72}}}}},
               {"encoding", {{"y", y}, {"x", x}, {"color", color}, {"tooltip", tooltip}}}};
  json spec = base_spec(title);
  spec["data"] = {{"values", std::move(values)}};
  spec["facet"] = {{"row",
                    {{"field", "workload"},
                     {"type", "nominal"},
                     {"title", nullptr},
                     {"sort", workloads},
                     {"header", workload_header()}}}};
  spec["spec"] = {{"width", 620}, {"height", {{"step", 24}}}, {"layer", json::array({bars})}};
  spec["resolve"] = {{"scale", {{"y", "independent"}, {"x", "independent"}}}};
  return spec;
}

// Training time split into data loading and compute, per run.
json time_chart(const std::vector<RunRecord>& runs) {
  json values = json::array();
  for (const RunRecord& r : runs) {
    if (r.status != "completed" || !r.j.contains("epochs")) continue;
    double data = 0, compute = 0;
    for (const auto& e : r.j["epochs"]) {
      data += e.value("data_seconds", 0.0);
      compute += e.value("compute_seconds", 0.0);
    }
    if (data + compute <= 0) continue;
    for (auto [phase, seconds] : {std::pair{"compute", compute}, std::pair{"data loading", data}})
      values.push_back({{"workload", r.workload},
                        {"run", r.label},
                        {"phase", phase},
                        {"seconds", seconds},
                        {"total", data + compute}});
  }
  if (values.empty()) return nullptr;
  json x = {{"field", "seconds"},
            {"type", "quantitative"},
            {"stack", "zero"},
            {"title", "training time (s)"}};
  json color = {
      {"field", "phase"},
      {"type", "nominal"},
      {"title", nullptr},
      {"scale", {{"domain", {"compute", "data loading"}}, {"range", {"#4c78a8", "#f2a65a"}}}},
      {"legend", {{"orient", "top"}}}};
  json tooltip = json::array({{{"field", "run"}},
                              {{"field", "phase"}},
                              {{"field", "seconds"}, {"format", ".3f"}},
                              {{"field", "total"}, {"format", ".3f"}, {"title", "total (s)"}}});
  return faceted_bars("Training time: compute and data loading (evaluation excluded)",
                      workloads_of(runs), values, x, color, tooltip);
}

json throughput_chart(const std::vector<RunRecord>& runs) {
  json values = json::array();
  std::vector<std::string> impls;  // only the implementations drawn get a legend entry
  for (const RunRecord& r : runs) {
    const double ips = number_at(r.j, {"final", "images_per_second"});
    if (r.status != "completed" || !(ips > 0)) continue;
    if (std::find(impls.begin(), impls.end(), r.impl) == impls.end()) impls.push_back(r.impl);
    values.push_back({{"workload", r.workload},
                      {"run", r.label},
                      {"impl", r.impl},
                      {"device", r.device},
                      {"images_per_second", ips}});
  }
  if (values.empty()) return nullptr;
  json x = {{"field", "images_per_second"},
            {"type", "quantitative"},
            {"title", "training throughput (images/s)"}};
  json color = {{"field", "impl"},
                {"type", "nominal"},
                {"title", "implementation"},
                {"scale", impl_color_scale(impls)},
                {"legend", {{"orient", "top"}}}};
  json tooltip =
      json::array({{{"field", "run"}},
                   {{"field", "device"}},
                   {{"field", "images_per_second"}, {"format", ",.0f"}, {"title", "images/s"}}});
  return faceted_bars("Training throughput", workloads_of(runs), values, x, color, tooltip);
}

// Loss and accuracy per epoch for every run of one workload, train solid, validation dashed.
json curves_chart(const std::vector<RunRecord>& runs, const std::string& workload) {
  json values = json::array();
  for (const RunRecord& r : runs) {
    if (r.workload != workload || !r.j.contains("epochs")) continue;
    const bool has_validation = number_at(r.j, {"data", "validation"}) != 0;
    for (const auto& e : r.j["epochs"]) {
      const int epoch = e.value("epoch", 0);
      values.push_back({{"run", r.label},
                        {"epoch", epoch},
                        {"split", "train"},
                        {"loss", e.value("train_loss", 0.0)},
                        {"accuracy", e.value("train_accuracy", 0.0)}});
      if (has_validation)
        values.push_back({{"run", r.label},
                          {"epoch", epoch},
                          {"split", "validation"},
                          {"loss", e.value("validation_loss", 0.0)},
                          {"accuracy", e.value("validation_accuracy", 0.0)}});
    }
  }
  if (values.empty()) return nullptr;
  // Lines carry the legends (colour: run, dash: split); points, drawn on top without a
  // legend, keep one-epoch runs visible.
  auto panel = [](const char* field, const char* title, const char* format) {
    json y = {{"field", field},
              {"type", "quantitative"},
              {"title", title},
              {"scale", {{"zero", false}}},
              {"axis", {{"format", format}}}};
    json x = {{"field", "epoch"},
              {"type", "quantitative"},
              {"title", "epoch"},
              {"axis", {{"tickMinStep", 1}, {"format", "d"}}}};
    json color = {{"field", "run"},
                  {"type", "nominal"},
                  {"title", "run"},
                  {"scale", {{"scheme", "tableau10"}}}};
    json line = {
        {"mark", {{"type", "line"}, {"strokeWidth", 2}}},
        {"encoding",
         {{"strokeDash",
           {{"field", "split"},
            {"type", "nominal"},
            {"title", nullptr},
            {"scale",
             {{"domain", {"train", "validation"}}, {"range", {json::array(), {5, 3}}}}}}}}}};
    json points = {{"mark", {{"type", "point"}, {"filled", true}, {"size", 36}}},
                   {"encoding",
                    {{"tooltip", json::array({{{"field", "run"}},
                                              {{"field", "split"}},
                                              {{"field", "epoch"}},
                                              {{"field", field}, {"format", format}}})}}}};
    return json{
        {"width", 380},
        {"height", 240},
        {"encoding", {{"x", x}, {"y", y}, {"color", color}, {"detail", {{"field", "split"}}}}},
        {"layer", {line, points}}};
  };
  json spec = base_spec(fmt::format("Loss and accuracy per epoch — {}", workload));
  spec["data"] = {{"values", values}};
  spec["hconcat"] = {panel("loss", "loss", ".3f"), panel("accuracy", "accuracy", ".1%")};
  spec["resolve"] = {{"scale", {{"color", "shared"}}}};
  return spec;
}

// Test-set confusion matrix of one run: colour is the share of each true class (recall per
// row), text the count.
json confusion_chart(const RunRecord& r) {
  const auto* matrix = r.j.contains("final") && r.j["final"].contains("confusion_matrix")
                           ? &r.j["final"]["confusion_matrix"]
                           : nullptr;
  if (!matrix || !matrix->is_array() || matrix->empty()) return nullptr;
  const size_t cells = matrix->size();
  size_t k = size_t(std::lround(std::sqrt(double(cells))));
  if (k * k != cells) return nullptr;
  std::vector<std::string> names;
  if (r.j.contains("class_names") && r.j["class_names"].size() == k)
    names = r.j["class_names"].get<std::vector<std::string>>();
  else
    for (size_t i = 0; i < k; ++i) names.push_back(std::to_string(i));
  json values = json::array();
  for (size_t t = 0; t < k; ++t) {
    double row = 0;
    for (size_t p = 0; p < k; ++p) row += (*matrix)[t * k + p].get<double>();
    for (size_t p = 0; p < k; ++p) {
      const double count = (*matrix)[t * k + p].get<double>();
      values.push_back({{"true", names[t]},
                        {"predicted", names[p]},
                        {"count", count},
                        {"share", row > 0 ? count / row : 0.0}});
    }
  }
  json axis_x = {{"field", "predicted"},
                 {"type", "ordinal"},
                 {"sort", names},
                 {"title", "predicted"},
                 {"axis", {{"labelAngle", -40}, {"labelLimit", 90}}}};
  json axis_y = {{"field", "true"},
                 {"type", "ordinal"},
                 {"sort", names},
                 {"title", "true"},
                 {"axis", {{"labelLimit", 90}}}};
  json heat = {{"mark", {{"type", "rect"}, {"stroke", "#ffffff"}, {"strokeWidth", 1}}},
               {"encoding",
                {{"color",
                  {{"field", "share"},
                   {"type", "quantitative"},
                   {"title", "share of row"},
                   {"scale", {{"domain", {0, 1}}, {"range", {"#f7fafc", "#1e4e8c"}}}},
                   {"legend", nullptr}}},
                 {"tooltip", json::array({{{"field", "true"}},
                                          {{"field", "predicted"}},
                                          {{"field", "count"}},
                                          {{"field", "share"}, {"format", ".1%"}}})}}}};
  json text = {{"mark", {{"type", "text"}, {"fontSize", k > 10 ? 8 : 10}}},
               {"transform", json::array({{{"filter", "datum.count > 0"}}})},
               {"encoding",
                {{"text", {{"field", "count"}, {"type", "quantitative"}}},
                 {"color",
                  {{"condition", {{"test", "datum.share > 0.5"}, {"value", "#ffffff"}}},
                   {"value", "#1a202c"}}}}}};
  const double accuracy = number_at(r.j, {"final", "test_accuracy"});
  json spec = base_spec(r.label);
  spec["title"]["subtitle"] =
      fmt::format("{} · test accuracy {}", r.workload,
                  std::isfinite(accuracy) ? fmt::format("{:.2f}%", 100 * accuracy) : "?");
  spec["data"] = {{"values", values}};
  spec["width"] = 250;
  spec["height"] = 250;
  spec["encoding"] = {{"x", axis_x}, {"y", axis_y}};
  spec["layer"] = {heat, text};
  return spec;
}

}  // namespace

std::vector<ChartSpec> build_charts(const std::vector<RunRecord>& runs) {
  std::vector<ChartSpec> charts;
  auto add = [&](const char* section, json spec) {
    if (spec.is_null()) return;
    charts.push_back({section, fmt::format("chart-{}", charts.size()), std::move(spec)});
  };
  add("speed", time_chart(runs));
  add("speed", throughput_chart(runs));
  for (const std::string& w : workloads_of(runs)) add("curves", curves_chart(runs, w));
  for (const RunRecord& r : runs)
    if (r.status == "completed") add("confusion", confusion_chart(r));
  for (json& spec : monitoring_charts(runs)) add("monitoring", std::move(spec));
  return charts;
}

}  // namespace tb
