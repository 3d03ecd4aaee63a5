#include "train/run_layout.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace tb {

RunLayout layout_run(const TrainConfig& config, int64_t train_items) {
  TB_INPUT_CHECK(config.batch_size >= 1, "--batch-size must be at least 1, got {}",
                 config.batch_size);
  RunLayout l;
  const int64_t remainder = train_items % config.batch_size;
  l.steps_per_epoch = train_items / config.batch_size + (remainder >= 2 ? 1 : 0);
  TB_INPUT_CHECK(l.steps_per_epoch > 0, "the training split has {} image(s): too few to train on",
                 train_items);
  l.total_steps = l.steps_per_epoch * config.epochs;
  if (config.max_steps > 0) l.total_steps = std::min(l.total_steps, config.max_steps);
  l.schedule.kind = config.schedule;
  l.schedule.base_lr = effective_lr(config);
  l.schedule.total_steps = l.total_steps;
  l.schedule.warmup_steps = config.warmup_steps;
  l.schedule.one_cycle_pct_start = config.one_cycle_pct_start;
  l.schedule.gamma = config.step_gamma;
  l.schedule.step_size = config.step_size_epochs > 0
                             ? config.step_size_epochs * l.steps_per_epoch
                             : std::max<int64_t>(1, l.total_steps / 3);
  validate_schedule(l.schedule);
  l.cycle_momentum = l.schedule.kind == "one-cycle" &&
                     (config.optimizer.kind != "sgd" || config.optimizer.momentum > 0);
  return l;
}

void epoch_order(std::vector<int64_t>& order, int64_t n, uint64_t seed, int epoch) {
  order.resize(size_t(n));
  std::iota(order.begin(), order.end(), 0);
  Rng rng(counter_hash(seed, 0x0E90C4, uint64_t(epoch)));
  shuffle_indices(order.data(), n, rng);
}

void check_augment_option(const std::string& augment) {
  TB_INPUT_CHECK(augment == "auto" || augment == "on" || augment == "off" || augment == "flip",
                 "--augment must be auto, on, flip or off, got '{}'", augment);
}

Augmentation augmentation_for(const TrainConfig& config, int channels) {
  check_augment_option(config.augment);
  Augmentation aug;
  aug.enabled = config.augment == "on" || config.augment == "flip" ||
                (config.augment == "auto" && channels == 3);
  if (config.augment == "flip") aug.crop_padding = 0;
  return aug;
}

}  // namespace tb
