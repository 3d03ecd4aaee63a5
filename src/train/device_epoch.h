// The trainer's epoch loop for GPU backends: the batch is gathered on the GPU from the
// resident dataset, each step is a replayed CUDA graph (or enqueued with --no-graph), and the
// host only launches steps. Loss and accuracy come back from the device's per-step slots at
// a few points (checkpoints, progress lines, a stop, the epoch's end); a non-finite loss is
// reported there with its exact step.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "data/dataset.h"
#include "train/checkpoint_state.h"
#include "train/train_step.h"

namespace tb {

class GpuStepControl;

struct DeviceEpochHooks {
  std::function<bool()> should_stop;               // checked before every step
  std::function<void(int64_t)> on_step;             // after every step (may be empty)
  std::function<bool(int64_t)> checkpoint_due;      // after a step: save now?
  std::function<void()> save_periodic;              // called when checkpoint_due says so
  std::function<void(const TrainProgress&)> progress;  // a progress line (may be empty)
  std::function<std::string()> last_good_checkpoint;   // for the divergence message
  // When set, the first two steps of the session are timed alone (the device synchronised
  // around them) and their seconds appended here: the first sets up algorithms and loads
  // kernels, the second is captured as a CUDA graph; later steps replay.
  std::vector<double>* first_step_seconds = nullptr;
};

struct DeviceEpochSetup {
  const Subset* train = nullptr;
  int batch = 0;
  int64_t steps_per_epoch = 0, total_steps = 0;
  uint64_t seed = 0;
  const ScheduleConfig* schedule = nullptr;
  // Batches streamed from pinned host memory (double-buffered) instead of gathered from a
  // GPU-resident copy of the dataset.
  bool streamed = false;
};

// Uploads the training split's dataset and starts the device schedule for steps
// [first_step, total_steps). lr_at / momentum_at give each step's values.
void start_device_training(TrainStep& step, GpuStepControl& gpu, const DeviceEpochSetup& setup,
                           const TrainStep::DeviceOptions& options, const Normalization& norm,
                           int64_t first_step, const std::function<float(int64_t)>& lr_at,
                           const std::function<float(int64_t)>& momentum_at);

// Runs what is left of epoch p.epoch. Returns false if stopped early (should_stop). Updates
// p's counters, loss and accuracy sums; throws DivergedError at a non-finite loss.
bool run_device_epoch(TrainStep& step, GpuStepControl& gpu, const DeviceEpochSetup& setup,
                      TrainProgress& p, const DeviceEpochHooks& hooks);

}  // namespace tb
