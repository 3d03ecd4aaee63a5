// The backend interface: one op set, implemented once per backend (ref, cpu, onednn, cuda,
// cudnn). Layers call these; kernels never see a layer. Every op takes a params struct and
// tensor views; shapes are given in the comments as [dims].
//
// Gradient convention: a backward op writes the gradient of its input with `accumulate`
// false (dx = ...) or adds to it with `accumulate` true (dx += ...), which the graph uses
// where one activation feeds several layers (residual connections). Parameter gradients are
// always overwritten: each parameter belongs to one layer.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/batchnorm.h"
#include "ops/conv2d.h"
#include "ops/dropout.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/optimizer_update.h"
#include "ops/pool.h"

namespace tb {

enum class OpKind {
  conv2d, linear, relu, max_pool2d, avg_pool2d, global_avg_pool, batch_norm, dropout, add,
  softmax_cross_entropy, sgd_update, adam_update, copy, batch_norm_relu,
  conv2d_relu, linear_relu  // conv2d / linear with Conv2dParams::relu / LinearParams::relu set
};
const char* op_name(OpKind op);

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  // Whether this backend runs `op` on tensors of type `dtype`.
  virtual bool supports(OpKind op, DType dtype) const = 0;

  // --- memory -------------------------------------------------------------------------
  // Memory from the backend's device. Counted, so tests can prove a step allocates nothing.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  size_t allocation_count() const { return allocation_count_; }
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill_zero(const Tensor& t) = 0;
  // Waits until all queued work has finished (a no-op on synchronous CPU backends).
  virtual void synchronize() {}
  // Called once a graph's whole backward pass has been issued, before anything reads its
  // parameter gradients: a backend that defers work on them (the cudnn backend converts its
  // filter gradients in one launch) issues it here. A no-op elsewhere.
  virtual void finish_backward() {}

  // --- device-side timing (the profiler) ------------------------------------------------
  // Backends that queue work on a device can time pieces of it where it runs: mark(i) records
  // timing point i in the work queue (no host synchronisation), and after synchronize(),
  // seconds_between(i, j) is the device time from point i to point j. Host clocks around a
  // synchronised piece would add a launch and a round trip to every piece. CPU backends run
  // ops synchronously, so a host clock is exact for them and they keep these defaults.
  virtual bool has_device_timer() const { return false; }
  virtual void mark(size_t /*point*/) {}
  virtual double seconds_between(size_t /*from*/, size_t /*to*/) { return 0.0; }

  // --- ops ----------------------------------------------------------------------------
  // x[N,C,H,W], w[K,C,k,k], bias[K] (undefined if !has_bias) -> y[N,K,P,Q]
  virtual void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w,
                              const Tensor& bias, const Tensor& y) = 0;
  // dy[N,K,P,Q] -> dx[N,C,H,W] (skipped if undefined), dw[K,C,k,k], dbias[K] (if has_bias)
  virtual void conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& w,
                               const Tensor& dy, const Tensor& dx, const Tensor& dw,
                               const Tensor& dbias, bool accumulate_dx) = 0;

  // x[N,in], w[out,in], bias[out] -> y[N,out]
  virtual void linear_forward(const LinearParams& p, const Tensor& x, const Tensor& w,
                              const Tensor& bias, const Tensor& y) = 0;
  virtual void linear_backward(const LinearParams& p, const Tensor& x, const Tensor& w,
                               const Tensor& dy, const Tensor& dx, const Tensor& dw,
                               const Tensor& dbias, bool accumulate_dx) = 0;

  // y = max(x, 0), any shape. Backward uses y (y > 0 exactly where x > 0).
  virtual void relu_forward(const Tensor& x, const Tensor& y) = 0;
  virtual void relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx,
                             bool accumulate_dx) = 0;

  // x[N,C,H,W] -> y[N,C,P,Q]
  virtual void max_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) = 0;
  virtual void max_pool2d_backward(const Pool2dParams& p, const Tensor& x, const Tensor& y,
                                   const Tensor& dy, const Tensor& dx, bool accumulate_dx) = 0;
  virtual void avg_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) = 0;
  virtual void avg_pool2d_backward(const Pool2dParams& p, const Tensor& dy, const Tensor& dx,
                                   bool accumulate_dx) = 0;
  // x[N,C,H,W] -> y[N,C]
  virtual void global_avg_pool_forward(const GlobalPoolParams& p, const Tensor& x,
                                       const Tensor& y) = 0;
  virtual void global_avg_pool_backward(const GlobalPoolParams& p, const Tensor& dy,
                                        const Tensor& dx, bool accumulate_dx) = 0;

  // Training mode: x[N,C,spatial], gamma[C], beta[C] -> y; saves the batch mean[C] and
  // 1/sqrt(var + eps)[C] for backward and updates running_mean[C], running_var[C].
  virtual void batch_norm_forward_train(const BatchNormParams& p, const Tensor& x,
                                        const Tensor& gamma, const Tensor& beta,
                                        const Tensor& y, const Tensor& running_mean,
                                        const Tensor& running_var, const Tensor& save_mean,
                                        const Tensor& save_invstd) = 0;
  virtual void batch_norm_forward_eval(const BatchNormParams& p, const Tensor& x,
                                       const Tensor& gamma, const Tensor& beta,
                                       const Tensor& running_mean, const Tensor& running_var,
                                       const Tensor& y) = 0;
  virtual void batch_norm_backward(const BatchNormParams& p, const Tensor& x,
                                   const Tensor& gamma, const Tensor& save_mean,
                                   const Tensor& save_invstd, const Tensor& dy,
                                   const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                   bool accumulate_dx) = 0;

  // Batch norm fused with the ReLU (and residual add) that follow it in residual networks:
  // y = relu(bn(x) + residual), residual[N,C,spatial] undefined for plain BN + ReLU. The
  // value of bn(x) (and of the sum) is rounded to y's type before the next step, as the
  // separate ops would store it, so the fused ops give the separate ops' results.
  // The defaults run the separate ops (batch_norm_relu_composed.cpp); GPU backends override
  // them with single passes.
  virtual void batch_norm_relu_forward_train(const BatchNormParams& p, const Tensor& x,
                                             const Tensor& gamma, const Tensor& beta,
                                             const Tensor& residual, const Tensor& y,
                                             const Tensor& running_mean,
                                             const Tensor& running_var, const Tensor& save_mean,
                                             const Tensor& save_invstd);
  virtual void batch_norm_relu_forward_eval(const BatchNormParams& p, const Tensor& x,
                                            const Tensor& gamma, const Tensor& beta,
                                            const Tensor& residual, const Tensor& running_mean,
                                            const Tensor& running_var, const Tensor& y);
  // g = dy where y > 0, else 0; dx, dgamma, dbeta from the batch-norm backward of g, and
  // dresidual = g (or += g) when defined. dy may be overwritten with g (the default does so,
  // as scratch: it is the fused node's own gradient, read by nothing after this call).
  // beta is the forward's: without a residual, y > 0 follows from x, gamma, beta and the
  // saved statistics, which lets a backend skip reading y (the GPU backends do).
  virtual void batch_norm_relu_backward(const BatchNormParams& p, const Tensor& x,
                                        const Tensor& gamma, const Tensor& beta,
                                        const Tensor& save_mean, const Tensor& save_invstd,
                                        const Tensor& y, const Tensor& dy, const Tensor& dx,
                                        const Tensor& dgamma, const Tensor& dbeta,
                                        const Tensor& dresidual, bool accumulate_dx,
                                        bool accumulate_dresidual);

  // Training-mode dropout; mask[numel] (u8) records the kept elements for backward.
  virtual void dropout_forward(const DropoutParams& p, const Tensor& x, const Tensor& y,
                               const Tensor& mask) = 0;
  virtual void dropout_backward(const DropoutParams& p, const Tensor& dy, const Tensor& mask,
                                const Tensor& dx, bool accumulate_dx) = 0;

  // y = a + b, same shapes.
  virtual void add_forward(const Tensor& a, const Tensor& b, const Tensor& y) = 0;
  // dst = src, or dst += src when accumulate. Same shapes (and numel); used by add's
  // backward, flatten and identity paths.
  virtual void copy(const Tensor& src, const Tensor& dst, bool accumulate) = 0;

  // logits[N,classes], labels[N] int32 -> probs[N,classes] (softmax), losses[N] per sample.
  virtual void cross_entropy_forward(const CrossEntropyParams& p, const Tensor& logits,
                                     const Tensor& labels, const Tensor& probs,
                                     const Tensor& losses) = 0;
  // dlogits[N,classes] = (probs - target) / N
  virtual void cross_entropy_backward(const CrossEntropyParams& p, const Tensor& probs,
                                      const Tensor& labels, const Tensor& dlogits) = 0;

  // Scales the fp32 gradients in `grads`, together, to a global L2 norm of at most max_norm
  // (see kClipNormEpsilon for the rule). This default runs the plain loop on host memory
  // (ref, cpu and onednn share it: one pass, negligible beside a CPU step); GPU backends
  // override it with kernels that read the loss scale on the device.
  virtual void clip_grad_norm(float max_norm, const std::vector<Tensor>& grads);

  // In-place updates of param[n] from grad[n] and the optimizer state.
  virtual void sgd_update(const SgdUpdateParams& p, const Tensor& param, const Tensor& grad,
                          const Tensor& momentum_buffer) = 0;
  virtual void adam_update(const AdamUpdateParams& p, const Tensor& param, const Tensor& grad,
                           const Tensor& exp_avg, const Tensor& exp_avg_sq) = 0;
  // The same SGD update (p.n ignored) over several spans, each param/grad/momentum of one
  // size: a planned graph's gradient blocks. A GPU runs them in one launch.
  struct SgdSpan {
    Tensor param, grad, momentum;
  };
  virtual void sgd_update_spans(const SgdUpdateParams& p, const std::vector<SgdSpan>& spans) {
    for (const SgdSpan& s : spans) {
      SgdUpdateParams one = p;
      one.n = s.param.numel();
      sgd_update(one, s.param, s.grad, s.momentum);
    }
  }

 protected:
  size_t allocation_count_ = 0;
};

// Backends available in this build, by the name --impl takes.
std::vector<std::string> backend_names();
// A description of what each backend is, for --help and `trainbench backends`.
std::string backend_description(const std::string& name);
// Creates a backend, or throws InputError saying why it cannot run here (unknown name, no
// GPU, built without CUDA).
std::unique_ptr<Backend> make_backend(const std::string& name, int threads);

}  // namespace tb
