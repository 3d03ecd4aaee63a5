// `trainbench train --impl pytorch` and `trainbench train --export-plan FILE`: the run plan
// of a training configuration, trained by the PyTorch peer or written out for it.
#include <fmt/format.h>

#include <iostream>

#include "bench/run_plan.h"
#include "cli/commands.h"
#include "cli/peer_commands.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "metrics/results.h"

namespace tb {

void add_peer_train_options(CLI::App& train, PeerTrainOptions& o) {
  if (CLI::Option* impl = train.get_option_no_throw("--impl"))
    impl->description(impl->get_description() +
                      "\n  pytorch: the PyTorch peer (peers/pytorch/train.py) on the same run "
                      "plan; see --pytorch-*");
  train.add_option("--export-plan", o.export_plan,
                   "Write the run plan (data files, split, batch order, schedule; initial "
                   "weights beside it) for peers/pytorch/train.py to FILE and exit without "
                   "training (docs/pytorch-peer.md)");
  train.add_option("--pytorch-device", o.pytorch.device,
                   "With --impl pytorch: auto (cuda when PyTorch sees a GPU), cpu or cuda")
      ->capture_default_str();
  train.add_flag("--pytorch-compile", o.pytorch.compile,
                 "With --impl pytorch: torch.compile the model (PyTorch 2)");
  train.add_flag("--pytorch-channels-last", o.pytorch.channels_last,
                 "With --impl pytorch: NHWC memory format");
  train.add_flag("--pytorch-cudnn-benchmark", o.pytorch.cudnn_benchmark,
                 "With --impl pytorch: torch.backends.cudnn.benchmark (off by default; see "
                 "docs/pytorch-peer.md)");
  train.add_option("--pytorch-weights", o.pytorch.save_weights,
                   "With --impl pytorch: write the trained model to FILE in trainbench's weights "
                   "format (evaluate it with `trainbench evaluate --weights FILE`)");
}

void export_run_plan(const TrainConfig& config, const std::string& path) {
  const nlohmann::json plan = write_run_plan(config, path);
  fmt::print("run plan written to {} ({} steps over {} epoch(s); initial weights in {})\n", path,
             plan["steps"]["total_steps"].get<int64_t>(), plan["epochs"].size(),
             plan["initial_weights"].get<std::string>());
  fmt::print("train it in PyTorch with: python3 peers/pytorch/train.py --plan {}\n", path);
}

void run_train_with_pytorch(const TrainConfig& config, const PeerTrainOptions& options) {
  TB_INPUT_CHECK(config.checkpoint.empty() && !config.resume,
                 "--checkpoint and --resume do not apply to --impl pytorch; --pytorch-weights "
                 "FILE keeps the trained model");
  install_interrupt_handler();
  const nlohmann::json record = run_pytorch_peer(config, options.pytorch, std::cout);
  const std::string status = record.value("status", "");
  if (status == "interrupted") {
    std::cout << "interrupted: the PyTorch run is not recorded\n";
    throw ExitRequest{kExitInterrupted};
  }
  if (!config.results.empty()) {
    append_result(config.results, record);
    std::cout << fmt::format("result appended to {}\n", config.results);
  }
  TB_INPUT_CHECK(status == "completed", "the PyTorch run {}: {}", status,
                 record.value("error", std::string("no reason given")));
}

}  // namespace tb
