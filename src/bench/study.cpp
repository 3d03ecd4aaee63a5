#include "bench/study.h"

#include <fmt/format.h>

#include <functional>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "ops/backend.h"

namespace tb {
namespace {

// The line of the first occurrence of "key" in the text: study errors point at it.
int line_of_key(const std::string& text, const std::string& key) {
  const size_t at = text.find("\"" + key + "\"");
  if (at == std::string::npos) return 0;
  return 1 + int(std::count(text.begin(), text.begin() + long(at), '\n'));
}

using Setter = std::function<void(TrainConfig&, const nlohmann::json&)>;

template <class T>
T as(const nlohmann::json& v, const std::string& key) {
  try {
    return v.get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InputError(fmt::format("'{}' has the wrong type: {}", key, v.dump()));
  }
}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> s = {
      {"model", [](TrainConfig& c, const nlohmann::json& v) { c.model = as<std::string>(v, "model"); }},
      {"dataset", [](TrainConfig& c, const nlohmann::json& v) { c.dataset = as<std::string>(v, "dataset"); }},
      {"impl", [](TrainConfig& c, const nlohmann::json& v) { c.impl = as<std::string>(v, "impl"); }},
      {"threads", [](TrainConfig& c, const nlohmann::json& v) { c.threads = as<int>(v, "threads"); }},
      {"precision", [](TrainConfig& c, const nlohmann::json& v) { c.precision = as<std::string>(v, "precision"); }},
      {"gpu_data", [](TrainConfig& c, const nlohmann::json& v) { c.gpu_data = as<std::string>(v, "gpu_data"); }},
      {"epochs", [](TrainConfig& c, const nlohmann::json& v) { c.epochs = as<int>(v, "epochs"); }},
      {"batch_size", [](TrainConfig& c, const nlohmann::json& v) { c.batch_size = as<int>(v, "batch_size"); }},
      {"limit", [](TrainConfig& c, const nlohmann::json& v) { c.limit = as<int64_t>(v, "limit"); }},
      {"max_steps", [](TrainConfig& c, const nlohmann::json& v) { c.max_steps = as<int64_t>(v, "max_steps"); }},
      {"split", [](TrainConfig& c, const nlohmann::json& v) { c.split = as<std::vector<double>>(v, "split"); }},
      {"validation_fraction", [](TrainConfig& c, const nlohmann::json& v) { c.validation_fraction = as<double>(v, "validation_fraction"); }},
      {"augment", [](TrainConfig& c, const nlohmann::json& v) { c.augment = as<std::string>(v, "augment"); }},
      {"seed", [](TrainConfig& c, const nlohmann::json& v) { c.seed = as<uint64_t>(v, "seed"); }},
      {"optimizer", [](TrainConfig& c, const nlohmann::json& v) { c.optimizer.kind = as<std::string>(v, "optimizer"); }},
      {"lr", [](TrainConfig& c, const nlohmann::json& v) { c.lr = as<double>(v, "lr"); }},
      {"momentum", [](TrainConfig& c, const nlohmann::json& v) { c.optimizer.momentum = as<float>(v, "momentum"); }},
      {"nesterov", [](TrainConfig& c, const nlohmann::json& v) { c.optimizer.nesterov = as<bool>(v, "nesterov"); }},
      {"weight_decay", [](TrainConfig& c, const nlohmann::json& v) { c.optimizer.weight_decay = as<float>(v, "weight_decay"); }},
      {"lr_schedule", [](TrainConfig& c, const nlohmann::json& v) { c.schedule = as<std::string>(v, "lr_schedule"); }},
      {"warmup_steps", [](TrainConfig& c, const nlohmann::json& v) { c.warmup_steps = as<int64_t>(v, "warmup_steps"); }},
      {"one_cycle_pct_start", [](TrainConfig& c, const nlohmann::json& v) { c.one_cycle_pct_start = as<double>(v, "one_cycle_pct_start"); }},
      {"max_grad_norm", [](TrainConfig& c, const nlohmann::json& v) { c.optimizer.max_grad_norm = as<float>(v, "max_grad_norm"); }},
      {"label_smoothing", [](TrainConfig& c, const nlohmann::json& v) { c.label_smoothing = as<float>(v, "label_smoothing"); }},
      {"data_dir", [](TrainConfig& c, const nlohmann::json& v) { c.data_dir = as<std::string>(v, "data_dir"); }},
  };
  return s;
}

using PeerSetter = std::function<void(PytorchPeerOptions&, const nlohmann::json&)>;

// Settings that only shape how the PyTorch peer runs (impl "pytorch" rows).
const std::map<std::string, PeerSetter>& peer_setters() {
  static const std::map<std::string, PeerSetter> s = {
      {"pytorch_device", [](PytorchPeerOptions& p, const nlohmann::json& v) {
         p.device = as<std::string>(v, "pytorch_device");
         TB_INPUT_CHECK(p.device == "auto" || p.device == "cpu" || p.device == "cuda",
                        "'pytorch_device' is auto, cpu or cuda, not '{}'", p.device);
       }},
      {"pytorch_compile", [](PytorchPeerOptions& p, const nlohmann::json& v) { p.compile = as<bool>(v, "pytorch_compile"); }},
      {"pytorch_channels_last", [](PytorchPeerOptions& p, const nlohmann::json& v) { p.channels_last = as<bool>(v, "pytorch_channels_last"); }},
      {"pytorch_cudnn_benchmark", [](PytorchPeerOptions& p, const nlohmann::json& v) { p.cudnn_benchmark = as<bool>(v, "pytorch_cudnn_benchmark"); }},
  };
  return s;
}

// An axis element: a bare value means {axis: value}.
nlohmann::json element_settings(const std::string& axis, const nlohmann::json& element) {
  if (element.is_object()) return element;
  return nlohmann::json{{axis, element}};
}

// Whether every key of `pattern` has the same value in `settings`.
bool matches(const nlohmann::json& settings, const nlohmann::json& pattern) {
  for (auto it = pattern.begin(); it != pattern.end(); ++it)
    if (!settings.contains(it.key()) || settings.at(it.key()) != it.value()) return false;
  return true;
}

}  // namespace

std::vector<std::string> setting_names() {
  std::vector<std::string> names;
  for (const auto& [name, setter] : setters()) names.push_back(name);
  for (const auto& [name, setter] : peer_setters()) names.push_back(name);
  return names;
}

void apply_settings(TrainConfig& config, const nlohmann::json& settings, const std::string& where,
                    PytorchPeerOptions* peer) {
  TB_INPUT_CHECK(settings.is_object(), "{}: expected an object of settings, got {}", where,
                 settings.dump());
  for (auto it = settings.begin(); it != settings.end(); ++it) {
    if (auto p = peer_setters().find(it.key()); p != peer_setters().end()) {
      PytorchPeerOptions scratch;
      try {
        p->second(peer ? *peer : scratch, it.value());
      } catch (const InputError& e) {
        throw InputError(fmt::format("{}: {}", where, e.what()));
      }
      continue;
    }
    auto s = setters().find(it.key());
    if (s == setters().end()) {
      std::string known;
      for (const auto& n : setting_names()) known += (known.empty() ? "" : ", ") + n;
      throw InputError(fmt::format("{}: unknown setting '{}' (known: {})", where, it.key(), known));
    }
    try {
      s->second(config, it.value());
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: {}", where, e.what()));
    }
  }
}

Study parse_study(const std::string& text, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const size_t byte = std::min(e.byte, text.size());
    const int line = 1 + int(std::count(text.begin(), text.begin() + long(byte ? byte - 1 : 0), '\n'));
    std::string what = e.what();
    const size_t colon = what.rfind(": ");
    throw InputError(fmt::format("{}:{}: not valid JSON: {}", path, line,
                                 colon == std::string::npos ? what : what.substr(colon + 2)));
  }
  auto where = [&](const std::string& key) {
    const int line = line_of_key(text, key);
    return line ? fmt::format("{}:{}", path, line) : path;
  };
  TB_INPUT_CHECK(j.is_object(), "{}:1: a study is a JSON object with a \"matrix\"", path);
  static const std::vector<std::string> top = {"name", "description", "defaults", "matrix",
                                               "exclude", "rules", "baseline", "target_accuracy",
                                               "inference"};
  for (auto it = j.begin(); it != j.end(); ++it)
    TB_INPUT_CHECK(std::find(top.begin(), top.end(), it.key()) != top.end(),
                   "{}: unknown key '{}' (known: name, description, defaults, matrix, exclude, "
                   "rules, baseline, target_accuracy, inference)", where(it.key()), it.key());
  Study s;
  s.source = path;
  s.name = j.value("name", "custom");
  s.description = j.value("description", "");
  if (j.contains("defaults")) s.defaults = j["defaults"];
  TB_INPUT_CHECK(j.contains("matrix") && j["matrix"].is_object(),
                 "{}: the study needs a \"matrix\" object of axes", path);
  for (auto it = j["matrix"].begin(); it != j["matrix"].end(); ++it) {
    TB_INPUT_CHECK(it.value().is_array() && !it.value().empty(),
                   "{}: matrix axis '{}' must be a non-empty list", where(it.key()), it.key());
    s.axes.emplace_back(it.key(), it.value());
  }
  if (j.contains("exclude")) s.exclude = j["exclude"];
  if (j.contains("rules")) s.rules = j["rules"];
  if (j.contains("baseline")) s.baseline = j["baseline"];
  TB_INPUT_CHECK(s.exclude.is_array(), "{}: 'exclude' must be a list of settings objects", where("exclude"));
  TB_INPUT_CHECK(s.rules.is_array(), "{}: 'rules' must be a list of {{\"when\": {{}}, \"set\": {{}}}}", where("rules"));
  TB_INPUT_CHECK(s.baseline.is_object(), "{}: 'baseline' must be a settings object", where("baseline"));
  s.target_accuracy = j.value("target_accuracy", 0.0);
  if (j.contains("inference")) {
    s.inference_repeats = j["inference"].value("repeats", s.inference_repeats);
    s.inference_batch_size = j["inference"].value("batch_size", s.inference_batch_size);
  }
  // Check every settings object now, so a typo is reported before hours of runs.
  TrainConfig probe;
  try {
    apply_settings(probe, s.defaults, where("defaults"));
    for (const auto& [axis, values] : s.axes)
      for (const auto& v : values) apply_settings(probe, element_settings(axis, v), where(axis));
    for (const auto& r : s.rules) {
      TB_INPUT_CHECK(r.is_object() && r.contains("when") && r.contains("set"),
                     "{}: each rule is {{\"when\": {{...}}, \"set\": {{...}}}}", where("rules"));
      apply_settings(probe, r["set"], where("set"));
    }
  } catch (const InputError&) {
    throw;
  }
  return s;
}

Study load_study(const std::string& path) { return parse_study(read_file(path), path); }

Study default_study() {
  Study s;
  s.name = "default";
  s.description =
      "The main job: simple_cnn and alexnet_lite on MNIST and Fashion-MNIST, CPU 1 thread, "
      "CPU all threads and the GPU when present, with every implementation of this build.";
  s.source = "built-in default study";
  s.defaults = {{"epochs", 1}, {"batch_size", 64}, {"optimizer", "adam"}, {"lr", 0.001},
                {"limit", 6000}};
  s.axes.emplace_back("dataset", nlohmann::json::array({"mnist", "fashion-mnist"}));
  s.axes.emplace_back("model", nlohmann::json::array({"simple_cnn", "alexnet_lite"}));
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& impl : backend_names()) {
    if (impl == "ref") {
      devices.push_back({{"impl", "ref"}, {"threads", 1}});
    } else if (impl == "cuda" || impl == "cudnn") {
      devices.push_back({{"impl", impl}});
    } else {
      devices.push_back({{"impl", impl}, {"threads", 1}});
      devices.push_back({{"impl", impl}, {"threads", 0}});
    }
  }
  // PyTorch beside ours on the same cores and, when present, the same GPU (eager: what a
  // user runs first). Without a Python with torch, or without a GPU, the rows are skipped
  // with the reason.
  devices.push_back({{"impl", "pytorch"}, {"pytorch_device", "cpu"}, {"threads", 1}});
  devices.push_back({{"impl", "pytorch"}, {"pytorch_device", "cpu"}, {"threads", 0}});
  devices.push_back({{"impl", "pytorch"}, {"pytorch_device", "cuda"}});
  s.axes.emplace_back("device", devices);
  // The plain-loop oracle is slow on alexnet_lite: a smaller slice keeps the study short.
  s.rules = nlohmann::json::array(
      {{{"when", {{"impl", "ref"}, {"model", "alexnet_lite"}}}, {"set", {{"limit", 640}}}}});
  s.baseline = {{"impl", "ref"}};
  return s;
}

std::vector<StudyRow> expand_study(const Study& study) {
  std::vector<StudyRow> rows;
  std::vector<size_t> index(study.axes.size(), 0);
  while (true) {
    nlohmann::json settings = nlohmann::json::object();
    for (size_t a = 0; a < study.axes.size(); ++a) {
      const auto& [axis, values] = study.axes[a];
      settings.update(element_settings(axis, values[index[a]]));
    }
    bool excluded = false;
    for (const auto& pattern : study.exclude) excluded = excluded || matches(settings, pattern);
    if (!excluded) {
      StudyRow row;
      apply_settings(row.config, study.defaults, study.source + " defaults", &row.pytorch);
      apply_settings(row.config, settings, study.source + " matrix", &row.pytorch);
      nlohmann::json all = study.defaults;
      all.update(settings);
      for (const auto& r : study.rules)
        if (matches(all, r["when"]))
          apply_settings(row.config, r["set"], study.source + " rules", &row.pytorch);
      row.settings = settings;
      row.target_accuracy = study.target_accuracy;
      rows.push_back(std::move(row));
    }
    // The last axis varies fastest, so rows that differ only by device sit together.
    size_t a = index.size();
    while (a > 0 && ++index[a - 1] == study.axes[a - 1].second.size()) index[--a] = 0;
    if (a == 0) break;
  }
  return rows;
}

}  // namespace tb
