// `trainbench train`: one training run, with evaluation, checkpoints and a results record.
#include <fmt/format.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/option_text.h"
#include "cli/peer_commands.h"
#include "core/interrupt.h"
#include "metrics/environment.h"
#include "metrics/results.h"
#include "train/trainer.h"

namespace tb {
namespace {

void print_confusion(const TrainResult& r) {
  const size_t k = r.class_names.size();
  if (!r.tested || k == 0 || r.test.confusion.size() != k * k) return;
  std::cout << "confusion matrix (rows: true class, columns: predicted)\n      ";
  for (size_t j = 0; j < k; ++j) std::cout << fmt::format("{:>6}", j);
  std::cout << "\n";
  for (size_t i = 0; i < k; ++i) {
    std::cout << fmt::format("{:>5} ", i);
    for (size_t j = 0; j < k; ++j) std::cout << fmt::format("{:>6}", r.test.confusion[i * k + j]);
    std::cout << "  " << r.class_names[i] << "\n";
  }
}

void run_train(TrainConfig config) {
  install_interrupt_handler();
  const nlohmann::json env = collect_environment();
  Trainer trainer(config, std::cout);
  TrainResult result;
  int exit_code = 0;
  try {
    result = trainer.run();
  } catch (const DivergedError& e) {
    // Record the failed run, then report it like any other input error.
    if (!config.results.empty())
      append_result(config.results, training_record(config, trainer.result(), env));
    throw;
  }
  if (result.status == "interrupted") exit_code = kExitInterrupted;
  print_confusion(result);
  if (!config.results.empty()) {
    append_result(config.results, training_record(config, result, env));
    std::cout << fmt::format("result appended to {}\n", config.results);
  }
  if (exit_code) throw ExitRequest{exit_code};
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train one model on one dataset with one implementation, "
                                          "evaluate it, and optionally record the run.");
  auto config = std::make_shared<TrainConfig>();
  TrainConfig& c = *config;
  auto split = std::make_shared<std::string>();
  cmd->add_option("--model", c.model, model_option_help())->capture_default_str();
  cmd->add_option("--dataset", c.dataset, dataset_option_help())->capture_default_str();
  cmd->add_option("--data-dir", c.data_dir,
                  "Folder holding mnist/, fashion-mnist/, cifar-10-batches-bin/, digit-csv/ "
                  "(default: $TRAINBENCH_DATA, else ./data)");
  cmd->add_option("--impl", c.impl, impl_option_help())->capture_default_str();
  cmd->add_option("--threads", c.threads,
                  "CPU threads for backends that use them (0 = all cores; 1 = single-core mode)")
      ->capture_default_str();
  cmd->add_option("--precision", c.precision,
                  "fp32, or bf16 / fp16 mixed precision with fp32 master weights (GPU backends)")
      ->capture_default_str();
  cmd->add_flag("--no-graph", [&c](int64_t) { c.cuda_graph = false; },
                "GPU backends: enqueue every step instead of replaying one captured CUDA graph");
  cmd->add_option("--gpu-data", c.gpu_data,
                  "GPU backends: auto (the training images on the GPU when they fit in half of "
                  "its free memory, else streamed), resident, or stream (batches from pinned "
                  "host memory, double-buffered on a copy stream)")
      ->check(CLI::IsMember({"auto", "resident", "stream"}))
      ->capture_default_str();
  cmd->add_option("--epochs", c.epochs, "Passes over the training split")->capture_default_str();
  cmd->add_option("--batch-size", c.batch_size, "Images per optimizer step (evaluation uses the "
                                                "same batch size)")->capture_default_str();
  cmd->add_option("--limit", c.limit,
                  "Use only the first N training images (and at most N validation and N test "
                  "images), for quick runs (0 = all)")->capture_default_str();
  cmd->add_option("--max-steps", c.max_steps,
                  "Stop after N optimizer steps in total, then evaluate (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--split", *split,
                  "Train,validation,test ratios over all labelled data, e.g. 70,10,20 (default: "
                  "the dataset's own train/test split with 10% of train held out for validation)");
  cmd->add_option("--validation", c.validation_fraction,
                  "Fraction of the training file held out for validation when --split is not "
                  "given; 0 trains on all of it (as the PyTorch peer's time-to-accuracy runs do)")
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str();
  cmd->add_option("--augment", c.augment,
                  "Random crop (pad 4) + horizontal flip: auto (on for 3-channel data such as "
                  "CIFAR-10), on, off, or flip (the horizontal flip alone, e.g. for Fashion-MNIST)")->capture_default_str();
  cmd->add_option("--seed", c.seed, "Seeds init, data order, dropout and augmentation")
      ->capture_default_str();
  cmd->add_option("--optimizer", c.optimizer.kind, "sgd, adam or adamw")->capture_default_str();
  cmd->add_option("--lr", c.lr, "Peak learning rate (default: 0.05 for sgd, 0.001 for adam/adamw)");
  cmd->add_option("--momentum", c.optimizer.momentum, "SGD momentum")->capture_default_str();
  cmd->add_flag("--nesterov", c.optimizer.nesterov, "Nesterov momentum (SGD)");
  cmd->add_option("--weight-decay", c.optimizer.weight_decay,
                  "L2 penalty (sgd, adam) or decoupled decay (adamw)")->capture_default_str();
  cmd->add_option("--clip-grad-norm", c.optimizer.max_grad_norm,
                  "Scale the gradients to a global L2 norm of at most this before each update "
                  "(PyTorch's clip_grad_norm_; 0 = off)")
      ->capture_default_str();
  cmd->add_option("--adam-beta1", c.optimizer.beta1, "Adam/AdamW beta1")->capture_default_str();
  cmd->add_option("--adam-beta2", c.optimizer.beta2, "Adam/AdamW beta2")->capture_default_str();
  cmd->add_option("--adam-eps", c.optimizer.eps, "Adam/AdamW epsilon")->capture_default_str();
  cmd->add_option("--lr-schedule", c.schedule,
                  "constant, step (x gamma every --step-every-epochs), cosine (to 0), or "
                  "one-cycle (PyTorch OneCycleLR)")->capture_default_str();
  cmd->add_option("--warmup-steps", c.warmup_steps,
                  "Linear warm-up steps before the schedule (not with one-cycle)")
      ->capture_default_str();
  cmd->add_option("--one-cycle-pct-start", c.one_cycle_pct_start,
                  "One-cycle: the share of the run spent rising to the peak learning rate "
                  "(PyTorch OneCycleLR's pct_start)")
      ->capture_default_str();
  cmd->add_option("--step-gamma", c.step_gamma, "Step schedule: factor per drop")
      ->capture_default_str();
  cmd->add_option("--step-every-epochs", c.step_size_epochs,
                  "Step schedule: epochs between drops (0 = a third of the run)")
      ->capture_default_str();
  cmd->add_option("--label-smoothing", c.label_smoothing, "Cross-entropy label smoothing in [0,1)")
      ->capture_default_str();
  cmd->add_option("--checkpoint", c.checkpoint,
                  "Checkpoint file: written atomically at every epoch end, every "
                  "--checkpoint-every steps, on Ctrl-C and at the end");
  cmd->add_option("--checkpoint-every", c.checkpoint_every, "Also checkpoint every N steps (0 = "
                                                            "epoch ends only)")
      ->capture_default_str();
  cmd->add_flag("--resume", c.resume,
                "Continue the run saved in --checkpoint exactly where it stopped (same data order, "
                "RNG streams, optimizer and schedule state)");
  cmd->add_option("--results", c.results,
                  "Append this run as one JSON object to FILE (JSON lines; see "
                  "docs/results-schema.md)");
  auto no_progress = std::make_shared<bool>(false);
  cmd->add_flag("--no-progress", *no_progress, "No in-epoch progress line on a terminal");
  auto peer = std::make_shared<PeerTrainOptions>();
  add_peer_train_options(*cmd, *peer);
  cmd->callback([config, split, no_progress, peer]() {
    TrainConfig run = *config;
    run.split = parse_ratio_list(*split, "--split");
    run.progress = !*no_progress;
    if (!peer->export_plan.empty())
      export_run_plan(run, peer->export_plan);
    else if (run.impl == "pytorch")
      run_train_with_pytorch(run, *peer);
    else
      run_train(run);
  });
}

}  // namespace tb
