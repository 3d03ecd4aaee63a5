// load_dataset: from a dataset name and a data folder to the files in memory.
#include <cctype>
#include <cstdlib>

#include "core/error.h"
#include "data/cifar_reader.h"
#include "data/csv_reader.h"
#include "data/data_api.h"
#include "data/dataset_layout.h"

namespace tb {

std::vector<std::string> dataset_names() {
  return {"mnist", "fashion-mnist", "cifar10", "digit-csv"};
}

std::string canonical_dataset_name(const std::string& name) {
  std::string lower;
  for (char c : name) lower += char(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "cifar-10") return "cifar10";
  for (const auto& known : dataset_names())
    if (lower == known) return known;
  throw InputError(fmt::format(
      "unknown dataset '{}' (choose one of mnist, fashion-mnist, cifar10, digit-csv)", name));
}

std::string resolve_data_dir(const std::string& data_dir) {
  if (!data_dir.empty()) return data_dir;
  const char* env = std::getenv("TRAINBENCH_DATA");
  if (env && *env) return env;
  return "./data";
}

namespace {

DatasetFiles load_cifar(const std::string& dir) {
  const std::string folder = dir + "/" + dataset_folder("cifar10");
  std::vector<std::string> wanted = cifar_train_batch_names();
  wanted.push_back(cifar_test_batch_name());
  std::string missing;
  for (const auto& f : wanted)
    if (!path_exists(folder + "/" + f)) missing += (missing.empty() ? "" : ", ") + f;
  if (!missing.empty())
    throw InputError(fmt::format(
        "cifar10 not found under {} (looked for data_batch_1..5.bin and test_batch.bin; "
        "missing: {}); run `trainbench data fetch cifar10 --data-dir {}` or pass --data-dir",
        folder, missing, dir));
  return read_cifar10(folder);
}

DatasetFiles load_digit_csv(const std::string& dir) {
  const std::string folder = dir + "/digit-csv";
  const std::string train_path = folder + "/train.csv", test_path = folder + "/test.csv";
  if (!path_exists(train_path))
    throw InputError(
        fmt::format("digit-csv not found under {} (looked for train.csv with header "
                    "label,pixel0,...,pixel783); place the file there or pass --data-dir",
                    folder));
  DatasetFiles files;
  files.train = read_digit_csv(train_path);
  if (!files.train.has_labels())
    throw InputError(
        fmt::format("{}: has no label column; a training set needs "
                    "`label,pixel0,...,pixel783`",
                    train_path));
  // Kaggle's test.csv has no labels: it is for predictions, not for measuring accuracy, so
  // only a labelled test.csv becomes the test split.
  if (path_exists(test_path)) {
    Dataset test = read_digit_csv(test_path);
    if (test.has_labels()) {
      files.test = std::move(test);
      files.has_test = true;
    }
  }
  return files;
}

}  // namespace

DatasetFiles load_dataset(const std::string& name, const std::string& data_dir) {
  const std::string canonical = canonical_dataset_name(name);
  const std::string dir = resolve_data_dir(data_dir);
  if (canonical == "cifar10") return load_cifar(dir);
  if (canonical == "digit-csv") return load_digit_csv(dir);

  const std::string folder = dir + "/" + canonical;
  // Debian's dataset-fashion-mnist package installs the canonical .gz files under
  // /usr/share/datasets/fashion-mnist; use it when the data folder has no copy of its own.
  if (canonical == "fashion-mnist" && find_idx_file(folder, idx_file_bases()[0]).empty()) {
    const std::string debian = debian_datasets_dir() + "/fashion-mnist";
    if (!find_idx_file(debian, idx_file_bases()[0]).empty()) {
      DatasetFiles files = read_idx_folder(canonical, debian, dir);
      const std::string note = " (Debian package dataset-fashion-mnist)";
      files.train.source += note;
      files.test.source += note;
      return files;
    }
  }
  try {
    DatasetFiles files = read_idx_folder(canonical, folder, dir);
    // Results carry `source`; make a run on the fetcher's last-resort sample recognisable.
    if (canonical == "mnist" && files.train.size() == 1000 && files.test.size() == 200)
      files.train.source +=
          " (the embedded 1,000-image MNIST sample; accuracy figures are not "
          "comparable with the full dataset)";
    return files;
  } catch (const InputError& e) {
    if (canonical != "fashion-mnist" || !find_idx_file(folder, idx_file_bases()[0]).empty()) throw;
    throw InputError(
        fmt::format("{} (also looked in {}/fashion-mnist, where Debian's "
                    "dataset-fashion-mnist package installs it)",
                    e.what(), debian_datasets_dir()));
  }
}

}  // namespace tb
