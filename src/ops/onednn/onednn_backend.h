// The `onednn` backend: every op through oneDNN (Intel's vendor CPU library) primitives,
// fp32, host memory.
//
// Primitives are created once per op shape and cached; so are the memory objects and the
// argument lists they run with, the reordered (blocked) copies of the weights and the
// max-pool workspaces. After the first training step a step creates no primitive and
// allocates no buffer (both counted, see allocation_count() and primitive_creations());
// only oneDNN's execute call itself still builds a small map of its arguments each time.
//
// Layouts: the graph's tensors are plain NCHW / OIHW. Convolution lets oneDNN pick its
// preferred (blocked) layouts for x, w and y, and batch norm runs on nChw16c; both reorder
// to and from the graph's tensors through a shared workspace. Inner product keeps its
// weights plain (measured cheaper than reordering weights that change every step); pooling
// and the element-wise ops run on the plain layout, where oneDNN's kernels are as fast.
//
// Weights: the blocked copy of a weight is refreshed only when the weight has been written
// since, which this backend sees through its own writes (sgd_update, adam_update, copy,
// copy_from_host, fill_zero) and through release(). Code that writes weights behind the
// backend's back (plain host stores into its memory) must call forget_cached_weights().
//
// Threads: oneDNN here runs on OpenMP; the backend sets OpenMP's thread count to `threads`
// (0 = all hardware threads) on every call, and its own loops use the same OpenMP pool, so
// nothing else spawns threads.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include "ops/backend.h"

namespace tb {

namespace onednn {
struct State;
}

class OneDnnBackend final : public Backend {
 public:
  explicit OneDnnBackend(int threads);
  ~OneDnnBackend() override;

  std::string name() const override { return "onednn"; }
  Device device() const override { return Device{DeviceKind::cpu, 0}; }
  bool supports(OpKind op, DType dtype) const override;

  int threads() const { return threads_; }
  // oneDNN primitives (compute and reorders) created so far: constant once warmed up.
  size_t primitive_creations() const;
  // Drops the reordered weight copies, for callers that wrote weights without this backend.
  void forget_cached_weights();

  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void fill_zero(const Tensor& t) override;

  void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& y) override;
  void conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& dy,
                       const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                       bool accumulate_dx) override;
  void linear_forward(const LinearParams& p, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& y) override;
  void linear_backward(const LinearParams& p, const Tensor& x, const Tensor& w, const Tensor& dy,
                       const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                       bool accumulate_dx) override;
  void relu_forward(const Tensor& x, const Tensor& y) override;
  void relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx,
                     bool accumulate_dx) override;
  void max_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) override;
  void max_pool2d_backward(const Pool2dParams& p, const Tensor& x, const Tensor& y,
                           const Tensor& dy, const Tensor& dx, bool accumulate_dx) override;
  void avg_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) override;
  void avg_pool2d_backward(const Pool2dParams& p, const Tensor& dy, const Tensor& dx,
                           bool accumulate_dx) override;
  void global_avg_pool_forward(const GlobalPoolParams& p, const Tensor& x,
                               const Tensor& y) override;
  void global_avg_pool_backward(const GlobalPoolParams& p, const Tensor& dy, const Tensor& dx,
                                bool accumulate_dx) override;
  void batch_norm_forward_train(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                                const Tensor& beta, const Tensor& y, const Tensor& running_mean,
                                const Tensor& running_var, const Tensor& save_mean,
                                const Tensor& save_invstd) override;
  void batch_norm_forward_eval(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                               const Tensor& beta, const Tensor& running_mean,
                               const Tensor& running_var, const Tensor& y) override;
  void batch_norm_backward(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                           const Tensor& save_mean, const Tensor& save_invstd, const Tensor& dy,
                           const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                           bool accumulate_dx) override;
  void dropout_forward(const DropoutParams& p, const Tensor& x, const Tensor& y,
                       const Tensor& mask) override;
  void dropout_backward(const DropoutParams& p, const Tensor& dy, const Tensor& mask,
                        const Tensor& dx, bool accumulate_dx) override;
  void add_forward(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void copy(const Tensor& src, const Tensor& dst, bool accumulate) override;
  void cross_entropy_forward(const CrossEntropyParams& p, const Tensor& logits,
                             const Tensor& labels, const Tensor& probs,
                             const Tensor& losses) override;
  void cross_entropy_backward(const CrossEntropyParams& p, const Tensor& probs,
                              const Tensor& labels, const Tensor& dlogits) override;
  void sgd_update(const SgdUpdateParams& p, const Tensor& param, const Tensor& grad,
                  const Tensor& momentum_buffer) override;
  void adam_update(const AdamUpdateParams& p, const Tensor& param, const Tensor& grad,
                   const Tensor& exp_avg, const Tensor& exp_avg_sq) override;

 private:
  // Sets OpenMP's thread count for the calling thread (oneDNN reads it when it runs).
  void use_threads() const;

  int threads_;
  std::unique_ptr<onednn::State> state_;
  // Sizes of the blocks allocate() gave out, so release() knows which addresses to forget.
  std::unordered_map<void*, size_t> block_bytes_;
};

// threads: OpenMP threads for oneDNN and the backend's loops; 0 = all hardware threads.
std::unique_ptr<Backend> make_onednn_backend(int threads);

}  // namespace tb
