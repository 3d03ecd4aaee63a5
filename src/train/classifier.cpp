#include "train/classifier.h"

#include <algorithm>

namespace tb {

Classifier::Classifier(Graph graph, Backend& backend, int max_batch, bool training,
                       float label_smoothing)
    : graph_(std::move(graph)),
      backend_(backend),
      max_batch_(max_batch),
      classes_(int(graph_.output_shape().numel())),
      label_smoothing_(label_smoothing) {
  TB_INPUT_CHECK(label_smoothing >= 0.0f && label_smoothing < 1.0f,
                 "--label-smoothing must be in [0, 1), got {}", label_smoothing);
  graph_.plan(backend, max_batch, DType::f32, training);
  labels_ = backend.allocate(sizeof(int32_t) * max_batch);
  probs_ = backend.allocate(sizeof(float) * max_batch * classes_);
  losses_ = backend.allocate(sizeof(float) * max_batch);
  host_losses_.resize(max_batch);
  host_logits_.resize(size_t(max_batch) * classes_);
}

Classifier::~Classifier() {
  backend_.release(labels_);
  backend_.release(probs_);
  backend_.release(losses_);
}

void Classifier::set_batch(int n, const float* images, const int32_t* labels) {
  TB_CHECK(n > 0 && n <= max_batch_, "batch of {} exceeds the planned {}", n, max_batch_);
  const Tensor in = graph_.input(n);
  backend_.copy_from_host(in.data, images, in.bytes());
  if (labels) backend_.copy_from_host(labels_, labels, sizeof(int32_t) * n);
}

double Classifier::forward_loss(int n, bool training, uint64_t seed, uint64_t step) {
  graph_.forward(n, training, seed, step);
  const Device d = backend_.device();
  backend_.cross_entropy_forward(loss_params(n), graph_.output(n),
                                 Tensor(labels_, DType::i32, Shape{n}, d),
                                 Tensor(probs_, DType::f32, Shape{n, classes_}, d),
                                 Tensor(losses_, DType::f32, Shape{n}, d));
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
  backend_.copy_to_host(host_logits_.data(), logits.data, logits.bytes());
  for (int i = 0; i < n; ++i) {
    const float* row = host_logits_.data() + size_t(i) * classes_;
    out[i] = int32_t(std::max_element(row, row + classes_) - row);
  }
}

void Classifier::probabilities(int n, float* out) {
  backend_.copy_to_host(out, probs_, sizeof(float) * n * classes_);
}

}  // namespace tb
