// One training step of a Classifier (forward, loss, backward, optimizer update), in the two
// forms the trainer and the benchmarks use:
//  - host-driven, for every backend: the batch is set from the host, the loss comes back
//    every step, the learning rate is an argument;
//  - device-driven, for GPU backends (GpuStepControl): the step is a fixed sequence of
//    launches that reads its per-step scalars (step number, learning rate, momentum, loss
//    scale) from device memory, never waits for the host and allocates nothing, so it is
//    captured once as a CUDA graph and replayed (or, with graphs off, enqueued each time).
//    Loss and accuracy go to a device array of per-step slots read back rarely; a NaN shows
//    there with its exact step.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "train/classifier.h"
#include "train/optimizer.h"

namespace tb {

class GpuStepControl;

// The activation dtype of a --precision value (fp32, bf16, fp16); throws InputError otherwise.
DType precision_dtype(const std::string& precision);

struct StepStats {
  double loss_sum = 0;  // over the step's items
  int64_t correct = 0;
};

class TrainStep {
 public:
  TrainStep(Classifier& model, Optimizer& optimizer, uint64_t seed);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // ---- host-driven ---------------------------------------------------------------------
  // For the batch already set in the model: returns the mean loss; predictions of the
  // forward pass are available from the model until the next step.
  double host_step(int n, int64_t global_step, float lr, const float* momentum);

  // ---- device-driven -------------------------------------------------------------------
  // The backend's GPU control, or null (then only host_step is available).
  static GpuStepControl* gpu_control(Backend& backend);
  bool device_capable() const { return gpu_ != nullptr; }

  struct DeviceOptions {
    bool cuda_graph = true;          // capture once per batch size and replay
    bool dynamic_loss_scale = false; // fp16
    float initial_loss_scale = 65536.0f;
    bool gather = false;             // the batch comes from the GPU-resident dataset
    bool augment = false;
    int crop_pad = 4;
    bool flip = true;
  };
  // lr[i] and momentum[i] for global steps first_step + i; stats for `slots` steps from
  // first_step on are kept on the device. Allocates (call before the first step).
  void start_device(const std::vector<float>& lr, const std::vector<float>& momentum,
                    int64_t first_step, int64_t slots, const DeviceOptions& options);
  // Runs one step on a batch of n (n <= the model's batch): the first step of each n runs
  // uncaptured (it sets up algorithms and weight copies), the second is captured, later ones
  // replay. Without graphs every step is enqueued.
  void device_step(int n, int full_batch);
  // Per-step statistics of steps [from, to) (global step numbers); waits for the device.
  std::vector<StepStats> read_stats(int64_t from, int64_t to);
  // Brings the host optimizer's step count up to the device's (after device steps).
  void sync_optimizer();
  // Device-side counters (step, optimizer steps, loss scale, skipped updates).
  float loss_scale();
  int32_t skipped_updates();

 private:
  void enqueue(int n, int full_batch);

  Classifier& model_;
  Optimizer& optimizer_;
  uint64_t seed_;
  GpuStepControl* gpu_ = nullptr;
  DeviceOptions options_;
  int64_t first_step_ = 0, slots_ = 0;
  void* stats_ = nullptr;  // float2 [slots]
  std::set<int> warmed_;
  std::map<int, int> graphs_;  // batch size -> captured graph
};

}  // namespace tb
