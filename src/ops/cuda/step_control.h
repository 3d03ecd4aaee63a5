// What a training loop needs from a GPU backend beyond the Backend ops, to run a whole step
// as one captured CUDA graph: per-step scalars kept on the device (so one capture serves every
// step), loss and accuracy gathered on the device and read back rarely, the fp16 loss scale,
// the dataset resident on the GPU, graph capture and replay, and memory figures. Plain C++:
// code outside the CUDA build reaches it with dynamic_cast<GpuStepControl*>(&backend), and it
// is null for CPU backends.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tb {

struct Normalization;

class GpuStepControl {
 public:
  virtual ~GpuStepControl() = default;

  // From now on the dropout, loss-gradient and optimizer kernels read the step number, the
  // learning rate, the momentum (SGD) or beta1 (Adam), Adam's step count and the loss scale
  // from device memory. lr[i] and momentum[i] are the values of global step first_step + i
  // (the last entry holds for later steps). Allocates.
  virtual void enable_device_schedule(const std::vector<float>& lr,
                                      const std::vector<float>& momentum, int64_t first_step,
                                      int64_t optimizer_steps, bool dynamic_loss_scale,
                                      float initial_loss_scale) = 0;
  // Sets the device's epoch and the global step at which it began (for the data gather).
  virtual void set_epoch(int64_t epoch, int64_t epoch_first_step) = 0;
  // Step boundaries, enqueued like any op (and so captured with the step).
  virtual void begin_step() = 0;
  virtual void check_gradients(const Tensor& gradient_block) = 0;  // fp32: one gradient block
  virtual void end_step() = 0;
  // stats[step - first_step] = {sum of losses[n], correct predictions} (fp32 pairs).
  virtual void record_step_stats(const Tensor& losses, const Tensor& probs, const Tensor& labels,
                                 int64_t first_step, void* stats, int64_t slots) = 0;

  struct Counters {
    int64_t step = 0, optimizer_steps = 0;
    float loss_scale = 1.0f;
    int32_t skipped_updates = 0;
  };
  virtual Counters read_counters() = 0;  // waits for queued work

  // The training images (uint8, N,C,H,W) and labels, uploaded once. Allocates.
  virtual void upload_dataset(const uint8_t* images, const int32_t* labels, int64_t count,
                              int C, int H, int W, const Normalization& norm) = 0;
  // Instead of upload_dataset, when the dataset should not live on the GPU: two device slots
  // of `batch` images each, fed from two pinned host buffers on a copy stream. gather_batch
  // then reads step s of the epoch from slot s % 2. Allocates.
  virtual void prepare_streaming(int64_t dataset_count, int batch, int C, int H, int W,
                                 const Normalization& norm) = 0;
  // The pinned host buffers of slot `slot` (room for `batch` images, uint8 N,C,H,W, and
  // labels), once that slot's previous upload has finished: the host cuts the next batch
  // straight into them.
  struct StreamSlotBuffers {
    uint8_t* images = nullptr;
    int32_t* labels = nullptr;
  };
  virtual StreamSlotBuffers stream_slot(int slot) = 0;
  // Uploads the first n images and labels of the slot's pinned buffers into its device slot on
  // the copy stream, once the step that last read the slot is done; the compute stream waits
  // for the upload. Returns at once, so the next batch is cut while this step computes.
  virtual void stream_batch(int n, int slot) = 0;
  // After the step that reads `slot` is enqueued: marks where the slot becomes free again.
  virtual void release_stream_slot(int slot) = 0;
  // Device memory free now (cudaMemGetInfo): whether a dataset fits.
  virtual size_t device_free_bytes() const = 0;
  // This epoch's order of dataset items (what the host trainer would use), uploaded.
  virtual void set_epoch_order(const std::vector<int64_t>& order) = 0;
  // input[n] (channels-last, activation dtype) and labels[n] <- items
  // order[(step - epoch_first_step) * batch + i], normalised and, if asked, randomly cropped
  // (zero padding `crop_pad`) and flipped with counter_uniform(seed, epoch, item * 4 + k).
  virtual void gather_batch(const Tensor& input, const Tensor& labels, int n, int batch,
                            bool augment, int crop_pad, bool flip, uint64_t seed) = 0;

  // Records everything enqueued between the two calls as a CUDA graph; returns its id.
  virtual void begin_capture() = 0;
  virtual int end_capture() = 0;
  virtual void replay(int graph) = 0;

  // Device memory: bytes allocated through the backend now and at most, and the device's
  // total used (all allocators, the libraries' too) as cudaMemGetInfo reports it.
  virtual size_t bytes_in_use() const = 0;
  virtual size_t peak_bytes() const = 0;
  // Starts the high-water mark again from what is in use now (to measure steady state).
  virtual void reset_peak() = 0;
  virtual size_t device_used_bytes() const = 0;
  virtual std::string device_name() const = 0;
  // Choosing convolution algorithms so far (cuDNN's search or our autotuner): host seconds
  // (most of a run's first step), passes measured, passes taken from the algorithm cache
  // (ops/algorithm_cache.h), and that cache's file ("" when off).
  struct AlgorithmSearch {
    double seconds = 0;
    int measured = 0, cached = 0;
    std::string cache_path;
  };
  virtual AlgorithmSearch algorithm_search() const = 0;
};

}  // namespace tb
