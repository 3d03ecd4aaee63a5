// `trainbench bench [STUDY]`: runs a comparison study (the default one with no argument) and
// prints the comparison table.
#include <fmt/format.h>

#include <iostream>

#include "bench/study_runner.h"
#include "cli/commands.h"
#include "cli/option_text.h"
#include "core/atomic_file.h"
#include "report/html_report.h"
#include "report/run_records.h"

namespace tb {
namespace {

struct BenchOptions {
  std::string study_file;
  StudyOptions run;
  std::string report = "report.html";
  bool no_progress = false;
  bool list_only = false;
  // The matrix from flags (used when no study file is given and any is set).
  std::vector<std::string> models, datasets, impls, precisions, optimizers;
  std::vector<int> threads, batch_sizes, epochs;
  std::vector<double> lrs;
  int64_t limit = -1;
  double target_accuracy = 0;
};

template <class T>
void add_axis(Study& s, const std::string& name, const std::vector<T>& values) {
  if (values.empty()) return;
  nlohmann::json list = nlohmann::json::array();
  for (const T& v : values) list.push_back(v);
  s.axes.emplace_back(name, list);
}

Study study_from(const BenchOptions& o) {
  if (!o.study_file.empty()) return load_study(o.study_file);
  const bool any_flag = !o.models.empty() || !o.datasets.empty() || !o.impls.empty() ||
                        !o.precisions.empty() || !o.optimizers.empty() || !o.threads.empty() ||
                        !o.batch_sizes.empty() || !o.epochs.empty() || !o.lrs.empty();
  Study s = default_study();
  if (any_flag) {
    // Flags replace the default study's axes they name and keep the others.
    Study f;
    f.name = "flags";
    f.source = "command-line flags";
    f.defaults = s.defaults;
    f.baseline = s.baseline;
    f.rules = s.rules;
    add_axis(f, "dataset", o.datasets.empty() ? std::vector<std::string>{"mnist"} : o.datasets);
    add_axis(f, "model", o.models.empty() ? std::vector<std::string>{"simple_cnn"} : o.models);
    add_axis(f, "impl", o.impls.empty() ? std::vector<std::string>{"ref"} : o.impls);
    add_axis(f, "threads", o.threads);
    add_axis(f, "precision", o.precisions);
    add_axis(f, "batch_size", o.batch_sizes);
    add_axis(f, "optimizer", o.optimizers);
    add_axis(f, "lr", o.lrs);
    add_axis(f, "epochs", o.epochs);
    s = f;
  }
  if (o.limit >= 0) s.defaults["limit"] = o.limit;
  if (o.target_accuracy > 0) s.target_accuracy = o.target_accuracy;
  return s;
}

// The HTML report of this study's rows (not of everything the results file has collected).
void write_study_report(const StudyOutcome& outcome, const std::string& path,
                        const std::string& results) {
  std::vector<RunRecord> runs;
  for (const auto& r : outcome.rows) {
    if (r.record.is_null() || r.status == "skipped") continue;
    RunRecord rec;
    rec.j = r.record;
    rec.file = results;
    runs.push_back(std::move(rec));
  }
  if (runs.empty()) return;
  describe_runs(runs);
  const HtmlReport report = render_html_report(runs, {results});
  write_file_atomic(path, report.html);
  std::cout << fmt::format("report: {} ({} charts{})\n", path, report.charts,
                           report.charts_embedded ? "" : "; chart libraries missing from this build: tables only");
}

void run_bench(const BenchOptions& o) {
  Study study = study_from(o);
  StudyOptions run = o.run;
  run.progress = !o.no_progress;
  if (o.list_only) {
    for (const StudyRow& r : expand_study(study)) fmt::print("{}\n", r.settings.dump());
    return;
  }
  const StudyOutcome outcome = run_study(study, run, std::cout);
  std::cout << "\n" << comparison_table(study, outcome);
  std::cout << fmt::format("\nresults: {} (one JSON object per run; docs/results-schema.md)\n",
                           run.results);
  if (!o.report.empty()) write_study_report(outcome, o.report, run.results);
  if (outcome.interrupted) {
    std::cout << "interrupted: every finished row is kept in " << run.results << "\n";
    throw ExitRequest{kExitInterrupted};
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench",
      "Run a comparison study: models x datasets x devices/threads x implementations x precision "
      "x batch size x optimizer/lr x epochs, from a study file (see studies/) or from flags. With "
      "neither, runs the default study (the README's main job).");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("study", o->study_file, "Study file (JSON; examples in studies/)");
  cmd->add_option("--results", o->run.results, "JSON-lines file the runs are appended to")
      ->capture_default_str();
  cmd->add_option("--data-dir", o->run.data_dir, "Data folder for every row (default: $TRAINBENCH_DATA, else ./data)");
  cmd->add_option("--report", o->report, "Write the study's HTML report here (\"\" = none)")
      ->capture_default_str();
  cmd->add_flag("--no-progress", o->no_progress, "No progress bar");
  cmd->add_flag("--list", o->list_only, "Print the rows the study expands to, and stop");
  cmd->add_option("--model", o->models, "Models axis")->delimiter(',');
  cmd->add_option("--dataset", o->datasets, "Datasets axis")->delimiter(',');
  cmd->add_option("--impl", o->impls, "Implementations axis")->delimiter(',');
  cmd->add_option("--threads", o->threads, "CPU threads axis (0 = all cores)")->delimiter(',');
  cmd->add_option("--precision", o->precisions, "Precision axis")->delimiter(',');
  cmd->add_option("--batch-size", o->batch_sizes, "Batch sizes axis")->delimiter(',');
  cmd->add_option("--optimizer", o->optimizers, "Optimizers axis")->delimiter(',');
  cmd->add_option("--lr", o->lrs, "Learning rates axis")->delimiter(',');
  cmd->add_option("--epochs", o->epochs, "Epochs axis")->delimiter(',');
  cmd->add_option("--limit", o->limit, "Training images per run (overrides the study's)");
  cmd->add_option("--target-accuracy", o->target_accuracy,
                  "Record the training time until validation accuracy reaches this fraction");
  cmd->callback([o]() { run_bench(*o); });
}

}  // namespace tb
