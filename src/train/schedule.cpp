// Learning-rate schedules as pure functions of the step. One-cycle follows PyTorch's
// OneCycleLR (anneal_strategy='cos', three_phase=False) formula for formula, so a run can be
// compared with the PyTorch peer step by step.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "train/optimizer.h"

namespace tb {
namespace {

// PyTorch's _annealing_cos: from start at pct 0 to end at pct 1 along half a cosine.
double cos_anneal(double start, double end, double pct) {
  return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0);
}

// The steps past the end of the run repeat the last step.
int64_t clamp_step(const ScheduleConfig& c, int64_t step) {
  TB_CHECK(step >= 0, "learning rate asked for step {}", step);
  return std::min(step, c.total_steps - 1);
}

// The step where OneCycleLR's rising phase ends; a float, as in PyTorch.
double one_cycle_peak(const ScheduleConfig& c) {
  return c.one_cycle_pct_start * static_cast<double>(c.total_steps) - 1.0;
}

// OneCycleLR's two phases: [0, peak] goes from `start` to `mid`, (peak, total-1] from `mid`
// to `end`, each a cosine of pct = (step - phase start) / (phase end - phase start).
double one_cycle_value(const ScheduleConfig& c, int64_t step, double start, double mid,
                       double end) {
  const double s = static_cast<double>(clamp_step(c, step));
  const double peak = one_cycle_peak(c);
  const double last = static_cast<double>(c.total_steps - 1);
  if (s <= peak) return cos_anneal(start, mid, s / peak);
  return cos_anneal(mid, end, (s - peak) / (last - peak));
}

void validate_one_cycle(const ScheduleConfig& c) {
  TB_INPUT_CHECK(c.warmup_steps == 0,
                 "--warmup-steps does not apply to --lr-schedule one-cycle, which warms up by "
                 "itself (see --one-cycle-pct-start), got {}",
                 c.warmup_steps);
  TB_INPUT_CHECK(c.one_cycle_pct_start > 0 && c.one_cycle_pct_start < 1,
                 "--one-cycle-pct-start must be in (0, 1), got {}", c.one_cycle_pct_start);
  TB_INPUT_CHECK(std::isfinite(c.one_cycle_div_factor) && c.one_cycle_div_factor > 0,
                 "--one-cycle-div-factor must be > 0, got {}", c.one_cycle_div_factor);
  TB_INPUT_CHECK(std::isfinite(c.one_cycle_final_div_factor) && c.one_cycle_final_div_factor > 0,
                 "--one-cycle-final-div-factor must be > 0, got {}",
                 c.one_cycle_final_div_factor);
  // Both phases need a non-zero length, or PyTorch's pct divides by zero.
  const double peak = one_cycle_peak(c);
  TB_INPUT_CHECK(peak > 0 && peak < static_cast<double>(c.total_steps - 1),
                 "--one-cycle-pct-start {} over a run of {} steps leaves an empty phase; "
                 "pct_start x steps must be above 1 and below the steps",
                 c.one_cycle_pct_start, c.total_steps);
  if (c.one_cycle_cycle_momentum) {
    TB_INPUT_CHECK(c.one_cycle_base_momentum >= 0 && c.one_cycle_base_momentum < 1,
                   "--one-cycle-base-momentum must be in [0, 1), got {}",
                   c.one_cycle_base_momentum);
    TB_INPUT_CHECK(c.one_cycle_max_momentum >= 0 && c.one_cycle_max_momentum < 1,
                   "--one-cycle-max-momentum must be in [0, 1), got {}",
                   c.one_cycle_max_momentum);
  }
}

}  // namespace

void validate_schedule(const ScheduleConfig& c) {
  const bool known = c.kind == "constant" || c.kind == "step" || c.kind == "cosine" ||
                     c.kind == "one-cycle";
  TB_INPUT_CHECK(known, "--lr-schedule must be one of constant, step, cosine, one-cycle, got '{}'",
                 c.kind);
  TB_INPUT_CHECK(std::isfinite(c.base_lr) && c.base_lr > 0, "--lr must be > 0, got {}",
                 c.base_lr);
  TB_INPUT_CHECK(c.total_steps >= 1, "--lr-schedule needs a run of at least 1 step, got {}",
                 c.total_steps);
  if (c.kind == "one-cycle") return validate_one_cycle(c);

  TB_INPUT_CHECK(c.warmup_steps >= 0, "--warmup-steps must be >= 0, got {}", c.warmup_steps);
  TB_INPUT_CHECK(c.warmup_steps < c.total_steps,
                 "--warmup-steps ({}) must be less than the run's {} steps", c.warmup_steps,
                 c.total_steps);
  if (c.kind == "step") {
    TB_INPUT_CHECK(c.step_size >= 1, "--lr-step-size must be >= 1, got {}", c.step_size);
    TB_INPUT_CHECK(std::isfinite(c.gamma) && c.gamma > 0, "--lr-gamma must be > 0, got {}",
                   c.gamma);
  } else if (c.kind == "cosine") {
    TB_INPUT_CHECK(c.min_lr >= 0 && c.min_lr <= c.base_lr, "--min-lr must be in [0, {}], got {}",
                   c.base_lr, c.min_lr);
  }
}

double learning_rate_at(const ScheduleConfig& c, int64_t step) {
  if (c.kind == "one-cycle") {
    const double initial = c.base_lr / c.one_cycle_div_factor;
    return one_cycle_value(c, step, initial, c.base_lr, initial / c.one_cycle_final_div_factor);
  }
  const int64_t s = clamp_step(c, step);
  if (s < c.warmup_steps)
    return c.base_lr * static_cast<double>(s + 1) / static_cast<double>(c.warmup_steps);

  // After warm-up the schedule runs as if the run had started there.
  const int64_t t = s - c.warmup_steps;
  if (c.kind == "constant") return c.base_lr;
  if (c.kind == "step") return c.base_lr * std::pow(c.gamma, static_cast<double>(t / c.step_size));
  if (c.kind == "cosine") {
    // PyTorch's CosineAnnealingLR with T_max = the steps after warm-up.
    const double span = static_cast<double>(c.total_steps - c.warmup_steps);
    return cos_anneal(c.base_lr, c.min_lr, static_cast<double>(t) / span);
  }
  TB_FAIL("unknown learning-rate schedule '{}'", c.kind);
}

double one_cycle_momentum_at(const ScheduleConfig& c, int64_t step) {
  TB_CHECK(c.kind == "one-cycle" && c.one_cycle_cycle_momentum,
           "momentum cycling asked of schedule '{}'", c.kind);
  return one_cycle_value(c, step, c.one_cycle_max_momentum, c.one_cycle_base_momentum,
                         c.one_cycle_max_momentum);
}

}  // namespace tb
