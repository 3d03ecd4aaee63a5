// IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or raw.
//
// Layout: a 4-byte magic 0x00 0x00 TYPE NDIMS, NDIMS big-endian uint32 sizes, then the
// payload. We accept only TYPE 0x08 (unsigned byte): images with 3 dims (N, rows, cols) and
// labels with 1 dim (N). Every problem is an InputError naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace tb {

struct IdxImages {
  int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major
};

IdxImages read_idx_images(const std::string& path);

// Labels, each checked to be < classes.
std::vector<int32_t> read_idx_labels(const std::string& path, int classes);

// An image file and its label file as one single-channel Dataset (name and class_names left
// for the caller). Checks that both hold the same number of items.
Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int classes);

}  // namespace tb
