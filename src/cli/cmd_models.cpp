// `trainbench models`: the models with parameter counts and FLOPs for an input shape, and
// optionally one model's layers.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "nn/models.h"

namespace tb {
namespace {

ModelInput parse_input(const std::string& text) {
  int c = 0, h = 0, w = 0;
  char x1 = 0, x2 = 0;
  TB_INPUT_CHECK(std::sscanf(text.c_str(), "%d%c%d%c%d", &c, &x1, &h, &x2, &w) == 5 && x1 == 'x' &&
                     x2 == 'x' && c > 0 && h > 0 && w > 0,
                 "--input takes CxHxW such as 1x28x28 or 3x32x32, got '{}'", text);
  return ModelInput{c, h, w, 10};
}

void list_models(const ModelInput& in) {
  fmt::print("models for input {}x{}x{}, 10 classes (FLOPs per image; a multiply-add is 2 FLOPs;\n"
             "convolution and linear layers counted, the usual convention)\n\n",
             in.channels, in.height, in.width);
  fmt::print("{:<14} {:>12} {:>14} {:>15}  {}\n", "model", "parameters", "forward MFLOP",
             "training MFLOP", "structure");
  for (const auto& name : model_names()) {
    Graph g = build_model(name, in);
    fmt::print("{:<14} {:>12} {:>14.2f} {:>15.2f}  {}\n", name, g.parameter_count(),
               g.forward_flops_per_item() / 1e6, g.training_flops_per_item() / 1e6,
               model_summary(name));
  }
}

void list_layers(const std::string& name, const ModelInput& in) {
  Graph g = build_model(name, in);
  fmt::print("{} for input {}x{}x{}: {} parameters, {:.2f} MFLOP forward per image\n\n", name,
             in.channels, in.height, in.width, g.parameter_count(), g.forward_flops_per_item() / 1e6);
  fmt::print("{:<28} {:<44} {:<16} {:>10} {:>12}\n", "node", "layer", "output", "params",
             "fwd MFLOP");
  for (const auto& n : g.describe())
    fmt::print("{:<28} {:<44} {:<16} {:>10} {:>12.3f}\n", n.name, n.description,
               n.output_shape.to_string(), n.parameters, n.forward_flops / 1e6);
}

}  // namespace

void add_models_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("models", "List the models with parameter counts and FLOPs per "
                                           "image, or one model's layers.");
  auto input = std::make_shared<std::string>("1x28x28");
  auto model = std::make_shared<std::string>();
  cmd->add_option("--input", *input, "Input shape CxHxW (1x28x28 for MNIST, 3x32x32 for CIFAR-10)")
      ->capture_default_str();
  cmd->add_option("--model", *model, "Show this model's layers instead of the list");
  cmd->callback([input, model]() {
    const ModelInput in = parse_input(*input);
    if (model->empty())
      list_models(in);
    else
      list_layers(*model, in);
  });
}

}  // namespace tb
