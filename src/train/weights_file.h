// Weights files: a trained (or freshly initialised) model's parameters and batch-norm running
// statistics, without optimizer state or progress, so that a model trained by trainbench can
// be evaluated by the PyTorch peer and the other way round. The container is the checkpoint
// format (train/checkpoint.h) with header kind "weights"; docs/weights-format.md describes it
// byte by byte, and peers/pytorch/tbformat.py reads and writes it.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "nn/graph.h"
#include "nn/models.h"
#include "train/checkpoint.h"

namespace tb {

inline constexpr int kWeightsFormatVersion = 1;

// What a weights file says about its model, besides the tensors.
struct WeightsInfo {
  std::string model;           // a name from model_names()
  ModelInput input;            // channels, height, width, classes
  Normalization normalization; // empty when unknown (the evaluator then computes it)
  std::vector<std::string> class_names;
  nlohmann::json producer;     // who wrote it: {"name": "trainbench", ...} or the peer's
};

// The weights of a planned graph (parameters, then persistent buffers, each named as
// Graph::parameters() / persistent_buffers() name them), as fp32 host tensors.
CheckpointData capture_weights(const Graph& graph, const WeightsInfo& info);

// The tensors of a training checkpoint or weights file, less the optimizer state, as a
// weights file. Throws InputError (naming path) for any other kind of file.
CheckpointData weights_from_checkpoint(const CheckpointData& ck, const std::string& path);

// Reads a weights file or a training checkpoint (path names the file in errors) and says
// what model it holds. Throws InputError for another kind of file or a malformed header.
WeightsInfo weights_info(const CheckpointData& file, const std::string& path);

// Copies every parameter and persistent buffer of `graph` from `file`, checking names,
// shapes and types; throws InputError naming the path and the first tensor that differs.
void load_weights_into(const CheckpointData& file, const std::string& path, Graph& graph);

}  // namespace tb
