// The cpu backend in training: 20-step runs of three models against ref (loss, every
// gradient, running statistics), whole training steps bit-identical for 1, 2 and 3 threads,
// and warmed-up steps that allocate nothing (the conv workspace only grows on a new shape).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ops/cpu/cpu_backend.h"
#include "synced_training.h"

namespace tb {
namespace {

using Vecf = std::vector<float>;
using testing::CurveCase;
using testing::TrainingRun;

class CpuTraining : public ::testing::TestWithParam<CurveCase> {};

// Every compared step of a free-training cpu run against ref (synced_training.h).
TEST_P(CpuTraining, EveryComparedStepOfA20StepRunMatchesRef) {
  CpuBackend cpu(2);
  testing::expect_synced_steps_match_ref(cpu, GetParam(), 1e-3);
}

// Three steps with 1, 2 and 3 threads: the same losses and parameters, bit for bit.
TEST_P(CpuTraining, StepsAreBitIdenticalForAnyThreadCount) {
  std::vector<double> first_losses;
  std::vector<Vecf> first_params;
  for (int threads : {1, 2, 3}) {
    CpuBackend cpu(threads);
    TrainingRun run(cpu, GetParam());
    std::vector<double> losses;
    for (int step = 0; step < 3; ++step) losses.push_back(run.step(step));
    std::vector<Vecf> params;
    for (const auto& p : run.graph().parameters()) {
      const float* v = static_cast<const float*>(p.value.data);
      params.emplace_back(v, v + p.value.numel());
    }
    if (threads == 1) {
      first_losses = losses;
      first_params = params;
      continue;
    }
    EXPECT_EQ(losses, first_losses) << threads << " threads";
    EXPECT_TRUE(params == first_params) << threads << " threads";
  }
}

TEST_P(CpuTraining, WarmStepsAllocateNothing) {
  CpuBackend cpu(2);
  TrainingRun run(cpu, GetParam());
  run.step(0);
  const size_t allocations = cpu.allocation_count();
  for (int step = 1; step < 4; ++step) {
    run.step(step);
    EXPECT_EQ(cpu.allocation_count(), allocations) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CpuTraining,
                         ::testing::Values(CurveCase{"simple_cnn", {1, 28, 28, 10}, 8, 0.05f, 0.9f, 1},
                                           CurveCase{"cifar_cnn", {3, 16, 16, 10}, 4, 0.01f, 0.9f, 2},
                                           CurveCase{"resnet18", {3, 8, 8, 10}, 4, 0.01f, 0.9f, 10}),
                         [](const auto& info) { return info.param.model; });

TEST(CpuTrainingCurve, FreeRunning20StepLossCurvesMatchRef) {
  testing::expect_free_running_curves_match_ref([] { return std::make_unique<CpuBackend>(2); });
}

}  // namespace
}  // namespace tb
