#include "report/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "core/build_info.h"
#include "report/chart_specs.h"
#include "report/html_writer.h"
#include "report/report_tables.h"

namespace tb {
namespace {

using nlohmann::json;

struct Section {
  const char* id;
  const char* title;
  const char* intro;
};

constexpr Section kSections[] = {
    {"runs", "Runs",
     "Every run in the results, in the order recorded. Times cover training "
     "steps (data loading and compute); evaluation is excluded."},
    {"efficiency", "Resources and efficiency",
     "Completed runs. GFLOP/s counts training FLOPs (forward and backward, a multiply-add is 2) "
     "over training time; utilisation and memory were sampled while the run executed; GPU "
     "memory is the whole device's; energy per image is the GPUs' energy over the run divided "
     "by the training images."},
    {"speed", "Time and throughput", "Per workload (model and dataset), one bar per run."},
    {"speedup", "Speedup against the baseline",
     "Throughput of each completed run divided by that of the baseline run of its group "
     "(highlighted; runs are compared with the same model, dataset and training settings), and "
     "the change in test accuracy in percentage points."},
    {"curves", "Training and validation curves",
     "Mean loss and accuracy per epoch; training solid, validation dashed."},
    {"confusion", "Confusion matrices",
     "Test set. Rows are the true class, columns the prediction; colour is the share of the "
     "row, numbers are counts."},
    {"samples", "Test images",
     "The first test images of each run with the true label and the "
     "prediction; mistakes in red."},
    {"monitoring", "Memory and utilisation over time",
     "Sampled in the background while each run executed."},
    {"problems", "Failed, skipped and interrupted runs", ""},
    {"environment", "Environment", "The machine and build every result came from."},
};

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

// The runs' test images, as the page script expects them (id, caption, shape, items).
json sample_grids(const std::vector<RunRecord>& runs) {
  json grids = json::array();
  for (const RunRecord& r : runs) {
    if (!r.j.contains("samples") || !r.j["samples"].is_object()) continue;
    const json& s = r.j["samples"];
    if (!s.contains("items") || s["items"].empty() || !s.contains("shape")) continue;
    int wrong = 0;
    for (const json& item : s["items"])
      wrong += item.value("label", 0) != item.value("predicted", 0);
    grids.push_back({{"id", fmt::format("samples-{}", grids.size())},
                     {"run", r.label},
                     {"workload", r.workload},
                     {"wrong", wrong},
                     {"shape", s["shape"]},
                     {"classes", r.j.value("class_names", json::array())},
                     {"items", s["items"]}});
  }
  return grids;
}

std::string header_html(const std::vector<RunRecord>& runs, const std::vector<std::string>& sources,
                        const std::vector<EnvironmentGroup>& groups) {
  std::map<std::string, int> by_status;
  std::vector<std::string> workloads;
  for (const RunRecord& r : runs) {
    ++by_status[r.status];
    if (std::find(workloads.begin(), workloads.end(), r.workload) == workloads.end())
      workloads.push_back(r.workload);
  }
  std::string counts = fmt::format("{} run{}", runs.size(), runs.size() == 1 ? "" : "s");
  for (const auto& [status, n] : by_status) counts += fmt::format(" · {} {}", n, status);
  counts += fmt::format(" · {} workload{}", workloads.size(), workloads.size() == 1 ? "" : "s");
  if (groups.size() > 1) counts += fmt::format(" · {} machines or builds", groups.size());
  std::string files;
  for (const std::string& s : sources) files += (files.empty() ? "" : ", ") + s;
  std::string out = "<header class=\"tb-header\">\n<div class=\"tb-heading\">\n";
  out += "<p class=\"tb-kicker\">trainbench report</p>\n";
  // The study's name when the runs came from `trainbench bench`, else what was trained.
  std::vector<std::string> studies, descriptions;
  for (const RunRecord& r : runs) {
    const std::string name = string_at(r.j, {"study", "name"});
    const std::string about = string_at(r.j, {"study", "description"});
    if (!name.empty() && std::find(studies.begin(), studies.end(), name) == studies.end())
      studies.push_back(name);
    if (!about.empty() &&
        std::find(descriptions.begin(), descriptions.end(), about) == descriptions.end())
      descriptions.push_back(about);
  }
  std::string title;
  if (!studies.empty())
    title = fmt::format("{}", fmt::join(studies.begin(), studies.end(), ", "));
  else if (workloads.size() <= 3)
    title = fmt::format("{}", fmt::join(workloads.begin(), workloads.end(), ", "));
  else
    title = fmt::format("{} workloads", workloads.size());
  out += fmt::format("<h1>{}</h1>\n", html_escape(title));
  for (const std::string& about : descriptions)
    out += fmt::format("<p class=\"tb-about\">{}</p>\n", html_escape(about));
  out += fmt::format("<p class=\"tb-meta\">{}<br>from {} · generated {}</p>\n</div>\n",
                     html_escape(counts), html_escape(files), utc_now());
  if (!groups.empty())
    out += definition_list_html(environment_highlights(groups.front(), runs), "tb-env");
  out += "</header>\n";
  return out;
}

std::string environment_html(const std::vector<RunRecord>& runs,
                             const std::vector<EnvironmentGroup>& groups) {
  std::string out;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::string members;
    for (int i : groups[g].runs) members += (members.empty() ? "#" : ", #") + std::to_string(i + 1);
    if (groups.size() > 1)
      out += fmt::format("<h3>Environment {} <span class=\"tb-muted\">(runs {})</span></h3>\n",
                         g + 1, html_escape(members));
    out += definition_list_html(environment_highlights(groups[g], runs), "tb-env tb-env-full");
    out += "<details><summary>Every recorded field</summary>\n";
    out += definition_list_html(environment_flat(groups[g].environment), "tb-kv");
    out += "</details>\n";
  }
  return out;
}

std::string section_open(const Section& s) {
  std::string out = fmt::format("<section id=\"{}\">\n<h2>{}</h2>\n", s.id, s.title);
  if (*s.intro) out += fmt::format("<p class=\"tb-intro\">{}</p>\n", s.intro);
  return out;
}

std::string charts_html(const std::vector<ChartSpec>& charts, const std::string& section) {
  std::string out = fmt::format("<div class=\"tb-charts tb-charts-{}\">\n", section);
  for (const ChartSpec& c : charts)
    if (c.section == section)
      out += fmt::format("<figure class=\"tb-chart\" id=\"{}\"></figure>\n", c.id);
  return out + "</div>\n";
}

std::string samples_html(const json& grids) {
  std::string out = "<div class=\"tb-sample-runs\">\n";
  for (size_t i = 0; i < grids.size(); ++i) {
    const json& g = grids[i];
    const size_t n = g["items"].size();
    out += fmt::format(
        "<details class=\"tb-sample-run\"{}><summary><strong>{}</strong> <span class=\"tb-muted\">"
        "{} · {} of {} wrong</span></summary>\n<div class=\"tb-sample-grid\" id=\"{}\"></div>\n"
        "</details>\n",
        i < 4 ? " open" : "", html_escape(g["run"].get<std::string>()),
        html_escape(g["workload"].get<std::string>()), g["wrong"].get<int>(), n,
        g["id"].get<std::string>());
  }
  return out + "</div>\n";
}

std::string footer_html(bool charts) {
  std::string libraries = "No charts in this page; tables and images only.";
  if (charts) {
    const json v = json::parse(report_asset("chart-libraries.json"));
    libraries = fmt::format(
        "Charts drawn with Vega {}, Vega-Lite {} and vega-embed {} (BSD-3-Clause, "
        "University of Washington Interactive Data Lab), inlined in this file.",
        v.value("vega", "?"), v.value("vega-lite", "?"), v.value("vega-embed", "?"));
  }
  return fmt::format(
      "<footer class=\"tb-footer\">Made by trainbench {} ({}). {} This page needs "
      "no network.</footer>\n",
      TB_VERSION, build_commit(), libraries);
}

}  // namespace

bool report_charts_available() {
  return !report_asset("vega.min.js").empty() && !report_asset("vega-lite.min.js").empty() &&
         !report_asset("vega-embed.min.js").empty();
}

HtmlReport render_html_report(const std::vector<RunRecord>& runs,
                              const std::vector<std::string>& sources, bool with_charts) {
  HtmlReport report;
  report.charts_embedded = with_charts && report_charts_available();
  const std::vector<ChartSpec> charts =
      report.charts_embedded ? build_charts(runs) : std::vector<ChartSpec>{};
  report.charts = int(charts.size());
  const json grids = sample_grids(runs);
  report.sample_grids = int(grids.size());
  const std::vector<EnvironmentGroup> groups = environment_groups(runs);
  const ReportTable problems = problems_table(runs);

  auto has_charts = [&](const std::string& section) {
    for (const ChartSpec& c : charts)
      if (c.section == section) return true;
    return false;
  };
  const ReportTable efficiency = efficiency_table(runs);
  const std::string shared = shared_settings(runs);
  std::string body;
  std::string nav = "<nav class=\"tb-nav\">";
  for (const Section& s : kSections) {
    const std::string id = s.id;
    std::string content;
    if (id == "runs") {
      if (!shared.empty())
        content = fmt::format("<p class=\"tb-intro\">Every run: {}.</p>\n", html_escape(shared));
      content += table_html(runs_table(runs));
    } else if (id == "efficiency" && efficiency.headers.size() > 3)
      content = table_html(efficiency);
    else if (id == "speedup")
      content = table_html(speedup_table(runs));
    else if (id == "samples" && !grids.empty())
      content = samples_html(grids);
    else if (id == "problems" && !problems.rows.empty())
      content = table_html(problems);
    else if (id == "environment")
      content = environment_html(runs, groups);
    else if (has_charts(id))
      content = charts_html(charts, id);
    else if (!report.charts_embedded && id == "speed")
      content = with_charts ? "<p class=\"tb-note\">Charts are not available: this trainbench was "
                              "built without npm, so the chart libraries are not compiled in. The "
                              "tables carry the numbers.</p>\n"
                            : "<p class=\"tb-note\">This report was made with --no-charts. The "
                              "tables carry the numbers.</p>\n";
    if (content.empty()) continue;
    body += section_open(s) + content + "</section>\n";
    nav += fmt::format("<a href=\"#{}\">{}</a>", s.id, s.title);
  }
  nav += "</nav>\n";

  json specs = json::array();
  for (const ChartSpec& c : charts) specs.push_back({{"id", c.id}, {"spec", c.spec}});

  std::string& h = report.html;
  h += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<meta name=\"generator\" content=\"trainbench " TB_VERSION "\">\n";
  h += "<title>trainbench report</title>\n<style>\n";
  h += report_asset("page.css");
  h += "</style>\n</head>\n";
  h += fmt::format("<body data-charts-expected=\"{}\" data-samples-expected=\"{}\">\n",
                   report.charts, report.sample_grids);
  h += header_html(runs, sources, groups);
  h += nav;
  h += "<main>\n" + body + "</main>\n";
  h += footer_html(report.charts_embedded);
  h +=
      "<aside id=\"tb-errors\" hidden><h2>Problems while drawing this page</h2><ul></ul></aside>\n";
  if (report.charts_embedded && report.charts > 0)
    for (const char* lib : {"vega.min.js", "vega-lite.min.js", "vega-embed.min.js"})
      h += "<script>" + script_safe_text(report_asset(lib)) + "</script>\n";
  h += "<script type=\"application/json\" id=\"tb-chart-specs\">" + script_safe_json(specs) +
       "</script>\n";
  h += "<script type=\"application/json\" id=\"tb-sample-data\">" + script_safe_json(grids) +
       "</script>\n";
  h += "<script>\n" + script_safe_text(report_asset("page.js")) + "</script>\n";
  if (report.charts_embedded && report.charts > 0)
    h += "<!--\nLicences of the inlined chart libraries:\n\n" +
         std::string(report_asset("chart-licenses.txt")) + "-->\n";
  h += "</body>\n</html>\n";
  return report;
}

}  // namespace tb
