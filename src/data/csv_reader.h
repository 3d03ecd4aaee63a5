// Digit CSV (the Kaggle "digit recognizer" format): a header `label,pixel0,...,pixel783` and
// one 28x28 grey image per row, or, for a prediction set, `pixel0,...,pixel783` without
// labels. Values are integers 0..255, labels 0..9.
#pragma once
#include <string>

#include "data/dataset.h"

namespace tb {

// One CSV file as a Dataset named "digit-csv". A file without a label column yields a
// prediction set (labels empty). Errors name file:line and, where it helps, the column.
Dataset read_digit_csv(const std::string& path);

}  // namespace tb
