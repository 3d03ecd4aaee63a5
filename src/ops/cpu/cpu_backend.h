// The `cpu` backend: fp32 ops on our packed GEMM (gemm.h) and thread pool, with the
// semantics of the `ref` oracle. Convolutions are lowered per chunk of images (the GEMMs
// pack the chunk's im2col matrix, or its transpose, straight from x); threads take whole
// chunks; weight gradients are partials over those chunks summed in chunk order. The chunks
// depend only on the shape, never on the thread count, so every result is bit-identical for
// any number of threads and run to run.
//
// Memory: activations and parameters come from allocate(); the kernels' own workspace
// (im2col chunks, gathered outputs, partial sums) is grow-only and counted in
// allocation_count() too, so a test can prove that a warmed-up step allocates nothing.
// The op bodies live in one file per family: cpu_conv.cpp, cpu_linear.cpp, cpu_pool.cpp,
// cpu_norm.cpp, cpu_elementwise.cpp, cpu_loss_optim.cpp.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "ops/backend.h"
#include "ops/cpu/thread_pool.h"

namespace tb {

class CpuBackend final : public Backend {
 public:
  // threads <= 0: every CPU this process may use. Also sets the process-wide CPU thread
  // count (cpu::set_cpu_threads), which the FMA-peak probe and reports read.
  explicit CpuBackend(int threads);
  ~CpuBackend() override;

  std::string name() const override { return "cpu"; }
  Device device() const override { return Device{DeviceKind::cpu, 0}; }
  bool supports(OpKind op, DType dtype) const override;
  int threads() const { return pool_->size(); }

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
  // Fused in batch norm's own passes (cpu_norm.cpp), with the separate ops' bits.
  void batch_norm_relu_forward_train(const BatchNormParams& p, const Tensor& x,
                                     const Tensor& gamma, const Tensor& beta,
                                     const Tensor& residual, const Tensor& y,
                                     const Tensor& running_mean, const Tensor& running_var,
                                     const Tensor& save_mean, const Tensor& save_invstd) override;
  void batch_norm_relu_backward(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                                const Tensor& beta, const Tensor& save_mean,
                                const Tensor& save_invstd, const Tensor& y, const Tensor& dy,
                                const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                const Tensor& dresidual, bool accumulate_dx,
                                bool accumulate_dresidual) override;
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
  // Grow-only scratch buffers, one per purpose, 64-byte aligned. Per-thread slices are
  // carved by the caller at multiples of per_thread_stride().
  enum Scratch {
    kColumnGrads,
    kGathered,
    kPartials,
    kFlippedWeights,
    kChannelsLast,
    kPackedWeights,
    kWinogradWeights,
    kWinogradInputs,
    kWinogradOutputs,
    kScratchCount
  };
  struct ScratchBuffer {
    float* data = nullptr;
    size_t floats = 0;
  };
  float* scratch(Scratch which, size_t floats);
  // Batch norm (+ residual add) (+ ReLU when `relu` / y is defined), cpu_norm.cpp.
  void batch_norm_relu_train(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                             const Tensor& beta, const Tensor& residual, const Tensor& y,
                             const Tensor& running_mean, const Tensor& running_var,
                             const Tensor& save_mean, const Tensor& save_invstd, bool relu);
  void batch_norm_relu_grad(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                            const Tensor& save_mean, const Tensor& save_invstd, const Tensor& y,
                            const Tensor& dy, const Tensor& dx, const Tensor& dgamma,
                            const Tensor& dbeta, const Tensor& dresidual, bool accumulate_dx,
                            bool accumulate_dresidual);
  // y (+)= conv(x, w) + bias over chunks of images (cpu_conv.cpp); bias may be null. With
  // relu (not with accumulate), y = relu(conv(x, w) + bias); p.relu is not read.
  // data_gradient: this is a data gradient computed as a convolution (Winograd's default).
  void conv_forward_chunks(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                           float* y, bool accumulate, bool relu = false,
                           bool data_gradient = false);
  static size_t per_thread_stride(size_t floats) { return (floats + 15) / 16 * 16; }

  std::unique_ptr<cpu::ThreadPool> pool_;
  ScratchBuffer scratch_[kScratchCount];
};

std::unique_ptr<Backend> make_cpu_backend(int threads);

}  // namespace tb
