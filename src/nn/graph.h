// A static model graph: nodes in topological order (each node's inputs come before it), one
// layer per node, planned once for a maximum batch size. forward() and backward() walk the
// nodes and allocate nothing.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/memory_plan.h"
#include "nn/first_pass_trace.h"
#include "nn/layer.h"
#include "train/optimizer.h"

namespace tb {

// Mixed precision keeps parameters, their gradients and batch-norm statistics in fp32
// ("master weights") while activations and their gradients are bf16 or fp16.
struct GraphPrecision {
  DType params = DType::f32;
  DType activations = DType::f32;
};

// How plan() lays the graph out. The choices leave the results unchanged (they only move
// bytes) and are switchable so tests can compare against the plain layout.
struct PlanOptions {
  // Activations and activation gradients share memory where their lifetimes do not overlap
  // (nn/buffer_lifetimes.h); off, every node owns its output and gradient for the whole step.
  bool reuse_activation_memory = true;
  // BN -> ReLU and BN -> add -> ReLU chains become one batch_norm_relu node (graph_fusion.cpp)
  // on backends that support that op: the ReLU's and the add's passes over memory disappear.
  bool fuse_batch_norm_relu = true;
  // Conv -> ReLU and linear -> ReLU become one conv2d_relu / linear_relu node where nothing
  // else reads the pre-activation, on backends that support those ops (graph_fusion.cpp).
  bool fuse_conv_relu = true;
  // A ReLU feeding only a max pool trades places with it (graph_fusion.cpp): the same values
  // and gradients, with the ReLU's passes over a quarter of the elements (2x2 pooling).
  bool max_pool_before_relu = true;
  // With reuse_activation_memory, parameter gradients may live in the activations' memory
  // too, in a few blocks, each from its first write in backward to the optimizer's update:
  // where the activations peak at the turn from forward to backward, they then take almost
  // no bytes there. when_smaller: where that lowers the plan's bytes by 1% or more. Shared
  // gradients hold from backward() until the next forward(), which writes over them.
  enum class GradientSharing { off, when_smaller, always };
  GradientSharing share_gradient_memory = GradientSharing::when_smaller;
};

class Graph {
 public:
  // The graph's input: items of shape [C,H,W]; node 0.
  explicit Graph(Shape input_shape);
  ~Graph();
  Graph(Graph&&) noexcept;
  Graph& operator=(Graph&&) noexcept;

  static constexpr int kInput = 0;

  // Appends a layer fed by `inputs` (node ids); returns the new node's id. `name` prefixes
  // its parameters ("layer1.0.conv1" -> "layer1.0.conv1.weight").
  int add(const std::string& name, std::unique_ptr<Layer> layer, std::vector<int> inputs);
  int add(const std::string& name, std::unique_ptr<Layer> layer, int input) {
    return add(name, std::move(layer), std::vector<int>{input});
  }

  // Plans and allocates all memory for batches of up to max_batch items. With training false
  // no gradients are allocated (inference only). Checks that the backend supports every op.
  void plan(Backend& backend, int max_batch, DType dtype, bool training);
  void plan(Backend& backend, int max_batch, GraphPrecision precision, bool training);
  bool planned() const { return backend_ != nullptr; }
  // Set before plan(); the defaults are what every caller wants outside tests.
  void set_plan_options(const PlanOptions& options);
  const PlanOptions& plan_options() const { return options_; }
  // The bytes per memory category plan() would allocate on a backend that runs the fused ops,
  // without allocating (for reports and tests at sizes the machine need not hold). Applies
  // the same rewrites as plan().
  std::map<std::string, size_t> planned_bytes(int max_batch, GraphPrecision precision,
                                              bool training);
  // Draws every parameter from its init rule with a generator seeded by `seed`, and resets
  // persistent buffers (running statistics).
  void init_parameters(uint64_t seed);

  // Runs the first n items of the input tensor through the graph.
  void forward(int n, bool training, uint64_t seed, uint64_t step);
  // Back-propagates from output_grad(n) (written by the loss) to every parameter gradient.
  void backward(int n, uint64_t seed, uint64_t step);

  Tensor input(int n) const;        // [n,C,H,W], to be filled by the caller
  Tensor output(int n) const;       // [n,...] of the last node
  Tensor output_grad(int n) const;

  // Parameters and gradients in a fixed order. Parameters live in one contiguous block;
  // gradients in gradient_blocks(). Gradients that share the activations' memory
  // (PlanOptions::share_gradient_memory) hold from backward() until the next forward().
  std::vector<ParamRef> parameters() const;
  // Persistent buffers (batch-norm running statistics), for checkpoints.
  std::vector<StateRef> persistent_buffers() const;
  Tensor parameter_block() const;  // all parameters as one flat tensor (padding included)
  // The gradients as a few flat tensors (one unless share_gradient_memory split them), each
  // covering a run of parameters' gradients laid out as the parameters are; gaps hold zeros.
  std::vector<Tensor> gradient_blocks() const;

  // ---- description --------------------------------------------------------------------
  struct NodeInfo {
    std::string name;
    std::string description;
    std::string type;
    Shape output_shape;  // per item
    int64_t parameters = 0;
    double forward_flops = 0;   // per item
    double backward_flops = 0;  // per item
    std::vector<int> inputs;
  };
  std::vector<NodeInfo> describe() const;
  int64_t parameter_count() const;
  double forward_flops_per_item() const;
  double training_flops_per_item() const;  // forward + backward
  Shape input_shape() const { return nodes_.front().shape; }
  Shape output_shape() const { return nodes_.back().shape; }
  const MemoryPlan& memory() const { return *memory_; }
  Backend& backend() const { return *backend_; }
  int max_batch() const { return max_batch_; }
  DType dtype() const { return dtype_; }  // of activations
  DType param_dtype() const { return param_dtype_; }
  size_t node_count() const { return nodes_.size(); }

  // Runs one node's forward or backward (for per-layer profiling).
  void forward_node(size_t node, int n, bool training, uint64_t seed, uint64_t step);
  void backward_node(size_t node, int n, uint64_t seed, uint64_t step);

 private:
  struct Node {
    std::string name;
    int id = 0;  // its position when added; fusion keeps it (RunContext::layer_index)
    std::unique_ptr<Layer> layer;  // null for the input node
    std::vector<int> inputs;
    Shape shape;  // output, per item
    std::vector<ParamSpec> param_specs;
    std::vector<BufferSpec> buffer_specs;
    bool needs_grad = false;        // some parameter lies upstream, or it has parameters
    std::vector<bool> accumulate;   // per input: add into that input's gradient
    // Memory handles, filled by plan().
    size_t output_handle = 0, grad_handle = 0;
    std::vector<size_t> param_handles, grad_handles, buffer_handles;
    std::vector<size_t> grad_offsets;  // bytes into grad_handles' block
    std::vector<int> grad_blocks;      // index into gradient_blocks_
  };
  struct GradientBlock {
    size_t handle = 0;
    size_t bytes = 0;  // to the end of its last gradient
  };

  // Rewrites fusable chains in place (graph_fusion.cpp). Node ids change; names and the
  // order of parameters do not.
  void fuse_batch_norm_relu();
  // ReLUs after a convolution (conv) or linear layer (linear) become that layer's epilogue.
  void fuse_relu_into_producers(bool conv, bool linear);
  // ReLU -> max pool becomes max pool -> ReLU.
  void move_relu_after_max_pool();
  // Drops the removed nodes; a node that read removed node j reads stands_for[j] instead.
  void remove_fused(const std::vector<bool>& removed, const std::vector<int>& stands_for);
  // Decides which input gradients are accumulated and makes every memory request.
  void request_memory(MemoryPlan& memory, int max_batch, GraphPrecision precision, bool training,
                      bool share_gradients);
  bool gradients_share_pays(int max_batch, GraphPrecision precision, bool training);
  void request_gradients(MemoryPlan& memory, size_t param_esize, bool share);
  LayerTensors tensors_for(const Node& node, int n) const;
  Tensor view(size_t handle, DType dtype, Shape shape, size_t offset = 0) const;
  Tensor grad_view(const Node& node, size_t k) const;
  DType buffer_dtype(const BufferSpec& spec) const;

  std::vector<Node> nodes_;
  std::unique_ptr<MemoryPlan> memory_;
  std::vector<GradientBlock> gradient_blocks_;
  Backend* backend_ = nullptr;
  int max_batch_ = 0;
  DType dtype_ = DType::f32;
  DType param_dtype_ = DType::f32;
  bool training_ = false;
  PlanOptions options_;
  FirstPassTrace first_pass_trace_;  // TB_TRACE_FIRST_PASS=1
};

}  // namespace tb
