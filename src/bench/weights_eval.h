// Evaluating a weights file (or a training checkpoint) on a dataset split, with a trainbench
// backend or with PyTorch (peers/pytorch/evaluate.py on a run plan of the same split), so a
// model trained by either can be measured by the other.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tb {

struct WeightsEvalSpec {
  std::string weights;
  std::string dataset = "mnist";
  std::string data_dir;
  std::string subset = "test";  // test, validation or train
  std::vector<double> split;    // as train's --split (empty = the dataset's own)
  uint64_t seed = 1;            // the split's seed, as train's --seed
  int64_t limit = 0;            // as train's --limit
  std::string impl = "ref";     // a backend, or "pytorch"
  int threads = 0;
  int batch_size = 256;
  std::string pytorch_device = "auto";
};

struct WeightsEvalResult {
  std::string model, subset, impl;
  int64_t count = 0;
  double loss = 0.0, accuracy = 0.0;
  int classes = 0;
  std::vector<int64_t> confusion;  // classes x classes, row = true label
  std::string normalization_from;  // "weights file" or "training split"
};

// Throws InputError for a bad file, a model that does not fit the dataset, an empty subset,
// or (impl pytorch) no Python with torch.
WeightsEvalResult evaluate_weights(const WeightsEvalSpec& spec, std::ostream& log);

nlohmann::json to_json(const WeightsEvalResult& r);

}  // namespace tb
