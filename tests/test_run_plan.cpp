// The run plan handed to the PyTorch peer must describe exactly the run the trainer does:
// the same split (as indices into the pool of train then test items), the epoch orders of
// run_layout.h, augmentation draws that reproduce gather_batch's images, the schedule of
// every step, and the initial weights of init_parameters(seed).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "bench/plan_arrays.h"
#include "bench/run_plan.h"
#include "core/atomic_file.h"
#include "data/data_api.h"
#include "nn/models.h"
#include "ops/ref/ref_backend.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/run_layout.h"
#include "train/weights_file.h"

namespace tb {
namespace {

using testing::TempDir;

TrainConfig plan_config(const std::string& dir) {
  TrainConfig c;
  c.data_dir = dir;
  c.model = "simple_cnn";
  c.epochs = 2;
  c.batch_size = 32;
  c.seed = 5;
  c.schedule = "cosine";
  return c;
}

TEST(PlanArrays, RoundTripIncludingEmpty) {
  const std::vector<int32_t> v = {0, -1, 2147483647, 42, 7};
  EXPECT_EQ(decode_int32_array(encode_array(v), "v"), v);
  EXPECT_TRUE(decode_int32_array(encode_array(std::vector<int32_t>{}), "empty").empty());
  const std::vector<uint8_t> u = {1, 2, 3, 4, 5, 6};
  const nlohmann::json j = encode_array(u, {2, 3});
  EXPECT_EQ(j["shape"], nlohmann::json({2, 3}));
  EXPECT_EQ(decode_uint8_array(j, "u"), u);
  nlohmann::json bad = j;
  bad["data"] = "not base64!";
  EXPECT_THROW(decode_uint8_array(bad, "u"), InputError);
  EXPECT_THROW(decode_int32_array(j, "u"), InputError);  // wrong dtype
}

TEST(RunPlan, DescribesTheTrainersRun) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 300, 80);
  TrainConfig c = plan_config(tmp.str());
  const std::string plan_path = tmp.str() + "/plan.json";
  const nlohmann::json plan = write_run_plan(c, plan_path);
  EXPECT_EQ(nlohmann::json::parse(read_file(plan_path)), plan);
  EXPECT_EQ(plan["schema"], "trainbench.plan");
  EXPECT_EQ(plan["initial_weights"], "plan.json.init.weights");

  // The same split and normalisation the trainer computes.
  DatasetFiles files = load_dataset("mnist", tmp.str());
  Splits splits = make_splits(files, SplitSpec{{}, 0.1}, c.seed);
  const auto train = decode_int32_array(plan["split"]["train"], "train");
  const auto test = decode_int32_array(plan["split"]["test"], "test");
  ASSERT_EQ(train.size(), size_t(splits.train.size()));
  for (size_t i = 0; i < train.size(); ++i) EXPECT_EQ(train[i], splits.train.indices[i]);
  ASSERT_EQ(test.size(), 80u);
  for (size_t i = 0; i < test.size(); ++i) EXPECT_EQ(test[i], 300 + int32_t(i));  // after train
  EXPECT_EQ(plan["dataset"]["pool"]["train_file_items"], 300);
  EXPECT_EQ(plan["normalization"]["mean"][0].get<float>(),
            compute_normalization(splits.train).mean[0]);

  // Epoch orders and the schedule of run_layout.h.
  const RunLayout layout = layout_run(c, splits.train.size());
  EXPECT_EQ(plan["steps"]["total_steps"], layout.total_steps);
  ASSERT_EQ(plan["epochs"].size(), 2u);
  std::vector<int64_t> order;
  for (int e = 0; e < 2; ++e) {
    epoch_order(order, splits.train.size(), c.seed, e);
    const auto items = decode_int32_array(plan["epochs"][e]["items"], "items");
    ASSERT_EQ(items.size(), order.size());
    for (size_t j = 0; j < items.size(); ++j)
      EXPECT_EQ(items[j], splits.train.indices[size_t(order[j])]);
    EXPECT_FALSE(plan["epochs"][e].contains("augmentation"));
  }
  const auto lr = plan["schedule"]["lr"].get<std::vector<double>>();
  ASSERT_EQ(int64_t(lr.size()), layout.total_steps);
  for (int64_t s = 0; s < layout.total_steps; ++s)
    EXPECT_EQ(lr[size_t(s)], learning_rate_at(layout.schedule, s));

  // The initial weights are init_parameters(seed), named as the graph names them.
  const CheckpointData w = load_checkpoint(tmp.str() + "/plan.json.init.weights");
  EXPECT_EQ(weights_info(w, "w").model, "simple_cnn");
  auto ref = make_ref_backend();
  Graph g = build_model("simple_cnn", ModelInput{1, 28, 28, 10});
  g.plan(*ref, 1, DType::f32, false);
  g.init_parameters(c.seed);
  for (const ParamRef& p : g.parameters()) {
    const HostTensor* t = w.find(p.name);
    ASSERT_TRUE(t) << p.name;
    EXPECT_EQ(0, std::memcmp(t->bytes.data(), p.value.data, p.value.bytes())) << p.name;
  }
}

TEST(RunPlan, MaxStepsCutsTheLastEpochAndRatioSplitsIndexThePool) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 200, 50);
  TrainConfig c = plan_config(tmp.str());
  c.split = {70, 10, 20};
  c.epochs = 3;
  c.max_steps = 7;  // 175 train items / 32 = 6 steps per epoch (last batch of 15 is used)
  const nlohmann::json plan = make_run_plan(c, tmp.str(), tmp.str() + "/w");
  EXPECT_EQ(plan["steps"]["steps_per_epoch"], 6);
  ASSERT_EQ(plan["epochs"].size(), 2u);
  EXPECT_EQ(plan["epochs"][1]["first_step"], 6);
  EXPECT_EQ(plan["epochs"][1]["steps"], 1);
  EXPECT_EQ(decode_int32_array(plan["epochs"][1]["items"], "items").size(), 32u);
  std::vector<bool> seen(250, false);
  for (const char* s : {"train", "validation", "test"})
    for (int32_t i : decode_int32_array(plan["split"][s], s)) {
      ASSERT_TRUE(i >= 0 && i < 250);
      EXPECT_FALSE(seen[size_t(i)]) << "index " << i << " in two splits";
      seen[size_t(i)] = true;
    }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 250);
}

// Applying the plan's draws (crop offset in the padded image, flip) to normalised pixels
// must give exactly the images gather_batch makes, for crop + flip (on) and flip alone.
class AugmentationDraws : public ::testing::TestWithParam<const char*> {};

TEST_P(AugmentationDraws, ReproduceGatherBatch) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 120, 10);
  TrainConfig c = plan_config(tmp.str());
  c.augment = GetParam();
  c.epochs = 2;
  const nlohmann::json plan = make_run_plan(c, tmp.str(), tmp.str() + "/w");
  DatasetFiles files = load_dataset("mnist", tmp.str());
  Splits splits = make_splits(files, SplitSpec{{}, 0.1}, c.seed);
  const Normalization norm = compute_normalization(splits.train);
  const Augmentation aug = augmentation_for(c, 1);
  ASSERT_TRUE(aug.enabled);
  ASSERT_EQ(aug.crop_padding, c.augment == "flip" ? 0 : 4);
  const int H = 28, W = 28, pad = aug.crop_padding;
  const float scale = 1.0f / (255.0f * norm.std[0]), bias = -norm.mean[0] / norm.std[0];
  std::vector<int64_t> order;
  for (int e = 0; e < 2; ++e) {
    epoch_order(order, splits.train.size(), c.seed, e);
    const auto draws = decode_uint8_array(plan["epochs"][e]["augmentation"], "aug");
    ASSERT_EQ(draws.size(), order.size() * 3);
    for (size_t j = 0; j < 20; ++j) {
      std::vector<float> image(size_t(H * W));
      int32_t label = 0;
      gather_batch(splits.train, &order[j], 1, norm, aug, c.seed, uint64_t(e), image.data(), &label);
      const uint8_t* src = files.train.image(splits.train.indices[size_t(order[j])]);
      const int dy = draws[j * 3], dx = draws[j * 3 + 1], flip = draws[j * 3 + 2];
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
          const int py = y + dy, px = (flip ? W - 1 - x : x) + dx;  // padded coordinates
          const bool inside = py >= pad && py < H + pad && px >= pad && px < W + pad;
          const float want = inside ? float(src[(py - pad) * W + (px - pad)]) * scale + bias : 0.0f;
          ASSERT_EQ(image[size_t(y * W + x)], want) << "epoch " << e << " item " << j;
        }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(RunPlan, AugmentationDraws, ::testing::Values("on", "flip"));

TEST(RunPlan, AugmentOptionIsChecked) {
  TrainConfig c;
  c.augment = "sometimes";
  EXPECT_THROW(augmentation_for(c, 1), InputError);
  c.augment = "auto";
  EXPECT_FALSE(augmentation_for(c, 1).enabled);
  EXPECT_TRUE(augmentation_for(c, 3).enabled);
}

// --one-cycle-pct-start reaches the schedule: the peak learning rate comes at that share of
// the run, and a share that leaves an empty phase is refused.
TEST(RunLayout, OneCyclePeakFollowsPctStart) {
  TrainConfig c;
  c.schedule = "one-cycle";
  c.lr = 0.2;
  c.epochs = 1;
  c.batch_size = 10;
  c.one_cycle_pct_start = 0.5;
  const RunLayout l = layout_run(c, 1000);  // 100 steps
  EXPECT_DOUBLE_EQ(l.schedule.one_cycle_pct_start, 0.5);
  EXPECT_NEAR(learning_rate_at(l.schedule, 49), 0.2, 1e-12);  // the peak: step pct * total - 1
  EXPECT_LT(learning_rate_at(l.schedule, 29), 0.2 * 0.9);
  c.one_cycle_pct_start = 0.001;
  EXPECT_THROW(layout_run(c, 1000), InputError);
}

}  // namespace
}  // namespace tb
