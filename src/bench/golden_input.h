// Golden tests against PyTorch (docs/golden-tests.md). trainbench writes a golden *input*:
// a model's initial weights, one random batch, the optimizer settings and where the dropout
// layers sit; peers/pytorch/golden.py runs it through PyTorch and writes the golden file
// (logits, loss, every parameter gradient, and the losses and weights after N steps of SGD
// with momentum and of Adam); tests/test_golden.cpp checks every backend against it.
// Large tensors are kept as a fixed sample of their values plus full-tensor statistics, so
// a golden file for ResNet-18 stays small enough to commit.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "nn/models.h"
#include "train/checkpoint.h"

namespace tb {

inline constexpr int kGoldenVersion = 1;

struct GoldenSpec {
  std::string model = "simple_cnn";
  ModelInput input{1, 28, 28, 10};
  int batch = 4;
  uint64_t seed = 1;  // initial weights, the batch, and dropout masks
  int steps = 10;     // optimizer steps in each sequence
  int samples = 64;   // values kept per tensor
  // The two sequences: SGD with momentum (and weight decay), and Adam.
  float sgd_lr = 0.01f, sgd_momentum = 0.9f, sgd_weight_decay = 5e-4f;
  float adam_lr = 1e-3f, adam_beta1 = 0.9f, adam_beta2 = 0.999f, adam_eps = 1e-8f;
};

// The golden input for spec: header kind "golden-input" (the spec, parameter and buffer names
// in trainbench's order, dropout layers with their node index) and the tensors: every
// parameter and running statistic, "batch.images" [B,C,H,W] drawn from N(0,1) and
// "batch.labels" [B] uniform over the classes.
CheckpointData make_golden_input(const GoldenSpec& spec);
// The spec back from a golden input's or golden file's header.
GoldenSpec golden_spec_from_header(const nlohmann::json& header, const std::string& path);

// The values kept of a tensor of n values: those at index floor(k * n / count) for
// k = 0..count-1 (repeating indices when n < count).
std::vector<float> golden_samples(const float* values, int64_t n, int count);
// {sum, L2 norm, largest magnitude} of the whole tensor, in double.
std::array<double, 3> golden_stats(const float* values, int64_t n);

}  // namespace tb
