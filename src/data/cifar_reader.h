// CIFAR-10 in its "binary version" layout: DIR/cifar-10-batches-bin/ with data_batch_1..5.bin
// and test_batch.bin. Each record is 1 label byte followed by 3072 pixel bytes: the red
// plane, then green, then blue, each 32x32 row-major, which is already one NCHW image.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace tb {

inline constexpr int kCifarSide = 32;
inline constexpr int kCifarRecordBytes = 1 + 3 * 32 * 32;  // 3073

// The file names the binary release uses, relative to cifar-10-batches-bin/.
std::vector<std::string> cifar_train_batch_names();  // data_batch_1.bin .. data_batch_5.bin
std::string cifar_test_batch_name();                 // test_batch.bin

// Concatenates the records of the given batch files. Each file must be a non-empty multiple
// of 3073 bytes with labels < 10.
Dataset read_cifar_batches(const std::vector<std::string>& paths);

// Class names from batches.meta.txt (one per line) if the file exists, else the standard ten.
std::vector<std::string> read_cifar_class_names(const std::string& batches_dir);

// The whole release from batches_dir (the cifar-10-batches-bin folder itself): train = the
// five data batches, test = test_batch. name "cifar10", class names set.
DatasetFiles read_cifar10(const std::string& batches_dir);

}  // namespace tb
