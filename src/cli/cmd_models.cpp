// `trainbench models`: the models with parameter counts and FLOPs for an input shape, and
// optionally one model's layers or its planned training memory.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "nn/models.h"
#include "train/train_step.h"

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

// The memory plan of a training step at one batch size, as the GPU backends lay it out
// (batch norm fused with its ReLU and add, activations and gradients sharing bytes by
// lifetime), without allocating: what the step needs besides the optimizer's state, the
// 16-bit weight copies and the libraries' workspaces.
void show_memory(const std::string& name, const ModelInput& in, int batch,
                 const std::string& precision) {
  TB_INPUT_CHECK(batch > 0, "--memory takes a batch size > 0, got {}", batch);
  const DType activations = precision_dtype(precision);
  Graph g = build_model(name, in);
  const GraphPrecision p{DType::f32, activations};
  const auto bytes = g.planned_bytes(batch, p, true);
  Graph apart_graph = build_model(name, in);
  PlanOptions apart;
  apart.share_gradient_memory = PlanOptions::GradientSharing::off;
  apart_graph.set_plan_options(apart);
  const auto own = apart_graph.planned_bytes(batch, p, true);
  auto mib = [](size_t b) { return double(b) / 1048576.0; };
  size_t total = 0, own_total = 0;
  for (const auto& [category, n] : bytes) total += n;
  for (const auto& [category, n] : own) own_total += n;
  const size_t params = bytes.count("parameters") ? bytes.at("parameters") : 0;
  fmt::print("{} for input {}x{}x{}, training at batch {}, {} activations, fp32 parameters:\n\n",
             name, in.channels, in.height, in.width, batch, precision);
  const bool shared = !bytes.count("gradients");
  for (const auto& [category, n] : bytes) {
    const char* what = category == "activations"
                           ? (shared ? "outputs and their gradients, and the parameters' "
                                       "gradients, sharing bytes by lifetime"
                                     : "outputs and their gradients, sharing bytes by lifetime")
                       : category == "parameters" ? "fp32 master weights"
                       : category == "gradients"  ? "the parameters' gradients, for the whole step"
                       : category == "buffers"
                           ? "batch-norm running statistics"
                           : "per-layer scratch (batch statistics, dropout masks)";
    fmt::print("  {:<12} {:>10.1f} MiB  {}\n", category, mib(n), what);
  }
  fmt::print("  {:<12} {:>10.1f} MiB\n\n", "planned", mib(total));
  if (shared)
    fmt::print(
        "The parameters' gradients share the activations' memory: {:.1f} MiB planned with "
        "their own block.\n",
        mib(own_total));
  else
    fmt::print(
        "The parameters' gradients keep their own block: sharing the activations' memory "
        "would save less than 1%.\n");
  fmt::print(
      "At run time add SGD's momentum ({:.1f} MiB; Adam keeps two such buffers), 16-bit "
      "weight copies on the GPU (up to {:.1f} MiB) and the libraries' workspaces.\n",
      mib(params), activations == DType::f32 ? 0.0 : mib(params / 2));
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
  auto memory = std::make_shared<int>(0);
  auto precision = std::make_shared<std::string>("bf16");
  cmd->add_option("--memory", *memory,
                  "With --model: the planned memory of a training step at this batch size "
                  "(by category, nothing allocated) instead of the layers");
  cmd->add_option("--precision", *precision, "Activations' type for --memory: fp32, bf16, fp16")
      ->capture_default_str();
  cmd->callback([input, model, memory, precision]() {
    const ModelInput in = parse_input(*input);
    TB_INPUT_CHECK(*memory == 0 || !model->empty(), "--memory needs --model");
    if (model->empty())
      list_models(in);
    else if (*memory)
      show_memory(*model, in, *memory, *precision);
    else
      list_layers(*model, in);
  });
}

}  // namespace tb
