// Training runs of a backend against ref, shared by the cpu and onednn training tests: SGD
// steps of one model on a fixed random batch from fixed weights (TrainingRun); a run whose
// every compared step hands ref its exact parameters and batch-norm statistics and checks
// the loss, every gradient and the updated statistics; and free-running loss curves.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "nn/models.h"
#include "ops/ref/ref_backend.h"
#include "train/classifier.h"
#include "train/optimizer.h"

namespace tb::testing {

struct CurveCase {
  std::string model;
  ModelInput input;
  int batch;
  float lr, momentum;
  int compare_every;  // steps between comparisons with ref in the synced run
};

// SGD steps of one model on one fixed random batch, which it memorises (its loss falls step
// after step), from fixed initial weights.
class TrainingRun {
 public:
  TrainingRun(Backend& backend, const CurveCase& c)
      : c_(c), model_(build_model(c.model, c.input), backend, c.batch, true, 0.0f) {
    model_.graph().init_parameters(42);
    OptimizerConfig config;
    config.kind = "sgd";
    config.momentum = c.momentum;
    config.weight_decay = 5e-4f;
    opt_ = std::make_unique<Optimizer>(backend, model_.graph().parameters(), config);
  }
  void load_batch() {
    Rng rng(1000);
    const int64_t item = int64_t(c_.input.channels) * c_.input.height * c_.input.width;
    std::vector<float> images(size_t(item * c_.batch));
    for (float& x : images) x = float(rng.uniform(-1, 1));
    std::vector<int32_t> labels(static_cast<size_t>(c_.batch));
    for (int32_t& l : labels) l = int32_t(rng.below(uint64_t(c_.input.classes)));
    model_.set_batch(c_.batch, images.data(), labels.data());
  }
  double forward_backward(int step) {
    load_batch();
    const double loss = model_.forward_loss(c_.batch, true, 3, uint64_t(step));
    model_.backward(c_.batch, 3, uint64_t(step));
    return loss;
  }
  void update() { opt_->step(c_.lr); }
  double step(int step) {
    const double loss = forward_backward(step);
    update();
    return loss;
  }
  Graph& graph() { return model_.graph(); }

 private:
  CurveCase c_;
  Classifier model_;
  std::unique_ptr<Optimizer> opt_;
};

// ||a - b|| / ||b|| over the same-shaped fp32 tensors of two models.
inline double rel_error(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double diff = 0, norm = 0;
  for (size_t t = 0; t < b.size(); ++t) {
    const float* x = static_cast<const float*>(a[t].data);
    const float* y = static_cast<const float*>(b[t].data);
    for (int64_t i = 0; i < b[t].numel(); ++i) {
      diff += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
      norm += double(y[i]) * y[i];
    }
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

template <class Ref>
std::vector<Tensor> pick(const std::vector<Ref>& refs, Tensor Ref::*field) {
  std::vector<Tensor> out;
  for (const Ref& r : refs) out.push_back(r.*field);
  return out;
}

// 20 steps on `backend`, training freely; every c.compare_every steps (and the last) ref is
// given the run's exact parameters and batch-norm statistics and must agree on the loss
// (1e-4), every gradient (`gradient_tolerance`, relative over all of them) and the updated
// running statistics (1e-5). Free-running curves of the BN nets at batch 4 are chaotic: ref
// against itself with one weight changed by 1e-6 ends 5% apart within 10 steps.
inline void expect_synced_steps_match_ref(Backend& backend, const CurveCase& c,
                                          double gradient_tolerance) {
  auto ref_backend = make_ref_backend();
  TrainingRun run(backend, c), ref(*ref_backend, c);
  std::vector<double> losses;
  for (int step = 0; step < 20; ++step) {
    if (step % c.compare_every != 0 && step != 19) {
      losses.push_back(run.step(step));
      continue;
    }
    const auto params = run.graph().parameters(), ref_params = ref.graph().parameters();
    for (size_t i = 0; i < params.size(); ++i)
      std::memcpy(ref_params[i].value.data, params[i].value.data, params[i].value.bytes());
    const auto buffers = run.graph().persistent_buffers();
    const auto ref_buffers = ref.graph().persistent_buffers();
    for (size_t i = 0; i < buffers.size(); ++i)
      std::memcpy(ref_buffers[i].value.data, buffers[i].value.data, buffers[i].value.bytes());
    const double loss = run.forward_backward(step), want = ref.forward_backward(step);
    EXPECT_NEAR(loss, want, 1e-4 * std::abs(want)) << "step " << step;
    EXPECT_LE(rel_error(pick(run.graph().parameters(), &ParamRef::grad),
                        pick(ref.graph().parameters(), &ParamRef::grad)),
              gradient_tolerance)
        << "gradients, step " << step;
    if (!buffers.empty())
      EXPECT_LE(rel_error(pick(run.graph().persistent_buffers(), &StateRef::value),
                          pick(ref.graph().persistent_buffers(), &StateRef::value)),
                1e-5)
          << "running statistics, step " << step;
    run.update();
    losses.push_back(loss);
  }
  EXPECT_LT(losses.back(), losses.front()) << "the run should learn something";
}

// The free-running 20-step loss curves that are not chaotic: simple_cnn (no batch norm) at a
// real learning rate and cifar_cnn at a small one, on a fresh backend from `make` each,
// against ref within 1e-3.
template <class MakeBackend>
void expect_free_running_curves_match_ref(MakeBackend make) {
  const CurveCase cases[] = {{"simple_cnn", {1, 28, 28, 10}, 8, 0.05f, 0.9f, 1},
                             {"cifar_cnn", {3, 16, 16, 10}, 4, 1e-4f, 0.0f, 1}};
  for (const CurveCase& c : cases) {
    auto ref_backend = make_ref_backend();
    auto backend = make();
    TrainingRun run(*backend, c), ref(*ref_backend, c);
    for (int step = 0; step < 20; ++step) {
      const double got = run.step(step), want = ref.step(step);
      EXPECT_NEAR(got, want, 1e-3 * std::abs(want)) << c.model << " step " << step;
    }
  }
}

}  // namespace tb::testing
