// `trainbench report`: results files -> one self-contained HTML page (or Markdown tables);
// `trainbench export-csv`: results files -> one CSV row per run.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "report/csv_export.h"
#include "report/html_report.h"
#include "report/markdown_report.h"
#include "report/run_records.h"

namespace tb {
namespace {

struct ReportOptions {
  std::vector<std::string> results;
  std::string output;
  std::string format = "html";
  std::string baseline;
  bool no_charts = false;
};

void run_report(const ReportOptions& o) {
  TB_INPUT_CHECK(o.format == "html" || o.format == "md", "--format must be html or md, got '{}'",
                 o.format);
  int other_kinds = 0;
  const std::vector<RunRecord> runs = read_runs(o.results, o.baseline, &other_kinds);
  if (other_kinds > 0)
    fmt::print(stderr, "report: left out {} record(s) that are not training runs\n", other_kinds);
  if (o.format == "md") {
    const std::string text = render_markdown_report(runs, o.results);
    if (o.output.empty() || o.output == "-") {
      fmt::print("{}", text);
    } else {
      write_file_atomic(o.output, text);
      fmt::print("report: {} run(s) -> {}\n", runs.size(), o.output);
    }
    return;
  }
  const std::string path = o.output.empty() ? "report.html" : o.output;
  const HtmlReport report = render_html_report(runs, o.results, !o.no_charts);
  write_file_atomic(path, report.html);
  fmt::print("report: {} run(s), {} chart(s), {} image grid(s) -> {} ({:.1f} MiB)\n", runs.size(),
             report.charts, report.sample_grids, path, report.html.size() / 1048576.0);
  if (!report.charts_embedded && !o.no_charts)
    fmt::print(stderr,
               "report: charts are unavailable (this trainbench was built without npm): the page "
               "has tables only\n");
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "report",
      "Turn results files into one self-contained HTML report (charts, tables, "
      "curves, confusion matrices, sample predictions, environment) or Markdown tables.");
  auto o = std::make_shared<ReportOptions>();
  cmd->add_option("results", o->results, "Results files (JSON lines written by train and bench)")
      ->required();
  cmd->add_option("-o,--output", o->output,
                  "Output file (default: report.html; with --format md, standard output)");
  cmd->add_option("--format", o->format, "html (one file, no network needed to view) or md")
      ->capture_default_str();
  cmd->add_option("--baseline", o->baseline,
                  "Speedup reference per workload, as IMPL or IMPL:THREADS (default: the run "
                  "marked baseline, else the first completed run of each workload)");
  cmd->add_flag("--no-charts", o->no_charts,
                "Leave the chart libraries out: a much smaller page with tables and images only");
  cmd->callback([o]() { run_report(*o); });
}

void add_export_csv_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export-csv",
                                 "Write the key metrics of every run in results files as CSV.");
  auto results = std::make_shared<std::vector<std::string>>();
  auto output = std::make_shared<std::string>();
  cmd->add_option("results", *results, "Results files (JSON lines)")->required();
  cmd->add_option("-o,--output", *output, "CSV file to write (default: standard output)");
  cmd->callback([results, output]() {
    int other_kinds = 0;
    const std::vector<RunRecord> runs = read_runs(*results, "", &other_kinds);
    if (other_kinds > 0)
      fmt::print(stderr, "export-csv: left out {} record(s) that are not training runs\n",
                 other_kinds);
    const std::string csv = results_csv(runs);
    if (output->empty() || *output == "-") {
      fmt::print("{}", csv);
      return;
    }
    write_file_atomic(*output, csv);
    fmt::print("export-csv: {} run(s) -> {}\n", runs.size(), *output);
  });
}

}  // namespace tb
