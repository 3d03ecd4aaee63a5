// The memory plan's lifetime sharing and the graph's buffer lifetimes: buffers whose
// lifetimes overlap never share bytes, disjoint ones may, and whole-step categories keep
// their request order.
#include <gtest/gtest.h>

#include <vector>

#include "core/memory_plan.h"
#include "core/rng.h"
#include "nn/buffer_lifetimes.h"
#include "ops/ref/ref_backend.h"

namespace tb {
namespace {

TEST(MemoryPlan, WholeStepRequestsKeepTheirOrder) {
  auto backend = make_ref_backend();
  MemoryPlan plan;
  const size_t a = plan.request("parameters", 10);
  const size_t b = plan.request("parameters", 300);
  const size_t c = plan.request("parameters", 1);
  plan.allocate(*backend);
  const char* base = static_cast<const char*>(plan.category_base("parameters"));
  EXPECT_EQ(static_cast<const char*>(plan.pointer(a)) - base, 0);
  EXPECT_EQ(static_cast<const char*>(plan.pointer(b)) - base, 256);
  EXPECT_EQ(static_cast<const char*>(plan.pointer(c)) - base, 256 + 512);
  EXPECT_EQ(plan.category_bytes("parameters"), 1024u);
}

TEST(MemoryPlan, DisjointLifetimesShareAndOverlappingOnesDoNot) {
  MemoryPlan plan;
  plan.request("activations", 1000, {0, 2});
  plan.request("activations", 1000, {3, 5});  // after the first: may take its bytes
  plan.request("activations", 500, {2, 3});   // meets both
  EXPECT_EQ(plan.category_bytes("activations"), 1024u + 512u);
  // Sizes are known before allocation, so reports need not allocate.
  EXPECT_EQ(plan.total_bytes(), 1536u);
  // The most bytes live at one step (steps 2 and 3): this layout is at that lower bound.
  EXPECT_EQ(plan.peak_live_bytes("activations"), 1024u + 512u);
}

// Random lifetimes and sizes: no two buffers that are live at the same step may overlap in
// memory, and the plan is never larger than giving each buffer its own bytes.
TEST(MemoryPlan, RandomLifetimesNeverOverlapInMemory) {
  auto backend = make_ref_backend();
  Rng rng(7);
  for (int round = 0; round < 20; ++round) {
    MemoryPlan plan;
    std::vector<Lifetime> life;
    std::vector<size_t> bytes, handles;
    size_t separate = 0;
    for (int i = 0; i < 60; ++i) {
      const int first = int(rng.uniform(0, 40));
      const int last = first + int(rng.uniform(0, 15));
      life.push_back(i % 17 == 0 ? Lifetime{} : Lifetime{first, last});
      bytes.push_back(size_t(rng.uniform(1, 5000)));
      separate += (bytes.back() + 255) / 256 * 256;
      handles.push_back(plan.request("activations", bytes.back(), life.back()));
    }
    plan.allocate(*backend);
    EXPECT_LE(plan.category_bytes("activations"), separate);
    // No layout can use less than what is live at once.
    EXPECT_GE(plan.category_bytes("activations"), plan.peak_live_bytes("activations"));
    for (size_t i = 0; i < handles.size(); ++i) {
      const char* pi = static_cast<const char*>(plan.pointer(handles[i]));
      for (size_t j = i + 1; j < handles.size(); ++j) {
        if (!life[i].overlaps(life[j])) continue;
        const char* pj = static_cast<const char*>(plan.pointer(handles[j]));
        EXPECT_TRUE(pi + bytes[i] <= pj || pj + bytes[j] <= pi)
            << "round " << round << " buffers " << i << " and " << j;
      }
    }
  }
}

// input -> conv(0->1) -> bn(2) -> relu(3) -> add(3, 1) (4) -> linear (5), the add's second
// input reaching back to the conv output.
TEST(BufferLifetimes, FollowForwardAndBackwardReaders) {
  std::vector<NodeUse> nodes(6);
  nodes[1] = {{0}, true, {true}, false};            // conv: reads its input in backward
  nodes[2] = {{1}, true, {true}, false};            // batch norm: reads its input
  nodes[3] = {{2}, true, {false}, true};            // relu: reads its output
  nodes[4] = {{3, 1}, true, {false, false}, false};  // add: reads nothing
  nodes[5] = {{4}, true, {true}, false};            // linear
  const int n = 6;
  const auto bwd = [n](int j) { return 2 * n - j; };
  const BufferLifetimes t = buffer_lifetimes(nodes, true);
  EXPECT_TRUE(t.output[0].whole());
  EXPECT_EQ(t.output[1].first, 1);
  EXPECT_EQ(t.output[1].last, bwd(2));  // the batch norm's backward reads it
  EXPECT_EQ(t.output[2].last, 3);       // only the relu's forward reads it
  EXPECT_EQ(t.output[3].last, bwd(3));  // the relu's own backward
  EXPECT_EQ(t.output[4].last, bwd(5));  // the linear layer's backward
  EXPECT_TRUE(t.output[5].whole());
  // The conv output's gradient is first written by the add (node 4), read by node 1.
  EXPECT_EQ(t.gradient[1].first, bwd(4));
  EXPECT_EQ(t.gradient[1].last, bwd(1));
  EXPECT_EQ(t.gradient[3].first, bwd(4));
  EXPECT_EQ(t.gradient[3].last, bwd(3));
  EXPECT_TRUE(t.gradient[5].whole());

  const BufferLifetimes inference = buffer_lifetimes(nodes, false);
  EXPECT_EQ(inference.output[1].last, 4);
  EXPECT_EQ(inference.output[3].last, 4);
}

}  // namespace
}  // namespace tb
