#include "bench/golden_input.h"

#include <cmath>
#include <cstring>

#include "core/build_info.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/ref/ref_backend.h"
#include "train/checkpoint_state.h"

namespace tb {

CheckpointData make_golden_input(const GoldenSpec& spec) {
  TB_INPUT_CHECK(spec.batch >= 2, "--batch-size must be at least 2 (batch norm), got {}",
                 spec.batch);
  TB_INPUT_CHECK(spec.steps >= 1 && spec.samples >= 1, "--steps and --samples must be >= 1");
  auto backend = make_ref_backend();  // before the graph: the graph's memory goes back to it
  Graph graph = build_model(spec.model, spec.input);
  graph.plan(*backend, 1, DType::f32, false);
  graph.init_parameters(spec.seed);

  CheckpointData out;
  nlohmann::json params = nlohmann::json::array(), buffers = nlohmann::json::array(),
                 dropout = nlohmann::json::array();
  for (const ParamRef& r : graph.parameters()) {
    params.push_back(r.name);
    out.tensors.push_back(download_tensor(*backend, r.name, r.value));
  }
  for (const StateRef& r : graph.persistent_buffers()) {
    buffers.push_back(r.name);
    out.tensors.push_back(download_tensor(*backend, r.name, r.value));
  }
  const auto nodes = graph.describe();
  for (size_t j = 0; j < nodes.size(); ++j)
    if (nodes[j].type == "dropout") dropout.push_back({{"name", nodes[j].name}, {"node", j}});

  // The batch: its own stream of the seed, so it does not depend on the model.
  Rng rng(counter_hash(spec.seed, 0x601DE7, 0));
  const int64_t numel = int64_t(spec.batch) * spec.input.channels * spec.input.height *
                        spec.input.width;
  std::vector<float> images(static_cast<size_t>(numel));
  for (float& v : images) v = float(rng.normal());
  std::vector<int32_t> labels(size_t(spec.batch));
  for (int32_t& l : labels) l = int32_t(rng.below(uint64_t(spec.input.classes)));
  HostTensor x{"batch.images", DType::f32,
               Shape{spec.batch, spec.input.channels, spec.input.height, spec.input.width}, {}};
  x.bytes.resize(images.size() * sizeof(float));
  std::memcpy(x.bytes.data(), images.data(), x.bytes.size());
  HostTensor y{"batch.labels", DType::i32, Shape{spec.batch}, {}};
  y.bytes.resize(labels.size() * sizeof(int32_t));
  std::memcpy(y.bytes.data(), labels.data(), y.bytes.size());
  out.tensors.push_back(std::move(x));
  out.tensors.push_back(std::move(y));

  out.header = {
      {"kind", "golden-input"},
      {"golden_version", kGoldenVersion},
      {"model", spec.model},
      {"input", {spec.input.channels, spec.input.height, spec.input.width}},
      {"classes", spec.input.classes},
      {"batch", spec.batch},
      {"seed", spec.seed},
      {"steps", spec.steps},
      {"samples", spec.samples},
      {"sgd",
       {{"lr", spec.sgd_lr},
        {"momentum", spec.sgd_momentum},
        {"weight_decay", spec.sgd_weight_decay}}},
      {"adam",
       {{"lr", spec.adam_lr},
        {"beta1", spec.adam_beta1},
        {"beta2", spec.adam_beta2},
        {"eps", spec.adam_eps}}},
      {"param_names", params},
      {"buffer_names", buffers},
      {"dropout_layers", dropout},
      {"dropout_rule", "keep element i iff counter_uniform(seed, (step << 16) ^ node, i) >= p"},
      {"created_by", {{"trainbench", TB_VERSION}, {"git_commit", build_commit()}}}};
  return out;
}

GoldenSpec golden_spec_from_header(const nlohmann::json& h, const std::string& path) {
  GoldenSpec s;
  try {
    s.model = h.at("model");
    s.input = ModelInput{h.at("input").at(0), h.at("input").at(1), h.at("input").at(2),
                         h.at("classes")};
    s.batch = h.at("batch");
    s.seed = h.at("seed");
    s.steps = h.at("steps");
    s.samples = h.at("samples");
    s.sgd_lr = h.at("sgd").at("lr");
    s.sgd_momentum = h.at("sgd").at("momentum");
    s.sgd_weight_decay = h.at("sgd").at("weight_decay");
    s.adam_lr = h.at("adam").at("lr");
    s.adam_beta1 = h.at("adam").at("beta1");
    s.adam_beta2 = h.at("adam").at("beta2");
    s.adam_eps = h.at("adam").at("eps");
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: malformed golden header: {}", path, e.what()));
  }
  return s;
}

std::vector<float> golden_samples(const float* values, int64_t n, int count) {
  std::vector<float> out(static_cast<size_t>(count));
  for (int k = 0; k < count; ++k) out[size_t(k)] = values[int64_t(k) * n / count];
  return out;
}

std::array<double, 3> golden_stats(const float* values, int64_t n) {
  double sum = 0, sq = 0, mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    sum += v;
    sq += v * v;
    mx = std::max(mx, std::fabs(v));
  }
  return {sum, std::sqrt(sq), mx};
}

}  // namespace tb
