// Datasets in memory: uint8 pixels as N x C x H x W, int32 labels. Readers fill these; the
// trainer gathers normalised float batches out of them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tb {

struct Dataset {
  std::string name;    // "mnist", "fashion-mnist", "cifar10", "digit-csv"
  std::string source;  // where the data came from, said to the user and kept in results
  int channels = 1, height = 28, width = 28, classes = 10;
  std::vector<uint8_t> images;  // size() * channels * height * width
  std::vector<int32_t> labels;  // size(), or empty for a prediction set (no labels)
  std::vector<std::string> class_names;

  int64_t image_numel() const { return int64_t(channels) * height * width; }
  int64_t size() const { return image_numel() ? int64_t(images.size()) / image_numel() : 0; }
  bool has_labels() const { return !labels.empty(); }
  const uint8_t* image(int64_t i) const { return images.data() + i * image_numel(); }
};

// A dataset as the trainer sees it: the training pool and, where the dataset has one, its own
// test set.
struct DatasetFiles {
  Dataset train;
  Dataset test;          // empty (size 0) when the dataset has no official test split
  bool has_test = false;
  // A Subset indexes one Dataset, so make_splits with ratios (which pools train and test)
  // moves the test items onto the end of `train` instead of copying them. After that, `test`
  // is empty, has_test stays true, and the first pooled_train_size items of `train` are the
  // official training set (the rest the official test set), so a later default split can
  // still tell them apart. -1: not pooled.
  int64_t pooled_train_size = -1;
  bool pooled() const { return pooled_train_size >= 0; }
};

// Which items of a dataset form a split. Indices point into `data`.
struct Subset {
  const Dataset* data = nullptr;
  std::vector<int64_t> indices;
  int64_t size() const { return int64_t(indices.size()); }
};

struct Splits {
  Subset train, validation, test;
};

// --split as given by the user: empty = the dataset's own train/test with validation_fraction
// of train held out; otherwise three ratios (train, validation, test) over all labelled data
// (train and test pooled), e.g. 70,10,20.
struct SplitSpec {
  std::vector<double> ratios;
  double validation_fraction = 0.1;
};

// Per-channel mean and standard deviation of pixel/255 over the training split.
struct Normalization {
  std::vector<float> mean, std;
};

// Random crop (zero padding `crop_padding` on each side) and horizontal flip, for CIFAR.
struct Augmentation {
  bool enabled = false;
  int crop_padding = 4;
  bool horizontal_flip = true;
};

}  // namespace tb
