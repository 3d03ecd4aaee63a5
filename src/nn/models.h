// The six models of DESIGN.md, built as graphs for a given input shape.
#pragma once
#include <string>
#include <vector>

#include "nn/graph.h"

namespace tb {

struct ModelInput {
  int channels = 1;
  int height = 28;
  int width = 28;
  int classes = 10;
};

// Names `--model` accepts, in a stable order.
std::vector<std::string> model_names();
// A one-line description of each model, for `trainbench models` and --help.
std::string model_summary(const std::string& name);
// Builds a model; throws InputError naming the model if it is unknown or the input does not
// fit it.
Graph build_model(const std::string& name, const ModelInput& input);

}  // namespace tb
