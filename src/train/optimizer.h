// Optimizers over a model's parameters. The state (momentum, Adam moments) is allocated once,
// in one block from the backend, when the optimizer is made; step() allocates nothing.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/backend.h"

namespace tb {

// A parameter and its gradient, as the model exposes them.
struct ParamRef {
  std::string name;
  Tensor value;
  Tensor grad;
  // Consecutive parameters with the same span whose values, gradients and state lie at the
  // same offsets from the first of them lie in blocks whose gaps hold zeros: one pass may
  // walk them together. A graph gives each block of gradients its own span.
  int gradient_span = 0;
};

struct OptimizerConfig {
  std::string kind = "sgd";  // sgd, adam, adamw
  float momentum = 0.9f;      // sgd
  bool nesterov = false;      // sgd
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // adam, adamw
  // Before each update, scale all gradients to a global L2 norm of at most this (PyTorch's
  // clip_grad_norm_); 0 = no clipping.
  float max_grad_norm = 0.0f;
};

// A named tensor of optimizer state, for checkpoints.
struct StateRef {
  std::string name;
  Tensor value;
};

class Optimizer {
 public:
  // Throws InputError for an unknown kind or an out-of-range value.
  Optimizer(Backend& backend, std::vector<ParamRef> params, const OptimizerConfig& config);
  ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter with learning rate lr. SGD with momentum makes one backend
  // call per run of parameters that, with their gradients and state, lie at the same offsets
  // in one span (see ParamRef::gradient_span): a planned graph has a few such runs. Adam and
  // SGD without momentum make one call per parameter.
  void step(float lr);

  // Changes the momentum used from the next step on: SGD's momentum, or Adam's beta1, which
  // is what PyTorch's OneCycleLR cycles (see one_cycle_momentum_at). SGD must have been made
  // with momentum > 0, since that is what sizes its state. Allocates nothing.
  void set_momentum(float momentum);

  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t s) { steps_ = s; }
  // Optimizer state tensors (zero-initialised), named "<param>.<slot>".
  const std::vector<StateRef>& state() const { return state_; }
  const OptimizerConfig& config() const { return config_; }

 private:
  Backend& backend_;
  std::vector<ParamRef> params_;
  OptimizerConfig config_;
  void* block_ = nullptr;
  std::vector<StateRef> state_;
  std::vector<Tensor> slot_a_, slot_b_;  // per parameter: momentum or exp_avg / exp_avg_sq
  int64_t steps_ = 0;
  // The runs of SGD's updates: three tensors (values, gradients, momentum) over each run.
  void plan_blocks();
  std::vector<Backend::SgdSpan> blocks_;
  // What clipping scales: each run of gradients as one tensor.
  std::vector<Tensor> clip_targets_;
  void plan_clip_targets();
};

// Learning-rate schedules as a pure function of the step, so a resumed run needs no state.
struct ScheduleConfig {
  std::string kind = "constant";  // constant, step, cosine, one-cycle
  double base_lr = 0.01;
  int64_t total_steps = 1;        // of the whole run
  int64_t warmup_steps = 0;       // linear from 0 to the schedule's value (not for one-cycle)
  int64_t step_size = 1;          // step: multiply by gamma every step_size steps
  double gamma = 0.1;             // step
  double min_lr = 0.0;            // cosine: the floor
  double one_cycle_pct_start = 0.3;     // one-cycle (PyTorch OneCycleLR, cos annealing)
  double one_cycle_div_factor = 25.0;
  double one_cycle_final_div_factor = 1e4;
  // OneCycleLR's cycle_momentum: momentum (SGD) or beta1 (Adam) goes max -> base -> max,
  // opposite to the learning rate. PyTorch does this by default.
  bool one_cycle_cycle_momentum = true;
  double one_cycle_base_momentum = 0.85;
  double one_cycle_max_momentum = 0.95;
};

// Throws InputError for an unknown kind or bad values.
void validate_schedule(const ScheduleConfig& config);
// The learning rate for step (0-based), for a config that passed validate_schedule. Steps
// past the end of the run get the last step's value.
double learning_rate_at(const ScheduleConfig& config, int64_t step);
// The momentum PyTorch's OneCycleLR sets for step (0-based) when the kind is one-cycle and
// one_cycle_cycle_momentum is on; pass it to Optimizer::set_momentum before step().
double one_cycle_momentum_at(const ScheduleConfig& config, int64_t step);

}  // namespace tb
