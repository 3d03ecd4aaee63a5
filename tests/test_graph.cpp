// The graph as a whole: gradients of a small residual network by finite differences in
// double precision, allocation-free steps, and the model zoo's shapes and sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/rng.h"
#include "nn/graph.h"
#include "nn/layers/layers.h"
#include "nn/models.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/ref/ref_backend.h"
#include "test_util.h"
#include "train/classifier.h"
#include "train/optimizer.h"
#include "training_compare.h"

namespace tb {
namespace {

// A small network touching every layer type: conv (bias and not, stride 2), batch norm
// 2-D and 1-D, ReLU, max and average pooling, a residual add with a projection shortcut,
// global average pooling, flatten, dropout and linear layers.
Graph small_residual_net() {
  Graph g(Shape{2, 8, 8});
  int x = g.add("stem", std::make_unique<Conv2dLayer>(4, 3, 1, 1, true), Graph::kInput);
  x = g.add("stem_bn", std::make_unique<BatchNormLayer>(), x);
  x = g.add("stem_relu", std::make_unique<ReluLayer>(), x);
  int y = g.add("b.conv1", std::make_unique<Conv2dLayer>(6, 3, 2, 1, false), x);
  y = g.add("b.bn1", std::make_unique<BatchNormLayer>(), y);
  y = g.add("b.relu1", std::make_unique<ReluLayer>(), y);
  y = g.add("b.conv2", std::make_unique<Conv2dLayer>(6, 3, 1, 1, false), y);
  int s = g.add("b.short", std::make_unique<Conv2dLayer>(6, 1, 2, 0, false), x);
  y = g.add("b.add", std::make_unique<AddLayer>(), std::vector<int>{y, s});
  y = g.add("b.relu", std::make_unique<ReluLayer>(), y);
  // Two heads from one activation: the gradient of y is accumulated from both.
  int gap = g.add("gap", std::make_unique<GlobalAvgPoolLayer>(), y);
  int mp = g.add("maxpool", std::make_unique<Pool2dLayer>(PoolKind::max, 2, 2, 0), y);
  int ap = g.add("avgpool", std::make_unique<Pool2dLayer>(PoolKind::average, 2, 1, 0), mp);
  int fl = g.add("flatten", std::make_unique<FlattenLayer>(), ap);
  int fc1 = g.add("fc1", std::make_unique<LinearLayer>(6, true), fl);
  fc1 = g.add("bn1d", std::make_unique<BatchNormLayer>(), fc1);
  fc1 = g.add("drop", std::make_unique<DropoutLayer>(0.3f), fc1);
  int sum = g.add("sum", std::make_unique<AddLayer>(), std::vector<int>{fc1, gap});
  g.add("fc2", std::make_unique<LinearLayer>(3, true), sum);
  return g;
}

TEST(Graph, ResidualNetworkGradientsMatchFiniteDifferencesInDouble) {
  auto backend = make_ref_backend();
  Graph g = small_residual_net();
  const int n = 3;
  // The finite differences run forward passes after the backward one: the gradients must
  // keep their own memory (shared, they hold until the next forward).
  PlanOptions options;
  options.share_gradient_memory = PlanOptions::GradientSharing::off;
  g.set_plan_options(options);
  g.plan(*backend, n, DType::f64, true);
  g.init_parameters(5);
  Rng rng(11);
  const Tensor in = g.input(n);
  for (int64_t i = 0; i < in.numel(); ++i) in.ptr<double>()[i] = rng.normal();
  const Tensor out = g.output(n);
  std::vector<double> r(size_t(out.numel()));
  for (double& v : r) v = rng.normal();
  const uint64_t seed = 3, step = 9;  // fixed: dropout draws the same mask every pass

  auto loss = [&]() {
    g.forward(n, true, seed, step);
    double l = 0;
    for (int64_t i = 0; i < out.numel(); ++i) l += r[size_t(i)] * out.ptr<double>()[i];
    return l;
  };
  loss();
  std::copy(r.begin(), r.end(), g.output_grad(n).ptr<double>());
  g.backward(n, seed, step);

  double worst = 0;
  int checked = 0;
  for (const ParamRef& p : g.parameters()) {
    double* w = p.value.ptr<double>();
    const double* grad = p.grad.ptr<double>();
    // Check a spread of entries of every parameter tensor.
    for (int64_t i = 0; i < p.value.numel(); i += 1 + p.value.numel() / 7) {
      const double keep = w[i], h = 1e-6;
      w[i] = keep + h;
      const double up = loss();
      w[i] = keep - h;
      const double down = loss();
      w[i] = keep;
      const double numeric = (up - down) / (2 * h);
      // Relative error, with a floor: biases feeding batch norm have a true gradient of 0,
      // where the numeric one is rounding noise of up to about 1e-9.
      const double err = std::abs(numeric - grad[i]) / std::max(1e-3, std::abs(numeric) + std::abs(grad[i]));
      worst = std::max(worst, err);
      EXPECT_LT(err, 1e-5) << p.name << "[" << i << "] analytic " << grad[i] << " numeric " << numeric;
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
  RecordProperty("worst_relative_error", std::to_string(worst));
}

TEST(Graph, TrainingStepAllocatesNothing) {
  auto backend = make_ref_backend();
  Classifier model(build_model("cifar_cnn", {1, 28, 28, 10}), *backend, 4, true, 0.1f);
  model.graph().init_parameters(1);
  Optimizer opt(*backend, model.graph().parameters(), OptimizerConfig{"adam"});
  std::vector<float> images(4 * 28 * 28, 0.5f);
  std::vector<int32_t> labels{1, 2, 3, 4};
  const size_t before = backend->allocation_count();
  for (int step = 0; step < 2; ++step) {
    model.set_batch(4, images.data(), labels.data());
    model.forward_loss(4, true, 1, step);
    model.backward(4, 1, step);
    opt.step(0.001f);
  }
  EXPECT_EQ(backend->allocation_count(), before);
}

// Bytes of activations and their gradients, whichever categories the plan put them in.
size_t activation_bytes(const std::map<std::string, size_t>& bytes) {
  size_t total = 0;
  for (const char* c : {"activations", "activation_gradients"})
    if (auto it = bytes.find(c); it != bytes.end()) total += it->second;
  return total;
}

size_t total_bytes(const std::map<std::string, size_t>& bytes) {
  size_t total = 0;
  for (const auto& [category, n] : bytes) total += n;
  return total;
}

// Plan options: every node its own buffers and kernels (the plan as it was), memory reuse
// alone, and the default (reuse and batch-norm + ReLU fusion).
const PlanOptions kPlain{
    .reuse_activation_memory = false, .fuse_batch_norm_relu = false, .fuse_conv_relu = false};
const PlanOptions kReuseOnly{
    .reuse_activation_memory = true, .fuse_batch_norm_relu = false, .fuse_conv_relu = false};

std::map<std::string, size_t> resnet18_plan(const PlanOptions& options, bool training) {
  // The configuration of the GPU target: 3x32x32, batch 512, bf16 activations.
  Graph g = build_model("resnet18", {3, 32, 32, 10});
  g.set_plan_options(options);
  return g.planned_bytes(512, GraphPrecision{DType::f32, DType::bf16}, training);
}

TEST(GraphMemory, ResNet18ActivationBytesDropWithReuse) {
  const auto before = resnet18_plan(kPlain, true);
  const auto reused = resnet18_plan(kReuseOnly, true);
  const auto fused = resnet18_plan(PlanOptions{}, true);
  const size_t b = activation_bytes(before), r = activation_bytes(reused), f = activation_bytes(fused);
  RecordProperty("activation_bytes_plain", std::to_string(b));
  RecordProperty("activation_bytes_reuse", std::to_string(r));
  RecordProperty("activation_bytes_reuse_fused", std::to_string(f));
  std::printf("resnet18 3x32x32 b512 bf16 activation bytes: plain %zu, reuse %zu, reuse+fusion %zu"
              " (totals %zu, %zu, %zu)\n",
              b, r, f, total_bytes(before), total_bytes(reused), total_bytes(fused));
  EXPECT_LT(r, b / 2);
  // Fusion saves no activation memory at the peak (the separate BN and add outputs it removes
  // were short-lived already) and costs one buffer there: the fused backward keeps its
  // output (the ReLU mask) while it writes dx and the residual's gradient. The layout is
  // at the lower bound (the most bytes live at one step) in both cases.
  EXPECT_LE(f, r + r / 100);
  // Parameters are untouched; with reuse, their gradients share the activations' memory
  // (GraphMemory.SharedGradientsAddAlmostNothingToATurnPeak).
  EXPECT_EQ(before.at("parameters"), fused.at("parameters"));
  EXPECT_EQ(fused.count("gradients"), 0u);
  // Inference needs far less than training: outputs die at their last forward reader.
  EXPECT_LT(activation_bytes(resnet18_plan(PlanOptions{}, false)), f / 4);
}

TEST(GraphMemory, ReuseLeavesRefTrainingBitIdentical) {
  auto backend = make_ref_backend();
  // Every layer type, two heads on one activation, dropout.
  expect_identical(train_steps(*backend, small_residual_net(), kPlain, 4, 3),
                   train_steps(*backend, small_residual_net(), kReuseOnly, 4, 3));
  expect_identical(train_steps(*backend, build_model("cifar_cnn", {1, 28, 28, 10}), kPlain, 3, 2),
                   train_steps(*backend, build_model("cifar_cnn", {1, 28, 28, 10}), kReuseOnly, 3, 2));
}

// TB_TRACE_FIRST_PASS=1 times the first forward and backward pass node by node and says so
// on stderr; the numbers it trains to are the same.
TEST(Graph, FirstPassTraceChangesNoResultAndNamesTheLayers) {
  auto backend = make_ref_backend();
  const auto plain = train_steps(*backend, small_residual_net(), PlanOptions{}, 4, 3);
  const testing::ScopedEnv trace("TB_TRACE_FIRST_PASS", "1");
  ::testing::internal::CaptureStderr();
  const auto traced = train_steps(*backend, small_residual_net(), PlanOptions{}, 4, 3);
  const std::string err = ::testing::internal::GetCapturedStderr();
  expect_identical(plain, traced);
  EXPECT_NE(err.find("first forward pass, batch 4"), std::string::npos) << err;
  EXPECT_NE(err.find("first backward pass, batch 4"), std::string::npos) << err;
  EXPECT_NE(err.find("fc2"), std::string::npos) << err;
  // Once per direction and batch size: three steps, one forward and one backward trace.
  size_t forwards = 0;
  for (size_t at = err.find("first forward"); at != std::string::npos;
       at = err.find("first forward", at + 1))
    ++forwards;
  EXPECT_EQ(forwards, 1u) << err;
}

TEST(GraphMemory, ReuseLeavesCpuResNetTrainingBitIdentical) {
  auto backend = make_cpu_backend(2);
  const ModelInput in{1, 28, 28, 10};
  expect_identical(train_steps(*backend, build_model("resnet18", in), kPlain, 4, 2),
                   train_steps(*backend, build_model("resnet18", in), kReuseOnly, 4, 2));
  expect_identical(train_steps(*backend, small_residual_net(), kPlain, 5, 3),
                   train_steps(*backend, small_residual_net(), kReuseOnly, 5, 3));
}

// Gradients sharing the activations' memory, against their own block.
PlanOptions with_gradient_sharing(PlanOptions options, PlanOptions::GradientSharing sharing) {
  options.share_gradient_memory = sharing;
  return options;
}

TEST(GraphMemory, SharedGradientsAddAlmostNothingToATurnPeak) {
  using Sharing = PlanOptions::GradientSharing;
  const GraphPrecision bf16{DType::f32, DType::bf16};
  auto plan = [&](const char* model, int batch, Sharing sharing) {
    Graph g = build_model(model, {3, 32, 32, 10});
    g.set_plan_options(with_gradient_sharing(PlanOptions{}, sharing));
    return g.planned_bytes(batch, bf16, true);
  };
  // resnet50 at batch 512 peaks at the turn from forward to backward: of its 90 MiB of
  // gradients, at most 8 stay on top of that peak.
  const auto apart = plan("resnet50", 512, Sharing::off);
  const auto shared = plan("resnet50", 512, Sharing::when_smaller);
  const size_t gradients = apart.at("gradients");
  EXPECT_EQ(shared.count("gradients"), 0u);
  EXPECT_EQ(shared.at("parameters"), apart.at("parameters"));
  EXPECT_LE(total_bytes(shared) + gradients - (8u << 20), total_bytes(apart));
  // alexnet_lite peaks in forward: sharing would save nothing, so its gradients keep their
  // block (and the optimizer its single launch).
  EXPECT_EQ(plan("alexnet_lite", 512, Sharing::when_smaller).count("gradients"), 1u);
}

TEST(GraphMemory, SharedGradientsLeaveTrainingBitIdentical) {
  using Sharing = PlanOptions::GradientSharing;
  const PlanOptions apart = with_gradient_sharing(kReuseOnly, Sharing::off);
  const PlanOptions shared = with_gradient_sharing(PlanOptions{}, Sharing::always);
  auto ref = make_ref_backend();
  expect_identical(train_steps(*ref, small_residual_net(), apart, 4, 3),
                   train_steps(*ref, small_residual_net(), shared, 4, 3));
  auto cpu = make_cpu_backend(2);
  const ModelInput in{1, 28, 28, 10};
  expect_identical(train_steps(*cpu, build_model("resnet18", in),
                               with_gradient_sharing(PlanOptions{}, Sharing::off), 4, 2),
                   train_steps(*cpu, build_model("resnet18", in), shared, 4, 2));
  auto onednn = make_backend("onednn", 1);
  expect_identical(train_steps(*onednn, small_residual_net(), apart, 4, 2),
                   train_steps(*onednn, small_residual_net(), shared, 4, 2));
}

struct ModelSize {
  const char* name;
  ModelInput input;
  int64_t parameters;
};

TEST(Models, ParameterCountsMatchThePyTorchDefinitions) {
  // Counts of the same definitions in PyTorch (../shared/peers/torch_anchor.py).
  const ModelSize sizes[] = {
      {"simple_cnn", {1, 28, 28, 10}, 11738},     {"alexnet_lite", {1, 28, 28, 10}, 3291402},
      {"cifar_cnn", {3, 32, 32, 10}, 2169578},    {"resnet18", {3, 32, 32, 10}, 11173962},
      {"resnet34", {3, 32, 32, 10}, 21282122},    {"resnet50", {3, 32, 32, 10}, 23520842},
  };
  for (const auto& s : sizes) EXPECT_EQ(build_model(s.name, s.input).parameter_count(), s.parameters) << s.name;
}

TEST(Models, EveryModelBuildsForBothInputSizes) {
  for (const auto& name : model_names())
    for (ModelInput in : {ModelInput{1, 28, 28, 10}, ModelInput{3, 32, 32, 10}}) {
      Graph g = build_model(name, in);
      EXPECT_EQ(g.output_shape(), (Shape{10})) << name;
      EXPECT_GT(g.forward_flops_per_item(), 0) << name;
      EXPECT_GT(g.training_flops_per_item(), 2 * g.forward_flops_per_item()) << name;
    }
}

TEST(Models, ResNet18ForwardFlopsAreTheKnownFigure) {
  // CIFAR ResNet-18 at 32x32: about 0.56 G multiply-adds, 1.11 GFLOP.
  const double f = build_model("resnet18", {3, 32, 32, 10}).forward_flops_per_item();
  EXPECT_NEAR(f / 1e9, 1.11, 0.02);
}

TEST(Models, UnknownModelIsAnInputError) {
  EXPECT_THROW(build_model("vgg16", {1, 28, 28, 10}), InputError);
  EXPECT_THROW(build_model("alexnet_lite", {1, 2, 2, 10}), InputError);
}

}  // namespace
}  // namespace tb
