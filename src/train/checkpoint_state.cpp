#include "train/checkpoint_state.h"

#include <fmt/format.h>

namespace tb {

nlohmann::json to_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch},
          {"steps", m.steps},
          {"images", m.images},
          {"lr", m.lr},
          {"train_loss", m.train_loss},
          {"train_accuracy", m.train_accuracy},
          {"validation_loss", m.val_loss},
          {"validation_accuracy", m.val_accuracy},
          {"data_seconds", m.data_seconds},
          {"compute_seconds", m.compute_seconds},
          {"eval_seconds", m.eval_seconds},
          {"images_per_second", m.images_per_second},
          {"elapsed_seconds", m.elapsed_seconds}};
}

EpochMetrics epoch_metrics_from_json(const nlohmann::json& j) {
  EpochMetrics m;
  m.epoch = j.at("epoch");
  m.steps = j.at("steps");
  m.images = j.at("images");
  m.lr = j.at("lr");
  m.train_loss = j.at("train_loss");
  m.train_accuracy = j.at("train_accuracy");
  m.val_loss = j.at("validation_loss");
  m.val_accuracy = j.at("validation_accuracy");
  m.data_seconds = j.at("data_seconds");
  m.compute_seconds = j.at("compute_seconds");
  m.eval_seconds = j.at("eval_seconds");
  m.images_per_second = j.at("images_per_second");
  m.elapsed_seconds = j.at("elapsed_seconds");
  return m;
}

HostTensor download_tensor(Backend& backend, const std::string& name, const Tensor& t) {
  HostTensor h;
  h.name = name;
  h.dtype = t.dtype;
  h.shape = t.shape;
  h.bytes.resize(t.bytes());
  backend.copy_to_host(h.bytes.data(), t.data, t.bytes());
  return h;
}

void upload_tensor(Backend& backend, const CheckpointData& ck, const std::string& name,
                   const Tensor& t, const std::string& path) {
  const HostTensor* h = ck.find(name);
  TB_INPUT_CHECK(h, "checkpoint {} has no tensor '{}'", path, name);
  TB_INPUT_CHECK(h->dtype == t.dtype && h->shape == t.shape,
                 "checkpoint {}: tensor '{}' is {} {}, the model needs {} {}", path, name,
                 dtype_name(h->dtype), h->shape.to_string(), dtype_name(t.dtype),
                 t.shape.to_string());
  backend.copy_from_host(t.data, h->bytes.data(), h->bytes.size());
}

CheckpointData capture_training_state(const TrainConfig& config, const Graph& graph,
                                      const Optimizer& optimizer, const TrainProgress& p,
                                      const Normalization& norm, const Dataset& dataset) {
  CheckpointData ck;
  nlohmann::json history = nlohmann::json::array();
  for (const EpochMetrics& m : p.history) history.push_back(to_json(m));
  ck.header = {{"kind", "training"},
               {"identity", run_identity(config)},
               {"config", to_json(config)},
               {"model", {{"name", config.model},
                          {"input", {dataset.channels, dataset.height, dataset.width}},
                          {"classes", dataset.classes}}},
               {"class_names", dataset.class_names},
               {"normalization", {{"mean", norm.mean}, {"std", norm.std}}},
               {"progress", {{"epoch", p.epoch},
                             {"step_in_epoch", p.step_in_epoch},
                             {"global_step", p.global_step},
                             {"loss_sum", p.loss_sum},
                             {"correct", p.correct},
                             {"seen", p.seen},
                             {"data_seconds", p.data_seconds},
                             {"compute_seconds", p.compute_seconds},
                             {"lr", p.lr},
                             {"elapsed_seconds", p.elapsed_seconds},
                             {"optimizer_steps", optimizer.steps_taken()}}},
               {"history", history}};
  Backend& backend = graph.backend();
  for (const ParamRef& r : graph.parameters())
    ck.tensors.push_back(download_tensor(backend, r.name, r.value));
  for (const StateRef& r : graph.persistent_buffers())
    ck.tensors.push_back(download_tensor(backend, r.name, r.value));
  for (const StateRef& r : optimizer.state())
    ck.tensors.push_back(download_tensor(backend, "optimizer." + r.name, r.value));
  return ck;
}

namespace {

// What a run identity key meant in checkpoints written before the key existed.
const nlohmann::json kIdentityBefore = {
    {"validation_fraction", 0.1},  // before --validation: 10% of the train file held out
    {"one_cycle_pct_start", 0.3},
    {"max_grad_norm", 0.0},        // before --clip-grad-norm: no clipping  // before --one-cycle-pct-start: PyTorch's default
};

}  // namespace

void restore_training_state(const CheckpointData& ck, const TrainConfig& config, Graph& graph,
                            Optimizer& optimizer, TrainProgress& p) {
  const std::string& path = config.checkpoint;
  TB_INPUT_CHECK(ck.header.value("kind", "") == "training",
                 "checkpoint {} is not a training checkpoint", path);
  const nlohmann::json want = run_identity(config);
  const nlohmann::json have = ck.header.at("identity");
  std::string diff;
  for (auto it = want.begin(); it != want.end(); ++it) {
    const nlohmann::json other = have.contains(it.key())            ? have.at(it.key())
                                 : kIdentityBefore.contains(it.key()) ? kIdentityBefore.at(it.key())
                                                                      : nlohmann::json();
    if (other != it.value())
      diff += fmt::format("{}--{}: checkpoint {}, now {}", diff.empty() ? "" : "; ", it.key(),
                          other.dump(), it.value().dump());
  }
  TB_INPUT_CHECK(diff.empty(),
                 "checkpoint {} belongs to a different run, so --resume cannot continue it ({})",
                 path, diff);
  Backend& backend = graph.backend();
  for (const ParamRef& r : graph.parameters()) upload_tensor(backend, ck, r.name, r.value, path);
  for (const StateRef& r : graph.persistent_buffers())
    upload_tensor(backend, ck, r.name, r.value, path);
  for (const StateRef& r : optimizer.state())
    upload_tensor(backend, ck, "optimizer." + r.name, r.value, path);
  try {
    const nlohmann::json& j = ck.header.at("progress");
    p.epoch = j.at("epoch");
    p.step_in_epoch = j.at("step_in_epoch");
    p.global_step = j.at("global_step");
    p.loss_sum = j.at("loss_sum");
    p.correct = j.at("correct");
    p.seen = j.at("seen");
    p.data_seconds = j.at("data_seconds");
    p.compute_seconds = j.at("compute_seconds");
    p.lr = j.at("lr");
    p.elapsed_seconds = j.at("elapsed_seconds");
    optimizer.set_steps_taken(j.at("optimizer_steps"));
    p.history.clear();
    for (const auto& m : ck.header.at("history")) p.history.push_back(epoch_metrics_from_json(m));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("checkpoint {} has a malformed header: {}", path, e.what()));
  }
}

}  // namespace tb
