#include "train/train_step.h"

#include <cmath>

#include "ops/cuda/step_control.h"

namespace tb {

DType precision_dtype(const std::string& precision) {
  if (precision == "fp32") return DType::f32;
  if (precision == "bf16") return DType::bf16;
  if (precision == "fp16") return DType::f16;
  throw InputError("unknown --precision '" + precision + "' (fp32, bf16, fp16)");
}

TrainStep::TrainStep(Classifier& model, Optimizer& optimizer, uint64_t seed)
    : model_(model), optimizer_(optimizer), seed_(seed), gpu_(gpu_control(model.backend())) {}

TrainStep::~TrainStep() {
  if (stats_) model_.backend().release(stats_);
}

GpuStepControl* TrainStep::gpu_control(Backend& backend) {
  return dynamic_cast<GpuStepControl*>(&backend);
}

double TrainStep::host_step(int n, int64_t global_step, float lr, const float* momentum) {
  const double loss = model_.forward_loss(n, true, seed_, uint64_t(global_step));
  if (!std::isfinite(loss)) return loss;  // the caller reports it; no update
  model_.backward(n, seed_, uint64_t(global_step));
  if (momentum) optimizer_.set_momentum(*momentum);
  optimizer_.step(lr);
  return loss;
}

void TrainStep::start_device(const std::vector<float>& lr, const std::vector<float>& momentum,
                             int64_t first_step, int64_t slots, const DeviceOptions& options) {
  TB_CHECK(gpu_, "device steps need a GPU backend, not '{}'", model_.backend().name());
  options_ = options;
  first_step_ = first_step;
  slots_ = slots;
  if (stats_) model_.backend().release(stats_);
  stats_ = model_.backend().allocate(sizeof(float) * 2 * size_t(std::max<int64_t>(slots, 1)));
  model_.backend().fill_zero(
      Tensor(stats_, DType::f32, Shape{2 * std::max<int64_t>(slots, 1)}, model_.backend().device()));
  gpu_->enable_device_schedule(lr, momentum, first_step, optimizer_.steps_taken(),
                               options.dynamic_loss_scale,
                               options.dynamic_loss_scale ? options.initial_loss_scale : 1.0f);
}

// The launches of one step, in order. The host values passed to the ops (step 0, lr) are
// placeholders: with the device schedule on, the kernels read the real ones on the device.
void TrainStep::enqueue(int n, int full_batch) {
  Graph& graph = model_.graph();
  gpu_->begin_step();
  if (options_.gather)
    gpu_->gather_batch(graph.input(n), model_.labels(n), n, full_batch, options_.augment,
                       options_.crop_pad, options_.flip, seed_);
  model_.forward_loss_on_device(n, true, seed_, 0);
  gpu_->record_step_stats(model_.losses(n), model_.probs(n), model_.labels(n), first_step_,
                          stats_, slots_);
  model_.backward(n, seed_, 0);
  if (options_.dynamic_loss_scale)
    for (const Tensor& block : graph.gradient_blocks()) gpu_->check_gradients(block);
  optimizer_.step(0.0f);  // the rate and momentum come from the device schedule
  gpu_->end_step();
}

void TrainStep::device_step(int n, int full_batch) {
  TB_CHECK(stats_, "device_step before start_device");
  if (!options_.cuda_graph || !warmed_.count(n)) {
    enqueue(n, full_batch);
    warmed_.insert(n);
    return;
  }
  auto it = graphs_.find(n);
  if (it == graphs_.end()) {
    model_.backend().synchronize();
    gpu_->begin_capture();
    enqueue(n, full_batch);
    it = graphs_.emplace(n, gpu_->end_capture()).first;
  }
  gpu_->replay(it->second);
}

std::vector<StepStats> TrainStep::read_stats(int64_t from, int64_t to) {
  std::vector<StepStats> out;
  if (to <= from) return out;
  TB_CHECK(from >= first_step_ && to - first_step_ <= slots_, "stats of steps [{}, {}) are not "
           "kept (slots for [{}, {}))", from, to, first_step_, first_step_ + slots_);
  std::vector<float> host(size_t(2 * (to - from)));
  model_.backend().copy_to_host(host.data(), static_cast<float*>(stats_) + 2 * (from - first_step_),
                                host.size() * sizeof(float));
  for (size_t i = 0; i < host.size(); i += 2)
    out.push_back({double(host[i]), int64_t(std::llround(host[i + 1]))});
  return out;
}

void TrainStep::sync_optimizer() {
  optimizer_.set_steps_taken(gpu_->read_counters().optimizer_steps);
}

float TrainStep::loss_scale() { return gpu_->read_counters().loss_scale; }
int32_t TrainStep::skipped_updates() { return gpu_->read_counters().skipped_updates; }

}  // namespace tb
