// Studies: a matrix of training runs described in a file (JSON; see studies/*.json and
// docs/studies.md) or built from flags. Every axis is a list; an element is a value for the
// axis' own key or an object of several settings. Rows are the cartesian product, each one a
// TrainConfig, filtered by `exclude` and adjusted by `rules`.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/pytorch_peer.h"
#include "train/train_config.h"

namespace tb {

struct StudyRow {
  TrainConfig config;
  nlohmann::json settings;  // the row's own settings (what varies), for tables and records
  double target_accuracy = 0.0;  // time-to-accuracy threshold on validation (0 = none)
  // For impl "pytorch" rows: how the peer runs (settings pytorch_device, pytorch_compile,
  // pytorch_channels_last, pytorch_cudnn_benchmark).
  PytorchPeerOptions pytorch;
};

struct Study {
  std::string name = "custom";
  std::string description;
  std::string source;                 // the file it came from, or "flags"
  nlohmann::json defaults = nlohmann::json::object();
  std::vector<std::pair<std::string, nlohmann::json>> axes;  // in file order
  nlohmann::json exclude = nlohmann::json::array();
  nlohmann::json rules = nlohmann::json::array();
  nlohmann::json baseline = nlohmann::json::object();  // settings that pick the baseline row
  double target_accuracy = 0.0;
  int inference_repeats = 20;
  int inference_batch_size = 256;
};

// Parses a study file. A malformed file gives InputError "FILE:LINE: problem".
Study load_study(const std::string& path);
// Parses study text (path is used in messages only).
Study parse_study(const std::string& text, const std::string& path);
// The README's main job: simple_cnn and alexnet_lite on MNIST and Fashion-MNIST, CPU 1 thread,
// CPU all threads, the GPU when present, every implementation this build has, and PyTorch
// (rows skipped with the reason when no Python with torch is found).
Study default_study();

// Expands the matrix. Throws InputError naming the setting for an unknown key or bad value.
std::vector<StudyRow> expand_study(const Study& study);

// Applies one settings object ({"model": ..., "lr": ...}) to a config, and the pytorch_*
// settings to `peer` (checked, then dropped, when peer is null).
void apply_settings(TrainConfig& config, const nlohmann::json& settings, const std::string& where,
                    PytorchPeerOptions* peer = nullptr);
// The names apply_settings knows.
std::vector<std::string> setting_names();

}  // namespace tb
