// Reports from results records: reading and naming runs, baselines and speedups, the tables
// (HTML, Markdown), the chart specs, CSV export, and the report / export-csv subcommands.
#include <gtest/gtest.h>

#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "metrics/base64.h"
#include "report/chart_specs.h"
#include "report/csv_export.h"
#include "report/html_report.h"
#include "report/html_writer.h"
#include "report/markdown_report.h"
#include "report/report_tables.h"
#include "report/run_records.h"
#include "report_fixtures.h"
#include "test_util.h"

namespace tb {
namespace {

using testing::SyntheticRun;
using testing::TempDir;

std::string study_file(const TempDir& tmp) {
  const std::string path = tmp.str() + "/results.jsonl";
  testing::write_records(path, testing::synthetic_study());
  return path;
}

std::string error_of(const std::vector<std::string>& paths) {
  try {
    read_runs(paths);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

int column(const ReportTable& t, const std::string& header) {
  for (size_t c = 0; c < t.headers.size(); ++c)
    if (t.headers[c] == header) return int(c);
  return -1;
}

TEST(Base64, RoundTripsEveryLength) {
  for (size_t n = 0; n < 10; ++n) {
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i < n; ++i) bytes.push_back(uint8_t(250 - 37 * i));
    const std::string text = base64_encode(bytes.data(), bytes.size());
    EXPECT_EQ(text.size() % 4, 0u);
    EXPECT_EQ(base64_decode(text), bytes) << n;
  }
  const std::string hello = "hello";
  EXPECT_EQ(base64_encode(reinterpret_cast<const uint8_t*>(hello.data()), 5), "aGVsbG8=");
  EXPECT_FALSE(base64_decode("abc").has_value());
  EXPECT_FALSE(base64_decode("ab!=").has_value());
}

TEST(RunRecords, BadLinesNameTheFileAndLine) {
  TempDir tmp;
  const std::string path = tmp.str() + "/r.jsonl";
  const std::string good = testing::synthetic_record({}).dump();
  write_file_atomic(path, good + "\n\n{not json\n");
  EXPECT_NE(error_of({path}).find(path + ":3"), std::string::npos) << error_of({path});
  write_file_atomic(path, good + "\n{\"schema\": \"other\"}\n");
  EXPECT_NE(error_of({path}).find(path + ":2: not a trainbench results record"), std::string::npos);
  nlohmann::json newer = testing::synthetic_record({});
  newer["schema_version"] = 99;
  write_file_atomic(path, newer.dump() + "\n");
  EXPECT_NE(error_of({path}).find("schema_version 99"), std::string::npos);
  write_file_atomic(path, "\n");
  EXPECT_NE(error_of({path}).find("no results records"), std::string::npos);
  const nlohmann::json throughput = {{"schema", "trainbench.run"},
                                     {"schema_version", 1},
                                     {"kind", "throughput"},
                                     {"status", "ok"}};
  write_file_atomic(path, throughput.dump() + "\n");
  EXPECT_NE(error_of({path}).find("no training runs"), std::string::npos);
  write_file_atomic(path, throughput.dump() + "\n" + good + "\n");
  int other = 0;
  EXPECT_EQ(read_runs({path}, "", &other).size(), 1u);
  EXPECT_EQ(other, 1);
  EXPECT_NE(error_of({tmp.str() + "/missing.jsonl"}).find("missing.jsonl"), std::string::npos);
}

TEST(RunRecords, LabelsNameWhatVariesAndBaselinesArePerWorkload) {
  TempDir tmp;
  const std::vector<RunRecord> runs = read_runs({study_file(tmp)});
  ASSERT_EQ(runs.size(), 7u);
  EXPECT_EQ(runs[0].workload, "simple_cnn · mnist");
  EXPECT_EQ(runs[0].label, "cpu · 1 thread");
  EXPECT_EQ(runs[1].label, "cpu · 2 threads");
  EXPECT_EQ(runs[2].label, "cudnn · GPU");
  EXPECT_EQ(runs[2].device, "GPU");
  EXPECT_EQ(runs[6].label, "ref · 1 thread");
  EXPECT_EQ(runs[6].status, "failed");
  // The first completed run of each workload, unless one is marked or asked for.
  EXPECT_TRUE(runs[0].baseline);
  EXPECT_TRUE(runs[3].baseline);
  EXPECT_EQ(runs[4].baseline_of, 3);

  std::vector<RunRecord> chosen = load_run_records({tmp.str() + "/results.jsonl"});
  describe_runs(chosen, "cpu:2");
  EXPECT_TRUE(chosen[1].baseline);
  EXPECT_EQ(chosen[0].baseline_of, 1);
  chosen[2].j["baseline"] = true;
  describe_runs(chosen, "");
  EXPECT_TRUE(chosen[2].baseline);
  EXPECT_FALSE(chosen[0].baseline);
  EXPECT_THROW(describe_runs(chosen, "onednn"), InputError);
}

TEST(RunRecords, IdenticalConfigurationsGetNumberedLabels) {
  std::vector<RunRecord> runs(2);
  runs[0].j = runs[1].j = testing::synthetic_record({});
  runs[1].j["config"]["batch_size"] = 64;
  describe_runs(runs);
  EXPECT_EQ(runs[0].label, "cpu · 1 thread");
  EXPECT_EQ(runs[1].label, "cpu · 1 thread #2");
}

TEST(ReportTables, SpeedupIsThroughputOverTheBaseline) {
  TempDir tmp;
  const std::vector<RunRecord> runs = read_runs({study_file(tmp)});
  const ReportTable t = speedup_table(runs);
  ASSERT_EQ(t.rows.size(), 6u);  // completed runs only
  const int speedup = column(t, "Speedup"), delta = column(t, "Δ test acc");
  EXPECT_EQ(t.rows[0][speedup], "1.00×");
  EXPECT_EQ(t.rows[0][delta], "baseline");
  EXPECT_EQ(t.row_tags[0], "baseline");
  EXPECT_EQ(t.rows[1][speedup], "1.50×");  // 1200 / 800
  EXPECT_EQ(t.rows[1][delta], "+0.50 pp");
  EXPECT_EQ(t.rows[2][speedup], "50.00×");  // 40000 / 800
}

TEST(ReportTables, TablesLeaveOutColumnsNoRunHas) {
  TempDir tmp;
  std::vector<RunRecord> runs = read_runs({study_file(tmp)});
  ReportTable t = runs_table(runs);
  EXPECT_EQ(t.rows.size(), 7u);
  EXPECT_EQ(t.rows[0][size_t(column(t, "Data time"))], "10%");
  EXPECT_EQ(t.rows[0][size_t(column(t, "Train time"))], "7.50 s");
  EXPECT_EQ(column(t, "Time to target"), -1);
  EXPECT_EQ(t.row_tags[6], "failed");
  ReportTable e = efficiency_table(runs);
  EXPECT_EQ(e.rows.size(), 6u);  // completed runs
  EXPECT_EQ(e.rows[2][size_t(column(e, "GPU util"))], "90%");
  EXPECT_EQ(e.rows[2][size_t(column(e, "GPU power"))], "340 W");
  EXPECT_EQ(e.rows[2][size_t(column(e, "Energy/image"))], "106.7 mJ");  // 640 J / 6000 images
  EXPECT_EQ(e.rows[0][size_t(column(e, "Peak RSS"))], "190 MiB");
  EXPECT_EQ(e.rows[0][size_t(column(e, "GFLOP/s"))], "0.456");  // 570 kFLOP x 800 img/s
  EXPECT_EQ(column(e, "% of peak"), -1);
  std::vector<RunRecord> cpu_only(runs.begin(), runs.begin() + 2);
  e = efficiency_table(cpu_only);
  EXPECT_EQ(column(e, "GPU util"), -1);
  EXPECT_EQ(column(e, "Energy/image"), -1);
  const ReportTable problems = problems_table(runs);
  ASSERT_EQ(problems.rows.size(), 1u);
  EXPECT_NE(problems.rows[0][4].find("NaN"), std::string::npos);
}

TEST(ReportTables, StudyRunnerMetricsAreShown) {
  nlohmann::json j = testing::synthetic_record({});
  j["metrics"] = {
      {"device", "CPU x4"},
      {"threads_used", 4},
      {"achieved_tflops", 0.002},
      {"percent_of_peak", 12.34},
      {"target_accuracy", 0.9},
      {"time_to_target_seconds", 2.5},
      {"inference",
       {{"latency_batch1_seconds", 0.0004}, {"throughput_images_per_second", 25000.0}}}};
  j["study"] = {{"group", "g1"}, {"baseline", true}};
  std::vector<RunRecord> runs(2);
  runs[0].j = testing::synthetic_record({});
  runs[0].j["study"] = {{"group", "g1"}};
  runs[1].j = j;
  describe_runs(runs);
  EXPECT_EQ(runs[1].label, "cpu · 4 threads");
  EXPECT_TRUE(runs[1].baseline);  // marked by the study runner
  EXPECT_EQ(runs[0].baseline_of, 1);
  const ReportTable t = runs_table(runs);
  EXPECT_EQ(t.rows[1][size_t(column(t, "Time to target"))], "2.50 s to 90%");
  EXPECT_EQ(t.rows[0][size_t(column(t, "Time to target"))], "–");
  const ReportTable e = efficiency_table(runs);
  EXPECT_EQ(e.rows[1][size_t(column(e, "GFLOP/s"))], "2");
  EXPECT_EQ(e.rows[1][size_t(column(e, "% of peak"))], "12.3%");
  EXPECT_EQ(e.rows[1][size_t(column(e, "Latency (batch 1)"))], "0.40 ms");
  EXPECT_EQ(e.rows[1][size_t(column(e, "Inference images/s"))], "25,000");
  const std::string csv = results_csv(runs);
  const std::string header = csv.substr(0, csv.find("\r\n"));
  for (const char* name : {"percent_of_peak", "time_to_target_seconds", "achieved_tflops",
                           "inference_latency_batch1_seconds", "threads_used"})
    EXPECT_NE(header.find(name), std::string::npos) << name;
  EXPECT_NE(csv.find(",12.34,"), std::string::npos);
}

TEST(RunRecords, WorkloadNamesShowTheSettingsThatVary) {
  std::vector<RunRecord> runs(3);
  for (RunRecord& r : runs) r.j = testing::synthetic_record({});
  runs[1].j["config"]["batch_size"] = 128;
  runs[2].j["status"] = "skipped";
  runs[2].j["error"] = "--impl cuda needs a GPU";
  describe_runs(runs);
  EXPECT_EQ(runs[0].workload, "simple_cnn · mnist · bs 64");
  EXPECT_EQ(runs[1].workload, "simple_cnn · mnist · bs 128");
  EXPECT_TRUE(runs[1].baseline);  // a group of its own
  EXPECT_EQ(shared_settings(runs), "fp32, 3 ep, sgd, lr 0.05");
  const ReportTable p = problems_table(runs);
  ASSERT_EQ(p.rows.size(), 1u);
  EXPECT_EQ(p.row_tags[0], "skipped");
}

TEST(ReportTables, EnvironmentHighlightsIncludeTheGpuSeenByNvml) {
  TempDir tmp;
  const std::vector<RunRecord> runs = read_runs({study_file(tmp)});
  const std::vector<EnvironmentGroup> groups = environment_groups(runs);
  ASSERT_EQ(groups.size(), 1u);
  std::map<std::string, std::string> h;
  for (const auto& [k, v] : environment_highlights(groups[0], runs)) h[k] = v;
  EXPECT_EQ(h["CPU"], "Test CPU @ 3.0GHz");
  EXPECT_EQ(h["GPU"], "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(h["Driver"], "580.00");
  EXPECT_EQ(h["trainbench"], "0.1.0 (abc123)");
  bool found = false;
  for (const auto& [k, v] : environment_flat(groups[0].environment))
    found = found || (k == "libraries.fmt" && v == "9.1.0");
  EXPECT_TRUE(found);
}

TEST(ChartSpecs, OneChartPerThingToDraw) {
  TempDir tmp;
  const std::vector<RunRecord> runs = read_runs({study_file(tmp)});
  const std::vector<ChartSpec> charts = build_charts(runs);
  std::map<std::string, int> per_section;
  for (const ChartSpec& c : charts) ++per_section[c.section];
  EXPECT_EQ(per_section["speed"], 2);       // time by phase, throughput
  EXPECT_EQ(per_section["curves"], 2);      // one per workload
  EXPECT_EQ(per_section["confusion"], 6);   // one per completed run
  EXPECT_EQ(per_section["monitoring"], 6);  // RSS, CPU, GPU util, memory, power, clock
  for (size_t i = 0; i < charts.size(); ++i) {
    EXPECT_EQ(charts[i].id, "chart-" + std::to_string(i));
    EXPECT_TRUE(charts[i].spec.contains("$schema"));
  }
  // Without GPU series there are no GPU charts; without series no monitoring at all.
  std::vector<RunRecord> cpu(runs.begin(), runs.begin() + 2);
  per_section.clear();
  for (const ChartSpec& c : build_charts(cpu)) ++per_section[c.section];
  EXPECT_EQ(per_section["monitoring"], 2);
  for (RunRecord& r : cpu) r.j.erase("timeseries");
  per_section.clear();
  for (const ChartSpec& c : build_charts(cpu)) ++per_section[c.section];
  EXPECT_EQ(per_section.count("monitoring"), 0u);
}

TEST(HtmlReport, IsOneSelfContainedPage) {
  TempDir tmp;
  std::vector<RunRecord> runs = read_runs({study_file(tmp)});
  runs[0].label = "<b>tricky</b> & co";
  const HtmlReport report = render_html_report(runs, {"results.jsonl"});
  const std::string& h = report.html;
  EXPECT_EQ(report.sample_grids, 6);
  EXPECT_NE(h.find("&lt;b&gt;tricky&lt;/b&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(h.find("<b>tricky"), std::string::npos);
  // Nothing fetched from elsewhere.
  EXPECT_EQ(h.find("src=\"http"), std::string::npos);
  EXPECT_EQ(h.find("<link"), std::string::npos);
  EXPECT_NE(h.find("id=\"environment\""), std::string::npos);
  EXPECT_NE(h.find("id=\"speedup\""), std::string::npos);
  EXPECT_NE(h.find("id=\"problems\""), std::string::npos);
  if (report.charts_embedded) {
    EXPECT_EQ(report.charts, 16);
    EXPECT_NE(h.find(fmt::format("data-charts-expected=\"{}\"", report.charts)), std::string::npos);
    for (int i = 0; i < report.charts; ++i)
      EXPECT_NE(h.find(fmt::format("id=\"chart-{}\"", i)), std::string::npos) << i;
    EXPECT_NE(h.find("vega-lite/v6.json"), std::string::npos);
    EXPECT_GT(h.size(), 700u << 10);  // the chart libraries are inlined
  } else {
    EXPECT_EQ(report.charts, 0);
    EXPECT_NE(h.find("Charts are not available"), std::string::npos);
  }
}

TEST(HtmlReport, WithoutChartsHasTablesAndImagesOnly) {
  TempDir tmp;
  const std::vector<RunRecord> runs = read_runs({study_file(tmp)});
  const HtmlReport report = render_html_report(runs, {"results.jsonl"}, false);
  EXPECT_FALSE(report.charts_embedded);
  EXPECT_EQ(report.charts, 0);
  EXPECT_EQ(report.sample_grids, 6);
  EXPECT_NE(report.html.find("--no-charts"), std::string::npos);
  EXPECT_EQ(report.html.find("vega-lite/v6.json"), std::string::npos);  // no chart specs
  EXPECT_EQ(report.html.find("id=\"chart-0\""), std::string::npos);
  EXPECT_NE(report.html.find("id=\"speedup\""), std::string::npos);
  EXPECT_LT(report.html.size(), 300u << 10);
}

TEST(HtmlWriter, ScriptDataCannotCloseItsElement) {
  const nlohmann::json j = {{"text", "</script><script>alert(1)</script>"}};
  const std::string safe = script_safe_json(j);
  EXPECT_EQ(safe.find('<'), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(safe), j);
  EXPECT_EQ(script_safe_text("var s = '</SCRIPT>';"), "var s = '<\\/SCRIPT>';");
  EXPECT_EQ(html_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

TEST(MarkdownReport, HasTheTables) {
  TempDir tmp;
  const std::vector<RunRecord> runs = read_runs({study_file(tmp)});
  const std::string md = render_markdown_report(runs, {"results.jsonl"});
  EXPECT_NE(md.find("## Runs"), std::string::npos);
  EXPECT_NE(md.find("## Speedup against the baseline"), std::string::npos);
  EXPECT_NE(md.find("| 50.00× |"), std::string::npos);
  EXPECT_NE(md.find("| ---: |"), std::string::npos);
  EXPECT_NE(md.find("**CPU**: Test CPU @ 3.0GHz"), std::string::npos);
  const ReportTable t{{"a|b"}, {false}, {{"x|y"}}, {""}};
  EXPECT_EQ(markdown_table(t), "| a\\|b |\n| --- |\n| x\\|y |\n");
}

TEST(CsvExport, OneRowPerRecordWithEveryFinalField) {
  TempDir tmp;
  std::vector<RunRecord> runs = read_runs({study_file(tmp)});
  runs[0].j["final"]["time_to_target_seconds"] = 1.5;  // a field only some records have
  const std::string csv = results_csv(runs);
  std::vector<std::string> lines;
  for (size_t at = 0, next; (next = csv.find("\r\n", at)) != std::string::npos; at = next + 2)
    lines.push_back(csv.substr(at, next - at));
  ASSERT_EQ(lines.size(), 8u);
  for (const char* column :
       {"model", "impl", "threads", "images_per_second", "test_accuracy", "time_to_target_seconds",
        "peak_rss_bytes", "energy_per_image_joules", "achieved_gflops", "error"})
    EXPECT_NE(lines[0].find(column), std::string::npos) << column;
  EXPECT_NE(lines[1].find(",1.5,"), std::string::npos);
  // The failed run's error has a comma and is quoted.
  EXPECT_NE(lines[7].find("\"the loss became NaN at step 3 (epoch 1, batch 3); training stopped\""),
            std::string::npos);
  EXPECT_EQ(csv_field("a\"b"), "\"a\"\"b\"");
}

using CliRun = testing::CommandResult;

CliRun trainbench(const std::string& args) {
  return testing::run_command(std::string(TB_BINARY) + " " + args + " 2>&1");
}

TEST(ReportCli, WritesHtmlMarkdownAndCsv) {
  TempDir tmp;
  const std::string results = study_file(tmp);
  CliRun r = trainbench("report " + results + " -o " + tmp.str() + "/out.html");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(read_file(tmp.str() + "/out.html").find("<!doctype html>"), std::string::npos);
  r = trainbench("report " + results + " --format md");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("## Speedup against the baseline"), std::string::npos);
  r = trainbench("export-csv " + results + " -o " + tmp.str() + "/out.csv");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(read_file(tmp.str() + "/out.csv").find("images_per_second"), std::string::npos);
  r = trainbench("report " + tmp.str() + "/missing.jsonl");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("trainbench: error: cannot read results file"), std::string::npos);
  r = trainbench("report " + results + " --format pdf");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("--format"), std::string::npos);
}

}  // namespace
}  // namespace tb
