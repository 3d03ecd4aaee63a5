// `trainbench predict`: label a digit-CSV file (with or without a label column) with a
// trained checkpoint, writing ImageId,Label rows.
#include <fmt/format.h>

#include <numeric>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "data/csv_reader.h"
#include "data/data_api.h"
#include "nn/models.h"
#include "train/checkpoint.h"
#include "train/checkpoint_state.h"
#include "train/classifier.h"

namespace tb {
namespace {

struct PredictOptions {
  std::string checkpoint, input, output, impl = "ref";
  int threads = 0, batch_size = 256;
};

void run_predict(const PredictOptions& o) {
  const CheckpointData ck = load_checkpoint(o.checkpoint);
  ModelInput in;
  std::string model_name;
  Normalization norm;
  try {
    const auto& m = ck.header.at("model");
    model_name = m.at("name");
    in = ModelInput{m.at("input")[0], m.at("input")[1], m.at("input")[2], m.at("classes")};
    norm.mean = ck.header.at("normalization").at("mean").get<std::vector<float>>();
    norm.std = ck.header.at("normalization").at("std").get<std::vector<float>>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("checkpoint {} has a malformed header: {}", o.checkpoint, e.what()));
  }
  Dataset data = read_digit_csv(o.input);
  TB_INPUT_CHECK(data.channels == in.channels && data.height == in.height && data.width == in.width,
                 "{} holds {}x{}x{} images but the model in {} takes {}x{}x{}", o.input,
                 data.channels, data.height, data.width, o.checkpoint, in.channels, in.height,
                 in.width);

  auto backend = make_backend(o.impl, o.threads);
  Classifier model(build_model(model_name, in), *backend, o.batch_size, false, 0.0f);
  for (const ParamRef& r : model.graph().parameters())
    upload_tensor(*backend, ck, r.name, r.value, o.checkpoint);
  for (const StateRef& r : model.graph().persistent_buffers())
    upload_tensor(*backend, ck, r.name, r.value, o.checkpoint);

  Subset all{&data, std::vector<int64_t>(size_t(data.size()))};
  std::iota(all.indices.begin(), all.indices.end(), 0);
  std::vector<float> images(size_t(o.batch_size) * data.image_numel());
  std::vector<int32_t> labels(o.batch_size), predicted(o.batch_size);
  std::vector<int64_t> positions(o.batch_size);
  std::string out = "ImageId,Label\n";
  int64_t correct = 0;
  for (int64_t begin = 0; begin < data.size(); begin += o.batch_size) {
    const int n = int(std::min<int64_t>(o.batch_size, data.size() - begin));
    std::iota(positions.begin(), positions.begin() + n, begin);
    gather_batch(all, positions.data(), n, norm, Augmentation{}, 0, 0, images.data(),
                 data.has_labels() ? labels.data() : nullptr);
    model.set_batch(n, images.data(), nullptr);
    model.forward_predict(n, 0);
    model.predictions(n, predicted.data());
    for (int i = 0; i < n; ++i) {
      out += fmt::format("{},{}\n", begin + i + 1, predicted[i]);
      if (data.has_labels()) correct += predicted[i] == labels[i];
    }
  }
  write_file_atomic(o.output, out);
  fmt::print("wrote {} predictions to {}\n", data.size(), o.output);
  if (data.has_labels())
    fmt::print("accuracy against the file's labels: {:.2f}% ({} of {})\n",
               100.0 * correct / data.size(), correct, data.size());
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "Label a digit-CSV file with a trained checkpoint; "
                                            "writes ImageId,Label rows.");
  auto o = std::make_shared<PredictOptions>();
  cmd->add_option("--checkpoint", o->checkpoint, "Checkpoint written by `trainbench train`")
      ->required();
  cmd->add_option("--input", o->input,
                  "CSV with header pixel0..pixel783 (a prediction set) or label,pixel0..")
      ->required();
  cmd->add_option("--output", o->output, "Where to write ImageId,Label rows")->required();
  cmd->add_option("--impl", o->impl, "Implementation to run the model with")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str();
  cmd->callback([o]() { run_predict(*o); });
}

}  // namespace tb
