// The run plan follows Trainer::run() step for step (same loaders, split, limit,
// normalisation, layout and draws), writing down the outcome instead of training.
#include "bench/run_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "bench/plan_arrays.h"
#include "core/atomic_file.h"
#include "core/build_info.h"
#include "core/crc32.h"
#include "core/rng.h"
#include "data/cifar_reader.h"
#include "data/data_api.h"
#include "data/dataset_layout.h"
#include "nn/models.h"
#include "ops/ref/ref_backend.h"
#include "train/checkpoint.h"
#include "train/run_layout.h"
#include "train/weights_file.h"

namespace tb {
namespace {

namespace fs = std::filesystem;

std::string absolute(const std::string& path) { return fs::absolute(path).lexically_normal(); }

// The files load_dataset() reads for a dataset, in the order it concatenates them, found the
// same way (an IDX file may be .gz or raw; Fashion-MNIST may come from Debian's package).
nlohmann::json data_files(const std::string& canonical, const std::string& dir, bool has_test) {
  nlohmann::json train = nlohmann::json::array(), test = nlohmann::json::array();
  std::string format;
  if (canonical == "cifar10") {
    format = "cifar10-binary";
    const std::string folder = dir + "/" + dataset_folder(canonical);
    for (const auto& f : cifar_train_batch_names()) train.push_back(absolute(folder + "/" + f));
    test.push_back(absolute(folder + "/" + cifar_test_batch_name()));
  } else if (canonical == "digit-csv") {
    format = "digit-csv";
    train.push_back(absolute(dir + "/digit-csv/train.csv"));
    if (has_test) test.push_back(absolute(dir + "/digit-csv/test.csv"));
  } else {
    format = "idx";
    std::string folder = dir + "/" + canonical;
    const auto& bases = idx_file_bases();
    if (canonical == "fashion-mnist" && find_idx_file(folder, bases[0]).empty())
      folder = debian_datasets_dir() + "/fashion-mnist";
    for (int k = 0; k < 4; ++k) {
      const std::string path = find_idx_file(folder, bases[size_t(k)]);
      TB_CHECK(!path.empty(), "{} was read but {} is gone", canonical, bases[size_t(k)]);
      (k < 2 ? train : test).push_back(absolute(path));
    }
  }
  return {{"format", format}, {"train", train}, {"test", has_test ? test : nlohmann::json::array()}};
}

// CRC-32 of the pool's pixels and of its labels (int32, little-endian), so the peer can prove
// its readers produced exactly what trainbench's did.
std::pair<uint32_t, uint32_t> pool_checksums(const DatasetFiles& files) {
  uint32_t pixels = crc32_update(0, files.train.images.data(), files.train.images.size());
  uint32_t labels =
      crc32_update(0, files.train.labels.data(), files.train.labels.size() * sizeof(int32_t));
  if (!files.pooled()) {  // the official test set is still apart: it follows the train items
    pixels = crc32_update(pixels, files.test.images.data(), files.test.images.size());
    labels =
        crc32_update(labels, files.test.labels.data(), files.test.labels.size() * sizeof(int32_t));
  }
  return {pixels, labels};
}

// A split as indices into the pool (official train items, then official test items).
nlohmann::json pool_indices(const Subset& s, const DatasetFiles& files, int64_t train_file_items) {
  const int64_t offset = s.data == &files.test ? train_file_items : 0;
  std::vector<int32_t> out;
  out.reserve(s.indices.size());
  for (int64_t i : s.indices) out.push_back(int32_t(i + offset));
  return encode_array(out);
}

// gather_batch's augmentation draws for the item at dataset index idx in `epoch`, as
// (row shift + pad, column shift + pad, flip). tests/test_run_plan.cpp checks that applying
// them reproduces gather_batch's images exactly.
void augmentation_draws(const Augmentation& aug, uint64_t seed, uint64_t epoch, int64_t idx,
                        uint8_t out[3]) {
  const int pad = std::max(0, aug.crop_padding);
  const uint64_t base = uint64_t(idx) * 4;
  const int span = 2 * pad + 1;
  out[0] = uint8_t(std::min(int(counter_uniform(seed, epoch, base + 0) * float(span)), span - 1));
  out[1] = uint8_t(std::min(int(counter_uniform(seed, epoch, base + 1) * float(span)), span - 1));
  out[2] = aug.horizontal_flip && counter_uniform(seed, epoch, base + 2) < 0.5f;
}

nlohmann::json epochs_json(const TrainConfig& config, const RunLayout& layout, const Subset& train,
                           const Augmentation& aug) {
  nlohmann::json epochs = nlohmann::json::array();
  std::vector<int64_t> order;
  const int64_t n = train.size();
  for (int e = 0; e < config.epochs; ++e) {
    const int64_t first_step = int64_t(e) * layout.steps_per_epoch;
    const int64_t steps = std::min(layout.steps_per_epoch, layout.total_steps - first_step);
    if (steps <= 0) break;
    epoch_order(order, n, config.seed, e);
    const int64_t used = std::min(n, steps * config.batch_size);
    std::vector<int32_t> items(static_cast<size_t>(used));
    std::vector<uint8_t> draws(size_t(aug.enabled ? used * 3 : 0));
    for (int64_t j = 0; j < used; ++j) {
      const int64_t idx = train.indices[size_t(order[size_t(j)])];
      items[size_t(j)] = int32_t(idx);
      if (aug.enabled) augmentation_draws(aug, config.seed, uint64_t(e), idx, &draws[size_t(j) * 3]);
    }
    nlohmann::json epoch = {{"epoch", e}, {"first_step", first_step}, {"steps", steps},
                            {"items", encode_array(items)}};
    if (aug.enabled) epoch["augmentation"] = encode_array(draws, {used, 3});
    epochs.push_back(std::move(epoch));
  }
  return epochs;
}

nlohmann::json schedule_json(const TrainConfig& config, const RunLayout& layout) {
  std::vector<double> lr, momentum;
  for (int64_t s = 0; s < layout.total_steps; ++s) {
    lr.push_back(learning_rate_at(layout.schedule, s));
    if (layout.cycle_momentum) momentum.push_back(one_cycle_momentum_at(layout.schedule, s));
  }
  nlohmann::json j = {{"kind", config.schedule}, {"lr", lr}};
  if (layout.cycle_momentum) {
    j["momentum"] = momentum;
    j["momentum_is"] = config.optimizer.kind == "sgd" ? "sgd momentum" : "adam beta1";
  }
  return j;
}

}  // namespace

nlohmann::json make_run_plan(const TrainConfig& config, const std::string& plan_dir,
                             const std::string& weights_path) {
  TB_INPUT_CHECK(config.epochs >= 1, "--epochs must be at least 1, got {}", config.epochs);
  TB_INPUT_CHECK(config.limit >= 0, "--limit must be >= 0, got {}", config.limit);
  check_augment_option(config.augment);
  const std::string canonical = canonical_dataset_name(config.dataset);
  const std::string dir = resolve_data_dir(config.data_dir);
  DatasetFiles files = load_dataset(config.dataset, config.data_dir);
  const int64_t train_file_items = files.train.size();
  const int64_t test_file_items = files.has_test ? files.test.size() : 0;
  Splits splits = make_splits(files, SplitSpec{config.split, config.validation_fraction}, config.seed);
  limit_splits(splits, config.limit);
  TB_INPUT_CHECK(splits.train.size() > 0, "the training split of {} is empty", config.dataset);
  TB_INPUT_CHECK(train_file_items + test_file_items < (int64_t(1) << 31),
                 "{}: {} items do not fit the plan's int32 indices", config.dataset,
                 train_file_items + test_file_items);
  const Normalization norm = compute_normalization(splits.train);
  const Augmentation aug = augmentation_for(config, files.train.channels);
  const RunLayout layout = layout_run(config, splits.train.size());

  const Dataset& d = files.train;
  const ModelInput input{d.channels, d.height, d.width, d.classes};
  auto backend = make_ref_backend();  // before the graph: the graph's memory goes back to it
  Graph graph = build_model(config.model, input);
  graph.plan(*backend, 1, DType::f32, false);
  graph.init_parameters(config.seed);
  WeightsInfo info{config.model,
                   input,
                   norm,
                   d.class_names,
                   {{"name", "trainbench"},
                    {"version", TB_VERSION},
                    {"git_commit", build_commit()},
                    {"what", "initial weights of a run plan"},
                    {"seed", config.seed}}};
  save_checkpoint(weights_path, capture_weights(graph, info));
  nlohmann::json tensors = nlohmann::json::array();
  for (const ParamRef& r : graph.parameters())
    tensors.push_back({{"name", r.name},
                       {"shape", std::vector<int64_t>(r.value.shape.dims.begin(),
                                                      r.value.shape.dims.begin() +
                                                          r.value.shape.rank)}});

  const auto [pixels_crc, labels_crc] = pool_checksums(files);
  const fs::path rel = fs::path(absolute(weights_path)).lexically_relative(absolute(plan_dir));
  const bool inside = !rel.empty() && *rel.begin() != "..";
  return {
      {"schema", "trainbench.plan"},
      {"plan_version", kRunPlanVersion},
      {"created_by", {{"trainbench", TB_VERSION}, {"git_commit", build_commit()}}},
      {"config", to_json(config)},
      {"dataset",
       {{"name", canonical},
        {"channels", d.channels},
        {"height", d.height},
        {"width", d.width},
        {"classes", d.classes},
        {"class_names", d.class_names},
        {"source", d.source},
        {"data_dir", absolute(dir)},
        {"files", data_files(canonical, dir, files.has_test)},
        {"pool",
         {{"train_file_items", train_file_items},
          {"test_file_items", test_file_items},
          {"pixels_crc32", pixels_crc},
          {"labels_crc32", labels_crc}}}}},
      {"normalization", {{"mean", norm.mean}, {"std", norm.std}}},
      {"augmentation",
       {{"enabled", aug.enabled},
        {"crop_padding", aug.crop_padding},
        {"horizontal_flip", aug.horizontal_flip}}},
      {"split",
       {{"train", pool_indices(splits.train, files, train_file_items)},
        {"validation", pool_indices(splits.validation, files, train_file_items)},
        {"test", pool_indices(splits.test, files, train_file_items)}}},
      {"steps",
       {{"batch_size", config.batch_size},
        {"steps_per_epoch", layout.steps_per_epoch},
        {"total_steps", layout.total_steps}}},
      {"epochs", epochs_json(config, layout, splits.train, aug)},
      {"schedule", schedule_json(config, layout)},
      {"optimizer",
       {{"kind", config.optimizer.kind},
        {"momentum", config.optimizer.momentum},
        {"nesterov", config.optimizer.nesterov},
        {"weight_decay", config.optimizer.weight_decay},
        {"beta1", config.optimizer.beta1},
        {"beta2", config.optimizer.beta2},
        {"eps", config.optimizer.eps},
        {"max_grad_norm", config.optimizer.max_grad_norm}}},
      {"loss", {{"label_smoothing", config.label_smoothing}}},
      {"evaluation", {{"batch_size", config.batch_size}}},
      {"model",
       {{"name", config.model},
        {"input", {d.channels, d.height, d.width}},
        {"classes", d.classes},
        {"parameters", graph.parameter_count()},
        {"forward_flops_per_image", graph.forward_flops_per_item()},
        {"training_flops_per_image", graph.training_flops_per_item()},
        {"tensors", tensors}}},
      {"initial_weights", inside ? rel.string() : absolute(weights_path)},
  };
}

nlohmann::json write_run_plan(const TrainConfig& config, const std::string& plan_path) {
  const std::string dir = fs::path(absolute(plan_path)).parent_path();
  nlohmann::json plan = make_run_plan(config, dir, plan_path + ".init.weights");
  write_file_atomic(plan_path, plan.dump());
  return plan;
}

}  // namespace tb
