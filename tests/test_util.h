// Helpers shared by tests: temp folders, synthetic datasets written in the real file
// formats, and where to find real data if it is present.
#pragma once
#include <sys/wait.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/rng.h"

namespace tb::testing {

// A fresh temp folder removed when the object goes out of scope.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "trainbench-test-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string str() const { return path.string(); }
};

// Sets an environment variable for one scope, restoring what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

inline void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}

inline void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}

// Writes an MNIST-layout dataset (IDX, gz) into dir/name/: n_train + n_test images of 28x28
// where class k is a bright 8x8 square at a class-specific place plus noise: learnable in a
// few hundred steps, so end-to-end tests can run without real data.
inline void write_synthetic_mnist(const std::string& dir, const std::string& name, int n_train,
                                  int n_test, uint64_t seed = 7) {
  std::filesystem::create_directories(dir + "/" + name);
  Rng rng(seed);
  for (auto [prefix, n] : {std::pair<std::string, int>{"train", n_train}, {"t10k", n_test}}) {
    std::vector<uint8_t> images, labels;
    put_be32(images, 0x803);
    put_be32(images, uint32_t(n));
    put_be32(images, 28);
    put_be32(images, 28);
    put_be32(labels, 0x801);
    put_be32(labels, uint32_t(n));
    for (int i = 0; i < n; ++i) {
      const int k = int(rng.below(10));
      labels.push_back(uint8_t(k));
      const int r0 = 2 + (k / 5) * 12 + int(rng.below(3)), c0 = 1 + (k % 5) * 5;
      for (int r = 0; r < 28; ++r)
        for (int c = 0; c < 28; ++c) {
          const bool on = r >= r0 && r < r0 + 8 && c >= c0 && c < c0 + 4;
          images.push_back(uint8_t(on ? 200 + rng.below(56) : rng.below(40)));
        }
    }
    write_gz(dir + "/" + name + "/" + prefix + "-images-idx3-ubyte.gz", images);
    write_gz(dir + "/" + name + "/" + prefix + "-labels-idx1-ubyte.gz", labels);
  }
}

// The folder holding real MNIST / Fashion-MNIST if present: $TRAINBENCH_DATA, else the
// ../shared/data beside the source tree. Empty if neither has `name`.
inline std::string real_data_dir(const std::string& name) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("TRAINBENCH_DATA")) candidates.push_back(env);
#ifdef TB_SOURCE_DIR
  candidates.push_back(std::string(TB_SOURCE_DIR) + "/../shared/data");
#endif
  for (const auto& c : candidates)
    if (std::filesystem::exists(c + "/" + name + "/train-images-idx3-ubyte.gz")) return c;
  return "";
}

// A shell command's exit code and standard output (add " 2>&1" for its errors too).
struct CommandResult {
  int code;
  std::string output;
};
inline CommandResult run_command(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  std::string out;
  char buf[65536];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = p ? pclose(p) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace tb::testing
