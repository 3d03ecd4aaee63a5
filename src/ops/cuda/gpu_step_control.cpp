// GpuBackend as a GpuStepControl: the device-side schedule and step scalars, the resident or
// streamed dataset and its on-device batch gather, and CUDA graph capture and replay.
#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include <cuda_profiler_api.h>

#include "data/dataset.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/dataset_kernels.h"
#include "ops/cuda/gpu_backend.h"
#include "ops/cuda/gpu_expect.h"
#include "ops/cuda/graph_census.h"
#include "ops/cuda/loss_optimizer_kernels.h"

namespace tb::gpu {

// ---- GpuStepControl ---------------------------------------------------------------------

void GpuBackend::enable_device_schedule(const std::vector<float>& lr,
                                        const std::vector<float>& momentum, int64_t first_step,
                                        int64_t optimizer_steps, bool dynamic_loss_scale,
                                        float initial_loss_scale) {
  TB_CHECK(!lr.empty() && lr.size() == momentum.size(), "{}: schedule of {} lr and {} momenta",
           impl_, lr.size(), momentum.size());
  if (int64_t(lr.size()) > schedule_length_) {
    if (lr_schedule_) release(lr_schedule_);
    if (momentum_schedule_) release(momentum_schedule_);
    lr_schedule_ = momentum_schedule_ = nullptr;
    lr_schedule_ = static_cast<float*>(allocate(lr.size() * sizeof(float)));
    momentum_schedule_ = static_cast<float*>(allocate(lr.size() * sizeof(float)));
  }
  schedule_length_ = int64_t(lr.size());
  schedule_first_step_ = first_step;
  copy_from_host(lr_schedule_, lr.data(), lr.size() * sizeof(float));
  copy_from_host(momentum_schedule_, momentum.data(), momentum.size() * sizeof(float));
  GpuStepState st{};
  st.step = first_step;
  st.optimizer_steps = optimizer_steps;
  st.lr = lr.front();
  st.momentum = momentum.front();
  st.loss_scale = initial_loss_scale;
  st.dynamic_scaling = dynamic_loss_scale ? 1 : 0;
  copy_from_host(state_, &st, sizeof(st));
  device_schedule_ = true;
}

void GpuBackend::set_epoch(int64_t epoch, int64_t epoch_first_step) {
  const int64_t values[2] = {epoch, epoch_first_step};
  static_assert(offsetof(GpuStepState, epoch_first_step) == offsetof(GpuStepState, epoch) + 8);
  copy_from_host(reinterpret_cast<char*>(state_) + offsetof(GpuStepState, epoch), values,
                 sizeof(values));
}

void GpuBackend::begin_step() {
  TB_CHECK(device_schedule_, "{}: begin_step before enable_device_schedule", impl_);
  if (!persistent_copies_ && !capturing()) ++steps_begun_;  // stamps this step's weights
  gpu::begin_step(state_, lr_schedule_, momentum_schedule_, schedule_first_step_,
                  schedule_length_, stream_);
}

void GpuBackend::check_gradients(const Tensor& gradient_block) {
  GPU_EXPECT_DTYPE(gradient_block, DType::f32, "gradients");
  convert_pending_gradients();
  gpu::check_gradients(gradient_block.ptr<float>(), gradient_block.numel(), state_, stream_);
}

void GpuBackend::end_step() { gpu::end_step(state_, stream_); }

void GpuBackend::record_step_stats(const Tensor& losses, const Tensor& probs, const Tensor& labels,
                                   int64_t first_step, void* stats, int64_t slots) {
  const int n = int(losses.numel());
  GPU_EXPECT(probs, probs.numel(), "probs");
  GPU_EXPECT_DTYPE(losses, DType::f32, "losses");
  GPU_EXPECT_DTYPE(probs, DType::f32, "probs");
  gpu::record_step_stats(losses.ptr<float>(), probs.ptr<float>(), labels.ptr<int32_t>(), n,
                         int(probs.numel() / std::max(n, 1)), state_, first_step, slots,
                         static_cast<float2*>(stats), stream_);
}

GpuStepControl::Counters GpuBackend::read_counters() {
  GpuStepState st{};
  copy_to_host(&st, state_, sizeof(st));
  Counters c;
  c.step = st.step;
  c.optimizer_steps = st.optimizer_steps;
  c.loss_scale = st.loss_scale;
  c.skipped_updates = st.skipped_updates;
  return c;
}

void GpuBackend::upload_dataset(const uint8_t* images, const int32_t* labels, int64_t count,
                                int C, int H, int W, const Normalization& norm) {
  TB_INPUT_CHECK(C <= kMaxGatherChannels, "the GPU data path takes up to {} channels, not {}",
                 kMaxGatherChannels, C);
  TB_CHECK(int(norm.mean.size()) == C && int(norm.std.size()) == C, "normalisation for {} channels",
           norm.mean.size());
  for (void* p : {static_cast<void*>(dataset_images_), static_cast<void*>(dataset_labels_)})
    if (p) release(p);
  release_streaming();
  const size_t image_bytes = size_t(count) * C * H * W;
  dataset_images_ = static_cast<uint8_t*>(allocate(image_bytes));
  dataset_labels_ = static_cast<int32_t*>(allocate(sizeof(int32_t) * size_t(count)));
  copy_from_host(dataset_images_, images, image_bytes);
  copy_from_host(dataset_labels_, labels, sizeof(int32_t) * size_t(count));
  dataset_count_ = count;
  set_data_shape(C, H, W, norm);
}

void GpuBackend::set_data_shape(int C, int H, int W, const Normalization& norm) {
  dataset_c_ = C;
  dataset_h_ = H;
  dataset_w_ = W;
  norm_scale_.assign(size_t(C), 0.0f);
  norm_bias_.assign(size_t(C), 0.0f);
  for (int c = 0; c < C; ++c) {  // the host gather's arithmetic, value for value
    norm_scale_[size_t(c)] = 1.0f / (255.0f * norm.std[size_t(c)]);
    norm_bias_[size_t(c)] = -norm.mean[size_t(c)] / norm.std[size_t(c)];
  }
}

void GpuBackend::prepare_streaming(int64_t dataset_count, int batch, int C, int H, int W,
                                   const Normalization& norm) {
  TB_INPUT_CHECK(C <= kMaxGatherChannels, "the GPU data path takes up to {} channels, not {}",
                 kMaxGatherChannels, C);
  TB_CHECK(batch > 0, "prepare_streaming: batch {}", batch);
  for (void* p : {static_cast<void*>(dataset_images_), static_cast<void*>(dataset_labels_)})
    if (p) release(p);
  release_streaming();
  const size_t slot_images = size_t(batch) * C * H * W;
  // Device: two slots side by side, so the gather kernel addresses them as one array.
  dataset_images_ = static_cast<uint8_t*>(allocate(2 * slot_images));
  dataset_labels_ = static_cast<int32_t*>(allocate(2 * sizeof(int32_t) * size_t(batch)));
  TB_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  for (StreamSlot& slot : stream_slots_) {
    TB_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&slot.host_images), slot_images,
                                cudaHostAllocDefault));
    TB_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&slot.host_labels),
                                sizeof(int32_t) * size_t(batch), cudaHostAllocDefault));
    TB_CUDA_CHECK(cudaEventCreateWithFlags(&slot.uploaded, cudaEventDisableTiming));
    TB_CUDA_CHECK(cudaEventCreateWithFlags(&slot.freed, cudaEventDisableTiming));
  }
  slot_capacity_ = batch;
  dataset_count_ = dataset_count;  // items the epoch order may name
  set_data_shape(C, H, W, norm);
}

GpuStepControl::StreamSlotBuffers GpuBackend::stream_slot(int slot) {
  TB_CHECK(slot_capacity_ > 0, "{}: stream_slot before prepare_streaming", impl_);
  TB_CHECK(slot == 0 || slot == 1, "{}: stream slot {}", impl_, slot);
  StreamSlot& s = stream_slots_[slot];
  // The pinned buffers are the source of the slot's previous upload: wait for that to finish.
  TB_CUDA_CHECK(cudaEventSynchronize(s.uploaded));
  return {s.host_images, s.host_labels};
}

void GpuBackend::stream_batch(int n, int slot) {
  TB_CHECK(slot_capacity_ > 0, "{}: stream_batch before prepare_streaming", impl_);
  TB_CHECK(slot == 0 || slot == 1, "{}: stream slot {}", impl_, slot);
  TB_CHECK(n > 0 && n <= slot_capacity_, "{}: {} images for a slot of {}", impl_, n, slot_capacity_);
  StreamSlot& s = stream_slots_[slot];
  const size_t image_bytes = size_t(n) * dataset_c_ * dataset_h_ * dataset_w_;
  const size_t slot_images = size_t(slot_capacity_) * dataset_c_ * dataset_h_ * dataset_w_;
  // The device slot is still read by the step before last: the copy waits for it.
  TB_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, s.freed, 0));
  TB_CUDA_CHECK(cudaMemcpyAsync(dataset_images_ + size_t(slot) * slot_images, s.host_images,
                                image_bytes, cudaMemcpyHostToDevice, copy_stream_));
  TB_CUDA_CHECK(cudaMemcpyAsync(dataset_labels_ + size_t(slot) * size_t(slot_capacity_),
                                s.host_labels, sizeof(int32_t) * size_t(n),
                                cudaMemcpyHostToDevice, copy_stream_));
  TB_CUDA_CHECK(cudaEventRecord(s.uploaded, copy_stream_));
  TB_CUDA_CHECK(cudaStreamWaitEvent(stream_, s.uploaded, 0));
}

void GpuBackend::release_stream_slot(int slot) {
  TB_CHECK(slot_capacity_ > 0 && (slot == 0 || slot == 1), "{}: release of stream slot {}", impl_,
           slot);
  TB_CUDA_CHECK(cudaEventRecord(stream_slots_[slot].freed, stream_));
}

void GpuBackend::release_streaming() {
  if (copy_stream_) cudaStreamSynchronize(copy_stream_);
  for (StreamSlot& slot : stream_slots_) {
    if (slot.host_images) cudaFreeHost(slot.host_images);
    if (slot.host_labels) cudaFreeHost(slot.host_labels);
    if (slot.uploaded) cudaEventDestroy(slot.uploaded);
    if (slot.freed) cudaEventDestroy(slot.freed);
    slot = StreamSlot{};
  }
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
  copy_stream_ = nullptr;
  slot_capacity_ = 0;
}

size_t GpuBackend::device_free_bytes() const {
  size_t free = 0, total = 0;
  TB_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return free;
}

void GpuBackend::set_epoch_order(const std::vector<int64_t>& order) {
  std::vector<int32_t> narrow(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    TB_CHECK(order[i] >= 0 && order[i] < dataset_count_, "epoch order item {} out of range",
             order[i]);
    narrow[i] = int32_t(order[i]);
  }
  if (int64_t(order.size()) > order_length_) {
    if (epoch_order_) release(epoch_order_);
    epoch_order_ = nullptr;
    epoch_order_ = static_cast<int32_t*>(allocate(sizeof(int32_t) * std::max<size_t>(order.size(), 1)));
    order_length_ = int64_t(order.size());
  }
  copy_from_host(epoch_order_, narrow.data(), sizeof(int32_t) * narrow.size());
}

void GpuBackend::gather_batch(const Tensor& input, const Tensor& labels, int n, int batch,
                              bool augment, int crop_pad, bool flip, uint64_t seed) {
  TB_CHECK(dataset_images_ && epoch_order_, "{}: gather_batch before the dataset and its order "
           "were uploaded", impl_);
  TB_CHECK(device_schedule_, "{}: gather_batch needs the device schedule (it reads the step)",
           impl_);
  GPU_EXPECT(input, int64_t(n) * dataset_c_ * dataset_h_ * dataset_w_, "input");
  GPU_EXPECT(labels, n, "labels");
  GatherSpec spec{};
  spec.C = dataset_c_;
  spec.H = dataset_h_;
  spec.W = dataset_w_;
  spec.n = n;
  spec.batch = batch;
  spec.crop_pad = augment ? crop_pad : 0;
  spec.flip = augment && flip;
  spec.seed = seed;
  spec.stream_slots = slot_capacity_ > 0 ? 2 : 0;
  TB_CHECK(!spec.stream_slots || batch == slot_capacity_, "{}: streamed slots hold {} images, the "
           "step's batch is {}", impl_, slot_capacity_, batch);
  for (int c = 0; c < dataset_c_; ++c) {
    spec.scale[c] = norm_scale_[size_t(c)];
    spec.bias[c] = norm_bias_[size_t(c)];
  }
  gpu::gather_batch(input.dtype, spec, dataset_images_, dataset_labels_, epoch_order_, state_,
                    input.data, labels.ptr<int32_t>(), stream_);
}

void GpuBackend::begin_capture() {
  adopt_persistent_copies();
  // Again at every capture: a graph whose gradients moved (a new memory plan) drops them.
  adopt_deferred_gradients();
  TB_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
}

int GpuBackend::end_capture() {
  cudaGraph_t graph = nullptr;
  TB_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  if (graph_census_wanted()) fmt::print(stderr, "{}: {}", impl_, graph_census(graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  TB_CUDA_CHECK(err);
  graphs_.push_back(exec);
  return int(graphs_.size()) - 1;
}

void GpuBackend::replay(int graph) {
  TB_CHECK(graph >= 0 && graph < int(graphs_.size()), "{}: no captured graph {}", impl_, graph);
  ++weights_version_;  // the step updates the weights on the device
  if (profile_this_replay()) {
    TB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    TB_CUDA_CHECK(cudaProfilerStart());
    TB_CUDA_CHECK(cudaGraphLaunch(graphs_[size_t(graph)], stream_));
    TB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    TB_CUDA_CHECK(cudaProfilerStop());
    return;
  }
  TB_CUDA_CHECK(cudaGraphLaunch(graphs_[size_t(graph)], stream_));
}

}  // namespace tb::gpu
