// How a training run is laid out in steps: which items an epoch visits in which order, how
// many optimizer steps there are, and the learning-rate schedule. The trainer and the run
// plan handed to the PyTorch peer (src/bench/run_plan.h) both take these from here, so the
// peer trains on exactly the batches and learning rates trainbench does.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "train/optimizer.h"
#include "train/train_config.h"

namespace tb {

struct RunLayout {
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;  // over the whole run, --max-steps included
  ScheduleConfig schedule;
  // One-cycle also cycles momentum (SGD) or beta1 (Adam), as PyTorch's OneCycleLR does.
  bool cycle_momentum = false;
};

// The layout of a run of `config` over a training split of `train_items` items. A last
// batch of one item is dropped (batch norm cannot train on a single value per channel, and
// PyTorch refuses it too); any other partial batch is used. Throws InputError when the split
// is too small to train on or the schedule's values are bad.
RunLayout layout_run(const TrainConfig& config, int64_t train_items);

// The positions [0, n) of the training split in the order epoch `epoch` (0-based) visits
// them: a shuffle that depends only on (seed, epoch), so a resumed run sees the same order
// without carrying generator state.
void epoch_order(std::vector<int64_t>& order, int64_t n, uint64_t seed, int epoch);

// Throws a clear error unless --augment is auto, on, flip or off.
void check_augment_option(const std::string& augment);
// The augmentation a run applies: random crop (pad 4) + horizontal flip with --augment on,
// or auto with 3-channel (CIFAR-like) data; the flip alone with --augment flip; none with off.
Augmentation augmentation_for(const TrainConfig& config, int channels);

}  // namespace tb
