#include "bench/study_runner.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <ostream>
#include <sstream>
#include <thread>

#include "bench/inference_bench.h"
#include "core/interrupt.h"
#include "core/timer.h"
#include "metrics/environment.h"
#include "metrics/monitoring_record.h"
#include "metrics/results.h"
#include "ops/cpu/fma_peak.h"
#include "train/classifier.h"
#include "train/trainer.h"

namespace tb {
namespace {

bool is_cpu_impl(const std::string& impl) { return impl == "ref" || impl == "cpu" || impl == "onednn"; }

int threads_used(const TrainConfig& c) {
  if (c.impl == "ref") return 1;
  if (!is_cpu_impl(c.impl)) return 0;
  return c.threads > 0 ? c.threads : int(std::thread::hardware_concurrency());
}

std::string device_label(const TrainConfig& c) {
  if (is_cpu_impl(c.impl)) return fmt::format("CPU x{}", threads_used(c));
  return "GPU";
}

// Seconds of training until validation accuracy first reached the target (0 = never).
double time_to_target(const TrainResult& r, double target) {
  double seconds = 0;
  for (const EpochMetrics& m : r.epochs) {
    seconds += m.data_seconds + m.compute_seconds;
    if (m.val_accuracy >= target) return seconds;
  }
  return 0;
}

// A run's identity apart from its device: rows sharing it are compared with each other.
// The number of training images is left out on purpose: speedups compare images per second,
// and slow rows (the plain-loop oracle) are often given fewer images.
std::string group_key(const TrainConfig& c) {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}", c.dataset, c.model, c.batch_size, c.precision,
                     c.epochs, c.optimizer.kind, effective_lr(c));
}

void progress_line(size_t done, size_t total, double elapsed, const std::string& what) {
  const int width = 24;
  const int filled = int(width * double(done) / double(total));
  std::string eta = "?";
  if (done > 0) eta = fmt::format("{:.0f} s", elapsed / done * (total - done));
  fmt::print(stderr, "\r[{}{}] {}/{}  ETA {}  {}\033[K", std::string(filled, '#'),
             std::string(width - filled, '.'), done, total, eta, what);
}

}  // namespace

StudyOutcome run_study(const Study& study, const StudyOptions& options, std::ostream& log) {
  const std::vector<StudyRow> rows = expand_study(study);
  const nlohmann::json env = collect_environment();
  const bool bar = options.progress && isatty(fileno(stderr));
  install_interrupt_handler();
  log << fmt::format("study '{}' ({}): {} runs, results appended to {}\n{}\n", study.name,
                     study.source, rows.size(), options.results, environment_summary(env));
  log.flush();

  std::map<int, double> peak;  // measured CPU FMA peak per thread count
  std::set<std::string> baseline_groups;
  StudyOutcome outcome;
  Stopwatch clock;
  for (size_t i = 0; i < rows.size(); ++i) {
    StudyRowOutcome out;
    out.row = rows[i];
    TrainConfig c = rows[i].config;
    if (!options.data_dir.empty()) c.data_dir = options.data_dir;
    c.progress = false;
    const std::string label = fmt::format("{} {} {} {}", c.dataset, c.model, c.impl, device_label(c));
    if (bar) progress_line(i, rows.size(), clock.seconds(), label);
    if (interrupt_requested()) {
      outcome.interrupted = true;
      break;
    }
    // The first row of each group matching the study's baseline settings is the group's
    // speedup reference, in the printed table and in reports read back from the records.
    bool baseline = !study.baseline.empty() && !baseline_groups.count(group_key(c));
    for (auto it = study.baseline.begin(); baseline && it != study.baseline.end(); ++it)
      baseline = rows[i].settings.contains(it.key()) && rows[i].settings[it.key()] == it.value();
    nlohmann::json study_info = {{"name", study.name}, {"description", study.description},
                                 {"row", i}, {"rows", rows.size()},
                                 {"settings", rows[i].settings}, {"group", group_key(c)},
                                 {"baseline", baseline}};
    // Rows this machine cannot run are skipped with the reason, before any work.
    try {
      make_backend(c.impl, c.threads);
    } catch (const InputError& e) {
      out.status = "skipped";
      out.reason = e.what();
      out.record = {{"schema", "trainbench.run"}, {"schema_version", kResultsSchemaVersion},
                    {"kind", "train"}, {"status", "skipped"}, {"error", out.reason},
                    {"config", to_json(c)}, {"environment", env}, {"study", study_info}};
      append_result(options.results, out.record);
      if (bar) fmt::print(stderr, "\r\033[K");
      log << fmt::format("[{}/{}] {}: skipped: {}\n", i + 1, rows.size(), label, out.reason);
      outcome.rows.push_back(std::move(out));
      continue;
    }
    std::ostringstream run_log;
    Trainer trainer(c, run_log);
    TrainResult result;
    // CPU, memory and (through NVML, when present) GPU utilisation, clocks, power, energy.
    SystemMonitor system_monitor;
    GpuMonitor gpu_monitor;
    system_monitor.start();
    gpu_monitor.start();
    try {
      result = trainer.run();
      out.status = result.status;
    } catch (const InputError& e) {
      result = trainer.result();
      result.status = "failed";
      result.error = e.what();
      out.status = "failed";
      out.reason = e.what();
    }
    system_monitor.stop();
    gpu_monitor.stop();
    if (bar) fmt::print(stderr, "\r\033[K");
    if (out.status == "interrupted") {
      log << fmt::format("[{}/{}] {}: interrupted; not recorded\n", i + 1, rows.size(), label);
      outcome.rows.push_back(std::move(out));
      outcome.interrupted = true;
      break;
    }
    if (baseline && out.status == "completed") baseline_groups.insert(group_key(c));
    else study_info["baseline"] = false;
    out.record = training_record(c, result, env);
    out.record["study"] = study_info;
    nlohmann::json metrics = {{"device", device_label(c)}, {"threads_used", threads_used(c)}};
    if (out.status == "completed") {
      const double ips = result.train_seconds > 0 ? result.images / result.train_seconds : 0;
      const double flops = result.model.value("training_flops_per_image", 0.0);
      metrics["achieved_tflops"] = ips * flops / 1e12;
      const int t = threads_used(c);
      if (t > 0 && options.measure_peak) {
        if (!peak.count(t)) peak[t] = cpu::measure_fma_peak_gflops(t, 0.3);
        metrics["device_peak_tflops"] = peak[t] / 1e3;
        metrics["percent_of_peak"] = 100.0 * ips * flops / 1e9 / peak[t];
      }
      if (rows[i].target_accuracy > 0) {
        metrics["target_accuracy"] = rows[i].target_accuracy;
        metrics["time_to_target_seconds"] = time_to_target(result, rows[i].target_accuracy);
      }
      if (options.measure_inference) try {
        metrics["inference"] = to_json(measure_inference(trainer.model(), c.model,
                                                         study.inference_batch_size,
                                                         study.inference_repeats));
      } catch (const InputError& e) {
        metrics["inference"] = {{"error", e.what()}};
      }
    }
    add_monitoring(out.record, system_monitor.report(), gpu_monitor.report());
    if (out.status == "completed" && out.record["gpu"].value("available", false)) {
      double joules = 0;
      for (const auto& dev : out.record["gpu"]["devices"]) joules += dev.value("energy_joules", 0.0);
      if (joules > 0 && result.images > 0) {
        metrics["gpu_energy_joules"] = joules;
        metrics["gpu_energy_per_image_joules"] = joules / double(result.images);
        metrics["gpu_energy_per_epoch_joules"] = joules / double(std::max<size_t>(1, result.epochs.size()));
      }
    }
    out.record["metrics"] = metrics;
    append_result(options.results, out.record);
    if (out.status == "completed")
      log << fmt::format("[{}/{}] {}: test {:.2f}%  {:.0f} img/s  {:.1f} s\n", i + 1, rows.size(),
                         label, 100.0 * result.test.accuracy,
                         result.train_seconds > 0 ? result.images / result.train_seconds : 0.0,
                         result.total_seconds);
    else
      log << fmt::format("[{}/{}] {}: failed: {}\n", i + 1, rows.size(), label, out.reason);
    log.flush();
    outcome.rows.push_back(std::move(out));
  }
  if (bar) fmt::print(stderr, "\r\033[K");
  return outcome;
}

std::string comparison_table(const Study& study, const StudyOutcome& outcome) {
  // The baseline of each group: the first completed row matching the study's baseline
  // settings, else the group's first completed row.
  std::map<std::string, double> base;
  auto matches_baseline = [&](const StudyRowOutcome& r) {
    for (auto it = study.baseline.begin(); it != study.baseline.end(); ++it)
      if (!r.row.settings.contains(it.key()) || r.row.settings[it.key()] != it.value()) return false;
    return true;
  };
  auto rate = [](const StudyRowOutcome& r) {
    return r.record["final"].value("images_per_second", 0.0);
  };
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& r : outcome.rows) {
      if (r.status != "completed") continue;
      const std::string key = group_key(r.row.config);
      if (!base.count(key) && (pass == 1 || matches_baseline(r))) base[key] = rate(r);
    }
  std::string out = fmt::format("{:<14} {:<13} {:<7} {:<7} {:>10} {:>9} {:>9} {:>9}  {}\n", "dataset",
                                "model", "impl", "device", "img/s", "train s", "test acc",
                                "speedup", "note");
  for (const auto& r : outcome.rows) {
    const TrainConfig& c = r.row.config;
    const std::string head = fmt::format("{:<14} {:<13} {:<7} {:<7}", c.dataset, c.model, c.impl,
                                         device_label(c));
    if (r.status != "completed") {
      out += fmt::format("{} {:>10} {:>9} {:>9} {:>9}  {}: {}\n", head, "-", "-", "-", "-", r.status,
                         r.reason.substr(0, 70));
      continue;
    }
    const nlohmann::json& f = r.record["final"];
    const double b = base[group_key(c)];
    out += fmt::format("{} {:>10.0f} {:>9.1f} {:>8.2f}% {:>8.2f}x  {}\n", head, rate(r),
                       f.value("train_seconds", 0.0), 100.0 * f.value("test_accuracy", 0.0),
                       b > 0 ? rate(r) / b : 0.0,
                       c.limit ? fmt::format("{} training images", c.limit) : "");
  }
  return out;
}

}  // namespace tb
