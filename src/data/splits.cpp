// make_splits / limit_splits: which items train, validate and test, reproducibly per seed.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "data/data_api.h"

namespace tb {
namespace {

std::string ratios_text(const std::vector<double>& r) {
  std::string s;
  for (size_t i = 0; i < r.size(); ++i) s += fmt::format("{}{}", i ? "," : "", r[i]);
  return s;
}

// Normalised (train, validation, test) fractions, or InputError naming the value.
std::vector<double> checked_ratios(const std::vector<double>& r) {
  if (r.size() != 3)
    throw InputError(
        fmt::format("--split '{}': expected three ratios train,validation,test "
                    "(e.g. 70,10,20), got {}",
                    ratios_text(r), r.size()));
  double sum = 0;
  for (double x : r) {
    if (!std::isfinite(x) || x < 0)
      throw InputError(
          fmt::format("--split '{}': ratio {} must be a finite number >= 0", ratios_text(r), x));
    sum += x;
  }
  if (r[0] <= 0)
    throw InputError(fmt::format("--split '{}': the train ratio must be > 0", ratios_text(r)));
  if (!(sum > 0) || !std::isfinite(sum))
    throw InputError(fmt::format("--split '{}': ratios must have a positive sum", ratios_text(r)));
  return {r[0] / sum, r[1] / sum, r[2] / sum};
}

// Moves the official test items onto the end of files.train so one Dataset holds them all.
void pool_test_into_train(DatasetFiles& files) {
  Dataset& train = files.train;
  Dataset& test = files.test;
  if (test.channels != train.channels || test.height != train.height || test.width != train.width ||
      test.classes != train.classes)
    throw InputError(
        fmt::format("{}: test images ({}x{}x{}) do not match training images "
                    "({}x{}x{}); cannot pool them",
                    test.source, test.channels, test.height, test.width, train.channels,
                    train.height, train.width));
  if (test.size() > 0 && !test.has_labels())
    throw InputError(fmt::format("{}: test set has no labels; cannot pool it", test.source));
  files.pooled_train_size = train.size();
  train.images.insert(train.images.end(), test.images.begin(), test.images.end());
  train.labels.insert(train.labels.end(), test.labels.begin(), test.labels.end());
  if (test.size() > 0) train.source += " + " + test.source;
  std::vector<uint8_t>().swap(test.images);  // give the memory back, not just clear()
  std::vector<int32_t>().swap(test.labels);
}

std::vector<int64_t> iota_range(int64_t begin, int64_t end) {
  std::vector<int64_t> v(size_t(std::max<int64_t>(0, end - begin)));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

// Shuffles items [0, n) of `data` with the seed and cuts them by the fractions.
Splits ratio_splits(const Dataset& data, const std::vector<double>& fractions, uint64_t seed) {
  const int64_t n = data.size();
  std::vector<int64_t> order = iota_range(0, n);
  Rng rng(seed);
  shuffle_indices(order.data(), n, rng);
  // Cumulative rounding, so the three sizes always add up to n.
  int64_t cut1 = std::llround(double(n) * fractions[0]);
  int64_t cut2 = std::llround(double(n) * (fractions[0] + fractions[1]));
  cut1 = std::clamp<int64_t>(cut1, n > 0 ? 1 : 0, n);  // train > 0 was asked for: keep one
  cut2 = std::clamp<int64_t>(cut2, cut1, n);
  Splits s;
  s.train.indices.assign(order.begin(), order.begin() + cut1);
  s.validation.indices.assign(order.begin() + cut1, order.begin() + cut2);
  s.test.indices.assign(order.begin() + cut2, order.end());
  for (Subset* sub : {&s.train, &s.validation, &s.test}) {
    sub->data = &data;
    std::sort(sub->indices.begin(), sub->indices.end());
  }
  return s;
}

}  // namespace

Splits make_splits(DatasetFiles& files, const SplitSpec& spec, uint64_t seed) {
  if (files.train.size() == 0)
    throw InputError(fmt::format("{}: the training set is empty", files.train.source));
  if (!files.train.has_labels())
    throw InputError(fmt::format("{}: the training set has no labels", files.train.source));

  if (!spec.ratios.empty() || !files.has_test) {
    const std::vector<double> fractions =
        checked_ratios(spec.ratios.empty() ? std::vector<double>{80, 10, 10} : spec.ratios);
    if (files.has_test && !files.pooled()) pool_test_into_train(files);
    return ratio_splits(files.train, fractions, seed);
  }

  const double fraction = spec.validation_fraction;
  if (!std::isfinite(fraction) || fraction < 0 || fraction >= 1)
    throw InputError(fmt::format("validation fraction {} must be in [0, 1)", fraction));
  const int64_t n_train = files.pooled() ? files.pooled_train_size : files.train.size();
  Splits s;
  s.train.data = s.validation.data = &files.train;
  std::vector<int64_t> order = iota_range(0, n_train);
  Rng rng(seed);
  shuffle_indices(order.data(), n_train, rng);
  const int64_t n_val = std::min<int64_t>(std::llround(double(n_train) * fraction), n_train - 1);
  std::vector<char> is_val(size_t(n_train), 0);
  for (int64_t i = 0; i < n_val; ++i) is_val[size_t(order[size_t(i)])] = 1;
  for (int64_t i = 0; i < n_train; ++i)
    (is_val[size_t(i)] ? s.validation : s.train).indices.push_back(i);

  if (files.pooled()) {
    s.test.data = &files.train;
    s.test.indices = iota_range(files.pooled_train_size, files.train.size());
  } else {
    s.test.data = &files.test;
    s.test.indices = iota_range(0, files.test.size());
  }
  return s;
}

void limit_splits(Splits& splits, int64_t limit) {
  if (limit <= 0) return;
  for (Subset* sub : {&splits.train, &splits.validation, &splits.test})
    if (sub->size() > limit) sub->indices.resize(size_t(limit));
}

}  // namespace tb
