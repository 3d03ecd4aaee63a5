#include "bench/throughput.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "core/timer.h"
#include "ops/cuda/step_control.h"
#include "train/classifier.h"
#include "train/optimizer.h"
#include "train/train_step.h"

namespace tb {

ModelInput default_input(const std::string& model) {
  if (model == "simple_cnn" || model == "alexnet_lite") return {1, 28, 28, 10};
  return {3, 32, 32, 10};
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = p * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos)), hi = size_t(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

ThroughputResult measure_throughput(const ThroughputSpec& spec) {
  ThroughputResult r;
  r.spec = spec;
  TB_INPUT_CHECK(spec.batch_size > 0 && spec.warmup >= 0 && spec.repeats > 0,
                 "throughput needs batch size > 0, warm-up >= 0 and repeats > 0");
  std::unique_ptr<Backend> backend;
  try {
    backend = make_backend(spec.impl, spec.threads);
  } catch (const InputError& e) {
    r.status = "skipped";
    r.error = e.what();
    return r;
  }
  try {
    const DType activations = precision_dtype(spec.precision);
    GpuStepControl* gpu = TrainStep::gpu_control(*backend);
    TB_INPUT_CHECK(activations == DType::f32 || gpu,
                   "--precision {} needs a GPU backend (--impl cuda or cudnn), not {}",
                   spec.precision, spec.impl);
    Classifier model(build_model(spec.model, spec.input), *backend, spec.batch_size, true, 0.0f,
                     activations);
    model.graph().init_parameters(spec.seed);
    OptimizerConfig oc;
    oc.kind = "sgd";
    oc.momentum = 0.9f;
    Optimizer opt(*backend, model.graph().parameters(), oc);

    // One random batch, uploaded once: the peer keeps its batch on the device too.
    const int n = spec.batch_size;
    Rng rng(spec.seed + 1);
    std::vector<float> images(size_t(n) * spec.input.channels * spec.input.height * spec.input.width);
    for (float& v : images) v = float(rng.normal());
    std::vector<int32_t> labels(static_cast<size_t>(n));
    for (int32_t& l : labels) l = int32_t(rng.below(uint64_t(spec.input.classes)));
    model.set_batch(n, images.data(), labels.data());

    // GPU backends run the device-driven step (one CUDA graph replayed, or enqueued each
    // time with cuda_graph off); the others the host-driven one. Both do the same work.
    TrainStep train_step(model, opt, spec.seed);
    if (gpu) {
      TrainStep::DeviceOptions o;
      o.cuda_graph = spec.cuda_graph;
      o.dynamic_loss_scale = activations == DType::f16;
      train_step.start_device({0.01f}, {oc.momentum}, 0, 1, o);
    }
    auto step = [&](int i) {
      if (gpu)
        train_step.device_step(n, n);
      else
        train_step.host_step(n, i, 0.01f, nullptr);
    };
    for (int i = 0; i < spec.warmup; ++i) step(i);
    backend->synchronize();
    // The timed steps' own peak: warm-up's one-off algorithm searches are reported apart.
    if (gpu) {
      r.setup_peak_device_bytes = double(gpu->peak_bytes());
      gpu->reset_peak();
    }
    for (int i = 0; i < spec.repeats; ++i) {
      Stopwatch clock;
      step(spec.warmup + i);
      backend->synchronize();
      r.step_seconds.push_back(clock.seconds());
    }
    r.median_step_seconds = percentile(r.step_seconds, 0.5);
    r.p10_step_seconds = percentile(r.step_seconds, 0.1);
    r.p90_step_seconds = percentile(r.step_seconds, 0.9);
    r.images_per_second = n / r.median_step_seconds;
    r.training_flops_per_image = model.graph().training_flops_per_item();
    r.achieved_gflops = r.training_flops_per_image * n / r.median_step_seconds / 1e9;
    r.planned_bytes = double(model.graph().memory().total_bytes());
    if (gpu) {
      r.peak_device_bytes = double(gpu->peak_bytes());
      r.device_used_bytes = double(gpu->device_used_bytes());
      r.graph_replayed = spec.cuda_graph && spec.warmup >= 2;
      r.device_name = gpu->device_name();
    }
  } catch (const InputError& e) {
    r.status = "failed";
    r.error = e.what();
  }
  return r;
}

nlohmann::json to_json(const ThroughputResult& r) {
  const ThroughputSpec& s = r.spec;
  nlohmann::json j = {
      {"model", s.model},
      {"input", {s.input.channels, s.input.height, s.input.width}},
      {"impl", s.impl},
      {"threads", s.threads},
      {"batch_size", s.batch_size},
      {"precision", s.precision},
      {"warmup", s.warmup},
      {"repeats", s.repeats},
      {"status", r.status},
  };
  if (!r.error.empty()) j["error"] = r.error;
  if (r.status == "ok") {
    j["step_seconds"] = r.step_seconds;
    j["median_step_seconds"] = r.median_step_seconds;
    j["p10_step_seconds"] = r.p10_step_seconds;
    j["p90_step_seconds"] = r.p90_step_seconds;
    j["images_per_second"] = r.images_per_second;
    j["training_flops_per_image"] = r.training_flops_per_image;
    j["achieved_gflops"] = r.achieved_gflops;
    j["planned_bytes"] = r.planned_bytes;
    if (!r.device_name.empty()) {
      j["device"] = r.device_name;
      j["peak_device_bytes"] = r.peak_device_bytes;
      j["setup_peak_device_bytes"] = r.setup_peak_device_bytes;
      j["device_used_bytes"] = r.device_used_bytes;
      j["cuda_graph"] = r.graph_replayed;
    }
  }
  return j;
}

}  // namespace tb
