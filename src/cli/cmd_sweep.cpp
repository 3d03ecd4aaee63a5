// `trainbench sweep`: a hyperparameter grid (datasets x models x batch sizes x optimizers x
// learning rates x epochs) run as a study, printed as one table:
// Dataset | Model | BS | Optimizer | LR | Epochs | Test acc | Time.
#include <fmt/format.h>

#include <iostream>

#include "bench/study_runner.h"
#include "cli/commands.h"
#include "ops/backend.h"

namespace tb {
namespace {

struct SweepOptions {
  std::vector<std::string> datasets{"mnist"}, models{"simple_cnn"}, optimizers{"sgd", "adam"};
  std::vector<int> batch_sizes{32}, epochs{1};
  std::vector<double> lrs{0.001};
  std::string impl = "ref";
  int threads = 0;
  int64_t limit = 0;
  std::string results = "sweep.jsonl";
  std::string data_dir;
  bool no_progress = false;
};

template <class T>
nlohmann::json list(const std::vector<T>& v) {
  nlohmann::json j = nlohmann::json::array();
  for (const T& x : v) j.push_back(x);
  return j;
}

std::string sweep_table(const StudyOutcome& outcome) {
  std::string out = "| Dataset | Model | BS | Optimizer | LR | Epochs | Test acc | Time |\n"
                    "|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : outcome.rows) {
    const TrainConfig& c = r.row.config;
    const bool ok = r.status == "completed";
    out += fmt::format("| {} | {} | {} | {} | {:g} | {} | {} | {} |\n", c.dataset, c.model,
                       c.batch_size, c.optimizer.kind, effective_lr(c), c.epochs,
                       ok ? fmt::format("{:.2f}%", 100.0 * r.record["final"].value("test_accuracy", 0.0))
                          : r.status,
                       ok ? fmt::format("{:.1f} s", r.record["final"].value("train_seconds", 0.0))
                          : "-");
  }
  return out;
}

void run_sweep(const SweepOptions& o) {
  Study s;
  s.name = "sweep";
  s.source = "trainbench sweep flags";
  s.defaults = {{"impl", o.impl}, {"threads", o.threads}, {"limit", o.limit}};
  s.axes = {{"dataset", list(o.datasets)},      {"model", list(o.models)},
            {"batch_size", list(o.batch_sizes)}, {"optimizer", list(o.optimizers)},
            {"lr", list(o.lrs)},                 {"epochs", list(o.epochs)}};
  StudyOptions run;
  run.results = o.results;
  run.data_dir = o.data_dir;
  run.progress = !o.no_progress;
  run.measure_peak = false;
  run.measure_inference = false;  // a sweep compares accuracy and time, not inference speed
  const StudyOutcome outcome = run_study(s, run, std::cout);
  std::cout << "\n" << sweep_table(outcome);
  if (o.limit) std::cout << fmt::format("(each run trained on {} images: --limit)\n", o.limit);
  if (outcome.interrupted) throw ExitRequest{kExitInterrupted};
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep", "Run a hyperparameter grid and print Dataset | Model | BS | "
                                          "Optimizer | LR | Epochs | Test acc | Time.");
  auto o = std::make_shared<SweepOptions>();
  cmd->add_option("--dataset", o->datasets, "Datasets")->delimiter(',')->capture_default_str();
  cmd->add_option("--model", o->models, "Models")->delimiter(',')->capture_default_str();
  cmd->add_option("--batch-size", o->batch_sizes, "Batch sizes")->delimiter(',')->capture_default_str();
  cmd->add_option("--optimizer", o->optimizers, "Optimizers (sgd, adam, adamw)")->delimiter(',')->capture_default_str();
  cmd->add_option("--lr", o->lrs, "Learning rates")->delimiter(',')->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "Epoch counts")->delimiter(',')->capture_default_str();
  cmd->add_option("--impl", o->impl, "Implementation for every run")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--limit", o->limit, "Training images per run (0 = all)")->capture_default_str();
  cmd->add_option("--results", o->results, "JSON-lines file the runs are appended to")->capture_default_str();
  cmd->add_option("--data-dir", o->data_dir, "Data folder (default: $TRAINBENCH_DATA, else ./data)");
  cmd->add_flag("--no-progress", o->no_progress, "No progress bar");
  cmd->callback([o]() { run_sweep(*o); });
}

}  // namespace tb
