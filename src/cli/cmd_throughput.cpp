// `trainbench throughput`: training images/s on synthetic data for a matrix of models x
// implementations x threads x batch sizes, with median, spread, achieved GFLOP/s, percent of
// the measured CPU peak and the ratio to a baseline implementation measured in the same run.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <thread>

#include "bench/throughput.h"
#include "cli/commands.h"
#include "core/error.h"
#include "metrics/environment.h"
#include "metrics/results.h"
#include "metrics/gpu_peak.h"
#include "ops/cpu/conv_winograd.h"
#include "ops/cpu/fma_peak.h"

namespace tb {
namespace {

struct ThroughputOptions {
  std::vector<std::string> models{"alexnet_lite", "cifar_cnn", "resnet18"};
  std::vector<std::string> impls{"ref"};
  std::vector<int> threads{0};
  std::vector<int> batch_sizes{64};
  std::string input;  // "" = each model's canonical input
  std::string precision = "fp32";
  int warmup = 3, repeats = 10;
  std::string baseline;  // "" = the first impl
  std::string results;
  bool no_peak = false;
  bool no_graph = false;
};

bool is_cpu_impl(const std::string& impl) { return impl == "ref" || impl == "cpu" || impl == "onednn"; }

int resolve_threads(int t) { return t > 0 ? t : int(std::thread::hardware_concurrency()); }

ModelInput parse_input_or_default(const std::string& text, const std::string& model) {
  if (text.empty()) return default_input(model);
  int c = 0, h = 0, w = 0;
  char x1 = 0, x2 = 0;
  TB_INPUT_CHECK(std::sscanf(text.c_str(), "%d%c%d%c%d", &c, &x1, &h, &x2, &w) == 5 && x1 == 'x' &&
                     x2 == 'x' && c > 0 && h > 0 && w > 0,
                 "--input takes CxHxW such as 3x32x32, got '{}'", text);
  return {c, h, w, 10};
}

void run(const ThroughputOptions& o) {
  const nlohmann::json env = collect_environment();
  fmt::print("trainbench throughput: training step on one fixed random batch, {} warm-up + {} "
             "timed steps, median (p10-p90)\n{}\n\n",
             o.warmup, o.repeats, environment_summary(env));
  // The CPU's measured FMA peak for each thread count: the denominator of "% peak".
  std::map<int, double> peak;
  std::map<std::string, double> gpu_peak;  // measured TFLOP/s per precision, GPU rows
  if (!o.no_peak)
    for (int t : o.threads) {
      const int n = resolve_threads(t);
      if (!peak.count(n)) peak[n] = cpu::measure_fma_peak_gflops(n, 0.3);
    }
  for (const auto& [n, gflops] : peak)
    fmt::print("measured FMA peak at {} thread(s): {:.1f} GFLOP/s\n", n, gflops);
  fmt::print("\n{:<13} {:<9} {:<7} {:>3} {:>6} {:>11} {:>15} {:>9} {:>9} {:>7} {:>8} {:>9}\n",
             "model", "input", "impl", "thr", "batch", "img/s", "p10-p90 img/s", "step ms",
             "GFLOP/s", "% peak", "ratio", "peak MiB");
  const std::string baseline = o.baseline.empty() ? o.impls.front() : o.baseline;
  for (const auto& model : o.models)
    for (int batch : o.batch_sizes)
      for (int t : o.threads) {
        std::map<std::string, double> rate;
        std::vector<ThroughputResult> rows;
        for (const auto& impl : o.impls) {
          ThroughputSpec spec;
          spec.model = model;
          spec.input = parse_input_or_default(o.input, model);
          spec.impl = impl;
          spec.threads = t;
          spec.batch_size = batch;
          spec.precision = o.precision;
          spec.warmup = o.warmup;
          spec.repeats = o.repeats;
          spec.cuda_graph = !o.no_graph;
          ThroughputResult r = measure_throughput(spec);
          r.threads_used = is_cpu_impl(impl) ? (impl == "ref" ? 1 : resolve_threads(t)) : 0;
          if (r.status == "ok") rate[impl] = r.images_per_second;
          // A GPU row's percent of peak: against the measured matrix-product peak of its
          // precision (measured once, after the row, so it cannot warm the row's clocks).
          if (r.status == "ok" && !is_cpu_impl(impl) && !o.no_peak)
            if (const auto tf = gpu_peak_tflops(o.precision)) {
              if (!gpu_peak.count(o.precision))
                fmt::print("measured GPU peak ({}, cuBLASLt 8192^3): {:.1f} TFLOP/s\n",
                           o.precision, *tf);
              gpu_peak[o.precision] = *tf;
            }
          rows.push_back(r);
          if (!o.results.empty()) {
            nlohmann::json rec = {{"schema", "trainbench.run"}, {"schema_version", kResultsSchemaVersion},
                                  {"kind", "throughput"}, {"status", r.status},
                                  {"throughput", to_json(r)}, {"environment", env}};
            if (r.threads_used && peak.count(r.threads_used))
              rec["throughput"]["cpu_peak_gflops"] = peak[r.threads_used];
            if (impl == "cpu") rec["throughput"]["cpu_winograd"] = cpu::winograd_setting();
            if (!r.threads_used && gpu_peak.count(o.precision))
              rec["throughput"]["gpu_peak_tflops"] = gpu_peak[o.precision];
            append_result(o.results, rec);
          }
        }
        for (const ThroughputResult& r : rows) {
          const ThroughputSpec& s = r.spec;
          const std::string in = fmt::format("{}x{}x{}", s.input.channels, s.input.height, s.input.width);
          if (r.status != "ok") {
            fmt::print("{:<13} {:<9} {:<7} {:>3} {:>6}  {}: {}\n", s.model, in, s.impl,
                       r.threads_used, s.batch_size, r.status, r.error);
            continue;
          }
          std::string pct = "-";
          if (r.threads_used && peak.count(r.threads_used))
            pct = fmt::format("{:.0f}%", 100.0 * r.achieved_gflops / peak[r.threads_used]);
          else if (!r.threads_used && gpu_peak.count(o.precision))
            pct = fmt::format("{:.0f}%", 100.0 * r.achieved_gflops / 1e3 / gpu_peak[o.precision]);
          std::string ratio = rate.count(baseline) ? fmt::format("{:.2f}x", r.images_per_second / rate[baseline]) : "-";
          const std::string mem = r.device_name.empty()
                                      ? "-"
                                      : fmt::format("{:.0f}", r.peak_device_bytes / 1048576.0);
          fmt::print("{:<13} {:<9} {:<7} {:>3} {:>6} {:>11.1f} {:>15} {:>9.2f} {:>9.1f} {:>7} {:>8} {:>9}\n",
                     s.model, in, s.impl, r.threads_used ? std::to_string(r.threads_used) : "-",
                     s.batch_size, r.images_per_second,
                     fmt::format("{:.0f}-{:.0f}", s.batch_size / r.p90_step_seconds,
                                 s.batch_size / r.p10_step_seconds),
                     1e3 * r.median_step_seconds, r.achieved_gflops, pct, ratio, mem);
        }
      }
  fmt::print("\nratio: images/s over the {} row of the same model, threads and batch (same run)\n",
             baseline);
  if (std::find(o.impls.begin(), o.impls.end(), "cpu") != o.impls.end())
    fmt::print(
        "GFLOP/s and % peak count each model's direct arithmetic. cpu's Winograd convolutions "
        "(3x3, stride 1; here: {}; TB_CPU_WINOGRAD=0|backward|f2|all) do fewer multiplies, so "
        "its % can pass what the FMA units did.\n",
        cpu::winograd_setting());
}

}  // namespace

void add_throughput_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "throughput",
      "Measure training images/s (forward + backward + optimizer step on one fixed random batch) "
      "for models x implementations x threads x batch sizes, with median, spread, GFLOP/s, "
      "percent of the measured CPU FMA peak, and ratios to a baseline implementation.");
  auto o = std::make_shared<ThroughputOptions>();
  cmd->add_option("--model", o->models, "Models (comma-separated)")->delimiter(',')->capture_default_str();
  cmd->add_option("--impl", o->impls, "Implementations (comma-separated)")->delimiter(',')->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU thread counts (0 = all cores; ref always uses 1)")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--batch-size", o->batch_sizes, "Batch sizes")->delimiter(',')->capture_default_str();
  cmd->add_option("--input", o->input,
                  "Input CxHxW for every model (default: 1x28x28 for simple_cnn and alexnet_lite, "
                  "3x32x32 for the rest, as the PyTorch peer uses)");
  cmd->add_option("--precision", o->precision, "fp32, bf16 or fp16 (GPU backends)")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "Timed steps")->capture_default_str();
  cmd->add_option("--baseline", o->baseline, "Implementation the ratio column divides by (default: the first)");
  cmd->add_option("--results", o->results, "Append one JSON record per row to FILE");
  cmd->add_flag("--no-peak", o->no_peak, "Skip measuring the CPU FMA peak");
  cmd->add_flag("--no-graph", o->no_graph,
                "GPU backends: enqueue every step instead of replaying one captured CUDA graph");
  cmd->callback([o]() { run(*o); });
}

}  // namespace tb
