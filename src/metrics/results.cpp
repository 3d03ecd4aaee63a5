#include "metrics/results.h"

#include "core/atomic_file.h"
#include "metrics/base64.h"
#include "train/checkpoint_state.h"

namespace tb {

nlohmann::json training_record(const TrainConfig& config, const TrainResult& r,
                               const nlohmann::json& environment) {
  nlohmann::json epochs = nlohmann::json::array();
  for (const EpochMetrics& m : r.epochs) epochs.push_back(to_json(m));
  nlohmann::json final_metrics = {
      {"steps", r.steps},
      {"images", r.images},
      {"train_seconds", r.train_seconds},
      {"total_seconds", r.total_seconds},
      {"images_per_second", r.train_seconds > 0 ? r.images / r.train_seconds : 0.0}};
  if (!r.epochs.empty()) {
    final_metrics["train_loss"] = r.epochs.back().train_loss;
    final_metrics["train_accuracy"] = r.epochs.back().train_accuracy;
    final_metrics["validation_loss"] = r.epochs.back().val_loss;
    final_metrics["validation_accuracy"] = r.epochs.back().val_accuracy;
  }
  if (r.tested) {
    final_metrics["test_loss"] = r.test.loss;
    final_metrics["test_accuracy"] = r.test.accuracy;
    final_metrics["test_images"] = r.test.count;
    final_metrics["confusion_matrix"] = r.test.confusion;
  }
  nlohmann::json record = {{"schema", "trainbench.run"},
                           {"schema_version", kResultsSchemaVersion},
                           {"kind", "train"},
                           {"status", r.status},
                           {"config", to_json(config)},
                           {"environment", environment},
                           {"data", r.data},
                           {"model", r.model},
                           {"class_names", r.class_names},
                           {"epochs", epochs},
                           {"final", final_metrics}};
  if (!r.test.samples.empty()) {
    // The first test images with predictions, pixels C x H x W as base64 uint8.
    nlohmann::json items = nlohmann::json::array();
    for (const PredictionSample& s : r.test.samples)
      items.push_back({{"index", s.index},
                       {"label", s.label},
                       {"predicted", s.predicted},
                       {"pixels", base64_encode(s.pixels.data(), s.pixels.size())}});
    record["samples"] = {{"shape", r.model.value("input", nlohmann::json::array())},
                         {"encoding", "base64-uint8-chw"},
                         {"items", items}};
  }
  if (!r.error.empty()) record["error"] = r.error;
  return record;
}

void append_result(const std::string& path, const nlohmann::json& record) {
  append_line_atomic(path, record.dump());
}

}  // namespace tb
