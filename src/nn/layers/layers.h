// The layer types models are built from. Each wraps one op family of the backend.
#pragma once
#include <memory>
#include <string>

#include "nn/layer.h"

namespace tb {

class Conv2dLayer : public Layer {
 public:
  Conv2dLayer(int out_channels, int kernel, int stride, int pad, bool bias)
      : out_(out_channels), kernel_(kernel), stride_(stride), pad_(pad), bias_(bias) {}
  const char* type() const override { return relu_ ? "conv2d_relu" : "conv2d"; }
  std::string describe() const override;
  OpKind op() const override { return relu_ ? OpKind::conv2d_relu : OpKind::conv2d; }
  Shape infer(const std::vector<Shape>& inputs) override;
  std::vector<ParamSpec> param_specs() const override;
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  // Fused, y is the ReLU's output and its mask.
  bool backward_reads_output() const override { return relu_; }
  double forward_flops() const override;
  Conv2dParams params(int batch) const;
  // The graph's fusion pass: this layer now also does the ReLU that follows it.
  void fuse_relu() { relu_ = true; }

 private:
  int out_, kernel_, stride_, pad_;
  bool bias_;
  bool relu_ = false;
  Shape in_;
};

class LinearLayer : public Layer {
 public:
  LinearLayer(int out_features, bool bias) : out_(out_features), bias_(bias) {}
  const char* type() const override { return relu_ ? "linear_relu" : "linear"; }
  std::string describe() const override;
  OpKind op() const override { return relu_ ? OpKind::linear_relu : OpKind::linear; }
  Shape infer(const std::vector<Shape>& inputs) override;
  std::vector<ParamSpec> param_specs() const override;
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  bool backward_reads_output() const override { return relu_; }  // see Conv2dLayer
  double forward_flops() const override { return 2.0 * double(in_features_) * out_; }
  LinearParams params(int batch) const { return {batch, in_features_, out_, bias_, relu_}; }
  void fuse_relu() { relu_ = true; }  // see Conv2dLayer

 private:
  int out_;
  bool bias_;
  bool relu_ = false;
  int in_features_ = 0;
};

class ReluLayer : public Layer {
 public:
  const char* type() const override { return "relu"; }
  std::string describe() const override { return "relu"; }
  OpKind op() const override { return OpKind::relu; }
  Shape infer(const std::vector<Shape>& inputs) override;
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  // The mask comes from y (y > 0 exactly where x > 0).
  bool backward_reads_input(size_t) const override { return false; }
};

enum class PoolKind { max, average };

class Pool2dLayer : public Layer {
 public:
  Pool2dLayer(PoolKind kind, int kernel, int stride, int pad)
      : kind_(kind), kernel_(kernel), stride_(stride), pad_(pad) {}
  const char* type() const override { return kind_ == PoolKind::max ? "max_pool2d" : "avg_pool2d"; }
  std::string describe() const override;
  OpKind op() const override {
    return kind_ == PoolKind::max ? OpKind::max_pool2d : OpKind::avg_pool2d;
  }
  Shape infer(const std::vector<Shape>& inputs) override;
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  // Max pooling finds the winners from x and y; average pooling needs neither.
  bool backward_reads_input(size_t) const override { return kind_ == PoolKind::max; }
  bool backward_reads_output() const override { return kind_ == PoolKind::max; }
  Pool2dParams params(int batch) const;

 private:
  PoolKind kind_;
  int kernel_, stride_, pad_;
  Shape in_;
};

class GlobalAvgPoolLayer : public Layer {
 public:
  const char* type() const override { return "global_avg_pool"; }
  std::string describe() const override;
  OpKind op() const override { return OpKind::global_avg_pool; }
  Shape infer(const std::vector<Shape>& inputs) override;
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  bool backward_reads_input(size_t) const override { return false; }
  bool backward_reads_output() const override { return false; }

 private:
  Shape in_;
  GlobalPoolParams params(int batch) const {
    return {batch, int(in_[0]), int(in_[1]), int(in_[2])};
  }
};

// Batch norm over [C,H,W] items (2-D) or [C] items (1-D).
class BatchNormLayer : public Layer {
 public:
  explicit BatchNormLayer(double eps = 1e-5, double momentum = 0.1)
      : eps_(eps), momentum_(momentum) {}
  const char* type() const override { return in_.rank == 1 ? "batch_norm1d" : "batch_norm2d"; }
  std::string describe() const override;
  OpKind op() const override { return OpKind::batch_norm; }
  Shape infer(const std::vector<Shape>& inputs) override;
  std::vector<ParamSpec> param_specs() const override;
  std::vector<BufferSpec> buffer_specs() const override;
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  bool backward_reads_output() const override { return false; }
  BatchNormParams params(int batch) const;
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }

 private:
  double eps_, momentum_;
  Shape in_;
};

// Batch norm with the ReLU (and residual add) after it: y = relu(bn(x) + residual). The
// graph's fusion pass makes these from BN -> ReLU and BN -> add -> ReLU chains; it has the
// parameters and buffers of the batch norm it replaces, under the same names.
class BatchNormReluLayer : public Layer {
 public:
  BatchNormReluLayer(double eps, double momentum, bool residual)
      : bn_(eps, momentum), residual_(residual) {}
  const char* type() const override;
  std::string describe() const override;
  OpKind op() const override { return OpKind::batch_norm_relu; }
  Shape infer(const std::vector<Shape>& inputs) override;
  std::vector<ParamSpec> param_specs() const override { return bn_.param_specs(); }
  std::vector<BufferSpec> buffer_specs() const override { return bn_.buffer_specs(); }
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  // x for the batch norm and y for the ReLU mask; the residual is not read again.
  bool backward_reads_input(size_t k) const override { return k == 0; }

 private:
  BatchNormLayer bn_;  // shapes, parameters and buffers
  bool residual_;
};

class DropoutLayer : public Layer {
 public:
  explicit DropoutLayer(float p) : p_(p) {}
  const char* type() const override { return "dropout"; }
  std::string describe() const override;
  OpKind op() const override { return OpKind::dropout; }
  Shape infer(const std::vector<Shape>& inputs) override;
  std::vector<BufferSpec> buffer_specs() const override;
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  // The mask buffer holds all backward needs.
  bool backward_reads_input(size_t) const override { return false; }
  bool backward_reads_output() const override { return false; }

 private:
  DropoutParams params(const RunContext& ctx, int64_t numel) const;
  float p_;
  Shape in_;
};

// [C,H,W] -> [C*H*W]. Copies (cheap next to the layers around it) so that every node owns
// its output and the graph needs no aliasing rules.
class FlattenLayer : public Layer {
 public:
  const char* type() const override { return "flatten"; }
  std::string describe() const override;
  OpKind op() const override { return OpKind::copy; }
  Shape infer(const std::vector<Shape>& inputs) override;
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  bool backward_reads_input(size_t) const override { return false; }
  bool backward_reads_output() const override { return false; }

 private:
  Shape in_;
};

// Residual add: y = a + b.
class AddLayer : public Layer {
 public:
  const char* type() const override { return "add"; }
  std::string describe() const override { return "add (residual)"; }
  OpKind op() const override { return OpKind::add; }
  Shape infer(const std::vector<Shape>& inputs) override;
  void forward(const LayerTensors& t, const RunContext& ctx) override;
  void backward(const LayerTensors& t, const RunContext& ctx) override;
  bool backward_reads_input(size_t) const override { return false; }
  bool backward_reads_output() const override { return false; }
};

}  // namespace tb
