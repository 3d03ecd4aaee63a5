#include "nn/graph.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/env_choice.h"
#include "core/rng.h"
#include "nn/buffer_lifetimes.h"

namespace tb {

namespace {

// PlanOptions::max_pool_before_relu, unless TB_POOL_BEFORE_RELU=off asks for the model's
// order (for comparisons): plan() and planned_bytes() must agree.
bool moves_relu_after_pool(const PlanOptions& options) {
  return options.max_pool_before_relu && env_choice("TB_POOL_BEFORE_RELU", {"on", "off"}) == "on";
}

}  // namespace

Graph::Graph(Shape input_shape) {
  Node in;
  in.name = "input";
  in.shape = input_shape;
  nodes_.push_back(std::move(in));
}

Graph::~Graph() = default;
Graph::Graph(Graph&&) noexcept = default;
Graph& Graph::operator=(Graph&&) noexcept = default;

int Graph::add(const std::string& name, std::unique_ptr<Layer> layer, std::vector<int> inputs) {
  TB_CHECK(!planned(), "cannot add '{}' to a planned graph", name);
  std::vector<Shape> shapes;
  for (int i : inputs) {
    TB_CHECK(i >= 0 && i < int(nodes_.size()), "node '{}' reads unknown node {}", name, i);
    shapes.push_back(nodes_[i].shape);
  }
  Node node;
  node.name = name;
  node.id = int(nodes_.size());
  node.shape = layer->infer(shapes);
  node.param_specs = layer->param_specs();
  node.buffer_specs = layer->buffer_specs();
  node.inputs = std::move(inputs);
  node.layer = std::move(layer);
  bool upstream = false;
  for (int i : node.inputs) upstream = upstream || nodes_[i].needs_grad;
  node.needs_grad = upstream || !node.param_specs.empty();
  nodes_.push_back(std::move(node));
  return int(nodes_.size()) - 1;
}

void Graph::plan(Backend& backend, int max_batch, DType dtype, bool training) {
  plan(backend, max_batch, GraphPrecision{dtype, dtype}, training);
}

void Graph::set_plan_options(const PlanOptions& options) {
  TB_CHECK(!planned(), "plan options must be set before plan()");
  options_ = options;
}

std::map<std::string, size_t> Graph::planned_bytes(int max_batch, GraphPrecision precision,
                                                   bool training) {
  TB_CHECK(!planned(), "planned_bytes is for a graph not planned yet");
  if (options_.fuse_batch_norm_relu) fuse_batch_norm_relu();
  if (moves_relu_after_pool(options_)) move_relu_after_max_pool();
  MemoryPlan memory;
  request_memory(memory, max_batch, precision, training,
                 gradients_share_pays(max_batch, precision, training));
  return memory.bytes_by_category();
}

void Graph::plan(Backend& backend, int max_batch, GraphPrecision precision, bool training) {
  const DType dtype = precision.activations;
  TB_CHECK(!planned(), "graph planned twice");
  TB_CHECK(max_batch > 0, "batch size must be positive");
  for (const Node& node : nodes_) {
    if (!node.layer) continue;
    TB_INPUT_CHECK(backend.supports(node.layer->op(), dtype),
                   "backend '{}' cannot run {} ({}) in {}", backend.name(), node.name,
                   op_name(node.layer->op()), dtype_name(dtype));
  }
  if (options_.fuse_batch_norm_relu && backend.supports(OpKind::batch_norm_relu, dtype))
    fuse_batch_norm_relu();
  if (options_.fuse_conv_relu) {
    const bool conv = backend.supports(OpKind::conv2d_relu, dtype);
    const bool linear = backend.supports(OpKind::linear_relu, dtype);
    if (conv || linear) fuse_relu_into_producers(conv, linear);
  }
  // After the producers' fusion: a ReLU in a convolution's epilogue costs nothing to move.
  if (moves_relu_after_pool(options_)) move_relu_after_max_pool();
  max_batch_ = max_batch;
  dtype_ = dtype;
  param_dtype_ = precision.params;
  training_ = training;
  memory_ = std::make_unique<MemoryPlan>();
  request_memory(*memory_, max_batch, precision, training,
                 gradients_share_pays(max_batch, precision, training));
  memory_->allocate(backend);
  backend_ = &backend;
  first_pass_trace_.arm();

  // Zero everything once: gradient padding must stay zero for flat optimizer updates.
  for (const auto& [category, bytes] : memory_->bytes_by_category())
    if (bytes) backend.fill_zero(Tensor(memory_->category_base(category), DType::u8,
                                        Shape{int64_t(bytes)}, backend.device()));
}

void Graph::request_memory(MemoryPlan& memory, int max_batch, GraphPrecision precision,
                           bool training, bool share_gradients) {
  const size_t esize = dtype_size(precision.activations);
  const size_t param_esize = dtype_size(precision.params);

  // Which writer of each gradient comes first in backward order: it overwrites, the rest add.
  std::vector<bool> written(nodes_.size(), false);
  for (size_t j = nodes_.size(); j-- > 1;) {
    Node& node = nodes_[j];
    node.accumulate.assign(node.inputs.size(), false);
    if (!node.needs_grad) continue;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const int i = node.inputs[k];
      if (!nodes_[i].needs_grad) continue;
      node.accumulate[k] = written[i];
      written[i] = true;
    }
  }

  // With reuse, outputs and gradients share one category, so a gradient can take the bytes
  // of an activation whose last backward reader has run. Without it, everything lives for
  // the whole step, in the categories and order the plan always had.
  const bool reuse = options_.reuse_activation_memory;
  std::vector<NodeUse> uses(nodes_.size());
  for (size_t j = 0; j < nodes_.size(); ++j) {
    uses[j].inputs = nodes_[j].inputs;
    uses[j].needs_grad = nodes_[j].needs_grad;
    if (nodes_[j].layer) {
      for (size_t k = 0; k < nodes_[j].inputs.size(); ++k)
        uses[j].backward_reads_input.push_back(nodes_[j].layer->backward_reads_input(k));
      uses[j].backward_reads_output = nodes_[j].layer->backward_reads_output();
    }
  }
  const BufferLifetimes life = buffer_lifetimes(uses, training);
  const char* grad_category = reuse ? "activations" : "activation_gradients";

  for (size_t j = 0; j < nodes_.size(); ++j) {
    Node& node = nodes_[j];
    node.param_handles.clear();
    node.grad_handles.clear();
    node.buffer_handles.clear();
    const size_t bytes = size_t(node.shape.numel()) * esize * size_t(max_batch);
    node.output_handle =
        memory.request("activations", bytes, reuse ? life.output[j] : Lifetime{});
    if (training && node.needs_grad)
      node.grad_handle =
          memory.request(grad_category, bytes, reuse ? life.gradient[j] : Lifetime{});
    for (const ParamSpec& spec : node.param_specs)
      node.param_handles.push_back(
          memory.request("parameters", size_t(spec.shape.numel()) * param_esize));
    for (const BufferSpec& spec : node.buffer_specs) {
      const DType t = spec.dtype == DType::f32 ? precision.params : spec.dtype;
      const size_t buffer_bytes = size_t(spec.shape.numel()) * dtype_size(t) *
                                  (spec.per_item ? size_t(max_batch) : 1);
      node.buffer_handles.push_back(
          memory.request(spec.persistent ? "buffers" : "scratch", buffer_bytes));
    }
  }
  gradient_blocks_.clear();
  if (training) request_gradients(memory, param_esize, reuse && share_gradients);
}

// Sharing costs the optimizer a launch per block, so gradients share the activations' memory
// only where that lowers the plan's bytes by 1% or more: where the activations peak at the
// turn from forward to backward (large batches), not where they peak in backward.
bool Graph::gradients_share_pays(int max_batch, GraphPrecision precision, bool training) {
  using Sharing = PlanOptions::GradientSharing;
  if (!training || !options_.reuse_activation_memory ||
      options_.share_gradient_memory == Sharing::off)
    return false;
  if (options_.share_gradient_memory == Sharing::always) return true;
  MemoryPlan apart, shared;
  request_memory(apart, max_batch, precision, training, false);
  request_memory(shared, max_batch, precision, training, true);
  return shared.total_bytes() * 100 <= apart.total_bytes() * 99;
}

// How many blocks shared gradients are cut into: each starts to live at the first write of
// its last layer's gradients, so more blocks take fewer bytes at the peak, and each costs
// the optimizer one more launch. On resnet50 (b512) 8 blocks leave 4 MiB of the 90 MiB of
// gradients at the peak; 4 blocks leave 17, 2 leave 50.
constexpr size_t kSharedGradientBlocks = 8;

// Parameter gradients in blocks of consecutive parameters, laid out as the parameters are
// (aligned slices, in order), so that the optimizer updates a block in one call.
//
// Unshared: one block in their own category for the whole step, zeroed once with its gaps.
//
// Shared: kSharedGradientBlocks blocks of about equal size in the activations' memory, each
// live from the backward of its last layer (the first to write into it) to the end of the
// step, so most of them find room the activations freed. Nothing zeroes shared bytes after
// other buffers used them, so a gradient whose slice has a gap after it also ends its block:
// the runs the optimizer walks then cover gradient values only.
void Graph::request_gradients(MemoryPlan& memory, size_t param_esize, bool share) {
  const int steps = 2 * int(nodes_.size());  // node j's backward is step steps - j
  size_t total = 0;
  for (const Node& node : nodes_)
    for (const ParamSpec& spec : node.param_specs)
      total += MemoryPlan::aligned(size_t(spec.shape.numel()) * param_esize);
  const size_t budget = share ? (total + kSharedGradientBlocks - 1) / kSharedGradientBlocks : total;
  struct Member {
    size_t node, k;
  };
  std::vector<Member> block;
  size_t block_bytes = 0, used_bytes = 0;
  auto close_block = [&] {
    if (block.empty()) return;
    const int first_step = steps - int(block.back().node);
    const size_t handle =
        share ? memory.request("activations", block_bytes,
                               Lifetime{first_step, std::numeric_limits<int>::max()})
              : memory.request("gradients", block_bytes);
    size_t offset = 0;
    for (const Member& m : block) {
      Node& node = nodes_[m.node];
      node.grad_handles[m.k] = handle;
      node.grad_offsets[m.k] = offset;
      node.grad_blocks[m.k] = int(gradient_blocks_.size());
      offset += MemoryPlan::aligned(size_t(node.param_specs[m.k].shape.numel()) * param_esize);
    }
    gradient_blocks_.push_back({handle, used_bytes});
    block.clear();
    block_bytes = 0;
  };
  for (size_t j = 0; j < nodes_.size(); ++j) {
    Node& node = nodes_[j];
    const size_t count = node.param_specs.size();
    node.grad_handles.assign(count, 0);
    node.grad_offsets.assign(count, 0);
    node.grad_blocks.assign(count, 0);
    for (size_t k = 0; k < count; ++k) {
      const size_t bytes = size_t(node.param_specs[k].shape.numel()) * param_esize;
      const size_t aligned = MemoryPlan::aligned(bytes);
      block.push_back({j, k});
      used_bytes = block_bytes + bytes;
      block_bytes += aligned;
      if (share && (aligned != bytes || block_bytes >= budget)) close_block();
    }
  }
  close_block();
}

// Float buffers (batch-norm statistics) stay in the parameters' precision; others (dropout
// masks) keep their own type.
DType Graph::buffer_dtype(const BufferSpec& spec) const {
  return spec.dtype == DType::f32 ? param_dtype_ : spec.dtype;
}

Tensor Graph::view(size_t handle, DType dtype, Shape shape, size_t offset) const {
  return Tensor(static_cast<char*>(memory_->pointer(handle)) + offset, dtype, shape,
                backend_->device());
}

Tensor Graph::grad_view(const Node& node, size_t k) const {
  return view(node.grad_handles[k], param_dtype_, node.param_specs[k].shape, node.grad_offsets[k]);
}

void Graph::init_parameters(uint64_t seed) {
  TB_CHECK(planned(), "init_parameters before plan");
  Rng rng(seed);
  std::vector<double> values;
  std::vector<uint8_t> bytes;
  auto upload = [&](size_t handle, const Shape& shape, DType t) {
    const size_t n = values.size();
    bytes.resize(n * dtype_size(t));
    if (t == DType::f64) {
      std::memcpy(bytes.data(), values.data(), n * sizeof(double));
    } else {
      TB_CHECK(t == DType::f32, "parameter init supports fp32 and fp64, not {}", dtype_name(t));
      float* f = reinterpret_cast<float*>(bytes.data());
      for (size_t i = 0; i < n; ++i) f[i] = float(values[i]);
    }
    backend_->copy_from_host(memory_->pointer(handle), bytes.data(), bytes.size());
  };
  auto fill = [&](Init init, int64_t fan_in, int64_t n) {
    values.resize(size_t(n));
    const double bound = 1.0 / std::sqrt(double(fan_in));
    for (double& v : values) {
      switch (init) {
        case Init::fan_in_uniform: v = float(rng.uniform(-bound, bound)); break;
        case Init::ones: v = 1.0; break;
        case Init::zeros: v = 0.0; break;
      }
    }
  };
  for (Node& node : nodes_) {
    for (size_t k = 0; k < node.param_specs.size(); ++k) {
      const ParamSpec& spec = node.param_specs[k];
      fill(spec.init, spec.fan_in, spec.shape.numel());
      upload(node.param_handles[k], spec.shape, param_dtype_);
    }
    for (size_t k = 0; k < node.buffer_specs.size(); ++k) {
      const BufferSpec& spec = node.buffer_specs[k];
      if (!spec.persistent) continue;
      fill(spec.init, 1, spec.shape.numel());
      upload(node.buffer_handles[k], spec.shape, buffer_dtype(spec));
    }
  }
}

LayerTensors Graph::tensors_for(const Node& node, int n) const {
  LayerTensors t;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    const Node& in = nodes_[node.inputs[k]];
    t.x.push_back(view(in.output_handle, dtype_, in.shape.with_batch(n)));
    t.dx.push_back(training_ && in.needs_grad
                       ? view(in.grad_handle, dtype_, in.shape.with_batch(n))
                       : Tensor{});
  }
  t.accumulate_dx = node.accumulate;
  t.y = view(node.output_handle, dtype_, node.shape.with_batch(n));
  if (training_ && node.needs_grad) t.dy = view(node.grad_handle, dtype_, node.shape.with_batch(n));
  for (size_t k = 0; k < node.param_specs.size(); ++k) {
    t.params.push_back(view(node.param_handles[k], param_dtype_, node.param_specs[k].shape));
    if (training_) t.grads.push_back(grad_view(node, k));
  }
  for (size_t k = 0; k < node.buffer_specs.size(); ++k) {
    const BufferSpec& spec = node.buffer_specs[k];
    const DType dt = buffer_dtype(spec);
    t.buffers.push_back(
        view(node.buffer_handles[k], dt, spec.per_item ? spec.shape.with_batch(n) : spec.shape));
  }
  return t;
}

void Graph::forward_node(size_t j, int n, bool training, uint64_t seed, uint64_t step) {
  const Node& node = nodes_[j];
  RunContext ctx{*backend_, n, training, seed, step, node.id};
  node.layer->forward(tensors_for(node, n), ctx);
}

void Graph::backward_node(size_t j, int n, uint64_t seed, uint64_t step) {
  const Node& node = nodes_[j];
  if (!node.needs_grad) return;
  RunContext ctx{*backend_, n, true, seed, step, node.id};
  node.layer->backward(tensors_for(node, n), ctx);
}

void Graph::forward(int n, bool training, uint64_t seed, uint64_t step) {
  TB_CHECK(planned(), "forward before plan");
  TB_CHECK(n > 0 && n <= max_batch_, "batch of {} exceeds the planned {}", n, max_batch_);
  TB_CHECK(!training || training_, "training forward on a graph planned for inference");
  const bool trace = first_pass_trace_.begin(false, n);
  for (size_t j = 1; j < nodes_.size(); ++j) {
    if (!trace)
      forward_node(j, n, training, seed, step);
    else
      first_pass_trace_.time(nodes_[j].name, *backend_,
                             [&] { forward_node(j, n, training, seed, step); });
  }
  if (trace) first_pass_trace_.finish(false, n);
}

void Graph::backward(int n, uint64_t seed, uint64_t step) {
  TB_CHECK(training_, "backward on a graph planned for inference");
  TB_CHECK(n > 0 && n <= max_batch_, "batch of {} exceeds the planned {}", n, max_batch_);
  const bool trace = first_pass_trace_.begin(true, n);
  for (size_t j = nodes_.size(); j-- > 1;) {
    if (!trace)
      backward_node(j, n, seed, step);
    else
      first_pass_trace_.time(nodes_[j].name, *backend_, [&] { backward_node(j, n, seed, step); });
  }
  backend_->finish_backward();
  if (trace) first_pass_trace_.finish(true, n);
}

Tensor Graph::input(int n) const {
  return view(nodes_.front().output_handle, dtype_, nodes_.front().shape.with_batch(n));
}

Tensor Graph::output(int n) const {
  return view(nodes_.back().output_handle, dtype_, nodes_.back().shape.with_batch(n));
}

Tensor Graph::output_grad(int n) const {
  TB_CHECK(training_, "no gradients in an inference graph");
  return view(nodes_.back().grad_handle, dtype_, nodes_.back().shape.with_batch(n));
}

std::vector<ParamRef> Graph::parameters() const {
  std::vector<ParamRef> out;
  for (const Node& node : nodes_)
    for (size_t k = 0; k < node.param_specs.size(); ++k) {
      const Shape& s = node.param_specs[k].shape;
      out.push_back(
          {node.name + "." + node.param_specs[k].name, view(node.param_handles[k], param_dtype_, s),
           training_ ? grad_view(node, k) : Tensor{}, training_ ? node.grad_blocks[k] : 0});
    }
  return out;
}

std::vector<StateRef> Graph::persistent_buffers() const {
  std::vector<StateRef> out;
  for (const Node& node : nodes_)
    for (size_t k = 0; k < node.buffer_specs.size(); ++k) {
      const BufferSpec& spec = node.buffer_specs[k];
      if (!spec.persistent) continue;
      out.push_back({node.name + "." + spec.name,
                     view(node.buffer_handles[k], buffer_dtype(spec), spec.shape)});
    }
  return out;
}

Tensor Graph::parameter_block() const {
  const size_t bytes = memory_->category_bytes("parameters");
  return Tensor(memory_->category_base("parameters"), param_dtype_,
                Shape{int64_t(bytes / dtype_size(param_dtype_))}, backend_->device());
}

std::vector<Tensor> Graph::gradient_blocks() const {
  std::vector<Tensor> out;
  for (const GradientBlock& b : gradient_blocks_)
    out.push_back(view(b.handle, param_dtype_, Shape{int64_t(b.bytes / dtype_size(param_dtype_))}));
  return out;
}

std::vector<Graph::NodeInfo> Graph::describe() const {
  std::vector<NodeInfo> out;
  for (const Node& node : nodes_) {
    NodeInfo info;
    info.name = node.name;
    info.inputs = node.inputs;
    info.output_shape = node.shape;
    if (node.layer) {
      info.type = node.layer->type();
      info.description = node.layer->describe();
      info.forward_flops = node.layer->forward_flops();
      bool dx = false;
      for (int i : node.inputs) dx = dx || nodes_[i].needs_grad;
      info.backward_flops = node.layer->backward_flops(dx);
    } else {
      info.type = "input";
      info.description = "input " + node.shape.to_string();
    }
    for (const ParamSpec& spec : node.param_specs) info.parameters += spec.shape.numel();
    out.push_back(std::move(info));
  }
  return out;
}

int64_t Graph::parameter_count() const {
  int64_t n = 0;
  for (const Node& node : nodes_)
    for (const ParamSpec& spec : node.param_specs) n += spec.shape.numel();
  return n;
}

double Graph::forward_flops_per_item() const {
  double f = 0;
  for (const NodeInfo& info : describe()) f += info.forward_flops;
  return f;
}

double Graph::training_flops_per_item() const {
  double f = 0;
  for (const NodeInfo& info : describe()) f += info.forward_flops + info.backward_flops;
  return f;
}

}  // namespace tb
