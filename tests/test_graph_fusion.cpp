// The graph's fusion passes: batch norm + ReLU (+ residual add), and conv / linear + ReLU on
// the backends that run those ops. Which chains they rewrite, that names and parameter order
// survive, and that training with them is bit-identical to the separate ops on the CPU
// backends (dropout masks included: they follow a node's id, which fusion keeps).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/graph.h"
#include "nn/layers/layers.h"
#include "nn/models.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/ref/ref_backend.h"
#include "training_compare.h"

namespace tb {
namespace {

std::unique_ptr<Layer> conv(int out, int k, int stride) {
  return std::make_unique<Conv2dLayer>(out, k, stride, k / 2, false);
}
std::unique_ptr<Layer> bn() { return std::make_unique<BatchNormLayer>(); }
std::unique_ptr<Layer> relu() { return std::make_unique<ReluLayer>(); }
std::unique_ptr<Layer> add() { return std::make_unique<AddLayer>(); }

// Every fusable chain and two that must stay apart:
//  - BN -> ReLU, 2-D (stem, b1.bn1, b2.bn1) and 1-D (bn1d);
//  - BN -> add -> ReLU with an identity residual made before the BN (b1);
//  - BN -> add -> ReLU where both add inputs are batch norms (b2): the later one is fused;
//  - a BN read twice (t.bn) and an add fed by it: left alone.
Graph fusable_net() {
  Graph g(Shape{2, 8, 8});
  int x = g.add("stem", conv(4, 3, 1), Graph::kInput);
  x = g.add("stem_bn", bn(), x);
  x = g.add("stem_relu", relu(), x);
  int y = g.add("b1.conv1", conv(4, 3, 1), x);
  y = g.add("b1.bn1", bn(), y);
  y = g.add("b1.relu1", relu(), y);
  y = g.add("b1.conv2", conv(4, 3, 1), y);
  y = g.add("b1.bn2", bn(), y);
  y = g.add("b1.add", add(), std::vector<int>{y, x});
  x = g.add("b1.relu", relu(), y);
  y = g.add("b2.conv1", conv(6, 3, 2), x);
  y = g.add("b2.bn1", bn(), y);
  y = g.add("b2.relu1", relu(), y);
  y = g.add("b2.conv2", conv(6, 3, 1), y);
  y = g.add("b2.bn2", bn(), y);
  int s = g.add("b2.short", conv(6, 1, 2), x);
  s = g.add("b2.short_bn", bn(), s);
  y = g.add("b2.add", add(), std::vector<int>{y, s});
  y = g.add("b2.relu", relu(), y);
  const int t = g.add("t.conv", conv(6, 1, 1), y);
  const int tb = g.add("t.bn", bn(), t);
  const int t1 = g.add("t.relu", relu(), tb);
  const int t2 = g.add("t.sum", add(), std::vector<int>{t1, tb});
  int f = g.add("gap", std::make_unique<GlobalAvgPoolLayer>(), t2);
  f = g.add("fc1", std::make_unique<LinearLayer>(8, true), f);
  f = g.add("bn1d", bn(), f);
  f = g.add("relu1d", relu(), f);
  g.add("fc2", std::make_unique<LinearLayer>(3, true), f);
  return g;
}

std::map<std::string, std::string> types_by_name(const Graph& g) {
  std::map<std::string, std::string> out;
  for (const Graph::NodeInfo& info : g.describe()) out[info.name] = info.type;
  return out;
}

std::vector<std::string> parameter_names(Backend& backend, Graph g, const PlanOptions& options) {
  g.set_plan_options(options);
  g.plan(backend, 2, DType::f32, true);
  std::vector<std::string> names;
  for (const ParamRef& p : g.parameters()) names.push_back(p.name);
  return names;
}

const PlanOptions kUnfused{
    .reuse_activation_memory = true, .fuse_batch_norm_relu = false, .fuse_conv_relu = false};

TEST(GraphFusion, RewritesExactlyTheFusableChains) {
  auto backend = make_ref_backend();
  Graph g = fusable_net();
  const size_t nodes = g.node_count();
  g.plan(*backend, 2, DType::f32, true);
  const auto types = types_by_name(g);
  EXPECT_EQ(types.at("stem_bn"), "batch_norm2d_relu");
  EXPECT_EQ(types.at("b1.bn1"), "batch_norm2d_relu");
  EXPECT_EQ(types.at("b1.bn2"), "batch_norm2d_add_relu");
  EXPECT_EQ(types.at("b2.bn1"), "batch_norm2d_relu");
  EXPECT_EQ(types.at("b2.bn2"), "batch_norm2d");
  EXPECT_EQ(types.at("b2.short_bn"), "batch_norm2d_add_relu");
  EXPECT_EQ(types.at("t.bn"), "batch_norm2d");
  EXPECT_EQ(types.at("t.relu"), "relu");
  EXPECT_EQ(types.at("t.sum"), "add");
  EXPECT_EQ(types.at("bn1d"), "batch_norm1d_relu");
  for (const char* gone : {"stem_relu", "b1.relu1", "b1.add", "b1.relu", "b2.relu1", "b2.add",
                           "b2.relu", "relu1d"})
    EXPECT_EQ(types.count(gone), 0u) << gone;
  EXPECT_EQ(g.node_count(), nodes - 8);
}

TEST(GraphFusion, ResNet18KeepsNoSeparateReluOrAddAndTheSameParameters) {
  auto backend = make_ref_backend();
  const ModelInput in{3, 32, 32, 10};
  Graph g = build_model("resnet18", in);
  g.planned_bytes(2, GraphPrecision{}, true);  // applies the rewrites
  std::map<std::string, int> count;
  for (const Graph::NodeInfo& info : g.describe()) ++count[info.type];
  EXPECT_EQ(count["relu"], 0);
  EXPECT_EQ(count["add"], 0);
  EXPECT_EQ(count["batch_norm2d_relu"], 9);       // stem and every block's first BN
  EXPECT_EQ(count["batch_norm2d_add_relu"], 8);   // every block's last BN (or its shortcut's)
  EXPECT_EQ(count["batch_norm2d"], 3);            // bn2 of the three projection blocks
  EXPECT_EQ(parameter_names(*backend, build_model("resnet18", in), PlanOptions{}),
            parameter_names(*backend, build_model("resnet18", in), kUnfused));
}

// Every model of the zoo: the same parameters in the same order, no node left reading a
// removed one (plan() checks), and no more memory than the plain plan.
TEST(GraphFusion, EveryModelKeepsItsParametersAndPlansLessMemory) {
  auto backend = make_ref_backend();
  const PlanOptions plain{
      .reuse_activation_memory = false, .fuse_batch_norm_relu = false, .fuse_conv_relu = false};
  for (const std::string& name : model_names()) {
    const ModelInput in{3, 32, 32, 10};
    EXPECT_EQ(parameter_names(*backend, build_model(name, in), PlanOptions{}),
              parameter_names(*backend, build_model(name, in), plain))
        << name;
    Graph fused = build_model(name, in), unfused = build_model(name, in);
    unfused.set_plan_options(plain);
    size_t a = 0, b = 0;
    for (const auto& [category, bytes] : fused.planned_bytes(8, GraphPrecision{}, true)) a += bytes;
    for (const auto& [category, bytes] : unfused.planned_bytes(8, GraphPrecision{}, true)) b += bytes;
    EXPECT_LT(a, b) << name;
  }
}

TEST(GraphFusion, RefTrainingIsBitIdenticalToTheSeparateOps) {
  auto backend = make_ref_backend();
  expect_identical(train_steps(*backend, fusable_net(), kUnfused, 4, 3),
                   train_steps(*backend, fusable_net(), PlanOptions{}, 4, 3));
}

TEST(GraphFusion, CpuTrainingIsBitIdenticalToTheSeparateOps) {
  auto backend = make_cpu_backend(2);
  expect_identical(train_steps(*backend, fusable_net(), kUnfused, 5, 3),
                   train_steps(*backend, fusable_net(), PlanOptions{}, 5, 3));
  const ModelInput in{1, 28, 28, 10};
  expect_identical(train_steps(*backend, build_model("resnet18", in), kUnfused, 4, 2),
                   train_steps(*backend, build_model("resnet18", in), PlanOptions{}, 4, 2));
}

TEST(GraphFusion, OneDnnTrainingIsBitIdenticalToTheSeparateOps) {
  std::unique_ptr<Backend> backend;
  try {
    backend = make_backend("onednn", 2);
  } catch (const InputError&) {
    GTEST_SKIP() << "this build has no oneDNN backend";
  }
  expect_identical(train_steps(*backend, fusable_net(), kUnfused, 5, 3),
                   train_steps(*backend, fusable_net(), PlanOptions{}, 5, 3));
}

// Conv -> ReLU and linear -> ReLU chains: fused on cpu, where the GEMM's epilogue applies the
// ReLU; a pre-activation read by anything else, and a ReLU after a pool, stay apart. ref
// (the oracle) and onednn keep them as separate nodes.
Graph conv_relu_net() {
  Graph g(Shape{2, 8, 8});
  int x = g.add("c1", conv(4, 3, 1), Graph::kInput);
  x = g.add("c1.relu", relu(), x);
  const int c2 = g.add("c2", conv(4, 3, 1), x);
  const int r2 = g.add("c2.relu", relu(), c2);
  x = g.add("c2.sum", add(), std::vector<int>{r2, c2});  // c2's output read twice: apart
  x = g.add("pool", std::make_unique<Pool2dLayer>(PoolKind::max, 2, 2, 0), x);
  x = g.add("pool.relu", relu(), x);
  x = g.add("drop", std::make_unique<DropoutLayer>(0.25f), x);
  x = g.add("flat", std::make_unique<FlattenLayer>(), x);
  x = g.add("fc1", std::make_unique<LinearLayer>(8, true), x);
  x = g.add("fc1.relu", relu(), x);
  x = g.add("drop1d", std::make_unique<DropoutLayer>(0.5f), x);
  g.add("fc2", std::make_unique<LinearLayer>(3, true), x);
  return g;
}

TEST(GraphFusion, ConvAndLinearReluFuseOnCpuOnly) {
  auto cpu = make_cpu_backend(2);
  Graph g = conv_relu_net();
  const size_t nodes = g.node_count();
  g.plan(*cpu, 2, DType::f32, true);
  auto types = types_by_name(g);
  EXPECT_EQ(types.at("c1"), "conv2d_relu");
  EXPECT_EQ(types.at("c2"), "conv2d");
  EXPECT_EQ(types.at("c2.relu"), "relu");
  EXPECT_EQ(types.at("pool.relu"), "relu");
  EXPECT_EQ(types.at("fc1"), "linear_relu");
  EXPECT_EQ(types.at("fc2"), "linear");
  EXPECT_EQ(types.count("c1.relu") + types.count("fc1.relu"), 0u);
  EXPECT_EQ(g.node_count(), nodes - 2);

  auto ref = make_ref_backend();
  Graph r = conv_relu_net();
  r.plan(*ref, 2, DType::f32, true);
  types = types_by_name(r);
  EXPECT_EQ(types.at("c1"), "conv2d");
  EXPECT_EQ(types.at("fc1"), "linear");
  EXPECT_EQ(r.node_count(), nodes);
}

TEST(GraphFusion, CpuConvReluTrainingIsBitIdenticalToTheSeparateOps) {
  auto backend = make_cpu_backend(2);
  const PlanOptions bn_only{.reuse_activation_memory = true, .fuse_conv_relu = false};
  expect_identical(train_steps(*backend, conv_relu_net(), bn_only, 5, 3),
                   train_steps(*backend, conv_relu_net(), PlanOptions{}, 5, 3));
  // Both zoo models with conv -> ReLU chains; cifar_cnn's dropout masks must not move.
  for (const char* name : {"alexnet_lite", "cifar_cnn"}) {
    const ModelInput in{3, 16, 16, 10};
    expect_identical(train_steps(*backend, build_model(name, in), bn_only, 4, 2),
                     train_steps(*backend, build_model(name, in), PlanOptions{}, 4, 2));
  }
}

// ReLU -> max pool swaps to max pool -> ReLU where the ReLU feeds nothing else (a ReLU read
// twice stays), and training is bit-identical to the unswapped graph: the values and the
// winners' gradients are the same (graph_fusion.cpp).
Graph relu_pool_net() {
  Graph g(Shape{2, 8, 8});
  int x = g.add("c1", conv(4, 3, 1), Graph::kInput);
  x = g.add("c1.relu", relu(), x);
  x = g.add("pool1", std::make_unique<Pool2dLayer>(PoolKind::max, 2, 2, 0), x);
  const int c2 = g.add("c2", conv(4, 3, 1), x);
  const int r2 = g.add("c2.relu", relu(), c2);
  const int p2 = g.add("pool2", std::make_unique<Pool2dLayer>(PoolKind::max, 2, 2, 0), r2);
  const int s2 = g.add("pool2.avg", std::make_unique<Pool2dLayer>(PoolKind::average, 2, 2, 0), r2);
  x = g.add("sum", add(), std::vector<int>{p2, s2});  // c2.relu read twice: stays
  x = g.add("flat", std::make_unique<FlattenLayer>(), x);
  g.add("fc", std::make_unique<LinearLayer>(3, true), x);
  return g;
}

TEST(GraphFusion, ReluMovesAfterAMaxPoolThatAloneReadsIt) {
  auto ref = make_ref_backend();
  Graph g = relu_pool_net();
  const size_t nodes = g.node_count();
  g.plan(*ref, 2, DType::f32, true);
  const std::vector<Graph::NodeInfo> info = g.describe();
  ASSERT_EQ(info.size(), nodes);
  EXPECT_EQ(info[2].name, "pool1");
  EXPECT_EQ(info[2].type, "max_pool2d");
  EXPECT_EQ(info[2].output_shape, (Shape{4, 4, 4}));
  EXPECT_EQ(info[3].name, "c1.relu");
  EXPECT_EQ(info[3].output_shape, (Shape{4, 4, 4}));
  EXPECT_EQ(info[5].name, "c2.relu");  // read by two pools: not moved
  EXPECT_EQ(info[5].output_shape, (Shape{4, 4, 4}));
}

TEST(GraphFusion, ReluAfterMaxPoolTrainsBitIdentically) {
  for (const char* impl : {"ref", "cpu"}) {
    SCOPED_TRACE(impl);
    auto backend = std::string(impl) == "ref" ? make_ref_backend() : make_cpu_backend(2);
    const PlanOptions plain{.fuse_conv_relu = false, .max_pool_before_relu = false};
    const PlanOptions swapped{.fuse_conv_relu = false};
    expect_identical(train_steps(*backend, relu_pool_net(), plain, 5, 3),
                     train_steps(*backend, relu_pool_net(), swapped, 5, 3));
    for (const char* name : {"alexnet_lite", "cifar_cnn"}) {
      const ModelInput in{3, 16, 16, 10};
      expect_identical(train_steps(*backend, build_model(name, in), plain, 4, 2),
                       train_steps(*backend, build_model(name, in), swapped, 4, 2));
    }
  }
}

}  // namespace
}  // namespace tb
