// Training-step throughput on synthetic data: the figure behind "images per second" in every
// comparison. One fixed random batch stays on the device (as in the PyTorch peer), the step
// (forward, loss, backward, optimizer) is warmed up, then timed step by step with the backend
// synchronised before each clock read; the median and the spread are reported.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/models.h"

namespace tb {

struct ThroughputSpec {
  std::string model = "resnet18";
  ModelInput input{3, 32, 32, 10};
  std::string impl = "ref";
  int threads = 0;  // 0 = all cores
  int batch_size = 64;
  std::string precision = "fp32";
  int warmup = 3;
  int repeats = 10;
  uint64_t seed = 0;
  bool cuda_graph = true;  // GPU backends: capture the step once and replay it
};

struct ThroughputResult {
  ThroughputSpec spec;
  std::string status = "ok";  // ok, skipped (backend unavailable here), failed
  std::string error;
  std::vector<double> step_seconds;  // every timed step
  double median_step_seconds = 0, p10_step_seconds = 0, p90_step_seconds = 0;
  double images_per_second = 0;         // batch / median step
  double training_flops_per_image = 0;  // analytic, forward + backward
  double achieved_gflops = 0;           // at the median step
  double planned_bytes = 0;             // the model's memory plan
  int threads_used = 0;
  // GPU backends: the most device memory the backend held at once (its own allocations:
  // plan, workspace, weight copies), and the device's total in use after the run (all
  // allocators, the libraries' handles included), as cudaMemGetInfo reports it.
  double peak_device_bytes = 0, device_used_bytes = 0;
  double setup_peak_device_bytes = 0;  // the same, over warm-up too (algorithm searches)
  bool graph_replayed = false;
  std::string device_name;
};

// The canonical input of each model in comparisons (as in ../shared/peers/torch_anchor.py):
// 1x28x28 for simple_cnn and alexnet_lite, 3x32x32 for the others.
ModelInput default_input(const std::string& model);

// Never throws for a backend that cannot run here: the result says skipped, with why.
ThroughputResult measure_throughput(const ThroughputSpec& spec);

nlohmann::json to_json(const ThroughputResult& r);

// Median and percentiles of a sample (copies; fine for the tens of values we time).
double percentile(std::vector<double> values, double p);

}  // namespace tb
