// What a training checkpoint holds and how the trainer's live state maps onto it: the
// parameters, batch-norm statistics, optimizer state, and the progress counters that make a
// resumed run continue exactly where it stopped.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "nn/graph.h"
#include "train/checkpoint.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace tb {

struct TrainProgress {
  int epoch = 0;               // 0-based epoch in progress
  int64_t step_in_epoch = 0;   // steps done in it
  int64_t global_step = 0;     // optimizer steps done in the whole run
  // Accumulators of the epoch in progress, so its log line is the same after a resume.
  double loss_sum = 0.0;
  int64_t correct = 0, seen = 0;
  double data_seconds = 0.0, compute_seconds = 0.0;
  double lr = 0.0;
  double elapsed_seconds = 0.0;  // wall time of earlier sessions of this run
  std::vector<EpochMetrics> history;

  void start_next_epoch() {
    ++epoch;
    step_in_epoch = 0;
    loss_sum = 0.0;
    correct = seen = 0;
    data_seconds = compute_seconds = 0.0;
  }
};

nlohmann::json to_json(const EpochMetrics& m);
EpochMetrics epoch_metrics_from_json(const nlohmann::json& j);

CheckpointData capture_training_state(const TrainConfig& config, const Graph& graph,
                                      const Optimizer& optimizer, const TrainProgress& progress,
                                      const Normalization& norm, const Dataset& dataset);

// Checks that the checkpoint belongs to the same run (same model, data, hyperparameters) and
// loads it into the graph, optimizer and progress. Throws InputError naming what differs.
void restore_training_state(const CheckpointData& ck, const TrainConfig& config, Graph& graph,
                            Optimizer& optimizer, TrainProgress& progress);

// Copies device tensors into a checkpoint, and back (checking names, shapes and types).
HostTensor download_tensor(Backend& backend, const std::string& name, const Tensor& t);
void upload_tensor(Backend& backend, const CheckpointData& ck, const std::string& name,
                   const Tensor& t, const std::string& path);

}  // namespace tb
