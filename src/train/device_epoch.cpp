#include "train/device_epoch.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/timer.h"
#include "ops/cuda/step_control.h"
#include "train/run_layout.h"

namespace tb {

void start_device_training(TrainStep& step, GpuStepControl& gpu, const DeviceEpochSetup& setup,
                           const TrainStep::DeviceOptions& options, const Normalization& norm,
                           int64_t first_step, const std::function<float(int64_t)>& lr_at,
                           const std::function<float(int64_t)>& momentum_at) {
  const Dataset& d = *setup.train->data;
  TB_INPUT_CHECK(d.has_labels(), "the training data of {} has no labels", d.name);
  if (setup.streamed)
    gpu.prepare_streaming(d.size(), setup.batch, d.channels, d.height, d.width, norm);
  else
    gpu.upload_dataset(d.images.data(), d.labels.data(), d.size(), d.channels, d.height,
                       d.width, norm);
  std::vector<float> lr, momentum;
  for (int64_t s = first_step; s < std::max(setup.total_steps, first_step + 1); ++s) {
    lr.push_back(lr_at(s));
    momentum.push_back(momentum_at(s));
  }
  step.start_device(lr, momentum, first_step, std::max<int64_t>(setup.total_steps - first_step, 1),
                    options);
}

bool run_device_epoch(TrainStep& step, GpuStepControl& gpu, const DeviceEpochSetup& setup,
                      TrainProgress& p, const DeviceEpochHooks& hooks) {
  const Subset& train = *setup.train;
  // This epoch's items as dataset indices, in the host trainer's order.
  std::vector<int64_t> positions, items(size_t(train.size()));
  epoch_order(positions, train.size(), setup.seed, p.epoch);
  for (size_t i = 0; i < items.size(); ++i) items[i] = train.indices[size_t(positions[i])];
  gpu.set_epoch_order(items);
  gpu.set_epoch(p.epoch, p.global_step - p.step_in_epoch);

  int64_t flushed = p.global_step;  // statistics of steps before this are in p
  double data_since_flush = 0;      // host seconds spent cutting streamed batches
  Stopwatch clock;
  // Reads back the statistics of the steps run since the last flush (waits for them).
  auto flush = [&] {
    const std::vector<StepStats> stats = step.read_stats(flushed, p.global_step);
    // The host's batch cutting (streamed data) is data time; the rest of the wall time is
    // compute.
    p.compute_seconds += clock.seconds() - data_since_flush;
    p.data_seconds += data_since_flush;
    data_since_flush = 0;
    clock.restart();
    for (size_t i = 0; i < stats.size(); ++i) {
      if (!std::isfinite(stats[i].loss_sum)) {
        const int64_t bad = flushed + int64_t(i);  // 0-based global step
        const int64_t in_epoch = bad - (p.global_step - p.step_in_epoch);
        const std::string where = hooks.last_good_checkpoint ? hooks.last_good_checkpoint() : "";
        throw DivergedError(fmt::format(
            "the loss became {} at step {} (epoch {}, batch {}); training stopped{}",
            std::isnan(stats[i].loss_sum) ? "NaN" : "infinite", bad + 1, p.epoch + 1,
            in_epoch + 1, where.empty() ? "" : "; the last good checkpoint is " + where));
      }
      p.loss_sum += stats[i].loss_sum;
      p.correct += stats[i].correct;
    }
    flushed = p.global_step;
  };

  Stopwatch progress_clock;
  while (p.step_in_epoch < setup.steps_per_epoch && p.global_step < setup.total_steps) {
    if (hooks.should_stop && hooks.should_stop()) {
      flush();
      step.sync_optimizer();
      return false;
    }
    const int64_t begin = p.step_in_epoch * setup.batch;
    const int n = int(std::min<int64_t>(setup.batch, train.size() - begin));
    const bool time_alone = hooks.first_step_seconds && hooks.first_step_seconds->size() < 2;
    if (time_alone) flush();
    Stopwatch step_clock;
    const int slot = int(p.step_in_epoch % 2);
    if (setup.streamed) {
      // Cut this batch on the host straight into its slot's pinned buffers (the GPU is busy
      // with the previous step meanwhile), then upload it; the gather kernel reads it there.
      Stopwatch data_clock;
      const Dataset& d = *train.data;
      const int64_t item = d.image_numel();
      const GpuStepControl::StreamSlotBuffers to = gpu.stream_slot(slot);
      for (int i = 0; i < n; ++i) {
        const int64_t at = items[size_t(begin + i)];
        std::memcpy(to.images + i * item, d.image(at), size_t(item));
        to.labels[i] = d.labels[size_t(at)];
      }
      gpu.stream_batch(n, slot);
      data_since_flush += data_clock.seconds();
    }
    step.device_step(n, setup.batch);
    if (setup.streamed) gpu.release_stream_slot(slot);
    p.lr = learning_rate_at(*setup.schedule, p.global_step);
    p.seen += n;
    ++p.step_in_epoch;
    ++p.global_step;
    if (time_alone) {
      flush();
      hooks.first_step_seconds->push_back(step_clock.seconds());
    }
    if (hooks.on_step) hooks.on_step(p.global_step);
    if (hooks.checkpoint_due && hooks.checkpoint_due(p.global_step)) {
      flush();
      step.sync_optimizer();
      hooks.save_periodic();
    }
    if (hooks.progress && progress_clock.seconds() > 0.5) {
      progress_clock.restart();
      flush();
      hooks.progress(p);
    }
  }
  flush();
  step.sync_optimizer();
  return true;
}

}  // namespace tb
