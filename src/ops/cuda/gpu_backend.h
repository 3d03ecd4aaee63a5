// What the two GPU backends share: device memory (counted, with a high-water mark), one
// stream, one growing workspace, converted copies of weights, every op that is not a
// convolution or a matrix product (as our own kernels), and the GpuStepControl side (device
// scalars, step statistics, the resident dataset, CUDA graph capture). `cuda` adds our
// convolution kernels, `cudnn` adds cuDNN and cuBLASLt, and takes training-mode batch norm
// through the library_batch_norm_* hooks.
//
// Layout: 4-D activations are channels-last (N,H,W,C) in memory while their shape reads
// [N,C,H,W]; flat activations ([N,F]) keep the graph's C,H,W feature order. copy() between a
// 4-D and a 2-D tensor converts (that is flatten, and the upload of an NCHW batch), and copy()
// between dtypes converts the values. Parameters, their gradients and batch-norm statistics
// are fp32 whatever the activations are.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "ops/backend.h"
#include "ops/cuda/conv_kernels.h"
#include "ops/cuda/gpu_step_state.h"
#include "ops/cuda/step_control.h"

namespace tb::gpu {

// Throws InputError("--impl NAME needs an NVIDIA GPU; none was found (...)") unless a CUDA
// device is usable.
void require_gpu(const std::string& impl);

class GpuBackend : public Backend, public GpuStepControl {
 public:
  explicit GpuBackend(const std::string& impl);
  ~GpuBackend() override;
  GpuBackend(const GpuBackend&) = delete;
  GpuBackend& operator=(const GpuBackend&) = delete;

  Device device() const override { return Device{DeviceKind::cuda, device_}; }
  bool supports(OpKind op, DType dtype) const override;

  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void fill_zero(const Tensor& t) override;
  void synchronize() override;
  void finish_backward() override;
  bool has_device_timer() const override { return true; }
  void mark(size_t point) override;
  double seconds_between(size_t from, size_t to) override;

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
  void batch_norm_relu_forward_train(const BatchNormParams& p, const Tensor& x,
                                     const Tensor& gamma, const Tensor& beta,
                                     const Tensor& residual, const Tensor& y,
                                     const Tensor& running_mean, const Tensor& running_var,
                                     const Tensor& save_mean, const Tensor& save_invstd) override;
  void batch_norm_relu_forward_eval(const BatchNormParams& p, const Tensor& x,
                                    const Tensor& gamma, const Tensor& beta,
                                    const Tensor& residual, const Tensor& running_mean,
                                    const Tensor& running_var, const Tensor& y) override;
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
  void clip_grad_norm(float max_norm, const std::vector<Tensor>& grads) override;
  void sgd_update(const SgdUpdateParams& p, const Tensor& param, const Tensor& grad,
                  const Tensor& momentum_buffer) override;
  void adam_update(const AdamUpdateParams& p, const Tensor& param, const Tensor& grad,
                   const Tensor& exp_avg, const Tensor& exp_avg_sq) override;
  void sgd_update_spans(const SgdUpdateParams& p, const std::vector<SgdSpan>& spans) override;

  // GpuStepControl
  void enable_device_schedule(const std::vector<float>& lr, const std::vector<float>& momentum,
                              int64_t first_step, int64_t optimizer_steps,
                              bool dynamic_loss_scale, float initial_loss_scale) override;
  void set_epoch(int64_t epoch, int64_t epoch_first_step) override;
  void begin_step() override;
  void check_gradients(const Tensor& gradient_block) override;
  void end_step() override;
  void record_step_stats(const Tensor& losses, const Tensor& probs, const Tensor& labels,
                         int64_t first_step, void* stats, int64_t slots) override;
  Counters read_counters() override;
  void upload_dataset(const uint8_t* images, const int32_t* labels, int64_t count, int C, int H,
                      int W, const Normalization& norm) override;
  void prepare_streaming(int64_t dataset_count, int batch, int C, int H, int W,
                         const Normalization& norm) override;
  StreamSlotBuffers stream_slot(int slot) override;
  void stream_batch(int n, int slot) override;
  void release_stream_slot(int slot) override;
  size_t device_free_bytes() const override;
  void set_epoch_order(const std::vector<int64_t>& order) override;
  void gather_batch(const Tensor& input, const Tensor& labels, int n, int batch, bool augment,
                    int crop_pad, bool flip, uint64_t seed) override;
  void begin_capture() override;
  int end_capture() override;
  void replay(int graph) override;
  size_t bytes_in_use() const override { return bytes_in_use_; }
  size_t peak_bytes() const override { return peak_bytes_; }
  void reset_peak() override { peak_bytes_ = bytes_in_use_; }
  size_t device_used_bytes() const override;
  std::string device_name() const override { return device_name_; }

 protected:
  cudaStream_t stream() const { return stream_; }
  int sm_count() const { return sm_count_; }
  bool capturing() const;
  // Scratch for one op at a time, sized to the largest request so far. It grows only while
  // no graph is being captured (the first, uncaptured step sees every shape).
  void* workspace(size_t bytes);
  // A device buffer that only grows, and only outside a captured step (the first, uncaptured
  // steps see every size it will need). `what` names it in the error.
  struct Scratch {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  void* grow(Scratch& s, size_t bytes, const char* what);
  // A second stream for work beside the main one within an op (the cuda backend runs a
  // convolution's weight gradient there, beside its data gradient): fork_side() makes the
  // side stream wait for the main one's work so far, join_side() makes the main stream wait
  // for the side's. Joined within the same op, so no later op can overwrite what the side
  // stream reads; in a captured step the two become parallel branches of the graph. The side
  // stream has its own workspace (the main one may be in use at the same time).
  cudaStream_t side_stream() const { return side_stream_; }
  void* side_workspace(size_t bytes);
  void fork_side();
  void join_side();
  // The weights w (fp32, K,C,R,S) as K,R,S,C in dtype t. Two ways, chosen when a step is
  // first captured (begin_capture):
  // - Shared (the default): one scratch buffer for every weight tensor (sized to the
  //   largest), valid until the next call; converted now, unless `reuse`, this tensor was the
  //   last one converted, and nothing that could change weights (an update, a copy, an
  //   allocation, a replayed step) has run since. This keeps a model's worth of 16-bit
  //   weights (45 MiB for resnet50) out of the peak memory, for a conversion kernel per use.
  // - Persistent, when the copies of the weights the uncaptured step converted come to at
  //   least a 64th of the memory in use (TB_WEIGHT_COPIES=auto; on, off): where a step's
  //   weights are large beside its activations (small batches, resnet18 and resnet34 at
  //   512; not resnet50, whose peak memory has no room), a step is a chain of kernels in
  //   which two conversions per layer weigh. Each of those weights keeps its own copy, and
  //   one launch refreshes them all when the weights change (once per step, at the first
  //   use after the update).
  const void* krsc_weights(const Tensor& w, DType t, int K, int C, int R, int S,
                           bool reuse = false);
  // Where a convolution's filter gradient, K,R,S,C in dtype t, should be written when its
  // conversion to the graph's fp32 K,C,R,S (dw) is deferred to finish_backward(), which
  // converts every deferred gradient in one launch; null: the caller converts it now
  // (weights_from_krsc). Deferred where the persistent weight copies are adopted, for the
  // gradients the uncaptured step converted (TB_GRADIENT_CONVERSIONS=each: never): at small
  // batches the per-layer conversions are ~20 launches of 3-8 us. Each such gradient keeps
  // a 16-bit buffer (the size of the weight copies again).
  void* deferred_filter_gradient(float* dw, DType t, int K, int C, int R, int S);
  // The device's GpuStepState when kernels should read it, else null.
  const GpuStepState* kernel_state() const { return device_schedule_ ? state_ : nullptr; }
  // Memory the backend needs for its own state (counted like any allocation).
  void* allocate_internal(size_t bytes) { return allocate(bytes); }
  // Called by release() before [base, base + bytes) is freed: a subclass drops what it kept
  // about memory there.
  virtual void releasing(const void* base, size_t bytes) {}
  // A library's ReLU and pooling in place of our kernels (the cudnn backend runs cuDNN's):
  // called after the arguments are checked; false runs our kernels. Max pooling's backward
  // has no hook: ours keeps ref's rule for equal maxima (the first gets the gradient).
  virtual bool library_relu_forward(DType t, const void* x, void* y, int64_t n) { return false; }
  virtual bool library_relu_backward(DType t, const void* y, const void* dy, void* dx, int64_t n,
                                     bool accumulate_dx) {
    return false;
  }
  virtual bool library_pool2d_forward(DType t, bool max, const Pool2dParams& p, const void* x,
                                      void* y) {
    return false;
  }
  virtual bool library_avg_pool2d_backward(DType t, const Pool2dParams& p, const void* dy,
                                           void* dx, bool accumulate_dx) {
    return false;
  }
  virtual bool library_global_avg_pool_forward(DType t, const GlobalPoolParams& p, const void* x,
                                               void* y) {
    return false;
  }
  virtual bool library_global_avg_pool_backward(DType t, const GlobalPoolParams& p,
                                                const void* dy, void* dx, bool accumulate_dx) {
    return false;
  }
  // A library's training-mode batch norm in place of our kernels (the cudnn backend runs
  // cuDNN's): called after the arguments are checked; false runs our kernels. relu fuses the
  // ReLU, residual (with relu only) the add before it; the backward's y is the forward's
  // output and dres the residual's gradient.
  virtual bool library_batch_norm_forward_train(DType t, const BatchNormParams& p, const void* x,
                                                const float* gamma, const float* beta,
                                                const void* residual, bool relu, void* y,
                                                float* running_mean, float* running_var,
                                                float* save_mean, float* save_invstd) {
    return false;
  }
  virtual bool library_batch_norm_backward(DType t, const BatchNormParams& p, const void* x,
                                           const float* gamma, const float* save_mean,
                                           const float* save_invstd, const void* y,
                                           const void* dy, void* dx, float* dgamma,
                                           float* dbeta, bool accumulate_dx, void* dres,
                                           bool accumulate_dres, bool relu) {
    return false;
  }

  std::string impl_;

 private:
  int device_ = 0;
  int sm_count_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  std::vector<cudaEvent_t> timing_events_;  // the profiler's marks, created as asked for
  // Streamed data (prepare_streaming): two pinned host buffers and device slots, a copy
  // stream, and per slot "uploaded" and "free again" events.
  struct StreamSlot {
    uint8_t* host_images = nullptr;
    int32_t* host_labels = nullptr;
    cudaEvent_t uploaded = nullptr, freed = nullptr;
  };
  StreamSlot stream_slots_[2];
  cudaStream_t copy_stream_ = nullptr;
  int slot_capacity_ = 0;  // images per slot; 0 = the dataset is resident
  void release_streaming();
  void set_data_shape(int C, int H, int W, const Normalization& norm);
  std::map<void*, size_t> allocations_;
  size_t bytes_in_use_ = 0, peak_bytes_ = 0;
  Scratch workspace_;
  cudaStream_t side_stream_ = nullptr;
  cudaEvent_t fork_event_ = nullptr, join_event_ = nullptr;
  Scratch side_workspace_;
  Scratch clip_scratch_;  // clip_grad_norm's partial sums, then its factor
  struct Shadow {
    Scratch buffer;
    const void* source = nullptr;  // the fp32 weights it holds now
    DType dtype = DType::f32;
    uint64_t version = ~uint64_t(0);  // weights_version_ when converted
  };
  uint64_t weights_version_ = 0;  // advanced by anything that may write weights
  Shadow shadow_;
  // Persistent copies (see krsc_weights): every weight converted while shared, stamped with
  // the uncaptured step that last converted it (entries are kept, so an uncaptured step
  // allocates nothing on the host); once adopted, each one's copy and the device table that
  // refreshes them all.
  struct WeightCopy {
    DType dtype;
    int K, C, R, S;
    uint64_t step = 0;  // steps_begun_ when last converted
    void* copy = nullptr;
  };
  std::map<const void*, WeightCopy> weight_copies_;
  // The save_mean buffers of fused batch norm + ReLU layers whose latest forward ran our
  // kernels without a residual: their backward may rebuild the ReLU's mask from x
  // (batchnorm_kernels.h), which needs our forward's arithmetic, not a library's.
  std::set<const void*> own_bn_relu_forwards_;
  bool rebuild_relu_masks_ = true;  // TB_BN_RELU_MASK
  uint64_t steps_begun_ = 0;  // uncaptured begin_step calls while the copies are shared
  KrscSegment* copy_table_ = nullptr;
  int copy_count_ = 0;
  int64_t copy_blocks_ = 0;  // of the table's one conversion launch
  DType copy_dtype_ = DType::f32;
  bool persistent_copies_ = false;
  // TB_WEIGHT_COPIES=auto (the size rule in adopt_persistent_copies), on or off: read once.
  enum class CopiesRule { automatic, always, never } copies_rule_ = CopiesRule::automatic;
  uint64_t copies_version_ = ~uint64_t(0);  // weights_version_ at the last refresh
  void adopt_persistent_copies();
  void drop_persistent_copies();
  // The rows of one conversion launch (their `begin`s filled in here) as a device table;
  // `blocks` receives the launch's size.
  KrscSegment* upload_segment_table(std::vector<KrscSegment>& rows, int64_t& blocks);
  // Deferred filter-gradient conversions (deferred_filter_gradient): every gradient converted
  // while none are deferred, stamped like the weight copies; once adopted, each one's 16-bit
  // buffer and the table that converts them all.
  struct GradientConversion {
    DType dtype;
    int K, C, R, S;
    uint64_t step = 0;
    void* krsc = nullptr;
    bool written = false;  // since the last conversion launch
  };
  std::map<float*, GradientConversion> gradient_conversions_;
  KrscSegment* gradient_table_ = nullptr;
  int gradient_count_ = 0;
  int64_t gradient_blocks_ = 0;
  DType gradient_dtype_ = DType::f32;
  bool deferred_gradients_ = false;
  int gradients_written_ = 0;       // how many of the table's gradients await conversion
  bool defer_gradients_ = true;     // TB_GRADIENT_CONVERSIONS=auto (not each)
  void adopt_deferred_gradients();
  void drop_deferred_gradients();
  // Issues the deferred conversions if any gradient awaits one; every op that may read a
  // gradient (the optimizer, clipping, copies, host reads) calls it first. Only gradients
  // written since the last call are converted: the table's one launch when that is all of
  // them (the end of a backward pass), a launch each otherwise (a copy in the middle of a
  // backward pass, where the other gradients' memory may still hold live activations).
  void convert_pending_gradients();
  // Device-side step scalars and the schedule.
  GpuStepState* state_ = nullptr;
  float* lr_schedule_ = nullptr;
  float* momentum_schedule_ = nullptr;
  int64_t schedule_length_ = 0, schedule_first_step_ = 0;
  bool device_schedule_ = false;
  // The resident dataset.
  uint8_t* dataset_images_ = nullptr;
  int32_t* dataset_labels_ = nullptr;
  int32_t* epoch_order_ = nullptr;
  int64_t dataset_count_ = 0, order_length_ = 0;
  int dataset_c_ = 0, dataset_h_ = 0, dataset_w_ = 0;
  std::vector<float> norm_scale_, norm_bias_;
  // Captured graphs.
  std::vector<cudaGraphExec_t> graphs_;
};

}  // namespace tb::gpu
