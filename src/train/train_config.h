// Everything a training run is configured by. The CLI fills it; checkpoints and results
// carry it as JSON.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/optimizer.h"

namespace tb {

struct TrainConfig {
  // What to train on what.
  std::string model = "simple_cnn";
  std::string dataset = "mnist";
  std::string data_dir;  // "" = $TRAINBENCH_DATA or ./data
  std::string impl = "ref";
  int threads = 0;       // 0 = all cores (backends that use threads)
  std::string precision = "fp32";
  bool cuda_graph = true;  // GPU backends: replay each step as a captured CUDA graph
  // GPU backends: where the training images live. auto: on the GPU when they take at most
  // half of its free memory, else streamed; resident; stream (from pinned host memory,
  // double-buffered).
  std::string gpu_data = "auto";

  // How long.
  int epochs = 1;
  int batch_size = 64;
  int eval_batch_size = 256;
  int64_t limit = 0;       // use only the first N training (and validation/test) images
  int64_t max_steps = 0;   // stop after this many optimizer steps in total

  // Data handling.
  std::vector<double> split;  // empty = dataset's own train/test + validation_fraction
  double validation_fraction = 0.1;  // of the train file, held out (without --split)
  std::string augment = "auto";  // auto (on for CIFAR-10), on, off
  uint64_t seed = 1;

  // Optimisation.
  OptimizerConfig optimizer;
  double lr = 0.0;  // 0 = the optimizer's default (sgd 0.05, adam/adamw 0.001)
  std::string schedule = "constant";
  int64_t warmup_steps = 0;
  double one_cycle_pct_start = 0.3;  // one-cycle: the share of the run spent rising to the peak
  double step_gamma = 0.1;
  int64_t step_size_epochs = 0;  // step schedule: every N epochs (0 = a third of the run)
  float label_smoothing = 0.0f;

  // Outputs.
  std::string checkpoint;         // path; saved every epoch, every N steps and on Ctrl-C
  int64_t checkpoint_every = 0;   // steps; 0 = only at epoch ends
  bool resume = false;
  std::string results;            // JSON-lines file to append this run to
  bool progress = true;           // in-epoch progress line on a terminal
};

nlohmann::json to_json(const TrainConfig& c);
// The fields that must match for --resume to continue the same run, with their values.
nlohmann::json run_identity(const TrainConfig& c);
double effective_lr(const TrainConfig& c);

}  // namespace tb
