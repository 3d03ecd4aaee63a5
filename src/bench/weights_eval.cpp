#include "bench/weights_eval.h"

#include <fmt/format.h>
#include <stdlib.h>

#include <filesystem>
#include <numeric>
#include <ostream>

#include "bench/pytorch_peer.h"
#include "bench/run_plan.h"
#include "core/atomic_file.h"
#include "data/data_api.h"
#include "data/subprocess.h"
#include "train/classifier.h"
#include "train/weights_file.h"

namespace tb {
namespace {

namespace fs = std::filesystem;

const Subset& pick(const Splits& s, const std::string& subset) {
  if (subset == "test") return s.test;
  if (subset == "validation") return s.validation;
  if (subset == "train") return s.train;
  throw InputError(fmt::format("--subset must be test, validation or train, got '{}'", subset));
}

WeightsEvalResult evaluate_here(const WeightsEvalSpec& spec, const CheckpointData& file,
                                const WeightsInfo& info) {
  DatasetFiles files = load_dataset(spec.dataset, spec.data_dir);
  const Dataset& d = files.train;
  TB_INPUT_CHECK(d.channels == info.input.channels && d.height == info.input.height &&
                     d.width == info.input.width && d.classes == info.input.classes,
                 "{} holds {} for {}x{}x{} images and {} classes; {} has {}x{}x{} and {}",
                 spec.weights, info.model, info.input.channels, info.input.height,
                 info.input.width, info.input.classes, spec.dataset, d.channels, d.height,
                 d.width, d.classes);
  Splits splits = make_splits(files, SplitSpec{spec.split, 0.1}, spec.seed);
  limit_splits(splits, spec.limit);
  const Subset& subset = pick(splits, spec.subset);
  TB_INPUT_CHECK(subset.size() > 0, "the {} split of {} is empty", spec.subset, spec.dataset);

  WeightsEvalResult r;
  r.normalization_from = "weights file";
  Normalization norm = info.normalization;
  if (norm.mean.empty()) {
    norm = compute_normalization(splits.train);
    r.normalization_from = "training split";
  }
  TB_INPUT_CHECK(int(norm.mean.size()) == d.channels, "{}: normalization for {} channels, the data has {}",
                 spec.weights, norm.mean.size(), d.channels);
  auto backend = make_backend(spec.impl, spec.threads);
  Classifier model(build_model(info.model, info.input), *backend, spec.batch_size, false, 0.0f);
  load_weights_into(file, spec.weights, model.graph());

  const int k = info.input.classes;
  r.confusion.assign(size_t(k) * k, 0);
  std::vector<float> images(size_t(spec.batch_size) * d.image_numel());
  std::vector<int32_t> labels(size_t(spec.batch_size)), predicted(size_t(spec.batch_size));
  std::vector<int64_t> positions(size_t(spec.batch_size));
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < subset.size(); begin += spec.batch_size) {
    const int n = int(std::min<int64_t>(spec.batch_size, subset.size() - begin));
    std::iota(positions.begin(), positions.begin() + n, begin);
    gather_batch(subset, positions.data(), n, norm, Augmentation{}, spec.seed, 0, images.data(),
                 labels.data());
    model.set_batch(n, images.data(), labels.data());
    loss_sum += model.forward_loss(n, false, spec.seed, 0) * n;
    model.predictions(n, predicted.data());
    for (int i = 0; i < n; ++i) {
      correct += predicted[size_t(i)] == labels[size_t(i)];
      ++r.confusion[size_t(labels[size_t(i)]) * k + size_t(predicted[size_t(i)])];
    }
  }
  r.count = subset.size();
  r.loss = loss_sum / double(r.count);
  r.accuracy = double(correct) / double(r.count);
  return r;
}

// PyTorch evaluates the same split: a run plan carries the data files and index lists.
WeightsEvalResult evaluate_in_pytorch(const WeightsEvalSpec& spec, const WeightsInfo& info,
                                      std::ostream& log) {
  const auto python = find_python_with_torch();
  if (!python) throw InputError(pytorch_unavailable_message());
  TrainConfig c;
  c.model = info.model;
  c.dataset = spec.dataset;
  c.data_dir = spec.data_dir;
  c.split = spec.split;
  c.seed = spec.seed;
  c.limit = spec.limit;
  c.batch_size = spec.batch_size;
  c.impl = "pytorch";
  c.augment = "off";
  c.max_steps = 1;
  std::string pattern = (fs::temp_directory_path() / "trainbench-eval-XXXXXX").string();
  TB_INPUT_CHECK(::mkdtemp(pattern.data()) != nullptr, "cannot make a temporary folder in {}",
                 fs::temp_directory_path().string());
  const fs::path dir = pattern;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  const std::string plan = (dir / "plan.json").string(), out = (dir / "result.json").string();
  write_run_plan(c, plan);
  const ProcessResult p = run_process(
      {*python, find_peer_script("evaluate.py"), "--plan", plan, "--weights",
       fs::absolute(spec.weights).string(), "--subset", spec.subset, "--device",
       spec.pytorch_device, "--threads", std::to_string(spec.threads), "--json-out", out},
      "", 3600);
  std::string text;
  if (p.exit_code == 0 && fs::exists(out)) text = read_file(out);
  TB_INPUT_CHECK(!text.empty(), "peers/pytorch/evaluate.py failed (exit {}):\n{}", p.exit_code,
                 p.output);
  log << p.output;
  WeightsEvalResult r;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    r.count = j.at("count");
    r.loss = j.at("loss");
    r.accuracy = j.at("accuracy");
    r.confusion = j.at("confusion_matrix").get<std::vector<int64_t>>();
    r.normalization_from = j.at("normalization_from");
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("peers/pytorch/evaluate.py gave a malformed result: {}", e.what()));
  }
  return r;
}

}  // namespace

WeightsEvalResult evaluate_weights(const WeightsEvalSpec& spec, std::ostream& log) {
  TB_INPUT_CHECK(spec.batch_size >= 1, "--batch-size must be at least 1, got {}", spec.batch_size);
  pick(Splits{}, spec.subset);  // the subset name is checked before any loading
  const CheckpointData file = load_checkpoint(spec.weights);
  const WeightsInfo info = weights_info(file, spec.weights);
  WeightsEvalResult r = spec.impl == "pytorch" ? evaluate_in_pytorch(spec, info, log)
                                               : evaluate_here(spec, file, info);
  r.model = info.model;
  r.subset = spec.subset;
  r.impl = spec.impl;
  r.classes = info.input.classes;
  return r;
}

nlohmann::json to_json(const WeightsEvalResult& r) {
  return {{"model", r.model},       {"subset", r.subset},     {"impl", r.impl},
          {"count", r.count},       {"loss", r.loss},         {"accuracy", r.accuracy},
          {"classes", r.classes},   {"confusion_matrix", r.confusion},
          {"normalization_from", r.normalization_from}};
}

}  // namespace tb
