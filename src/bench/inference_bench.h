// Inference speed of a trained model: latency at batch 1 and throughput at a large batch,
// each the median of repeated forward passes in evaluation mode after a warm-up.
#pragma once
#include <nlohmann/json.hpp>

#include "train/classifier.h"

namespace tb {

struct InferenceResult {
  double latency_seconds = 0;       // batch 1, median
  double latency_p90_seconds = 0;
  int batch_size = 0;
  double images_per_second = 0;     // at batch_size, median
};

// Builds an evaluation-mode copy of `trained` (same backend, same weights) planned for
// batch_size, and times it.
InferenceResult measure_inference(const Classifier& trained, const std::string& model,
                                  int batch_size, int repeats);

nlohmann::json to_json(const InferenceResult& r);

}  // namespace tb
