#include "data/dataset_layout.h"

#include <sys/stat.h>

#include <cstdlib>

#include "core/error.h"
#include "data/class_names.h"
#include "data/idx_reader.h"

namespace tb {

const std::vector<std::string>& idx_file_bases() {
  static const std::vector<std::string> bases = {
      "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
      "t10k-labels-idx1-ubyte"};
  return bases;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string find_idx_file(const std::string& dir, const std::string& base) {
  for (const std::string& candidate : {dir + "/" + base + ".gz", dir + "/" + base})
    if (path_exists(candidate)) return candidate;
  return "";
}

std::string debian_datasets_dir() {
  const char* env = std::getenv("TRAINBENCH_DEBIAN_DATASETS");
  return env && *env ? env : "/usr/share/datasets";
}

std::string dataset_folder(const std::string& canonical_name) {
  if (canonical_name == "cifar10") return "cifar-10-batches-bin";
  return canonical_name;  // mnist, fashion-mnist, digit-csv
}

DatasetFiles read_idx_folder(const std::string& name, const std::string& folder,
                             const std::string& data_dir) {
  std::vector<std::string> paths, missing;
  for (const auto& base : idx_file_bases()) {
    paths.push_back(find_idx_file(folder, base));
    if (paths.back().empty()) missing.push_back(base + "[.gz]");
  }
  if (!missing.empty()) {
    std::string looked;
    for (const auto& base : idx_file_bases())
      looked += (looked.empty() ? "" : ", ") + base + "[.gz]";
    std::string which;
    if (missing.size() < paths.size())
      for (const auto& m : missing) which += (which.empty() ? "; missing: " : ", ") + m;
    throw InputError(fmt::format(
        "{} not found under {} (looked for {}{}); run `trainbench data fetch {} --data-dir {}` "
        "or pass --data-dir",
        name, folder, looked, which, name, data_dir));
  }
  const auto names = name == "fashion-mnist" ? fashion_mnist_class_names() : digit_class_names();
  DatasetFiles files;
  files.train = read_idx_dataset(paths[0], paths[1], 10);
  files.test = read_idx_dataset(paths[2], paths[3], 10);
  if (files.train.height != files.test.height || files.train.width != files.test.width)
    throw InputError(fmt::format("{}: test images are {}x{} but training images are {}x{}",
                                 paths[2], files.test.height, files.test.width, files.train.height,
                                 files.train.width));
  for (Dataset* d : {&files.train, &files.test}) {
    d->name = name;
    d->class_names = names;
  }
  files.has_test = true;
  return files;
}

}  // namespace tb
