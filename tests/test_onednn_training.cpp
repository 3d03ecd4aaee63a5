// The onednn backend in training: the loss and optimizer ops against ref, the cached weight
// copies following parameter updates, 20-step loss curves of three models against ref, and
// a warmed-up step that creates no primitive and allocates nothing.
#ifdef TB_HAVE_ONEDNN
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
#include "ops/onednn/onednn_backend.h"
#include "ops/ref/ref_backend.h"
#include "synced_training.h"
#include "train/classifier.h"
#include "train/optimizer.h"

namespace tb {
namespace {

using Vecf = std::vector<float>;
using testing::CurveCase;
using testing::TrainingRun;

Tensor tf(Vecf& v, Shape s) { return Tensor(v.data(), DType::f32, s); }

Vecf uniform(Rng& rng, int64_t n, float lo = -1, float hi = 1) {
  Vecf v(static_cast<size_t>(n));
  for (float& x : v) x = float(rng.uniform(lo, hi));
  return v;
}

TEST(OneDnnBackend, IsRegisteredUnderItsName) {
  const auto names = backend_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "onednn"), names.end());
  EXPECT_FALSE(backend_description("onednn").empty());
  auto backend = make_backend("onednn", 1);
  EXPECT_EQ(backend->name(), "onednn");
  EXPECT_TRUE(backend->supports(OpKind::conv2d, DType::f32));
  EXPECT_FALSE(backend->supports(OpKind::conv2d, DType::f64));
}

TEST(OneDnnBackend, CrossEntropyAndOptimizerUpdatesMatchRefExactly) {
  OneDnnBackend dnn(1);
  auto ref = make_ref_backend();
  Rng rng(5);
  const CrossEntropyParams ce{7, 10, 0.1f};
  Vecf logits = uniform(rng, 70, -4, 4), probs(70), probs_ref(70), losses(7), losses_ref(7);
  Vecf dlogits(70), dlogits_ref(70);
  std::vector<int32_t> labels{0, 9, 3, 3, 5, 1, 7};
  Tensor lab(labels.data(), DType::i32, Shape{7});
  dnn.cross_entropy_forward(ce, tf(logits, {7, 10}), lab, tf(probs, {7, 10}), tf(losses, {7}));
  ref->cross_entropy_forward(ce, tf(logits, {7, 10}), lab, tf(probs_ref, {7, 10}),
                             tf(losses_ref, {7}));
  EXPECT_EQ(probs, probs_ref);
  EXPECT_EQ(losses, losses_ref);
  dnn.cross_entropy_backward(ce, tf(probs, {7, 10}), lab, tf(dlogits, {7, 10}));
  ref->cross_entropy_backward(ce, tf(probs, {7, 10}), lab, tf(dlogits_ref, {7, 10}));
  EXPECT_EQ(dlogits, dlogits_ref);

  const int64_t n = 100003;  // large enough for the parallel path, odd for the tails
  const Shape s{n};
  for (bool nesterov : {false, true}) {
    const SgdUpdateParams p{n, 0.05f, 0.9f, 1e-4f, nesterov};
    Vecf w = uniform(rng, n), g = uniform(rng, n), buf = uniform(rng, n);
    Vecf w_ref = w, buf_ref = buf;
    for (int step = 0; step < 3; ++step) {
      dnn.sgd_update(p, tf(w, s), tf(g, s), tf(buf, s));
      ref->sgd_update(p, tf(w_ref, s), tf(g, s), tf(buf_ref, s));
    }
    EXPECT_EQ(w, w_ref);
    EXPECT_EQ(buf, buf_ref);
  }
  for (bool decoupled : {false, true}) {
    Vecf w = uniform(rng, n), g = uniform(rng, n), m(n), v(n);
    Vecf w_ref = w, m_ref = m, v_ref = v;
    for (int64_t step = 1; step <= 3; ++step) {
      const AdamUpdateParams p{n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, decoupled, step};
      dnn.adam_update(p, tf(w, s), tf(g, s), tf(m, s), tf(v, s));
      ref->adam_update(p, tf(w_ref, s), tf(g, s), tf(m_ref, s), tf(v_ref, s));
    }
    EXPECT_EQ(w, w_ref);
    EXPECT_EQ(m, m_ref);
    EXPECT_EQ(v, v_ref);
  }
}

// The reordered copy of a weight must follow every write the backend makes to it.
TEST(OneDnnBackend, CachedWeightCopiesFollowUpdates) {
  OneDnnBackend dnn(1);
  auto ref = make_ref_backend();
  Rng rng(11);
  const Conv2dParams p{2, 16, 8, 8, 32, 3, 1, 1, false};
  const Shape xs{2, 16, 8, 8}, ws{32, 16, 3, 3}, ys{2, 32, 8, 8};
  Vecf x = uniform(rng, xs.numel()), w = uniform(rng, ws.numel()), y(ys.numel()), y_ref(y.size());
  Vecf g = uniform(rng, ws.numel()), fresh = uniform(rng, ws.numel());
  auto expect_matches_ref = [&](const char* after) {
    dnn.conv2d_forward(p, tf(x, xs), tf(w, ws), Tensor(), tf(y, ys));
    ref->conv2d_forward(p, tf(x, xs), tf(w, ws), Tensor(), tf(y_ref, ys));
    double diff = 0, norm = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      diff += double(y[i] - y_ref[i]) * (y[i] - y_ref[i]);
      norm += double(y_ref[i]) * y_ref[i];
    }
    EXPECT_LE(std::sqrt(diff / norm), 1e-5) << "after " << after;
  };
  expect_matches_ref("the first call");
  dnn.sgd_update(SgdUpdateParams{ws.numel(), 0.5f}, tf(w, ws), tf(g, ws), Tensor());
  expect_matches_ref("sgd_update");
  dnn.copy_from_host(w.data(), fresh.data(), w.size() * sizeof(float));
  expect_matches_ref("copy_from_host");
  for (float& v : w) v = -v;  // behind the backend's back
  dnn.forget_cached_weights();
  expect_matches_ref("a host write and forget_cached_weights");
}

// One thread: the op tests cover two, and whole steps on a loaded machine are much slower
// when OpenMP's threads wait for each other at every barrier.
class OneDnnTraining : public ::testing::TestWithParam<CurveCase> {};

// Every compared step of a free-training onednn run against ref (synced_training.h). 1e-2 on
// the gradients: summation order alone gives ~1e-5, but an input that rounds to the other
// side of a ReLU's or a max-pool's kink moves one unit's gradient wholesale, which weighs more
// as the loss (and the gradient) shrinks. A broken op gives errors of order 1.
TEST_P(OneDnnTraining, EveryComparedStepOfA20StepRunMatchesRef) {
  OneDnnBackend dnn(1);
  testing::expect_synced_steps_match_ref(dnn, GetParam(), 1e-2);
}

TEST_P(OneDnnTraining, WarmStepsCreateNoPrimitiveAndAllocateNothing) {
  OneDnnBackend dnn(1);
  TrainingRun run(dnn, GetParam());
  run.step(0);
  const size_t primitives = dnn.primitive_creations(), allocations = dnn.allocation_count();
  EXPECT_GT(primitives, 0u);
  for (int step = 1; step < 4; ++step) {
    run.step(step);
    EXPECT_EQ(dnn.primitive_creations(), primitives) << "step " << step;
    EXPECT_EQ(dnn.allocation_count(), allocations) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, OneDnnTraining,
                         ::testing::Values(CurveCase{"simple_cnn", {1, 28, 28, 10}, 8, 0.05f, 0.9f, 1},
                                           CurveCase{"cifar_cnn", {3, 16, 16, 10}, 4, 0.005f, 0.9f, 2},
                                           CurveCase{"resnet18", {3, 8, 8, 10}, 4, 0.01f, 0.9f, 10}),
                         [](const auto& info) { return info.param.model; });

TEST(OneDnnTrainingCurve, FreeRunning20StepLossCurvesMatchRef) {
  testing::expect_free_running_curves_match_ref([] { return std::make_unique<OneDnnBackend>(1); });
}

}  // namespace
}  // namespace tb
#endif  // TB_HAVE_ONEDNN
