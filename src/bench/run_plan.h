// The run plan: a JSON file that says everything about a training run that the PyTorch peer
// (peers/pytorch/train.py) needs to train exactly as trainbench would: the data files and a
// checksum of their contents, the split as index lists, every epoch's batch order and
// augmentation draws, the normalisation, the learning rate (and cycled momentum) of every
// step, and the initial weights (written beside the plan in the weights format). The peer
// reimplements none of trainbench's random draws: it reads their results. The fields are
// described in docs/pytorch-peer.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/train_config.h"

namespace tb {

inline constexpr int kRunPlanVersion = 1;

// Builds the plan for `config` (loading its dataset), writes the initial weights to
// `weights_path`, and returns the plan, whose "initial_weights" names weights_path relative
// to plan_dir when it lies inside it. Throws InputError for anything the trainer would refuse.
nlohmann::json make_run_plan(const TrainConfig& config, const std::string& plan_dir,
                             const std::string& weights_path);

// make_run_plan with the weights at PLAN.init.weights, written atomically to plan_path.
nlohmann::json write_run_plan(const TrainConfig& config, const std::string& plan_path);

}  // namespace tb
