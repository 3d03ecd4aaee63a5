// A layer: one node of a model graph. It infers its output shape from its inputs' shapes,
// declares the parameters and buffers it needs (the graph allocates them from the memory
// plan), and runs forward and backward through the backend's ops. Layers hold only their
// own configuration: no tensors, no memory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/shape.h"
#include "core/tensor.h"
#include "ops/backend.h"

namespace tb {

// How a parameter starts. fan_in_uniform draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)), which is
// what PyTorch's default init gives for conv and linear weights and biases.
enum class Init { fan_in_uniform, ones, zeros };

struct ParamSpec {
  std::string name;  // "weight", "bias"
  Shape shape;
  Init init = Init::fan_in_uniform;
  int64_t fan_in = 1;
};

// Buffers that are not trained. Persistent ones (batch-norm running statistics) belong to
// the model's state and go into checkpoints; scratch ones live for one step (saved batch
// statistics, dropout masks). A per-item buffer is sized per batch item.
struct BufferSpec {
  std::string name;
  Shape shape;  // per item if per_item, else absolute
  DType dtype = DType::f32;
  bool persistent = false;
  bool per_item = false;
  Init init = Init::zeros;
};

// Views of everything one layer call touches, already cut to the current batch size.
struct LayerTensors {
  std::vector<Tensor> x;              // inputs
  Tensor y;                           // output
  std::vector<Tensor> dx;             // input gradients; undefined where none is needed
  std::vector<bool> accumulate_dx;    // add into dx instead of overwriting
  Tensor dy;                          // output gradient
  std::vector<Tensor> params, grads;  // in param_specs() order
  std::vector<Tensor> buffers;        // in buffer_specs() order
};

struct RunContext {
  Backend& backend;
  int batch = 0;          // items in this call (<= the planned batch)
  bool training = true;   // batch-norm statistics, dropout
  uint64_t seed = 0;      // the run's seed
  uint64_t step = 0;      // the global training step, for dropout streams
  // The node's position in the model as built: fusion passes leave it, so dropout masks do
  // not depend on which chains a backend fuses.
  int layer_index = 0;
};

class Layer {
 public:
  virtual ~Layer() = default;

  virtual const char* type() const = 0;
  // A one-line description with the shapes, e.g. "conv2d 3x3 64->128 stride 2 pad 1".
  virtual std::string describe() const = 0;
  // The backend op that does this layer's work, for supports() checks.
  virtual OpKind op() const = 0;

  // Called once by the graph: records the per-item input shapes, returns the output shape.
  // Throws InputError if the inputs do not fit (e.g. an image too small for the kernel).
  virtual Shape infer(const std::vector<Shape>& inputs) = 0;

  virtual std::vector<ParamSpec> param_specs() const { return {}; }
  virtual std::vector<BufferSpec> buffer_specs() const { return {}; }

  virtual void forward(const LayerTensors& t, const RunContext& ctx) = 0;
  virtual void backward(const LayerTensors& t, const RunContext& ctx) = 0;

  // Which forward values backward reads (besides dy, parameters and buffers). The graph keeps
  // exactly these alive until this layer's backward has run and lets the memory of the rest
  // be reused, so an override that says false must be right for every backend.
  virtual bool backward_reads_input(size_t input) const { return true; }
  virtual bool backward_reads_output() const { return true; }

  // Forward FLOPs per item (a multiply-add counts 2); convolution and linear layers only,
  // the usual convention for reporting a network's cost.
  virtual double forward_flops() const { return 0.0; }
  // Backward FLOPs per item: the weight gradient, plus the input gradient when needed.
  virtual double backward_flops(bool needs_dx) const {
    return forward_flops() * (needs_dx ? 2.0 : 1.0);
  }
};

}  // namespace tb
