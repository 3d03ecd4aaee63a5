// A model graph with its softmax cross-entropy loss, planned together: the labels, softmax
// probabilities and per-item losses are allocated once beside the graph's memory.
// `activations` picks mixed precision (bf16/fp16 activations, fp32 parameters) on backends
// that support it. On a GPU backend, batches go through a float staging buffer on the device
// and the backend's copy() (which converts dtype and layout), and logits come back through
// an fp32 buffer.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/graph.h"

namespace tb {

class Classifier {
 public:
  Classifier(Graph graph, Backend& backend, int max_batch, bool training, float label_smoothing,
             DType activations = DType::f32);
  ~Classifier();
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  Graph& graph() { return graph_; }
  const Graph& graph() const { return graph_; }
  Backend& backend() { return backend_; }
  int classes() const { return classes_; }

  // Uploads n normalised images [n,C,H,W] and, if given, their labels.
  void set_batch(int n, const float* images, const int32_t* labels);
  // Forward pass and loss; returns the mean loss over the n items (labels required).
  double forward_loss(int n, bool training, uint64_t seed, uint64_t step);
  // forward_loss without reading the loss back: everything stays on the device.
  void forward_loss_on_device(int n, bool training, uint64_t seed, uint64_t step);
  // Forward pass only (prediction sets have no labels): softmax probabilities stay on device.
  void forward_predict(int n, uint64_t seed);
  // Loss gradient into the graph's output gradient, then back-propagation.
  void backward(int n, uint64_t seed, uint64_t step);
  // The predicted class of each of the n items of the last forward pass (host copy).
  void predictions(int n, int32_t* out);
  // Softmax probabilities [n, classes] of the last forward_loss (host copy).
  void probabilities(int n, float* out);

  // Device tensors of the loss: labels[n] (int32), probs[n, classes] and losses[n] (fp32).
  Tensor labels(int n) const;
  Tensor probs(int n) const;
  Tensor losses(int n) const;
  int max_batch() const { return max_batch_; }

 private:
  Graph graph_;
  Backend& backend_;
  int max_batch_;
  int classes_;
  float label_smoothing_;
  void* labels_ = nullptr;  // int32 [max_batch]
  void* probs_ = nullptr;   // f32 [max_batch, classes]
  void* losses_ = nullptr;  // f32 [max_batch]
  void* staging_ = nullptr;  // f32 [max_batch, C*H*W] and [max_batch, classes], device backends
  bool staged_ = false;
  std::vector<float> host_losses_, host_logits_;
  CrossEntropyParams loss_params(int n) const { return {n, classes_, label_smoothing_}; }
};

}  // namespace tb
