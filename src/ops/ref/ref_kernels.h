// The plain-loop reference kernels: the oracle every other backend is tested against.
//
// Free functions in forward/backward pairs over raw, contiguous pointers; each argument's
// shape is in the comment. T is float or double (explicit instantiations in the .cpp files);
// the optimizer updates are float only, as the trainer keeps fp32 master weights.
//
// Conventions shared by every backward kernel:
//  - dx may be null: the input needs no gradient (the first layer's input), so it is skipped.
//  - accumulate_dx false overwrites dx, true adds to it (one activation feeding two layers).
//  - parameter gradients (dw, dbias, dgamma, dbeta) are always overwritten.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/batchnorm.h"
#include "ops/conv2d.h"
#include "ops/dropout.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/optimizer_update.h"
#include "ops/pool.h"

namespace tb::ref {

// --- conv2d (conv2d_ref.cpp) -------------------------------------------------------------
// x[N,C,H,W], w[K,C,k,k], bias[K] (null if !p.has_bias) -> y[N,K,P,Q]
template <class T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y);
// dy[N,K,P,Q] -> dx[N,C,H,W] (may be null), dw[K,C,k,k], dbias[K] (null if !p.has_bias)
template <class T>
void conv2d_backward(const Conv2dParams& p, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* dbias, bool accumulate_dx);

// --- linear (linear_ref.cpp) -------------------------------------------------------------
// x[N,in], w[out,in], bias[out] (null if !p.has_bias) -> y[N,out]
template <class T>
void linear_forward(const LinearParams& p, const T* x, const T* w, const T* bias, T* y);
// dy[N,out] -> dx[N,in] (may be null), dw[out,in], dbias[out] (null if !p.has_bias)
template <class T>
void linear_backward(const LinearParams& p, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* dbias, bool accumulate_dx);

// --- elementwise (activation_ref.cpp) ----------------------------------------------------
// x[n] -> y[n] = max(x, 0)
template <class T>
void relu_forward(int64_t n, const T* x, T* y);
// y[n] (the forward output), dy[n] -> dx[n] = dy where y > 0, else 0
template <class T>
void relu_backward(int64_t n, const T* y, const T* dy, T* dx, bool accumulate_dx);
// a[n], b[n] -> y[n] = a + b
template <class T>
void add_forward(int64_t n, const T* a, const T* b, T* y);
// src[n] -> dst[n] = src (or dst += src when accumulate)
template <class T>
void copy(int64_t n, const T* src, T* dst, bool accumulate);

// --- pooling (pool_ref.cpp) --------------------------------------------------------------
// x[N,C,H,W] -> y[N,C,P,Q]; padded cells never win the max.
template <class T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y);
// x[N,C,H,W], dy[N,C,P,Q] -> dx[N,C,H,W]: each window's gradient goes to its first maximum
// (row-major scan, strict >), recomputed from x.
template <class T>
void max_pool2d_backward(const Pool2dParams& p, const T* x, const T* dy, T* dx, bool accumulate_dx);
// x[N,C,H,W] -> y[N,C,P,Q]; the divisor is kernel*kernel, padded cells included.
template <class T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y);
// dy[N,C,P,Q] -> dx[N,C,H,W]
template <class T>
void avg_pool2d_backward(const Pool2dParams& p, const T* dy, T* dx, bool accumulate_dx);
// x[N,C,H,W] -> y[N,C]
template <class T>
void global_avg_pool_forward(const GlobalPoolParams& p, const T* x, T* y);
// dy[N,C] -> dx[N,C,H,W]
template <class T>
void global_avg_pool_backward(const GlobalPoolParams& p, const T* dy, T* dx, bool accumulate_dx);

// --- batch norm (batchnorm_ref.cpp) ------------------------------------------------------
// x[N,C,spatial], gamma[C], beta[C] -> y[N,C,spatial], save_mean[C], save_invstd[C];
// running_mean[C], running_var[C] updated in place (unbiased variance, PyTorch's rule).
template <class T>
void batch_norm_forward_train(const BatchNormParams& p, const T* x, const T* gamma, const T* beta,
                              T* y, T* running_mean, T* running_var, T* save_mean, T* save_invstd);
// x[N,C,spatial], gamma[C], beta[C], running_mean[C], running_var[C] -> y[N,C,spatial]
template <class T>
void batch_norm_forward_eval(const BatchNormParams& p, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T* y);
// x[N,C,spatial], gamma[C], save_mean[C], save_invstd[C], dy[N,C,spatial]
//   -> dx[N,C,spatial] (may be null), dgamma[C], dbeta[C]
template <class T>
void batch_norm_backward(const BatchNormParams& p, const T* x, const T* gamma, const T* save_mean,
                         const T* save_invstd, const T* dy, T* dx, T* dgamma, T* dbeta,
                         bool accumulate_dx);

// --- dropout (dropout_ref.cpp) -----------------------------------------------------------
// x[numel] -> y[numel] = x * keep / (1 - p), mask[numel] = keep (1 kept, 0 dropped)
template <class T>
void dropout_forward(const DropoutParams& p, const T* x, T* y, uint8_t* mask);
// dy[numel], mask[numel] -> dx[numel] = dy * mask / (1 - p)
template <class T>
void dropout_backward(const DropoutParams& p, const T* dy, const uint8_t* mask, T* dx,
                      bool accumulate_dx);

// --- softmax cross-entropy (loss_ref.cpp) ------------------------------------------------
// logits[N,classes], labels[N] -> probs[N,classes] (softmax), losses[N] (per sample)
template <class T>
void cross_entropy_forward(const CrossEntropyParams& p, const T* logits, const int32_t* labels,
                           T* probs, T* losses);
// probs[N,classes], labels[N] -> dlogits[N,classes] = (probs - target) / N, the gradient of
// the batch-mean loss.
template <class T>
void cross_entropy_backward(const CrossEntropyParams& p, const T* probs, const int32_t* labels,
                            T* dlogits);

// --- optimizer updates (optimizer_ref.cpp), in place, float only -------------------------
// param[n], grad[n], momentum_buffer[n] (unused when p.momentum == 0)
void sgd_update(const SgdUpdateParams& p, float* param, const float* grad, float* momentum_buffer);
// Clip by global norm over grads[i][0..sizes[i]) (kClipNormEpsilon's rule); the sum of
// squares is taken in double, in order. Returns the norm before clipping.
double clip_grad_norm(float max_norm, float* const* grads, const int64_t* sizes, size_t count);
// param[n], grad[n], exp_avg[n], exp_avg_sq[n]
void adam_update(const AdamUpdateParams& p, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq);

namespace detail {
// sum_i a[i] * b[i * b_stride], shared by the conv and linear kernels. Float sums are not
// reassociated without -ffast-math, so the contiguous case keeps eight independent partial
// sums, which GCC maps onto SIMD lanes.
template <class T>
inline T dot(const T* a, const T* b, int64_t n, int64_t b_stride = 1) {
  T sum = 0;
  int64_t i = 0;
  if (b_stride == 1) {
    constexpr int kLanes = 8;
    T lanes[kLanes] = {};
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) lanes[j] += a[i + j] * b[i + j];
    for (int j = 0; j < kLanes; ++j) sum += lanes[j];
  }
  for (; i < n; ++i) sum += a[i] * b[i * b_stride];
  return sum;
}
}  // namespace detail

}  // namespace tb::ref
