#include "data/cifar_reader.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "data/class_names.h"

namespace tb {
namespace {

constexpr int kCifarClasses = 10;

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

void append_batch(const std::string& path, Dataset& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw InputError(fmt::format("{}: not a regular file", path));
  const uint64_t size = uint64_t(st.st_size);
  if (size == 0 || size % kCifarRecordBytes != 0)
    throw InputError(
        fmt::format("{}: size {} bytes is not a positive multiple of the 3073-byte CIFAR-10 record "
                    "(1 label byte + 3072 pixel bytes)",
                    path, size));
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));

  const int64_t records = int64_t(size / kCifarRecordBytes);
  const size_t pixels = kCifarRecordBytes - 1;
  const size_t first = out.images.size();
  out.images.resize(first + size_t(records) * pixels);
  out.labels.reserve(out.labels.size() + size_t(records));
  std::vector<uint8_t> record(kCifarRecordBytes);
  for (int64_t r = 0; r < records; ++r) {
    if (std::fread(record.data(), 1, record.size(), f.get()) != record.size())
      throw InputError(
          fmt::format("{}: truncated while reading record {} of {}", path, r, records));
    if (record[0] >= kCifarClasses)
      throw InputError(fmt::format("{}: label {} in record {} is out of range (classes 0..9)", path,
                                   record[0], r));
    out.labels.push_back(record[0]);
    std::memcpy(out.images.data() + first + size_t(r) * pixels, record.data() + 1, pixels);
  }
}

Dataset empty_cifar() {
  Dataset d;
  d.name = "cifar10";
  d.channels = 3;
  d.height = d.width = kCifarSide;
  d.classes = kCifarClasses;
  return d;
}

}  // namespace

std::vector<std::string> cifar_train_batch_names() {
  std::vector<std::string> names;
  for (int i = 1; i <= 5; ++i) names.push_back(fmt::format("data_batch_{}.bin", i));
  return names;
}

std::string cifar_test_batch_name() { return "test_batch.bin"; }

Dataset read_cifar_batches(const std::vector<std::string>& paths) {
  Dataset d = empty_cifar();
  for (const auto& path : paths) append_batch(path, d);
  for (size_t i = 0; i < paths.size(); ++i) d.source += (i ? " + " : "") + paths[i];
  return d;
}

std::vector<std::string> read_cifar_class_names(const std::string& batches_dir) {
  const std::string path = batches_dir + "/batches.meta.txt";
  std::ifstream in(path);
  if (!in) return cifar10_class_names();
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  // A wrong count means a wrong or damaged file; better to say so than to mislabel results.
  if (names.size() != kCifarClasses)
    throw InputError(
        fmt::format("{}: expected 10 class names (one per line), found {}; fix or "
                    "remove the file to use the standard names",
                    path, names.size()));
  return names;
}

DatasetFiles read_cifar10(const std::string& batches_dir) {
  std::vector<std::string> train_paths;
  for (const auto& name : cifar_train_batch_names())
    train_paths.push_back(batches_dir + "/" + name);
  DatasetFiles files;
  files.train = read_cifar_batches(train_paths);
  files.test = read_cifar_batches({batches_dir + "/" + cifar_test_batch_name()});
  files.has_test = true;
  files.train.class_names = files.test.class_names = read_cifar_class_names(batches_dir);
  return files;
}

}  // namespace tb
