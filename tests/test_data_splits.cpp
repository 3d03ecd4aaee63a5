// Splits, normalisation statistics and batch assembly, on small in-memory datasets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "data/data_api.h"

namespace tb {
namespace {

Dataset make_dataset(int64_t n, int channels = 1, int side = 4, int label_offset = 0) {
  Dataset d;
  d.name = "synthetic";
  d.source = "memory";
  d.channels = channels;
  d.height = d.width = side;
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(int32_t((i + label_offset) % 10));
    for (int64_t p = 0; p < d.image_numel(); ++p)
      d.images.push_back(uint8_t((i * 31 + p * 7) % 256));
  }
  return d;
}

DatasetFiles make_files(int64_t n_train, int64_t n_test) {
  DatasetFiles f;
  f.train = make_dataset(n_train);
  if (n_test > 0) {
    f.test = make_dataset(n_test, 1, 4, 3);
    f.has_test = true;
  }
  return f;
}

TEST(DataSplits, DefaultUsesOfficialTestAndSeededValidation) {
  DatasetFiles f = make_files(100, 30);
  const Splits s = make_splits(f, SplitSpec{}, 7);
  EXPECT_EQ(s.train.size(), 90);
  EXPECT_EQ(s.validation.size(), 10);
  ASSERT_EQ(s.test.size(), 30);
  EXPECT_EQ(s.test.data, &f.test);
  for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(s.test.indices[size_t(i)], i);  // in order
  EXPECT_TRUE(std::is_sorted(s.train.indices.begin(), s.train.indices.end()));
  std::set<int64_t> all(s.train.indices.begin(), s.train.indices.end());
  for (int64_t i : s.validation.indices) EXPECT_TRUE(all.insert(i).second) << "overlap at " << i;
  EXPECT_EQ(all.size(), 100u);
  // Same seed, same split; another seed, another validation set.
  EXPECT_EQ(make_splits(f, SplitSpec{}, 7).validation.indices, s.validation.indices);
  EXPECT_NE(make_splits(f, SplitSpec{}, 8).validation.indices, s.validation.indices);
  SplitSpec none;
  none.validation_fraction = 0;
  EXPECT_EQ(make_splits(f, none, 7).train.size(), 100);
}

TEST(DataSplits, RatiosPoolTrainAndTest) {
  DatasetFiles f = make_files(700, 300);
  const uint8_t* first_test_image_bytes = f.test.image(0);
  std::vector<uint8_t> first_test(first_test_image_bytes, first_test_image_bytes + 16);
  SplitSpec spec;
  spec.ratios = {70, 10, 20};
  const Splits s = make_splits(f, spec, 42);
  EXPECT_EQ(s.train.size(), 700);
  EXPECT_EQ(s.validation.size(), 100);
  EXPECT_EQ(s.test.size(), 200);
  EXPECT_TRUE(f.pooled());
  EXPECT_EQ(f.pooled_train_size, 700);
  EXPECT_EQ(f.train.size(), 1000);
  EXPECT_EQ(f.test.size(), 0);
  EXPECT_EQ(std::vector<uint8_t>(f.train.image(700), f.train.image(700) + 16), first_test);
  std::set<int64_t> all;
  for (const Subset* sub : {&s.train, &s.validation, &s.test}) {
    EXPECT_EQ(sub->data, &f.train);
    for (int64_t i : sub->indices) EXPECT_TRUE(all.insert(i).second);
  }
  EXPECT_EQ(all.size(), 1000u);
  // The test split mixes items from both official sets.
  EXPECT_TRUE(
      std::any_of(s.test.indices.begin(), s.test.indices.end(), [](int64_t i) { return i < 700; }));
  EXPECT_TRUE(std::any_of(s.test.indices.begin(), s.test.indices.end(),
                          [](int64_t i) { return i >= 700; }));

  // Deterministic: a fresh copy split with the same seed gives the same items.
  DatasetFiles g = make_files(700, 300);
  EXPECT_EQ(make_splits(g, spec, 42).test.indices, s.test.indices);
  // Pooling again is a no-op, and a default split still recovers the official test set.
  EXPECT_EQ(make_splits(f, spec, 42).test.indices, s.test.indices);
  const Splits d = make_splits(f, SplitSpec{}, 1);
  EXPECT_EQ(d.test.size(), 300);
  EXPECT_EQ(d.test.indices.front(), 700);
  EXPECT_EQ(d.train.size() + d.validation.size(), 700);
}

TEST(DataSplits, NoOfficialTestUses80_10_10) {
  DatasetFiles f = make_files(1000, 0);
  const Splits s = make_splits(f, SplitSpec{}, 3);
  EXPECT_EQ(s.train.size(), 800);
  EXPECT_EQ(s.validation.size(), 100);
  EXPECT_EQ(s.test.size(), 100);
  EXPECT_FALSE(f.pooled());
}

TEST(DataSplits, BadRatiosAreRejected) {
  const std::vector<std::vector<double>> bad = {{70, 30},
                                                {70, 10, 10, 10},
                                                {-1, 1, 1},
                                                {0, 1, 1},
                                                {0, 0, 0},
                                                {std::numeric_limits<double>::quiet_NaN(), 1, 1},
                                                {std::numeric_limits<double>::infinity(), 1, 1}};
  for (const auto& r : bad) {
    DatasetFiles f = make_files(50, 10);
    SplitSpec spec;
    spec.ratios = r;
    try {
      make_splits(f, spec, 1);
      ADD_FAILURE() << "accepted " << r.size() << " ratios";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--split"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(f.pooled());  // rejected before touching the data
  }
  DatasetFiles f = make_files(50, 10);
  SplitSpec frac;
  frac.validation_fraction = 1.5;
  EXPECT_THROW(make_splits(f, frac, 1), InputError);
  SplitSpec ok;
  ok.ratios = {1, 0, 0};  // everything trains: allowed
  EXPECT_EQ(make_splits(f, ok, 1).train.size(), 60);
}

TEST(DataSplits, LimitKeepsTheFirstItems) {
  DatasetFiles f = make_files(100, 30);
  Splits s = make_splits(f, SplitSpec{}, 7);
  const auto first = s.train.indices[0];
  limit_splits(s, 5);
  EXPECT_EQ(s.train.size(), 5);
  EXPECT_EQ(s.validation.size(), 5);
  EXPECT_EQ(s.test.size(), 5);
  EXPECT_EQ(s.train.indices[0], first);
  limit_splits(s, 0);
  EXPECT_EQ(s.train.size(), 5);
}

TEST(DataNormalization, MeanAndStdPerChannel) {
  Dataset d;
  d.channels = 2;
  d.height = 1;
  d.width = 2;
  // Channel 0 sees 0, 255, 0, 255 -> mean 0.5, std 0.5; channel 1 always 51 -> mean 0.2, std 0
  // (reported as 1 so nothing divides by zero).
  d.images = {0, 255, 51, 51, 0, 255, 51, 51};
  d.labels = {0, 1};
  Subset s{&d, {0, 1}};
  const Normalization n = compute_normalization(s);
  ASSERT_EQ(n.mean.size(), 2u);
  EXPECT_FLOAT_EQ(n.mean[0], 0.5f);
  EXPECT_FLOAT_EQ(n.std[0], 0.5f);
  EXPECT_FLOAT_EQ(n.mean[1], 0.2f);
  EXPECT_FLOAT_EQ(n.std[1], 1.0f);
  // Only the subset's items count.
  d.images = {0, 0, 0, 0, 255, 255, 255, 255};
  const Normalization one = compute_normalization(Subset{&d, {1}});
  EXPECT_FLOAT_EQ(one.mean[0], 1.0f);
  EXPECT_THROW(compute_normalization(Subset{&d, {}}), InputError);
}

TEST(DataBatch, NormalisesWithoutAugmentation) {
  Dataset d = make_dataset(6, 3, 5);
  Subset s{&d, {5, 2, 0}};
  Normalization norm{{0.1f, 0.2f, 0.3f}, {0.5f, 0.25f, 2.0f}};
  const int64_t positions[2] = {1, 0};
  std::vector<float> out(2 * 75);
  int32_t labels[2];
  gather_batch(s, positions, 2, norm, Augmentation{}, 1, 0, out.data(), labels);
  EXPECT_EQ(labels[0], 2);
  EXPECT_EQ(labels[1], 5);
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 25; ++p) {
      const float want = (d.image(2)[c * 25 + p] / 255.0f - norm.mean[c]) / norm.std[c];
      EXPECT_NEAR(out[size_t(c * 25 + p)], want, 1e-5f);
    }
}

// The documented augmentation, written independently: crop offset from draws 0 and 1 of
// counter_uniform(seed, epoch, index * 4 + k), flip when draw 2 < 0.5, zero (normalised) padding.
std::vector<float> expected_augmented(const Dataset& d, int64_t index, const Normalization& norm,
                                      int pad, uint64_t seed, uint64_t epoch) {
  const int span = 2 * pad + 1;
  const int oy = std::min(int(counter_uniform(seed, epoch, uint64_t(index) * 4) * span), span - 1);
  const int ox =
      std::min(int(counter_uniform(seed, epoch, uint64_t(index) * 4 + 1) * span), span - 1);
  const bool flip = counter_uniform(seed, epoch, uint64_t(index) * 4 + 2) < 0.5f;
  const int H = d.height, W = d.width;
  std::vector<float> out(size_t(d.image_numel()));
  for (int c = 0; c < d.channels; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        // Crop of the padded image, then mirror.
        const int cx = flip ? W - 1 - x : x;
        const int py = y + oy - pad, px = cx + ox - pad;
        float v = 0;
        if (py >= 0 && py < H && px >= 0 && px < W)
          v = (d.image(index)[(c * H + py) * W + px] / 255.0f - norm.mean[c]) / norm.std[c];
        out[size_t((c * H + y) * W + x)] = v;
      }
  return out;
}

TEST(DataBatch, AugmentationIsReproducibleAndIndependentOfBatch) {
  Dataset d = make_dataset(40, 3, 8);
  Subset s{&d, {}};
  for (int64_t i = 0; i < 40; ++i) s.indices.push_back(i);
  Normalization norm{{0.5f, 0.4f, 0.3f}, {0.2f, 0.3f, 0.4f}};
  Augmentation aug;
  aug.enabled = true;
  aug.crop_padding = 2;
  const int numel = 3 * 64;
  std::vector<int64_t> batch_a = {3, 17, 25, 0}, batch_b = {25, 9};
  std::vector<float> a(4 * numel), a2(4 * numel), b(2 * numel);
  gather_batch(s, batch_a.data(), 4, norm, aug, 11, 2, a.data(), nullptr);
  gather_batch(s, batch_a.data(), 4, norm, aug, 11, 2, a2.data(), nullptr);
  gather_batch(s, batch_b.data(), 2, norm, aug, 11, 2, b.data(), nullptr);
  EXPECT_EQ(a, a2);
  // Item 25 gets the same crop and flip whichever batch and position it is in.
  EXPECT_TRUE(std::equal(a.begin() + 2 * numel, a.begin() + 3 * numel, b.begin()));
  for (int k = 0; k < 4; ++k) {
    const auto want = expected_augmented(d, batch_a[size_t(k)], norm, 2, 11, 2);
    for (int i = 0; i < numel; ++i) ASSERT_NEAR(a[size_t(k * numel + i)], want[size_t(i)], 1e-5f);
  }
  // Another epoch draws differently for at least one of the items.
  std::vector<float> e3(4 * numel);
  gather_batch(s, batch_a.data(), 4, norm, aug, 11, 3, e3.data(), nullptr);
  EXPECT_NE(a, e3);
  // Over many items both flips and several shifts occur.
  int flips = 0;
  std::set<int> shifts;
  for (int64_t i = 0; i < 40; ++i) {
    flips += counter_uniform(11, 2, uint64_t(i) * 4 + 2) < 0.5f;
    shifts.insert(std::min(int(counter_uniform(11, 2, uint64_t(i) * 4) * 5), 4));
  }
  EXPECT_GT(flips, 5);
  EXPECT_LT(flips, 35);
  EXPECT_GE(shifts.size(), 4u);
}

TEST(DataBatch, PredictionSetLabelsAreMinusOne) {
  Dataset d = make_dataset(3);
  d.labels.clear();
  Subset s{&d, {0, 1, 2}};
  Normalization norm{{0.f}, {1.f}};
  const int64_t pos[1] = {2};
  float img[16];
  int32_t label = 7;
  gather_batch(s, pos, 1, norm, Augmentation{}, 0, 0, img, &label);
  EXPECT_EQ(label, -1);
}

}  // namespace
}  // namespace tb
