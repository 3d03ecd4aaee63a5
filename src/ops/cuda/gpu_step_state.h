// The per-step scalars that kernels read from device memory when a training step runs as a
// captured CUDA graph: one capture serves every step, so whatever changes from step to step
// (the step number for dropout streams, the learning rate and momentum of the schedule,
// Adam's step count, the fp16 loss scale) must live on the device, not in kernel arguments.
// Plain data: shared by .cu and .cpp files.
#pragma once
#include <cstdint>

namespace tb::gpu {

struct GpuStepState {
  int64_t step = 0;             // global training step now running (0-based)
  int64_t optimizer_steps = 0;  // updates done before this step (Adam's t is this + 1)
  float lr = 0.0f;              // this step's learning rate
  float momentum = 0.0f;        // this step's SGD momentum or Adam beta1
  float loss_scale = 1.0f;      // multiplies the loss gradient (fp16 dynamic scaling)
  int32_t nonfinite = 0;        // a gradient of this step is inf or NaN: skip the update
  int32_t good_steps = 0;       // finite steps since the scale last changed
  int32_t dynamic_scaling = 0;  // 1: halve the scale on overflow, double it after a run
  int32_t skipped_updates = 0;  // updates skipped for overflow, over the whole run
  int64_t epoch = 0;             // for the data gather's augmentation draws
  int64_t epoch_first_step = 0;  // global step at which this epoch's order began
};

// Loss-scale policy of PyTorch's GradScaler: halve on overflow, double after this many
// finite steps in a row.
constexpr int32_t kLossScaleGrowthInterval = 2000;

}  // namespace tb::gpu
