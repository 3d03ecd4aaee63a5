// Subcommands that connect trainbench with the PyTorch peer: weights export and evaluation
// (cmd_weights.cpp) and golden-test inputs (cmd_golden.cpp). `train --impl pytorch` and
// `train --export-plan` live in cmd_train.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "bench/pytorch_peer.h"
#include "train/train_config.h"

namespace tb {

// The options `train` adds for the peer: --export-plan, and --pytorch-* for --impl pytorch.
struct PeerTrainOptions {
  std::string export_plan;
  PytorchPeerOptions pytorch;
};
void add_peer_train_options(CLI::App& train, PeerTrainOptions& options);

// What `train` does instead of training when --export-plan is given: writes the run plan
// (and the initial weights beside it) and says where.
void export_run_plan(const TrainConfig& config, const std::string& path);
// `train --impl pytorch`: the same run, trained by peers/pytorch/train.py, recorded in the
// same results file.
void run_train_with_pytorch(const TrainConfig& config, const PeerTrainOptions& options);

void add_export_weights_command(CLI::App& app);
void add_evaluate_command(CLI::App& app);
void add_golden_export_command(CLI::App& app);

}  // namespace tb
