// Helpers for tests that train the same model two ways (plan options, backends) and expect
// bit-identical results: a few SGD steps on fixed random batches from fixed weights, and an
// exact comparison of losses, parameters and running statistics.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "nn/graph.h"
#include "train/classifier.h"
#include "train/optimizer.h"

namespace tb {

struct TrainedState {
  std::vector<double> losses;  // one per step, then the evaluation-mode loss after training
  std::vector<uint8_t> parameters, buffers;
};

inline TrainedState train_steps(Backend& backend, Graph graph, const PlanOptions& options,
                                int batch, int steps) {
  graph.set_plan_options(options);
  const Shape in = graph.input_shape();
  Classifier model(std::move(graph), backend, batch, true, 0.0f);
  model.graph().init_parameters(21);
  OptimizerConfig config;
  config.weight_decay = 5e-4f;
  Optimizer opt(backend, model.graph().parameters(), config);
  Rng rng(4);
  std::vector<float> images(size_t(batch * in.numel()));
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  TrainedState out;
  for (int step = 0; step <= steps; ++step) {
    for (float& v : images) v = float(rng.normal());
    for (int32_t& l : labels) l = int32_t(rng.below(uint64_t(model.classes())));
    model.set_batch(batch, images.data(), labels.data());
    const bool training = step < steps;
    out.losses.push_back(model.forward_loss(batch, training, 1, uint64_t(step)));
    if (!training) break;
    model.backward(batch, 1, uint64_t(step));
    opt.step(0.05f);
  }
  const Tensor p = model.graph().parameter_block();
  out.parameters.resize(p.bytes());
  backend.copy_to_host(out.parameters.data(), p.data, p.bytes());
  for (const StateRef& b : model.graph().persistent_buffers()) {
    const size_t at = out.buffers.size();
    out.buffers.resize(at + b.value.bytes());
    backend.copy_to_host(out.buffers.data() + at, b.value.data, b.value.bytes());
  }
  return out;
}

inline void expect_identical(const TrainedState& a, const TrainedState& b) {
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i) {
    // Two runs that both went to NaN would compare equal and prove nothing.
    EXPECT_TRUE(std::isfinite(a.losses[i]) && a.losses[i] > 0) << "loss " << i << ": " << a.losses[i];
    EXPECT_EQ(std::memcmp(&a.losses[i], &b.losses[i], sizeof(double)), 0)
        << "loss " << i << ": " << a.losses[i] << " vs " << b.losses[i];
  }
  EXPECT_TRUE(a.parameters == b.parameters) << "parameters differ";
  EXPECT_TRUE(a.buffers == b.buffers) << "running statistics differ";
}

}  // namespace tb
