// The graph's fusion passes. Batch norm followed by ReLU, or by a residual add and ReLU, becomes
// one BatchNormReluLayer node. On the GPU that removes two or three memory-bound passes per
// chain (the ReLU's and the add's forward and backward kernels and their buffers).
//
// A chain is fused only where nothing else sees its middle: the batch norm's output feeds
// only the ReLU (or the add), and the add's output feeds only the ReLU. The fused node takes
// the batch norm's place in the node order, so parameters keep their order and names; with a
// residual, the batch norm chosen is the add's later input, so that the other input (the
// residual) already exists there.
#include <memory>

#include "nn/graph.h"
#include "nn/layers/layers.h"

namespace tb {

namespace {

template <class L>
const L* as(const std::unique_ptr<Layer>& layer) {
  return dynamic_cast<const L*>(layer.get());
}

}  // namespace

void Graph::fuse_batch_norm_relu() {
  TB_CHECK(!planned(), "fusion rewrites an unplanned graph");
  const int n = int(nodes_.size());
  std::vector<std::vector<int>> consumers(static_cast<size_t>(n));
  for (int j = 1; j < n; ++j)
    for (int i : nodes_[j].inputs) consumers[i].push_back(j);
  auto only_feeds = [&](int i, int j) { return consumers[i].size() == 1 && consumers[i][0] == j; };
  auto batch_norm = [&](int i) { return i > 0 ? as<BatchNormLayer>(nodes_[i].layer) : nullptr; };

  // stands_for[j]: the node whose output replaces node j's (itself unless fused away).
  std::vector<int> stands_for(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) stands_for[j] = j;
  std::vector<bool> removed(static_cast<size_t>(n), false);
  auto fuse = [&](int b, int residual) {
    const BatchNormLayer& bn = *batch_norm(b);
    auto fused = std::make_unique<BatchNormReluLayer>(bn.eps(), bn.momentum(), residual >= 0);
    std::vector<int> inputs = nodes_[b].inputs;
    if (residual >= 0) inputs.push_back(residual);
    std::vector<Shape> shapes;
    for (int i : inputs) shapes.push_back(nodes_[i].shape);
    fused->infer(shapes);
    nodes_[b].layer = std::move(fused);
    nodes_[b].inputs = std::move(inputs);
    // The residual's gradient now comes from this node.
    if (residual >= 0) nodes_[b].needs_grad = nodes_[b].needs_grad || nodes_[residual].needs_grad;
  };

  for (int r = 1; r < n - 1; ++r) {  // the last node is the graph's output: never fused away
    if (!as<ReluLayer>(nodes_[r].layer)) continue;
    const int a = nodes_[r].inputs[0];
    if (batch_norm(a) && only_feeds(a, r)) {
      fuse(a, -1);
      removed[r] = true;
      stands_for[r] = a;
      continue;
    }
    if (a == 0 || !as<AddLayer>(nodes_[a].layer) || !only_feeds(a, r)) continue;
    const int u = nodes_[a].inputs[0], v = nodes_[a].inputs[1];
    int b = -1, other = -1;
    for (auto [first, second] : {std::pair{u, v}, std::pair{v, u}})
      if (batch_norm(first) && only_feeds(first, a) && second < first && first > b) {
        b = first;
        other = second;
      }
    if (b < 0) continue;
    fuse(b, other);
    removed[a] = removed[r] = true;
    stands_for[r] = b;
  }

  remove_fused(removed, stands_for);
}

void Graph::remove_fused(const std::vector<bool>& removed, const std::vector<int>& stands_for) {
  const int n = int(nodes_.size());
  std::vector<int> new_id(static_cast<size_t>(n), -1);
  std::vector<Node> kept;
  for (int j = 0; j < n; ++j) {
    if (removed[j]) continue;
    new_id[j] = int(kept.size());
    kept.push_back(std::move(nodes_[j]));
  }
  for (Node& node : kept)
    for (int& i : node.inputs) {
      i = new_id[stands_for[i]];
      TB_CHECK(i >= 0, "fusion left node '{}' reading a removed node", node.name);
    }
  nodes_ = std::move(kept);
}

// A ReLU whose input is a convolution or linear layer feeding nothing else becomes that
// layer's epilogue: the CPU GEMM applies it while the output tile is still in registers, so
// the ReLU's pass over memory and the pre-activation tensor disappear. Backward masks dy in
// place before the layer's own backward (Conv2dLayer::backward).
void Graph::fuse_relu_into_producers(bool conv, bool linear) {
  TB_CHECK(!planned(), "fusion rewrites an unplanned graph");
  const int n = int(nodes_.size());
  std::vector<int> consumers(static_cast<size_t>(n), 0);
  for (int j = 1; j < n; ++j)
    for (int i : nodes_[j].inputs) ++consumers[i];
  std::vector<int> stands_for(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) stands_for[j] = j;
  std::vector<bool> removed(static_cast<size_t>(n), false);
  for (int r = 1; r < n - 1; ++r) {  // the last node is the graph's output: never fused away
    if (!as<ReluLayer>(nodes_[r].layer)) continue;
    const int a = nodes_[r].inputs[0];
    if (a == 0 || consumers[a] != 1) continue;
    Layer* producer = nodes_[a].layer.get();
    if (auto* c = dynamic_cast<Conv2dLayer*>(producer); c && conv && c->op() == OpKind::conv2d)
      c->fuse_relu();
    else if (auto* l = dynamic_cast<LinearLayer*>(producer);
             l && linear && l->op() == OpKind::linear)
      l->fuse_relu();
    else
      continue;
    removed[r] = true;
    stands_for[r] = a;
  }
  remove_fused(removed, stands_for);
}

// ReLU -> max pool (the ReLU feeding nothing else) becomes max pool -> ReLU. The values are
// the same bit for bit: ReLU is monotone, so max(relu(x)) = relu(max(x)). So are the
// gradients: where a window's maximum is positive both orders send dy to the same winner
// (ties resolve alike, the winner's value being the same), and where it is not, both send
// nothing (the ReLU's mask is zero on every input of the window, or on the pooled value).
// The ReLU then reads and writes a pooled tensor, a quarter of the elements under 2x2
// pooling, forward and backward (alexnet_lite, cifar_cnn). The two nodes swap their layers,
// names and ids (ids seed dropout; neither layer draws any), keeping the graph's wiring.
void Graph::move_relu_after_max_pool() {
  TB_CHECK(!planned(), "fusion rewrites an unplanned graph");
  const int n = int(nodes_.size());
  std::vector<std::vector<int>> consumers(static_cast<size_t>(n));
  for (int j = 1; j < n; ++j)
    for (int i : nodes_[j].inputs) consumers[i].push_back(j);
  for (int r = 1; r < n; ++r) {
    if (!as<ReluLayer>(nodes_[r].layer) || consumers[r].size() != 1) continue;
    const int m = consumers[r][0];
    const Pool2dLayer* pool = as<Pool2dLayer>(nodes_[m].layer);
    if (!pool || pool->op() != OpKind::max_pool2d || nodes_[m].inputs.size() != 1) continue;
    Node& first = nodes_[r];
    Node& second = nodes_[m];
    std::swap(first.layer, second.layer);
    first.name.swap(second.name);
    std::swap(first.id, second.id);
    for (Node* node : {&first, &second}) {
      node->shape = node->layer->infer({nodes_[node->inputs[0]].shape});
      node->param_specs = node->layer->param_specs();
      node->buffer_specs = node->layer->buffer_specs();
    }
  }
}

}  // namespace tb
