#include "ops/algorithm_cache.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"

namespace tb {
namespace {

constexpr const char* kFormat = "trainbench-conv-algorithms-1";

}  // namespace

std::string AlgorithmCache::default_path() {
  if (const char* v = std::getenv("TB_ALGO_CACHE"); v && *v)
    return std::string(v) == "off" ? std::string() : std::string(v);
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::filesystem::path base;
  if (xdg && *xdg) base = xdg;
  else if (home && *home) base = std::filesystem::path(home) / ".cache";
  else return {};
  return (base / "trainbench" / "conv-algorithms.json").string();
}

AlgorithmCache::AlgorithmCache(std::string path) : path_(std::move(path)) {}

AlgorithmCache::~AlgorithmCache() { flush(); }

nlohmann::json AlgorithmCache::read_disk() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return nlohmann::json::object();
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.value("format", "") == kFormat && j.contains("entries") &&
      j["entries"].is_object())
    return j["entries"];
  fmt::print(stderr, "note: ignoring the algorithm cache {}: not a {} file (it will be "
             "rewritten)\n", path_, kFormat);
  return nlohmann::json::object();
}

void AlgorithmCache::load() {
  if (loaded_) return;
  loaded_ = true;
  if (!path_.empty()) entries_ = read_disk();
}

std::optional<nlohmann::json> AlgorithmCache::find(const std::string& key) {
  load();
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  ++hits_;
  return *it;
}

void AlgorithmCache::store(const std::string& key, const nlohmann::json& value) {
  load();
  entries_[key] = value;
  ++stores_;
  dirty_ = !path_.empty();
}

void AlgorithmCache::flush() {
  if (!dirty_) return;
  dirty_ = false;
  try {
    // Merge with what other runs wrote since we loaded, ours winning, then replace the file.
    nlohmann::json merged = read_disk();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) merged[it.key()] = it.value();
    entries_ = merged;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    write_file_atomic(path_, nlohmann::json{{"format", kFormat}, {"entries", merged}}.dump(1) + "\n");
  } catch (const std::exception& e) {
    // A cache that cannot be written costs the next run a search, nothing more.
    fmt::print(stderr, "note: cannot write the algorithm cache {} ({}); the next run measures "
               "again\n", path_, e.what());
    path_.clear();
  }
}

}  // namespace tb
