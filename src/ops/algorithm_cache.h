// Convolution algorithm choices kept across runs, FFTW-wisdom style: a choice measured once
// on a machine (cuDNN's exhaustive search, our autotuner) is written to a small JSON file and
// taken from there by later runs, so their first step skips the measurement. Keys name
// everything the choice depends on (GPU, library version, dtype, pass, shape); a cached
// choice the library refuses is measured again.
//
// The file: TB_ALGO_CACHE if set ("off" disables the cache), else
// $XDG_CACHE_HOME/trainbench/conv-algorithms.json, else ~/.cache/trainbench/... . New choices
// are written when the cache is destroyed (once, not at every search inside a run's first
// step), atomically, merged with what other runs added meanwhile. An unreadable or corrupt
// file is reported once and treated as empty.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace tb {

class AlgorithmCache {
 public:
  // path "" disables the cache: find() misses and store() keeps the choice in memory only.
  explicit AlgorithmCache(std::string path = default_path());
  ~AlgorithmCache();  // flush()
  AlgorithmCache(const AlgorithmCache&) = delete;
  AlgorithmCache& operator=(const AlgorithmCache&) = delete;
  static std::string default_path();

  std::optional<nlohmann::json> find(const std::string& key);
  void store(const std::string& key, const nlohmann::json& value);
  // Writes the choices stored since the last flush, if any; a failure is reported, not thrown.
  void flush();

  const std::string& path() const { return path_; }
  int hits() const { return hits_; }
  int stores() const { return stores_; }

 private:
  nlohmann::json read_disk() const;  // {} when missing or unreadable
  void load();

  std::string path_;
  nlohmann::json entries_ = nlohmann::json::object();
  bool loaded_ = false;
  bool dirty_ = false;
  int hits_ = 0, stores_ = 0;
};

}  // namespace tb
