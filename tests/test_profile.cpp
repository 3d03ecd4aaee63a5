// trainbench profile: every layer is timed and counted (no assertions on speed: speed targets
// live in benchmarks).
#include <gtest/gtest.h>

#include "bench/profile.h"

namespace tb {
namespace {

TEST(Profile, EveryLayerIsTimedWithItsFlopsAndBytes) {
  ProfileSpec s;
  s.model = "alexnet_lite";
  s.input = {1, 8, 8, 10};
  s.impl = "ref";
  s.batch_size = 4;
  s.warmup = 1;
  s.repeats = 2;
  const ProfileResult r = profile_training_step(s);
  ASSERT_EQ(r.layers.size(), 10u);
  for (const LayerProfile& l : r.layers) {
    EXPECT_GT(l.forward_seconds, 0) << l.name;
    EXPECT_GT(l.forward_bytes, 0) << l.name;
    if (l.type == "conv2d" || l.type == "linear") EXPECT_GT(l.forward_flops, 0) << l.name;
  }
  EXPECT_GT(r.step_seconds, 0);
  EXPECT_GT(r.layer_sum_seconds, 0);
  EXPECT_NE(profile_table(r).find("measured step"), std::string::npos);
  EXPECT_EQ(to_json(r)["layers"].size(), 10u);
}

}  // namespace
}  // namespace tb
