// When each activation and activation gradient of a graph holds live data, so the memory plan
// can let buffers with disjoint lifetimes share bytes.
//
// A training step is a sequence of node calls: the caller fills the input (step 0), the
// forward of node j is step j, the loss reads the output and writes its gradient (step N, for
// N nodes), and the backward of node j is step 2N - j. A node's output lives from its forward
// until its last reader: its consumers' forwards, the backward of a consumer that reads its
// inputs, and its own backward if that reads the output. A gradient lives from its first
// writer's backward (the consumer that runs first in backward order) to its own node's
// backward. The input, the output and the output's gradient are touched by callers outside
// the node sequence, so they live for the whole step.
#pragma once
#include <vector>

#include "core/memory_plan.h"

namespace tb {

struct NodeUse {
  std::vector<int> inputs;  // node ids, each smaller than this node's
  bool needs_grad = false;  // runs backward and has a gradient buffer (when training)
  std::vector<bool> backward_reads_input;  // per input
  bool backward_reads_output = true;
};

struct BufferLifetimes {
  std::vector<Lifetime> output;    // per node
  std::vector<Lifetime> gradient;  // per node; whole step where a node has no gradient
};

// nodes[0] is the graph's input. With training false only forward reads count.
BufferLifetimes buffer_lifetimes(const std::vector<NodeUse>& nodes, bool training);

}  // namespace tb
