// Model builders. Shapes follow DESIGN.md exactly; init follows PyTorch's defaults (through
// Init::fan_in_uniform), so the same seeds give comparable starting points to the peer.
#include "nn/models.h"

#include <fmt/format.h>

#include <functional>
#include <map>

#include "nn/layers/layers.h"

namespace tb {
namespace {

template <class L, class... Args>
std::unique_ptr<Layer> make(Args... args) {
  return std::make_unique<L>(args...);
}

std::unique_ptr<Layer> conv(int out, int k, int stride, int pad, bool bias) {
  return make<Conv2dLayer>(out, k, stride, pad, bias);
}
std::unique_ptr<Layer> relu() { return make<ReluLayer>(); }
std::unique_ptr<Layer> maxpool2() { return make<Pool2dLayer>(PoolKind::max, 2, 2, 0); }
std::unique_ptr<Layer> bn() { return make<BatchNormLayer>(); }

// conv5x5(C->8)-ReLU-maxpool2 -> fc(->10)
Graph simple_cnn(const ModelInput& in) {
  Graph g(Shape{in.channels, in.height, in.width});
  int x = g.add("conv1", conv(8, 5, 1, 0, true), Graph::kInput);
  x = g.add("relu1", relu(), x);
  x = g.add("pool1", maxpool2(), x);
  x = g.add("flatten", make<FlattenLayer>(), x);
  g.add("fc", make<LinearLayer>(in.classes, true), x);
  return g;
}

// conv3x3(C->64,p1)-ReLU-maxpool2 -> conv3x3(64->128,p1)-ReLU-maxpool2 -> fc(->512)-ReLU -> fc
Graph alexnet_lite(const ModelInput& in) {
  Graph g(Shape{in.channels, in.height, in.width});
  int x = g.add("conv1", conv(64, 3, 1, 1, true), Graph::kInput);
  x = g.add("relu1", relu(), x);
  x = g.add("pool1", maxpool2(), x);
  x = g.add("conv2", conv(128, 3, 1, 1, true), x);
  x = g.add("relu2", relu(), x);
  x = g.add("pool2", maxpool2(), x);
  x = g.add("flatten", make<FlattenLayer>(), x);
  x = g.add("fc1", make<LinearLayer>(512, true), x);
  x = g.add("relu3", relu(), x);
  g.add("fc2", make<LinearLayer>(in.classes, true), x);
  return g;
}

// [conv3x3-ReLU-BN-conv3x3-ReLU-maxpool2-Dropout(0.25)] x (32, 64) -> flatten ->
// fc(->512)-ReLU-BN1d-Dropout(0.5) -> fc
Graph cifar_cnn(const ModelInput& in) {
  Graph g(Shape{in.channels, in.height, in.width});
  int x = Graph::kInput;
  int block = 1;
  for (int width : {32, 64}) {
    const std::string p = fmt::format("block{}.", block++);
    x = g.add(p + "conv1", conv(width, 3, 1, 1, true), x);
    x = g.add(p + "relu1", relu(), x);
    x = g.add(p + "bn1", bn(), x);
    x = g.add(p + "conv2", conv(width, 3, 1, 1, true), x);
    x = g.add(p + "relu2", relu(), x);
    x = g.add(p + "pool", maxpool2(), x);
    x = g.add(p + "dropout", make<DropoutLayer>(0.25f), x);
  }
  x = g.add("flatten", make<FlattenLayer>(), x);
  x = g.add("fc1", make<LinearLayer>(512, true), x);
  x = g.add("relu", relu(), x);
  x = g.add("bn", bn(), x);
  x = g.add("dropout", make<DropoutLayer>(0.5f), x);
  g.add("fc2", make<LinearLayer>(in.classes, true), x);
  return g;
}

// conv-BN(-ReLU) as in the residual blocks (no bias: BN follows).
int conv_bn(Graph& g, const std::string& p, int x, int out, int k, int stride, bool with_relu,
            const std::string& conv_name, const std::string& bn_name) {
  x = g.add(p + conv_name, conv(out, k, stride, k / 2, false), x);
  x = g.add(p + bn_name, bn(), x);
  if (with_relu) x = g.add(p + "relu_" + conv_name, relu(), x);
  return x;
}

// The shortcut: identity, or a 1x1 projection + BN when the shape changes.
int shortcut(Graph& g, const std::string& p, int x, int in_ch, int out_ch, int stride) {
  if (stride == 1 && in_ch == out_ch) return x;
  x = g.add(p + "shortcut.conv", conv(out_ch, 1, stride, 0, false), x);
  return g.add(p + "shortcut.bn", bn(), x);
}

int basic_block(Graph& g, const std::string& p, int x, int in_ch, int width, int stride) {
  int y = conv_bn(g, p, x, width, 3, stride, true, "conv1", "bn1");
  y = conv_bn(g, p, y, width, 3, 1, false, "conv2", "bn2");
  const int s = shortcut(g, p, x, in_ch, width, stride);
  y = g.add(p + "add", make<AddLayer>(), std::vector<int>{y, s});
  return g.add(p + "relu", relu(), y);
}

int bottleneck(Graph& g, const std::string& p, int x, int in_ch, int width, int stride) {
  int y = conv_bn(g, p, x, width, 1, 1, true, "conv1", "bn1");
  y = conv_bn(g, p, y, width, 3, stride, true, "conv2", "bn2");
  y = conv_bn(g, p, y, width * 4, 1, 1, false, "conv3", "bn3");
  const int s = shortcut(g, p, x, in_ch, width * 4, stride);
  y = g.add(p + "add", make<AddLayer>(), std::vector<int>{y, s});
  return g.add(p + "relu", relu(), y);
}

// CIFAR-style ResNet: 3x3 stem, no max-pool, stages 64/128/256/512, GAP, fc.
Graph resnet(const ModelInput& in, const std::vector<int>& blocks, bool use_bottleneck) {
  Graph g(Shape{in.channels, in.height, in.width});
  int x = g.add("stem.conv", conv(64, 3, 1, 1, false), Graph::kInput);
  x = g.add("stem.bn", bn(), x);
  x = g.add("stem.relu", relu(), x);
  int channels = 64;
  const int expansion = use_bottleneck ? 4 : 1;
  const int widths[4] = {64, 128, 256, 512};
  for (int stage = 0; stage < 4; ++stage) {
    for (int b = 0; b < blocks[stage]; ++b) {
      const int stride = (stage > 0 && b == 0) ? 2 : 1;
      const std::string p = fmt::format("layer{}.{}.", stage + 1, b);
      x = use_bottleneck ? bottleneck(g, p, x, channels, widths[stage], stride)
                         : basic_block(g, p, x, channels, widths[stage], stride);
      channels = widths[stage] * expansion;
    }
  }
  x = g.add("pool", make<GlobalAvgPoolLayer>(), x);
  g.add("fc", make<LinearLayer>(in.classes, true), x);
  return g;
}

struct ModelEntry {
  std::string summary;
  std::function<Graph(const ModelInput&)> build;
};

const std::map<std::string, ModelEntry>& registry() {
  static const std::map<std::string, ModelEntry> models = {
      {"simple_cnn", {"conv5x5(8)-ReLU-maxpool2 -> fc(10): the smallest net, for the plain-loop "
                      "oracle and quick demos", simple_cnn}},
      {"alexnet_lite", {"2x [conv3x3-ReLU-maxpool2] (64, 128) -> fc(512)-ReLU -> fc(10)",
                        alexnet_lite}},
      {"cifar_cnn", {"2x [conv3x3-ReLU-BN-conv3x3-ReLU-maxpool2-Dropout(0.25)] (32, 64) -> "
                     "fc(512)-ReLU-BN1d-Dropout(0.5) -> fc(10)", cifar_cnn}},
      {"resnet18", {"CIFAR-style ResNet-18: BasicBlock [2,2,2,2], 64..512 channels",
                    [](const ModelInput& in) { return resnet(in, {2, 2, 2, 2}, false); }}},
      {"resnet34", {"CIFAR-style ResNet-34: BasicBlock [3,4,6,3], 64..512 channels",
                    [](const ModelInput& in) { return resnet(in, {3, 4, 6, 3}, false); }}},
      {"resnet50", {"CIFAR-style ResNet-50: Bottleneck [3,4,6,3], 256..2048 channels",
                    [](const ModelInput& in) { return resnet(in, {3, 4, 6, 3}, true); }}},
  };
  return models;
}

}  // namespace

std::vector<std::string> model_names() {
  return {"simple_cnn", "alexnet_lite", "cifar_cnn", "resnet18", "resnet34", "resnet50"};
}

std::string model_summary(const std::string& name) {
  auto it = registry().find(name);
  return it == registry().end() ? "" : it->second.summary;
}

Graph build_model(const std::string& name, const ModelInput& input) {
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
    throw InputError(fmt::format("unknown model '{}' (known: {})", name, known));
  }
  TB_INPUT_CHECK(input.channels > 0 && input.height > 0 && input.width > 0 && input.classes > 1,
                 "bad model input {}x{}x{} with {} classes", input.channels, input.height,
                 input.width, input.classes);
  return it->second.build(input);
}

}  // namespace tb
