#include "train/weights_file.h"

#include <fmt/format.h>

#include "core/error.h"
#include "train/checkpoint_state.h"

namespace tb {
namespace {

nlohmann::json header_for(const WeightsInfo& info) {
  nlohmann::json h = {
      {"kind", "weights"},
      {"weights_version", kWeightsFormatVersion},
      // Same layout as a training checkpoint's "model", so `trainbench predict` reads both.
      {"model", {{"name", info.model},
                 {"input", {info.input.channels, info.input.height, info.input.width}},
                 {"classes", info.input.classes}}},
      {"class_names", info.class_names},
      {"producer", info.producer.is_null() ? nlohmann::json::object() : info.producer}};
  if (!info.normalization.mean.empty())
    h["normalization"] = {{"mean", info.normalization.mean}, {"std", info.normalization.std}};
  return h;
}

}  // namespace

CheckpointData capture_weights(const Graph& graph, const WeightsInfo& info) {
  CheckpointData out;
  out.header = header_for(info);
  Backend& backend = graph.backend();
  for (const ParamRef& r : graph.parameters())
    out.tensors.push_back(download_tensor(backend, r.name, r.value));
  for (const StateRef& r : graph.persistent_buffers())
    out.tensors.push_back(download_tensor(backend, r.name, r.value));
  for (const HostTensor& t : out.tensors)
    TB_CHECK(t.dtype == DType::f32, "weights are written in fp32; '{}' is {}", t.name,
             dtype_name(t.dtype));
  return out;
}

WeightsInfo weights_info(const CheckpointData& file, const std::string& path) {
  const std::string kind = file.header.value("kind", "");
  TB_INPUT_CHECK(kind == "weights" || kind == "training",
                 "{} holds '{}', not model weights (a weights file or a training checkpoint)",
                 path, kind);
  if (kind == "weights") {
    const int version = file.header.value("weights_version", 0);
    TB_INPUT_CHECK(version >= 1 && version <= kWeightsFormatVersion,
                   "{}: weights format version {} (this build reads 1..{})", path, version,
                   kWeightsFormatVersion);
  }
  WeightsInfo info;
  try {
    const auto& m = file.header.at("model");
    info.model = m.at("name");
    info.input = ModelInput{m.at("input").at(0), m.at("input").at(1), m.at("input").at(2),
                            m.at("classes")};
    if (file.header.contains("normalization")) {
      info.normalization.mean = file.header["normalization"].at("mean").get<std::vector<float>>();
      info.normalization.std = file.header["normalization"].at("std").get<std::vector<float>>();
    }
    info.class_names = file.header.value("class_names", std::vector<std::string>{});
    info.producer = file.header.value("producer", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{} has a malformed header: {}", path, e.what()));
  }
  TB_INPUT_CHECK(info.normalization.mean.size() == info.normalization.std.size(),
                 "{}: normalization has {} means and {} standard deviations", path,
                 info.normalization.mean.size(), info.normalization.std.size());
  return info;
}

CheckpointData weights_from_checkpoint(const CheckpointData& ck, const std::string& path) {
  WeightsInfo info = weights_info(ck, path);
  if (info.producer.empty())
    info.producer = {{"name", "trainbench"}, {"version", TB_VERSION}, {"from", path}};
  CheckpointData out;
  out.header = header_for(info);
  // Optimizer state is the only thing a training checkpoint adds to the model's tensors.
  for (const HostTensor& t : ck.tensors)
    if (t.name.rfind("optimizer.", 0) != 0) out.tensors.push_back(t);
  return out;
}

void load_weights_into(const CheckpointData& file, const std::string& path, Graph& graph) {
  Backend& backend = graph.backend();
  for (const ParamRef& r : graph.parameters()) upload_tensor(backend, file, r.name, r.value, path);
  for (const StateRef& r : graph.persistent_buffers())
    upload_tensor(backend, file, r.name, r.value, path);
}

}  // namespace tb
