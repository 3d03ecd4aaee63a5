// Launchers of the loss, optimizer and per-step bookkeeping kernels (loss_optimizer.cu).
// With a GpuStepState pointer the kernels take the step's scalars (learning rate, momentum,
// Adam's step, the loss scale) from device memory instead of the params, so a captured step
// replays correctly at every step; with nullptr they use the params as given.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"
#include "ops/cuda/gpu_step_state.h"
#include "ops/loss.h"
#include "ops/optimizer_update.h"

namespace tb::gpu {

// logits[N,classes] (activation dtype) -> probs[N,classes], losses[N] (fp32). An invalid
// label gives a NaN loss (a kernel cannot throw; the NaN check reports it).
void cross_entropy_forward(DType t, const CrossEntropyParams& p, const void* logits,
                           const int32_t* labels, float* probs, float* losses, cudaStream_t s);
// dlogits = (probs - target) / N, times state->loss_scale when a state is given.
void cross_entropy_backward(DType t, const CrossEntropyParams& p, const float* probs,
                            const int32_t* labels, void* dlogits, const GpuStepState* state,
                            cudaStream_t s);

void sgd_update(const SgdUpdateParams& p, float* param, const float* grad, float* momentum_buffer,
                const GpuStepState* state, cudaStream_t s);
// Up to kMaxSgdSpans spans of one update in one launch (blockIdx.y picks the span).
constexpr int kMaxSgdSpans = 16;
struct SgdSpanTable {
  int count = 0;
  float* param[kMaxSgdSpans];
  const float* grad[kMaxSgdSpans];
  float* buf[kMaxSgdSpans];  // null without momentum
  int64_t n[kMaxSgdSpans];
};
void sgd_update_spans(const SgdUpdateParams& p, const SgdSpanTable& spans,
                      const GpuStepState* state, cudaStream_t s);
void adam_update(const AdamUpdateParams& p, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq, const GpuStepState* state, cudaStream_t s);

// Start of a step: lr and momentum <- schedule[step - first_step] (clamped to the last entry).
void begin_step(GpuStepState* state, const float* lr_schedule, const float* momentum_schedule,
                int64_t first_step, int64_t schedule_length, cudaStream_t s);
// Sets state->nonfinite if any of grad[n] is inf or NaN (fp16 loss scaling).
void check_gradients(const float* grad, int64_t n, GpuStepState* state, cudaStream_t s);
// End of a step: adjusts the loss scale, counts the update, advances the step.
void end_step(GpuStepState* state, cudaStream_t s);
// Per-step statistics into slot (state->step - first_step): stats[slot] = {sum of losses,
// correct predictions}, from losses[n] and probs[n,classes] (argmax, first maximum wins).
void record_step_stats(const float* losses, const float* probs, const int32_t* labels, int n,
                       int classes, const GpuStepState* state, int64_t first_step,
                       int64_t slots, float2* stats, cudaStream_t s);

}  // namespace tb::gpu
