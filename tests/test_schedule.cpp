// Learning-rate schedules: values at chosen steps, computed by hand from the formulas in
// optimizer.h (one-cycle: PyTorch's OneCycleLR, cos, two phases), warm-up, clamping past the
// end, and validation messages that name the option.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "train/optimizer.h"

namespace tb {
namespace {

constexpr double kPi = std::numbers::pi;

ScheduleConfig schedule(const std::string& kind, double lr, int64_t total, int64_t warmup = 0) {
  ScheduleConfig c;
  c.kind = kind;
  c.base_lr = lr;
  c.total_steps = total;
  c.warmup_steps = warmup;
  return c;
}

#define EXPECT_LR(config, step, expected) \
  EXPECT_NEAR(learning_rate_at(config, step), expected, 1e-12 * std::abs(expected) + 1e-18)

std::string error_of(const ScheduleConfig& c) {
  try {
    validate_schedule(c);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Schedule, Constant) {
  const auto c = schedule("constant", 0.1, 50);
  validate_schedule(c);
  for (int64_t s : {0, 1, 49, 50, 1000}) EXPECT_LR(c, s, 0.1);
}

TEST(Schedule, ConstantWithWarmup) {
  const auto c = schedule("constant", 0.1, 50, 5);
  validate_schedule(c);
  EXPECT_LR(c, 0, 0.02);
  EXPECT_LR(c, 1, 0.04);
  EXPECT_LR(c, 4, 0.1);
  EXPECT_LR(c, 5, 0.1);
  EXPECT_LR(c, 10000, 0.1);
}

TEST(Schedule, Step) {
  auto c = schedule("step", 0.1, 20);
  c.step_size = 3;
  c.gamma = 0.5;
  validate_schedule(c);
  EXPECT_LR(c, 0, 0.1);
  EXPECT_LR(c, 2, 0.1);
  EXPECT_LR(c, 3, 0.05);
  EXPECT_LR(c, 7, 0.025);
  EXPECT_LR(c, 19, 0.1 / 64);  // floor(19 / 3) = 6
  EXPECT_LR(c, 20, 0.1 / 64);  // clamped to step 19
  EXPECT_LR(c, 500, 0.1 / 64);
}

TEST(Schedule, StepWithWarmupCountsFromTheEndOfWarmup) {
  auto c = schedule("step", 0.1, 20, 4);
  c.step_size = 3;
  c.gamma = 0.5;
  validate_schedule(c);
  EXPECT_LR(c, 0, 0.025);
  EXPECT_LR(c, 3, 0.1);
  EXPECT_LR(c, 4, 0.1);   // t = 0
  EXPECT_LR(c, 6, 0.1);   // t = 2
  EXPECT_LR(c, 7, 0.05);  // t = 3
  EXPECT_LR(c, 19, 0.1 / 32);   // t = 15
  EXPECT_LR(c, 100, 0.1 / 32);  // clamped
}

TEST(Schedule, Cosine) {
  auto c = schedule("cosine", 0.1, 10);
  c.min_lr = 0.001;
  validate_schedule(c);
  EXPECT_LR(c, 0, 0.1);
  EXPECT_LR(c, 5, 0.0505);                  // cos(pi/2) = 0: half way
  EXPECT_LR(c, 9, 0.0034227024433899004);   // 0.001 + 0.099 (1 + cos(0.9 pi)) / 2
  EXPECT_LR(c, 10, 0.0034227024433899004);  // clamped to the last step
  EXPECT_LR(c, 99, 0.0034227024433899004);
}

TEST(Schedule, CosineWithWarmupSpansTheRemainingSteps) {
  auto c = schedule("cosine", 0.1, 10, 2);
  c.min_lr = 0.001;
  validate_schedule(c);
  EXPECT_LR(c, 0, 0.05);
  EXPECT_LR(c, 1, 0.1);
  EXPECT_LR(c, 2, 0.1);     // t = 0 of 8
  EXPECT_LR(c, 6, 0.0505);  // t = 4 of 8
  EXPECT_LR(c, 9, 0.004767963140691307);  // 0.001 + 0.099 (1 + cos(7 pi / 8)) / 2
}

TEST(Schedule, CosineIsMonotoneAndStaysAboveFloor) {
  auto c = schedule("cosine", 0.2, 1000, 100);
  c.min_lr = 0.01;
  double last = 0;
  for (int64_t s = 0; s < 100; ++s) {
    EXPECT_GT(learning_rate_at(c, s), last);
    last = learning_rate_at(c, s);
  }
  for (int64_t s = 100; s < 1000; ++s) {
    const double lr = learning_rate_at(c, s);
    EXPECT_LE(lr, last);
    EXPECT_GE(lr, c.min_lr);
    last = lr;
  }
}

// OneCycleLR(max_lr=0.1, total_steps=100): initial 0.1/25 = 0.004, final 0.004/1e4 = 4e-7,
// peak at float(0.3 * 100) - 1 = 29.
TEST(Schedule, OneCycleMatchesPyTorch) {
  const auto c = schedule("one-cycle", 0.1, 100);
  validate_schedule(c);
  auto rising = [](double s) { return 0.1 + (0.004 - 0.1) / 2 * (std::cos(kPi * s / 29) + 1); };
  EXPECT_LR(c, 0, 0.004);
  EXPECT_LR(c, 10, 0.029516394846410082);
  EXPECT_LR(c, 10, rising(10));
  EXPECT_LR(c, 29, 0.1);
  EXPECT_LR(c, 50, 0.0793893450575732);  // pct (50 - 29) / 70 = 0.3
  EXPECT_LR(c, 64, 0.0500002);           // pct 0.5: the mean of 0.1 and 4e-7
  EXPECT_LR(c, 99, 4e-7);
  EXPECT_LR(c, 100, 4e-7);
  EXPECT_LR(c, 12345, 4e-7);
}

TEST(Schedule, OneCycleWithFractionalPeak) {
  // total 10, pct_start 0.25: peak at 1.5, so step 1 is still rising and step 2 falls.
  auto c = schedule("one-cycle", 0.01, 10);
  c.one_cycle_pct_start = 0.25;
  validate_schedule(c);
  EXPECT_LR(c, 0, 0.0004);
  EXPECT_LR(c, 1, 0.0076);                 // pct 1 / 1.5
  EXPECT_LR(c, 2, 0.009890738440717015);   // pct 0.5 / 7.5
  EXPECT_LR(c, 9, 4e-8);
}

TEST(Schedule, OneCycleOtherFactors) {
  auto c = schedule("one-cycle", 1.0, 11);
  c.one_cycle_pct_start = 0.5;  // peak at 4.5
  c.one_cycle_div_factor = 10;
  c.one_cycle_final_div_factor = 100;
  validate_schedule(c);
  EXPECT_LR(c, 0, 0.1);
  EXPECT_LR(c, 10, 0.001);
  const double pct = (7 - 4.5) / (10 - 4.5);
  EXPECT_LR(c, 7, 0.001 + (1.0 - 0.001) / 2 * (std::cos(kPi * pct) + 1));
}

TEST(Schedule, OneCycleMomentumMatchesPyTorch) {
  const auto c = schedule("one-cycle", 0.1, 100);
  EXPECT_NEAR(one_cycle_momentum_at(c, 0), 0.95, 1e-12);
  EXPECT_NEAR(one_cycle_momentum_at(c, 10), 0.9234204220349895, 1e-12);
  EXPECT_NEAR(one_cycle_momentum_at(c, 29), 0.85, 1e-12);
  EXPECT_NEAR(one_cycle_momentum_at(c, 50), 0.8706107373853763, 1e-12);
  EXPECT_NEAR(one_cycle_momentum_at(c, 64), 0.9, 1e-12);
  EXPECT_NEAR(one_cycle_momentum_at(c, 99), 0.95, 1e-12);
  EXPECT_NEAR(one_cycle_momentum_at(c, 500), 0.95, 1e-12);
  EXPECT_THROW(one_cycle_momentum_at(schedule("cosine", 0.1, 100), 0), InternalError);
}

TEST(Schedule, SingleStepRun) {
  EXPECT_LR(schedule("constant", 0.3, 1), 0, 0.3);
  EXPECT_LR(schedule("cosine", 0.3, 1), 0, 0.3);
  EXPECT_LR(schedule("step", 0.3, 1), 5, 0.3);
}

TEST(Schedule, NegativeStepIsABug) {
  EXPECT_THROW(learning_rate_at(schedule("constant", 0.1, 10), -1), InternalError);
}

TEST(Schedule, ValidationNamesTheOption) {
  auto expect_error = [](const ScheduleConfig& c, const std::string& part) {
    const std::string msg = error_of(c);
    EXPECT_NE(msg.find(part), std::string::npos) << "message: '" << msg << "' lacks " << part;
  };
  expect_error(schedule("linear", 0.1, 10), "--lr-schedule must be one of constant, step, "
                                            "cosine, one-cycle, got 'linear'");
  expect_error(schedule("constant", 0, 10), "--lr must be > 0, got 0");
  expect_error(schedule("constant", -1, 10), "--lr must be > 0");
  expect_error(schedule("constant", NAN, 10), "--lr must be > 0");
  expect_error(schedule("constant", 0.1, 0), "at least 1 step, got 0");
  expect_error(schedule("constant", 0.1, 10, -1), "--warmup-steps must be >= 0, got -1");
  expect_error(schedule("cosine", 0.1, 10, 10), "--warmup-steps (10) must be less than");
  expect_error(schedule("one-cycle", 0.1, 100, 5), "--warmup-steps does not apply");

  auto step = schedule("step", 0.1, 10);
  step.step_size = 0;
  expect_error(step, "--lr-step-size must be >= 1, got 0");
  step.step_size = 2;
  step.gamma = 0;
  expect_error(step, "--lr-gamma must be > 0, got 0");

  auto cosine = schedule("cosine", 0.1, 10);
  cosine.min_lr = 0.2;
  expect_error(cosine, "--min-lr must be in [0, 0.1], got 0.2");
  cosine.min_lr = -0.1;
  expect_error(cosine, "--min-lr");

  auto cycle = schedule("one-cycle", 0.1, 100);
  cycle.one_cycle_pct_start = 1.0;
  expect_error(cycle, "--one-cycle-pct-start must be in (0, 1), got 1");
  cycle.one_cycle_pct_start = 0.01;  // peak at step 0: the rising phase is empty
  expect_error(cycle, "--one-cycle-pct-start 0.01 over a run of 100 steps leaves an empty phase");
  cycle.one_cycle_pct_start = 0.3;
  cycle.one_cycle_div_factor = 0;
  expect_error(cycle, "--one-cycle-div-factor must be > 0");
  cycle.one_cycle_div_factor = 25;
  cycle.one_cycle_final_div_factor = -1;
  expect_error(cycle, "--one-cycle-final-div-factor must be > 0");
  cycle.one_cycle_final_div_factor = 1e4;
  cycle.one_cycle_max_momentum = 1.0;
  expect_error(cycle, "--one-cycle-max-momentum must be in [0, 1)");
  cycle.one_cycle_cycle_momentum = false;
  EXPECT_EQ(error_of(cycle), "");
  expect_error(schedule("one-cycle", 0.1, 2), "leaves an empty phase");
}

TEST(Schedule, DefaultsAreValid) {
  EXPECT_EQ(error_of(ScheduleConfig{}), "");
  EXPECT_EQ(error_of(schedule("step", 0.1, 10)), "");
  EXPECT_EQ(error_of(schedule("cosine", 0.1, 10, 9)), "");
}

}  // namespace
}  // namespace tb
