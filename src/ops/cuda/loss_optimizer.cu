// Softmax cross-entropy, the SGD and Adam updates (PyTorch's formulas, as the ref backend
// has them), and the tiny kernels that keep a captured training step's scalars on the device.
#include <cmath>

#include "ops/cuda/gpu_types.cuh"
#include "ops/cuda/loss_optimizer_kernels.h"
#include "ops/cuda/pdl.cuh"

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
  pdl_begin();
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
  pdl_begin();
  const int64_t total = int64_t(p.N) * p.classes;
  const float scale = (state ? state->loss_scale : 1.0f) / float(p.N);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int n = int(i / p.classes), j = int(i % p.classes);
    dlogits[i] = from_float<T>((probs[i] - target_of(p, labels[n], j)) * scale);
  }
}

// The optimizers walk the parameters four floats at a time (a training step updates the
// whole 16-byte aligned parameter block in one launch; a scalar tail takes the rest), with
// restrict pointers so that a thread's loads are issued together rather than one element's
// read-modify-write after another.
constexpr int kOptimizerThreads = 256;

template <class Update>
__device__ __forceinline__ void for_each_param(int64_t n, bool vector, Update update) {
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t vectors = vector ? n / 4 : 0;
  for (int64_t v = first; v < vectors; v += stride) update.template at<4>(v * 4);
  for (int64_t i = vectors * 4 + first; i < n; i += stride) update.template at<1>(i);
}

template <int kWidth>
struct Lanes {
  float v[kWidth];
};
template <int kWidth>
__device__ __forceinline__ Lanes<kWidth> load(const float* __restrict__ p) {
  Lanes<kWidth> r;
  if constexpr (kWidth == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    r.v[0] = q.x, r.v[1] = q.y, r.v[2] = q.z, r.v[3] = q.w;
  } else {
    r.v[0] = *p;
  }
  return r;
}
template <int kWidth>
__device__ __forceinline__ void store(float* __restrict__ p, const Lanes<kWidth>& r) {
  if constexpr (kWidth == 4)
    *reinterpret_cast<float4*>(p) = make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
  else
    *p = r.v[0];
}

struct SgdElements {
  SgdUpdateParams p;
  float lr, momentum, unscale;
  float* __restrict__ param;
  const float* __restrict__ grad;
  float* __restrict__ buf;  // null without momentum
  template <int kWidth>
  __device__ __forceinline__ void at(int64_t i) const {
    Lanes<kWidth> w = load<kWidth>(param + i);
    const Lanes<kWidth> g0 = load<kWidth>(grad + i);
    Lanes<kWidth> b{};
    if (buf) b = load<kWidth>(buf + i);
#pragma unroll
    for (int k = 0; k < kWidth; ++k) {
      float g = g0.v[k] * unscale;
      if (p.weight_decay != 0.0f) g += p.weight_decay * w.v[k];
      if (buf) {
        b.v[k] = momentum * b.v[k] + g;
        g = p.nesterov ? g + momentum * b.v[k] : b.v[k];
      }
      w.v[k] -= lr * g;
    }
    if (buf) store<kWidth>(buf + i, b);
    store<kWidth>(param + i, w);
  }
};

__global__ void sgd_kernel(SgdUpdateParams p, float* param, const float* grad, float* buf,
                           bool vector, const GpuStepState* state) {
  pdl_begin();
  if (state && state->nonfinite) return;
  const SgdElements e{p,
                      state ? state->lr : p.lr,
                      state ? state->momentum : p.momentum,
                      state ? 1.0f / state->loss_scale : 1.0f,
                      param,
                      grad,
                      buf};
  for_each_param(p.n, vector, e);
}

// One launch over a graph's gradient blocks: blockIdx.y is the span, and the x blocks
// stride through it as sgd_kernel's do through its one array.
__global__ void sgd_spans_kernel(SgdUpdateParams p, SgdSpanTable t, const GpuStepState* state) {
  pdl_begin();
  if (state && state->nonfinite) return;
  const int s = blockIdx.y;
  const bool vector =
      aligned16(t.param[s]) && aligned16(t.grad[s]) && (!t.buf[s] || aligned16(t.buf[s]));
  const SgdElements e{p,
                      state ? state->lr : p.lr,
                      state ? state->momentum : p.momentum,
                      state ? 1.0f / state->loss_scale : 1.0f,
                      t.param[s],
                      t.grad[s],
                      t.buf[s]};
  for_each_param(t.n[s], vector, e);
}

__device__ __forceinline__ float lerp_torch(float start, float end, float weight) {
  return weight < 0.5f ? start + weight * (end - start) : end - (end - start) * (1.0f - weight);
}

struct AdamElements {
  AdamUpdateParams p;
  float unscale, step_size, bias_correction2_sqrt, decay_factor, one_minus_beta1,
      one_minus_beta2;
  float* __restrict__ param;
  const float* __restrict__ grad;
  float* __restrict__ exp_avg;
  float* __restrict__ exp_avg_sq;
  template <int kWidth>
  __device__ __forceinline__ void at(int64_t i) const {
    Lanes<kWidth> w = load<kWidth>(param + i);
    const Lanes<kWidth> g0 = load<kWidth>(grad + i);
    Lanes<kWidth> m = load<kWidth>(exp_avg + i);
    Lanes<kWidth> v = load<kWidth>(exp_avg_sq + i);
#pragma unroll
    for (int k = 0; k < kWidth; ++k) {
      float g = g0.v[k] * unscale;
      if (p.weight_decay != 0.0f) {
        if (p.decoupled_weight_decay)
          w.v[k] *= decay_factor;
        else
          g += p.weight_decay * w.v[k];
      }
      m.v[k] = lerp_torch(m.v[k], g, one_minus_beta1);
      v.v[k] = p.beta2 * v.v[k] + one_minus_beta2 * g * g;
      const float denom = sqrtf(v.v[k]) / bias_correction2_sqrt + p.eps;
      w.v[k] = w.v[k] + (-step_size * m.v[k]) / denom;
    }
    store<kWidth>(exp_avg + i, m);
    store<kWidth>(exp_avg_sq + i, v);
    store<kWidth>(param + i, w);
  }
};

__global__ void adam_kernel(AdamUpdateParams p, float* param, const float* grad, float* exp_avg,
                            float* exp_avg_sq, bool vector, const GpuStepState* state) {
  pdl_begin();
  if (state && state->nonfinite) return;
  const float lr = state ? state->lr : p.lr;
  const float beta1 = state ? state->momentum : p.beta1;
  const double t = state ? double(state->optimizer_steps + 1) : double(p.step);
  const double bias_correction1 = 1.0 - pow(double(beta1), t);
  const double bias_correction2 = 1.0 - pow(double(p.beta2), t);
  const AdamElements e{p,
                       state ? 1.0f / state->loss_scale : 1.0f,
                       float(double(lr) / bias_correction1),
                       float(sqrt(bias_correction2)),
                       float(1.0 - double(lr) * double(p.weight_decay)),
                       float(1.0 - double(beta1)),
                       float(1.0 - double(p.beta2)),
                       param,
                       grad,
                       exp_avg,
                       exp_avg_sq};
  for_each_param(p.n, vector, e);
}

__global__ void begin_step_kernel(GpuStepState* st, const float* lr, const float* momentum,
                                  int64_t first_step, int64_t length) {
  pdl_begin();
  int64_t i = st->step - first_step;
  if (i >= length) i = length - 1;
  if (i < 0) i = 0;
  st->lr = lr[i];
  st->momentum = momentum[i];
  st->nonfinite = 0;
}

__global__ void check_gradients_kernel(const float* grad, int64_t n, GpuStepState* st) {
  pdl_begin();
  bool bad = false;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    bad |= !isfinite(grad[i]);
  if (__syncthreads_or(bad) && threadIdx.x == 0) st->nonfinite = 1;  // an int flag, not a sum
}

__global__ void end_step_kernel(GpuStepState* st) {
  pdl_begin();
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
  pdl_begin();
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
    launch_kernel(ce_forward_kernel<T>, blocks_for(p.N, warps), kThreads, 0, s, p, (const T*)logits,
                  labels, probs, losses);
  });
}

void cross_entropy_backward(DType t, const CrossEntropyParams& p, const float* probs,
                            const int32_t* labels, void* dlogits, const GpuStepState* state,
                            cudaStream_t s) {
  const int64_t n = int64_t(p.N) * p.classes;
  if (n == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(ce_backward_kernel<T>, blocks_for(n, kThreads), kThreads, 0, s, p, probs, labels,
                  (T*)dlogits, state);
  });
}

void sgd_update(const SgdUpdateParams& p, float* param, const float* grad, float* momentum_buffer,
                const GpuStepState* state, cudaStream_t s) {
  if (p.n == 0) return;
  float* buf = p.momentum != 0.0f ? momentum_buffer : nullptr;
  const bool vector = aligned16(param) && aligned16(grad) && (!buf || aligned16(buf));
  launch_kernel(sgd_kernel, blocks_for(vector ? p.n / 4 : p.n, kOptimizerThreads, 4096),
                kOptimizerThreads, 0, s, p, param, grad, buf, vector, state);
}

void sgd_update_spans(const SgdUpdateParams& p, const SgdSpanTable& spans,
                      const GpuStepState* state, cudaStream_t s) {
  if (spans.count == 0) return;
  int64_t most = 0;
  for (int i = 0; i < spans.count; ++i) most = std::max(most, spans.n[i]);
  const dim3 grid(blocks_for(most / 4 + 1, kOptimizerThreads, 4096), unsigned(spans.count));
  launch_kernel(sgd_spans_kernel, grid, kOptimizerThreads, 0, s, p, spans, state);
}

void adam_update(const AdamUpdateParams& p, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq, const GpuStepState* state, cudaStream_t s) {
  if (p.n == 0) return;
  const bool vector =
      aligned16(param) && aligned16(grad) && aligned16(exp_avg) && aligned16(exp_avg_sq);
  launch_kernel(adam_kernel, blocks_for(vector ? p.n / 4 : p.n, kOptimizerThreads, 4096),
                kOptimizerThreads, 0, s, p, param, grad, exp_avg, exp_avg_sq, vector, state);
}

void begin_step(GpuStepState* state, const float* lr_schedule, const float* momentum_schedule,
                int64_t first_step, int64_t schedule_length, cudaStream_t s) {
  launch_kernel(begin_step_kernel, 1, 1, 0, s, state, lr_schedule, momentum_schedule, first_step,
                schedule_length);
}

void check_gradients(const float* grad, int64_t n, GpuStepState* state, cudaStream_t s) {
  if (n == 0) return;
  launch_kernel(check_gradients_kernel, blocks_for(n, kThreads, 1024), kThreads, 0, s, grad, n,
                state);
}

void end_step(GpuStepState* state, cudaStream_t s) {
  launch_kernel(end_step_kernel, 1, 1, 0, s, state);
}

void record_step_stats(const float* losses, const float* probs, const int32_t* labels, int n,
                       int classes, const GpuStepState* state, int64_t first_step,
                       int64_t slots, float2* stats, cudaStream_t s) {
  launch_kernel(step_stats_kernel, 1, kThreads, 0, s, losses, probs, labels, n, classes, state,
                first_step, slots, stats);
}

}  // namespace tb::gpu
