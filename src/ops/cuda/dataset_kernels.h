// The GPU-resident dataset's batch gather (dataset.cu): the same normalisation, crop and flip
// as gather_batch() in data/batch.cpp, drawn from the same counter_uniform() values, written
// channels-last in the activation dtype straight into the graph's input.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"
#include "ops/cuda/gpu_step_state.h"

namespace tb::gpu {

constexpr int kMaxGatherChannels = 4;

struct GatherSpec {
  int C, H, W;
  int n;       // items in this batch
  int batch;   // items per full batch (positions advance by this per step)
  int crop_pad;  // 0: no crop
  bool flip;
  uint64_t seed;
  float scale[kMaxGatherChannels], bias[kMaxGatherChannels];  // x * scale + bias per channel
  // 0: `images`/`labels` hold the whole dataset, rows by item. 2: they hold two batch slots
  // streamed from the host, and step s of the epoch reads slot s % 2 (the item number still
  // seeds the augmentation, so both paths draw the same crops and flips).
  int stream_slots = 0;
};

// out[i] = dataset item order[(state->step - state->epoch_first_step) * batch + i] (streamed:
// row (step % 2) * batch + i of the slots).
void gather_batch(DType t, const GatherSpec& spec, const uint8_t* images, const int32_t* labels,
                  const int32_t* order, const GpuStepState* state, void* out,
                  int32_t* out_labels, cudaStream_t s);

}  // namespace tb::gpu
