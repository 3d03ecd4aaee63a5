// `trainbench export-weights`: a training checkpoint's model as a weights file (the format the
// PyTorch peer reads and writes; docs/weights-format.md). `trainbench evaluate`: a weights
// file's (or checkpoint's) loss, accuracy and confusion matrix on a dataset split, with a
// trainbench backend or with PyTorch.
#include <fmt/format.h>

#include <iostream>

#include "bench/weights_eval.h"
#include "cli/option_text.h"
#include "cli/peer_commands.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/weights_file.h"

namespace tb {
namespace {

void export_weights(const std::string& checkpoint, const std::string& output) {
  const CheckpointData ck = load_checkpoint(checkpoint);
  const CheckpointData weights = weights_from_checkpoint(ck, checkpoint);
  save_checkpoint(output, weights);
  const WeightsInfo info = weights_info(weights, output);
  fmt::print("wrote {} ({} for {}x{}x{} input, {} tensors)\n", output, info.model,
             info.input.channels, info.input.height, info.input.width, weights.tensors.size());
}

void print_evaluation(const WeightsEvalResult& r, bool json) {
  if (json) {
    std::cout << to_json(r).dump() << "\n";
    return;
  }
  fmt::print("{} on the {} split ({} images, impl {}, normalisation from the {}):\n", r.model,
             r.subset, r.count, r.impl, r.normalization_from);
  fmt::print("loss {:.4f}  accuracy {:.2f}%\n", r.loss, 100.0 * r.accuracy);
  fmt::print("confusion matrix (rows: true class, columns: predicted)\n      ");
  for (int j = 0; j < r.classes; ++j) fmt::print("{:>6}", j);
  fmt::print("\n");
  for (int i = 0; i < r.classes; ++i) {
    fmt::print("{:>5} ", i);
    for (int j = 0; j < r.classes; ++j) fmt::print("{:>6}", r.confusion[size_t(i * r.classes + j)]);
    fmt::print("\n");
  }
}

}  // namespace

void add_export_weights_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "export-weights",
      "Write a training checkpoint's model (parameters and batch-norm statistics, no optimizer "
      "state) as a weights file that the PyTorch peer reads (docs/weights-format.md).");
  auto checkpoint = std::make_shared<std::string>(), output = std::make_shared<std::string>();
  cmd->add_option("--checkpoint", *checkpoint, "Checkpoint written by `trainbench train`")
      ->required();
  cmd->add_option("--output", *output, "Weights file to write")->required();
  cmd->callback([checkpoint, output]() { export_weights(*checkpoint, *output); });
}

void add_evaluate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "evaluate",
      "Evaluate a weights file or training checkpoint (from trainbench or the PyTorch peer) on "
      "a dataset split: loss, accuracy, confusion matrix.");
  auto s = std::make_shared<WeightsEvalSpec>();
  auto split = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--weights", s->weights,
                  "Weights file (export-weights, or peers/pytorch/train.py --save-weights) or a "
                  "training checkpoint")
      ->required();
  cmd->add_option("--dataset", s->dataset, dataset_option_help())->capture_default_str();
  cmd->add_option("--data-dir", s->data_dir,
                  "Folder holding the datasets (default: $TRAINBENCH_DATA, else ./data)");
  cmd->add_option("--subset", s->subset, "Which split to evaluate: test, validation or train")
      ->capture_default_str();
  cmd->add_option("--split", *split, "Train,validation,test ratios, as for `train` (default: the "
                                     "dataset's own test set)");
  cmd->add_option("--seed", s->seed, "The split's seed, as for `train`")->capture_default_str();
  cmd->add_option("--limit", s->limit, "At most N items per split, as for `train` (0 = all)")
      ->capture_default_str();
  cmd->add_option("--impl", s->impl,
                  impl_option_help() + "\n  pytorch: PyTorch, through peers/pytorch/evaluate.py")
      ->capture_default_str();
  cmd->add_option("--threads", s->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--batch-size", s->batch_size, "Images per forward pass")->capture_default_str();
  cmd->add_option("--pytorch-device", s->pytorch_device,
                  "With --impl pytorch: auto, cpu or cuda")->capture_default_str();
  cmd->add_flag("--json", *json, "Print the result as one JSON object");
  cmd->callback([s, split, json]() {
    WeightsEvalSpec spec = *s;
    spec.split = parse_ratio_list(*split, "--split");
    print_evaluation(evaluate_weights(spec, std::cerr), *json);
  });
}

}  // namespace tb
