// The training loop: data, model, optimizer and schedule put together, with evaluation every
// epoch, checkpoints that resume exactly, and a clean stop on Ctrl-C or a diverging loss.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "train/train_config.h"

namespace tb {

class Classifier;

// A test image with the model's prediction, kept in results so a report can show examples.
struct PredictionSample {
  int64_t index = 0;  // position in the evaluated split
  int32_t label = 0, predicted = 0;
  std::vector<uint8_t> pixels;  // C x H x W, as stored in the dataset
};
inline constexpr int kResultSamples = 32;  // test images kept with predictions per run

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;
  int64_t count = 0;
  std::vector<int64_t> confusion;  // classes x classes, row = true label, column = predicted
  std::vector<PredictionSample> samples;  // the first few items (test split: kResultSamples)
};

struct EpochMetrics {
  int epoch = 0;  // 1-based
  int64_t steps = 0, images = 0;
  double lr = 0.0;  // at the epoch's last step
  double train_loss = 0.0, train_accuracy = 0.0;
  double val_loss = 0.0, val_accuracy = 0.0;
  double data_seconds = 0.0, compute_seconds = 0.0;  // training only, evaluation excluded
  double eval_seconds = 0.0;
  double images_per_second = 0.0;
  double elapsed_seconds = 0.0;  // since the run began (across resumes)
};

struct TrainResult {
  std::string status = "completed";  // completed, interrupted, failed
  std::string error;
  std::vector<EpochMetrics> epochs;
  EvalResult test;
  bool tested = false;
  int64_t steps = 0, images = 0;
  double train_seconds = 0.0;  // data + compute of training steps
  double total_seconds = 0.0;
  nlohmann::json data;   // dataset source and split sizes
  nlohmann::json model;  // name, parameters, FLOPs, memory
  std::vector<std::string> class_names;
};

// Thrown when the loss becomes NaN or infinite: training stops at that step.
struct DivergedError : InputError {
  using InputError::InputError;
};

class Trainer {
 public:
  Trainer(TrainConfig config, std::ostream& log);
  ~Trainer();

  // Runs the whole configuration. Throws InputError for bad input and DivergedError for a
  // non-finite loss (after recording it in the result); returns normally when completed or
  // interrupted (see status).
  TrainResult run();

  // Asks the loop to stop at the next step boundary (saving a checkpoint if configured).
  void request_stop() { stop_requested_ = true; }
  // Called after every optimizer step with the global step count (tests use it to interrupt).
  std::function<void(int64_t)> on_step;

  // The trained parameters and persistent buffers, copied to the host (for tests).
  std::vector<float> parameters_host() const;

  const TrainResult& result() const { return result_; }
  // The trained model (after run()), e.g. to measure its inference speed.
  const Classifier& model() const;

 private:
  struct State;
  EvalResult evaluate(const Subset& subset, int keep_samples = 0);

  TrainConfig config_;
  std::ostream& log_;
  bool stop_requested_ = false;
  TrainResult result_;
  std::unique_ptr<State> state_;
};

}  // namespace tb
