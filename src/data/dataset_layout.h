// Where each dataset's files live on disk and what they are called. Shared by the loader
// (which reads them) and the fetcher (which puts them there), so the two cannot drift.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace tb {

// The four IDX files of MNIST and Fashion-MNIST without ".gz": train images, train labels,
// test images, test labels, in that order. Each may be present as NAME.gz or NAME.
const std::vector<std::string>& idx_file_bases();

// NAME.gz if it exists, else NAME if it exists, else "". The .gz wins because the fetcher
// writes canonical .gz files and removes the other variant when it installs one.
std::string find_idx_file(const std::string& dir, const std::string& base);

// Folder under which Debian's dataset-* packages install (dataset-fashion-mnist puts the four
// canonical .gz files in DIR/fashion-mnist/): $TRAINBENCH_DEBIAN_DATASETS, else
// /usr/share/datasets. The variable exists so tests can point at a fake tree.
std::string debian_datasets_dir();

// Reads mnist or fashion-mnist from a folder holding the four IDX files; throws InputError
// listing what is missing (with the fetch hint for data_dir) or what is wrong.
DatasetFiles read_idx_folder(const std::string& name, const std::string& folder,
                             const std::string& data_dir);

// The sub-folder of data_dir a dataset lives in ("mnist", "fashion-mnist",
// "cifar-10-batches-bin", "digit-csv") for a canonical name.
std::string dataset_folder(const std::string& canonical_name);

bool path_exists(const std::string& path);

}  // namespace tb
