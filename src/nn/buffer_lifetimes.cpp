#include "nn/buffer_lifetimes.h"

#include <algorithm>

#include "core/error.h"

namespace tb {

BufferLifetimes buffer_lifetimes(const std::vector<NodeUse>& nodes, bool training) {
  const int n = int(nodes.size());
  TB_CHECK(n >= 2, "a graph needs an input and at least one layer");
  auto backward_step = [n](int j) { return 2 * n - j; };
  BufferLifetimes life;
  life.output.resize(size_t(n));
  life.gradient.resize(size_t(n));
  for (int i = 0; i < n; ++i) {
    life.output[i] = {i, i};
    const bool own_read = training && nodes[i].needs_grad && nodes[i].backward_reads_output;
    if (own_read) life.output[i].last = backward_step(i);
  }
  // A gradient starts at its first writer, -1 until one is seen.
  std::vector<int> first_writer(size_t(n), -1);
  for (int j = 1; j < n; ++j) {
    const NodeUse& node = nodes[j];
    TB_CHECK(node.backward_reads_input.size() == node.inputs.size(),
             "node {}: backward reads given for {} of {} inputs", j,
             node.backward_reads_input.size(), node.inputs.size());
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const int i = node.inputs[k];
      TB_CHECK(i >= 0 && i < j, "node {} reads node {}, which does not come before it", j, i);
      Lifetime& out = life.output[i];
      out.last = std::max(out.last, j);
      if (!training || !node.needs_grad) continue;
      if (node.backward_reads_input[k]) out.last = std::max(out.last, backward_step(j));
      // Backward runs from the last node down, so the consumer with the largest id writes first.
      if (nodes[i].needs_grad) first_writer[i] = std::max(first_writer[i], j);
    }
  }
  for (int i = 0; i < n; ++i) {
    if (training && nodes[i].needs_grad && first_writer[i] >= 0)
      life.gradient[i] = {backward_step(first_writer[i]), backward_step(i)};
    // A gradient nobody writes stays whole-step, so it keeps the zeros it was planned with.
  }
  life.output[0] = Lifetime{};
  life.output[n - 1] = Lifetime{};
  life.gradient[n - 1] = Lifetime{};
  return life;
}

}  // namespace tb
