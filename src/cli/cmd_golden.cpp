// `trainbench golden-export`: the input of a golden test (initial weights, one batch,
// optimizer settings) for peers/pytorch/golden.py. scripts/regenerate-goldens.sh runs both.
#include <fmt/format.h>

#include <cstdio>

#include "bench/golden_input.h"
#include "cli/option_text.h"
#include "cli/peer_commands.h"
#include "core/error.h"

namespace tb {
namespace {

ModelInput parse_chw(const std::string& text) {
  int c = 0, h = 0, w = 0;
  char x1 = 0, x2 = 0;
  TB_INPUT_CHECK(std::sscanf(text.c_str(), "%d%c%d%c%d", &c, &x1, &h, &x2, &w) == 5 && x1 == 'x' &&
                     x2 == 'x' && c > 0 && h > 0 && w > 0,
                 "--input takes CxHxW such as 1x28x28 or 3x16x16, got '{}'", text);
  return ModelInput{c, h, w, 10};
}

}  // namespace

void add_golden_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "golden-export",
      "Write a golden-test input (a model's initial weights, one random batch, optimizer "
      "settings) for peers/pytorch/golden.py; see docs/golden-tests.md.");
  auto spec = std::make_shared<GoldenSpec>();
  auto input = std::make_shared<std::string>("1x28x28");
  auto output = std::make_shared<std::string>();
  cmd->add_option("--model", spec->model, model_option_help())->capture_default_str();
  cmd->add_option("--input", *input, "Image shape CxHxW")->capture_default_str();
  cmd->add_option("--batch-size", spec->batch, "Images in the batch (>= 2)")->capture_default_str();
  cmd->add_option("--seed", spec->seed, "Seeds the weights, the batch and the dropout masks")
      ->capture_default_str();
  cmd->add_option("--steps", spec->steps, "Optimizer steps in each sequence")->capture_default_str();
  cmd->add_option("--samples", spec->samples, "Values kept per tensor")->capture_default_str();
  cmd->add_option("--sgd-lr", spec->sgd_lr, "Learning rate of the SGD sequence (momentum 0.9, "
                                            "weight decay 5e-4)")->capture_default_str();
  cmd->add_option("--adam-lr", spec->adam_lr, "Learning rate of the Adam sequence")
      ->capture_default_str();
  cmd->add_option("--adam-eps", spec->adam_eps, "Adam's epsilon")->capture_default_str();
  cmd->add_option("--output", *output, "Golden input file to write")->required();
  cmd->callback([spec, input, output]() {
    GoldenSpec s = *spec;
    s.input = parse_chw(*input);
    save_checkpoint(*output, make_golden_input(s));
    fmt::print("wrote {} ({} {}, batch {}, seed {})\n", *output, s.model, *input, s.batch, s.seed);
  });
}

}  // namespace tb
