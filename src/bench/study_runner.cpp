#include "bench/study_runner.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <ostream>
#include <sstream>
#include <thread>

#include "bench/inference_bench.h"
#include "bench/pytorch_peer.h"
#include "core/interrupt.h"
#include "core/timer.h"
#include "metrics/environment.h"
#include "metrics/gpu_peak.h"
#include "metrics/monitoring_record.h"
#include "metrics/results.h"
#include "ops/cpu/fma_peak.h"
#include "train/classifier.h"
#include "train/trainer.h"

namespace tb {
namespace {

bool is_cpu_impl(const std::string& impl) { return impl == "ref" || impl == "cpu" || impl == "onednn"; }

// Where a row runs. A PyTorch row runs where its pytorch_device says; "auto" is the GPU when
// PyTorch sees one (asked only for such rows: probing starts Python).
bool runs_on_cpu(const StudyRow& row) {
  const TrainConfig& c = row.config;
  if (c.impl != "pytorch") return is_cpu_impl(c.impl);
  if (row.pytorch.device == "auto") return !probe_python_with_torch().cuda;
  return row.pytorch.device == "cpu";
}

int threads_used(const StudyRow& row) {
  const TrainConfig& c = row.config;
  if (c.impl == "ref") return 1;
  if (!runs_on_cpu(row)) return 0;
  return c.threads > 0 ? c.threads : int(std::thread::hardware_concurrency());
}

std::string device_label(const StudyRow& row) {
  if (runs_on_cpu(row)) return fmt::format("CPU x{}", threads_used(row));
  return "GPU";
}

// Why this machine cannot run a PyTorch row, or "" when it can.
std::string pytorch_skip_reason(const StudyRow& row) {
  const PythonProbe& probe = probe_python_with_torch();
  if (!probe.python) return pytorch_unavailable_message();
  if (row.pytorch.device == "cuda" && !probe.cuda)
    return fmt::format("PyTorch {} ({}) sees no GPU", probe.torch_version, *probe.python);
  if (row.pytorch.compile && probe.torch_version.rfind("1.", 0) == 0)
    return fmt::format("torch.compile needs PyTorch 2; {} has {}", *probe.python,
                       probe.torch_version);
  return "";
}

// Seconds of training until validation accuracy first reached the target (0 = never).
// Read from the record's epochs, so that PyTorch rows are measured the same way as ours.
double time_to_target(const nlohmann::json& record, double target) {
  double seconds = 0;
  if (!record.contains("epochs")) return 0;
  for (const auto& e : record["epochs"]) {
    seconds += e.value("data_seconds", 0.0) + e.value("compute_seconds", 0.0);
    if (e.value("validation_accuracy", 0.0) >= target) return seconds;
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
    const bool peer = c.impl == "pytorch";
    const std::string label =
        fmt::format("{} {} {} {}", c.dataset, c.model, c.impl, device_label(rows[i]));
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
    std::string skip;
    if (peer) {
      skip = pytorch_skip_reason(rows[i]);
    } else {
      try {
        make_backend(c.impl, c.threads);
      } catch (const InputError& e) {
        skip = e.what();
      }
    }
    if (!skip.empty()) {
      out.status = "skipped";
      out.reason = skip;
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
    std::optional<Trainer> trainer;
    if (!peer) trainer.emplace(c, run_log);
    TrainResult result;
    // CPU, memory and (through NVML, when present) GPU utilisation, clocks, power, energy.
    SystemMonitor system_monitor;
    GpuMonitor gpu_monitor;
    system_monitor.start();
    gpu_monitor.start();
    if (peer) {
      // The peer trains on the plan of this very config: same data, split, batch order,
      // schedule and initial weights (docs/pytorch-peer.md).
      try {
        out.record = run_pytorch_peer(c, rows[i].pytorch, run_log);
        out.status = out.record.value("status", "failed");
        if (out.status == "failed") out.reason = out.record.value("error", "the peer failed");
      } catch (const InputError& e) {
        out.status = "failed";
        out.reason = e.what();
        out.record = {{"schema", "trainbench.run"}, {"schema_version", kResultsSchemaVersion},
                      {"kind", "train"}, {"status", "failed"}, {"error", out.reason},
                      {"config", to_json(c)}, {"environment", env}};
      }
    } else {
      try {
        result = trainer->run();
        out.status = result.status;
      } catch (const InputError& e) {
        result = trainer->result();
        result.status = "failed";
        result.error = e.what();
        out.status = "failed";
        out.reason = e.what();
      }
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
    if (!peer) out.record = training_record(c, result, env);
    out.record["study"] = study_info;
    nlohmann::json metrics = {{"device", device_label(rows[i])},
                              {"threads_used", threads_used(rows[i])}};
    if (out.status == "completed") {
      const nlohmann::json& fin = out.record["final"];
      const double ips = fin.value("images_per_second", 0.0);
      const double flops = out.record["model"].value("training_flops_per_image", 0.0);
      metrics["achieved_tflops"] = ips * flops / 1e12;
      const int t = threads_used(rows[i]);
      if (t > 0 && options.measure_peak) {
        if (!peak.count(t)) peak[t] = cpu::measure_fma_peak_gflops(t, 0.3);
        metrics["device_peak_tflops"] = peak[t] / 1e3;
        metrics["percent_of_peak"] = 100.0 * ips * flops / 1e9 / peak[t];
      } else if (t == 0 && options.measure_peak) {
        // On the GPU: against the measured matrix-product rate of the row's precision.
        if (const auto tf = gpu_peak_tflops(c.precision)) {
          metrics["device_peak_tflops"] = *tf;
          metrics["device_peak_kind"] = "cuBLASLt " + c.precision + " GEMM 8192^3";
          metrics["percent_of_peak"] = 100.0 * ips * flops / 1e12 / *tf;
        }
      }
      if (rows[i].target_accuracy > 0) {
        metrics["target_accuracy"] = rows[i].target_accuracy;
        metrics["time_to_target_seconds"] = time_to_target(out.record, rows[i].target_accuracy);
      }
      // Inference timing runs our model in this process; the peer's model lives in Python.
      if (options.measure_inference && !peer) try {
        metrics["inference"] = to_json(measure_inference(trainer->model(), c.model,
                                                         study.inference_batch_size,
                                                         study.inference_repeats));
      } catch (const InputError& e) {
        metrics["inference"] = {{"error", e.what()}};
      }
    }
    // A PyTorch row ran in a child process: its CPU time and peak RSS are what the peer
    // measured of itself; ours would describe an idle parent. NVML sees the whole GPU.
    const nlohmann::json peer_system =
        peer && out.record.contains("system") ? out.record["system"] : nlohmann::json();
    add_monitoring(out.record, system_monitor.report(), gpu_monitor.report());
    if (!peer_system.is_null()) {
      out.record["system"] = peer_system;
      out.record["timeseries"].erase("system");
    }
    if (out.status == "completed" && out.record["gpu"].value("available", false)) {
      double joules = 0;
      for (const auto& dev : out.record["gpu"]["devices"]) joules += dev.value("energy_joules", 0.0);
      const double images = out.record["final"].value("images", 0.0);
      const size_t epochs = out.record.contains("epochs") ? out.record["epochs"].size() : 0;
      if (joules > 0 && images > 0) {
        metrics["gpu_energy_joules"] = joules;
        metrics["gpu_energy_per_image_joules"] = joules / images;
        metrics["gpu_energy_per_epoch_joules"] = joules / double(std::max<size_t>(1, epochs));
      }
    }
    out.record["metrics"] = metrics;
    append_result(options.results, out.record);
    if (out.status == "completed") {
      const nlohmann::json& fin = out.record["final"];
      log << fmt::format("[{}/{}] {}: test {:.2f}%  {:.0f} img/s  {:.1f} s\n", i + 1, rows.size(),
                         label, 100.0 * fin.value("test_accuracy", 0.0),
                         fin.value("images_per_second", 0.0), fin.value("total_seconds", 0.0));
    }
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
                                         device_label(r.row));
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
