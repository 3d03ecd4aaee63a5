#include "train/classifier.h"

#include <algorithm>

namespace tb {

Classifier::Classifier(Graph graph, Backend& backend, int max_batch, bool training,
                       float label_smoothing, DType activations)
    : graph_(std::move(graph)),
      backend_(backend),
      max_batch_(max_batch),
      classes_(int(graph_.output_shape().numel())),
      label_smoothing_(label_smoothing) {
  TB_INPUT_CHECK(label_smoothing >= 0.0f && label_smoothing < 1.0f,
                 "--label-smoothing must be in [0, 1), got {}", label_smoothing);
  graph_.plan(backend, max_batch, GraphPrecision{DType::f32, activations}, training);
  labels_ = backend.allocate(sizeof(int32_t) * max_batch);
  probs_ = backend.allocate(sizeof(float) * max_batch * classes_);
  losses_ = backend.allocate(sizeof(float) * max_batch);
  // Device backends keep their own activation layout and dtype: stage through fp32.
  staged_ = backend.device().kind != DeviceKind::cpu || activations != DType::f32;
  if (staged_) {
    const int64_t item = std::max<int64_t>(graph_.input_shape().numel(), classes_);
    staging_ = backend.allocate(sizeof(float) * size_t(max_batch) * size_t(item));
  }
  host_losses_.resize(max_batch);
  host_logits_.resize(size_t(max_batch) * classes_);
}

Classifier::~Classifier() {
  backend_.release(labels_);
  backend_.release(probs_);
  backend_.release(losses_);
  if (staging_) backend_.release(staging_);
}

void Classifier::set_batch(int n, const float* images, const int32_t* labels) {
  TB_CHECK(n > 0 && n <= max_batch_, "batch of {} exceeds the planned {}", n, max_batch_);
  const Tensor in = graph_.input(n);
  if (staged_) {
    const int64_t item = graph_.input_shape().numel();
    backend_.copy_from_host(staging_, images, sizeof(float) * size_t(n) * size_t(item));
    backend_.copy(Tensor(staging_, DType::f32, Shape{n, item}, backend_.device()), in, false);
  } else {
    backend_.copy_from_host(in.data, images, in.bytes());
  }
  if (labels) backend_.copy_from_host(labels_, labels, sizeof(int32_t) * n);
}

void Classifier::forward_loss_on_device(int n, bool training, uint64_t seed, uint64_t step) {
  graph_.forward(n, training, seed, step);
  backend_.cross_entropy_forward(loss_params(n), graph_.output(n), labels(n), probs(n), losses(n));
}

Tensor Classifier::labels(int n) const {
  return Tensor(labels_, DType::i32, Shape{n}, backend_.device());
}
Tensor Classifier::probs(int n) const {
  return Tensor(probs_, DType::f32, Shape{n, classes_}, backend_.device());
}
Tensor Classifier::losses(int n) const {
  return Tensor(losses_, DType::f32, Shape{n}, backend_.device());
}

double Classifier::forward_loss(int n, bool training, uint64_t seed, uint64_t step) {
  forward_loss_on_device(n, training, seed, step);
  backend_.copy_to_host(host_losses_.data(), losses_, sizeof(float) * n);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += host_losses_[i];
  return sum / n;
}

void Classifier::forward_predict(int n, uint64_t seed) { graph_.forward(n, false, seed, 0); }

void Classifier::backward(int n, uint64_t seed, uint64_t step) {
  const Device d = backend_.device();
  backend_.cross_entropy_backward(loss_params(n), Tensor(probs_, DType::f32, Shape{n, classes_}, d),
                                  Tensor(labels_, DType::i32, Shape{n}, d), graph_.output_grad(n));
  graph_.backward(n, seed, step);
}

void Classifier::predictions(int n, int32_t* out) {
  const Tensor logits = graph_.output(n);
  if (logits.dtype == DType::f32) {
    backend_.copy_to_host(host_logits_.data(), logits.data, logits.bytes());
  } else {  // through the fp32 staging buffer
    const Tensor f32(staging_, DType::f32, Shape{n, classes_}, backend_.device());
    backend_.copy(logits, f32, false);
    backend_.copy_to_host(host_logits_.data(), staging_, f32.bytes());
  }
  for (int i = 0; i < n; ++i) {
    const float* row = host_logits_.data() + size_t(i) * classes_;
    out[i] = int32_t(std::max_element(row, row + classes_) - row);
  }
}

void Classifier::probabilities(int n, float* out) {
  backend_.copy_to_host(out, probs_, sizeof(float) * n * classes_);
}

}  // namespace tb
