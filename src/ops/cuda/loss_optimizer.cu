// Softmax cross-entropy, the SGD and Adam updates (PyTorch's formulas, as the ref backend
// has them), and the tiny kernels that keep a captured training step's scalars on the device.
#include <cmath>

#include "ops/cuda/gpu_types.cuh"
#include "ops/cuda/loss_optimizer_kernels.h"

namespace tb::gpu {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float target_of(const CrossEntropyParams& p, int32_t label, int j) {
  const float eps = p.label_smoothing;
  return (j == label ? 1.0f - eps : 0.0f) + eps / float(p.classes);
}

// One warp per item.
template <class T>
__global__ void ce_forward_kernel(CrossEntropyParams p, const T* logits, const int32_t* labels,
                                  float* probs, float* losses) {
  const int lane = threadIdx.x & 31;
  const int warps = blockDim.x / 32;
  for (int n = blockIdx.x * warps + threadIdx.x / 32; n < p.N; n += gridDim.x * warps) {
    const T* row = logits + int64_t(n) * p.classes;
    float mx = -INFINITY;
    for (int j = lane; j < p.classes; j += 32) mx = fmaxf(mx, to_float(row[j]));
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.0f;
    for (int j = lane; j < p.classes; j += 32) sum += expf(to_float(row[j]) - mx);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float log_sum = logf(sum);
    const int32_t label = labels[n];
    const bool valid = label >= 0 && label < p.classes;
    float loss = 0.0f;
    for (int j = lane; j < p.classes; j += 32) {
      const float log_prob = to_float(row[j]) - mx - log_sum;
      probs[int64_t(n) * p.classes + j] = expf(log_prob);
      loss -= target_of(p, label, j) * log_prob;
    }
    for (int o = 16; o > 0; o >>= 1) loss += __shfl_xor_sync(0xffffffffu, loss, o);
    if (lane == 0) losses[n] = valid ? loss : NAN;
  }
}

template <class T>
__global__ void ce_backward_kernel(CrossEntropyParams p, const float* probs, const int32_t* labels,
                                   T* dlogits, const GpuStepState* state) {
  const int64_t total = int64_t(p.N) * p.classes;
  const float scale = (state ? state->loss_scale : 1.0f) / float(p.N);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int n = int(i / p.classes), j = int(i % p.classes);
    dlogits[i] = from_float<T>((probs[i] - target_of(p, labels[n], j)) * scale);
  }
}

__global__ void sgd_kernel(SgdUpdateParams p, float* param, const float* grad, float* buf,
                           const GpuStepState* state) {
  if (state && state->nonfinite) return;
  const float lr = state ? state->lr : p.lr;
  const float momentum = state ? state->momentum : p.momentum;
  const float unscale = state ? 1.0f / state->loss_scale : 1.0f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float g = grad[i] * unscale;
    if (p.weight_decay != 0.0f) g += p.weight_decay * param[i];
    if (buf) {
      float b = momentum * buf[i] + g;
      buf[i] = b;
      g = p.nesterov ? g + momentum * b : b;
    }
    param[i] -= lr * g;
  }
}

__device__ __forceinline__ float lerp_torch(float start, float end, float weight) {
  return weight < 0.5f ? start + weight * (end - start) : end - (end - start) * (1.0f - weight);
}

__global__ void adam_kernel(AdamUpdateParams p, float* param, const float* grad, float* exp_avg,
                            float* exp_avg_sq, const GpuStepState* state) {
  if (state && state->nonfinite) return;
  const float lr = state ? state->lr : p.lr;
  const float beta1 = state ? state->momentum : p.beta1;
  const double t = state ? double(state->optimizer_steps + 1) : double(p.step);
  const float unscale = state ? 1.0f / state->loss_scale : 1.0f;
  const double bias_correction1 = 1.0 - pow(double(beta1), t);
  const double bias_correction2 = 1.0 - pow(double(p.beta2), t);
  const float step_size = float(double(lr) / bias_correction1);
  const float bias_correction2_sqrt = float(sqrt(bias_correction2));
  const float decay_factor = float(1.0 - double(lr) * double(p.weight_decay));
  const float one_minus_beta1 = float(1.0 - double(beta1));
  const float one_minus_beta2 = float(1.0 - double(p.beta2));
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float g = grad[i] * unscale;
    float w = param[i];
    if (p.weight_decay != 0.0f) {
      if (p.decoupled_weight_decay)
        w *= decay_factor;
      else
        g += p.weight_decay * w;
    }
    const float m = lerp_torch(exp_avg[i], g, one_minus_beta1);
    const float v = p.beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const float denom = sqrtf(v) / bias_correction2_sqrt + p.eps;
    param[i] = w + (-step_size * m) / denom;
  }
}

__global__ void begin_step_kernel(GpuStepState* st, const float* lr, const float* momentum,
                                  int64_t first_step, int64_t length) {
  int64_t i = st->step - first_step;
  if (i >= length) i = length - 1;
  if (i < 0) i = 0;
  st->lr = lr[i];
  st->momentum = momentum[i];
  st->nonfinite = 0;
}

__global__ void check_gradients_kernel(const float* grad, int64_t n, GpuStepState* st) {
  bool bad = false;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    bad |= !isfinite(grad[i]);
  if (__syncthreads_or(bad) && threadIdx.x == 0) st->nonfinite = 1;  // an int flag, not a sum
}

__global__ void end_step_kernel(GpuStepState* st) {
  if (st->dynamic_scaling) {
    if (st->nonfinite) {
      st->loss_scale = fmaxf(st->loss_scale * 0.5f, 1.0f);
      st->good_steps = 0;
      st->skipped_updates += 1;
    } else if (++st->good_steps >= kLossScaleGrowthInterval) {
      st->loss_scale = fminf(st->loss_scale * 2.0f, 16777216.0f);
      st->good_steps = 0;
    }
  }
  if (!st->nonfinite) st->optimizer_steps += 1;
  st->step += 1;
}

// One block; a fixed-shape tree, so the sum does not depend on timing.
__global__ void step_stats_kernel(const float* losses, const float* probs, const int32_t* labels,
                                  int n, int classes, const GpuStepState* st, int64_t first_step,
                                  int64_t slots, float2* stats) {
  __shared__ float loss_sum[kThreads];
  __shared__ float correct[kThreads];
  float l = 0.0f, c = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    l += losses[i];
    const float* row = probs + int64_t(i) * classes;
    int best = 0;
    for (int j = 1; j < classes; ++j)
      if (row[j] > row[best]) best = j;
    c += best == labels[i] ? 1.0f : 0.0f;
  }
  loss_sum[threadIdx.x] = l;
  correct[threadIdx.x] = c;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) {
      loss_sum[threadIdx.x] += loss_sum[threadIdx.x + half];
      correct[threadIdx.x] += correct[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const int64_t slot = st->step - first_step;
    if (slot >= 0 && slot < slots) stats[slot] = make_float2(loss_sum[0], correct[0]);
  }
}

}  // namespace

void cross_entropy_forward(DType t, const CrossEntropyParams& p, const void* logits,
                           const int32_t* labels, float* probs, float* losses, cudaStream_t s) {
  if (p.N == 0) return;
  const int warps = kThreads / 32;
  TB_GPU_DISPATCH(t, T, {
    ce_forward_kernel<T><<<blocks_for(p.N, warps), kThreads, 0, s>>>(p, (const T*)logits, labels,
                                                                    probs, losses);
  });
  TB_CUDA_LAUNCH_CHECK();
}

void cross_entropy_backward(DType t, const CrossEntropyParams& p, const float* probs,
                            const int32_t* labels, void* dlogits, const GpuStepState* state,
                            cudaStream_t s) {
  const int64_t n = int64_t(p.N) * p.classes;
  if (n == 0) return;
  TB_GPU_DISPATCH(t, T, {
    ce_backward_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, s>>>(p, probs, labels, (T*)dlogits,
                                                                      state);
  });
  TB_CUDA_LAUNCH_CHECK();
}

void sgd_update(const SgdUpdateParams& p, float* param, const float* grad, float* momentum_buffer,
                const GpuStepState* state, cudaStream_t s) {
  if (p.n == 0) return;
  sgd_kernel<<<blocks_for(p.n, kThreads, 2048), kThreads, 0, s>>>(
      p, param, grad, p.momentum != 0.0f ? momentum_buffer : nullptr, state);
  TB_CUDA_LAUNCH_CHECK();
}

void adam_update(const AdamUpdateParams& p, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq, const GpuStepState* state, cudaStream_t s) {
  if (p.n == 0) return;
  adam_kernel<<<blocks_for(p.n, kThreads, 2048), kThreads, 0, s>>>(p, param, grad, exp_avg,
                                                                   exp_avg_sq, state);
  TB_CUDA_LAUNCH_CHECK();
}

void begin_step(GpuStepState* state, const float* lr_schedule, const float* momentum_schedule,
                int64_t first_step, int64_t schedule_length, cudaStream_t s) {
  begin_step_kernel<<<1, 1, 0, s>>>(state, lr_schedule, momentum_schedule, first_step,
                                    schedule_length);
  TB_CUDA_LAUNCH_CHECK();
}

void check_gradients(const float* grad, int64_t n, GpuStepState* state, cudaStream_t s) {
  if (n == 0) return;
  check_gradients_kernel<<<blocks_for(n, kThreads, 1024), kThreads, 0, s>>>(grad, n, state);
  TB_CUDA_LAUNCH_CHECK();
}

void end_step(GpuStepState* state, cudaStream_t s) {
  end_step_kernel<<<1, 1, 0, s>>>(state);
  TB_CUDA_LAUNCH_CHECK();
}

void record_step_stats(const float* losses, const float* probs, const int32_t* labels, int n,
                       int classes, const GpuStepState* state, int64_t first_step,
                       int64_t slots, float2* stats, cudaStream_t s) {
  step_stats_kernel<<<1, kThreads, 0, s>>>(losses, probs, labels, n, classes, state, first_step,
                                           slots, stats);
  TB_CUDA_LAUNCH_CHECK();
}

}  // namespace tb::gpu
