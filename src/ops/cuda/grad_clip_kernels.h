// Launchers of gradient clipping by global norm (grad_clip.cu): per-tensor partial sums of
// squares, one finishing block that turns them into the clip factor on the device, and a
// scaling pass. Nothing is read back to the host, so a captured step clips at every replay.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/gpu_step_state.h"

namespace tb::gpu {

// How many partial sums sum_squares writes for n elements (a fixed function of n, so the
// reduction order depends on the shapes only).
int clip_partial_count(int64_t n);
// partials[0 .. clip_partial_count(n)) <- sums of grad[i]^2 over fixed slices of grad[n].
void clip_sum_squares(const float* grad, int64_t n, double* partials, cudaStream_t s);
// *factor <- min(1, max_norm / (norm + eps)), norm = sqrt(sum of partials[count]) divided by
// state->loss_scale when a state is given; NaN when the norm is NaN (as PyTorch).
void clip_factor(const double* partials, int count, float max_norm, const GpuStepState* state,
                 float* factor, cudaStream_t s);
// grad[n] *= *factor.
void clip_scale(float* grad, int64_t n, const float* factor, cudaStream_t s);

}  // namespace tb::gpu
