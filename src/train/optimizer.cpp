// The optimizer owns its state in one backend block, carved into per-parameter slices, so
// that a training step allocates nothing and the state can be checkpointed by name.
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"

namespace tb {
namespace {

// cudaMalloc's alignment: every slice starts where a vector load or a coalesced warp access
// wants it, whatever the backend.
constexpr size_t kSliceAlign = 256;

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

bool is_sgd(const OptimizerConfig& c) { return c.kind == "sgd"; }

// Written as !(in range) so that NaN fails too.
void validate(const OptimizerConfig& c) {
  TB_INPUT_CHECK(c.kind == "sgd" || c.kind == "adam" || c.kind == "adamw",
                 "--optimizer must be one of sgd, adam, adamw, got '{}'", c.kind);
  TB_INPUT_CHECK(std::isfinite(c.weight_decay) && c.weight_decay >= 0,
                 "--weight-decay must be >= 0, got {}", c.weight_decay);
  TB_INPUT_CHECK(std::isfinite(c.max_grad_norm) && c.max_grad_norm >= 0,
                 "--clip-grad-norm must be >= 0 (0 = off), got {}", c.max_grad_norm);
  if (is_sgd(c)) {
    TB_INPUT_CHECK(c.momentum >= 0 && c.momentum < 1, "--momentum must be in [0, 1), got {}",
                   c.momentum);
    TB_INPUT_CHECK(!c.nesterov || c.momentum > 0, "--nesterov needs --momentum > 0, got {}",
                   c.momentum);
  } else {
    TB_INPUT_CHECK(c.beta1 >= 0 && c.beta1 < 1, "--beta1 must be in [0, 1), got {}", c.beta1);
    TB_INPUT_CHECK(c.beta2 >= 0 && c.beta2 < 1, "--beta2 must be in [0, 1), got {}", c.beta2);
    TB_INPUT_CHECK(std::isfinite(c.eps) && c.eps > 0, "--eps must be > 0, got {}", c.eps);
  }
}

const char* address(const Tensor& t) { return static_cast<const char*>(t.data); }

// A run: parameters [first, last) whose tensor_of(i) are fp32 and lie at the offsets their
// values have from the first's (>= 0), all in one gradient span, so that one tensor of
// run_floats() floats from tensor_of(first) covers them, gaps (zeroed) included.
struct Run {
  size_t first, last;
};
template <class TensorOf>
std::vector<Run> runs_at_parameter_offsets(const std::vector<ParamRef>& params,
                                           TensorOf tensor_of) {
  std::vector<Run> runs;
  for (size_t i = 0; i < params.size(); ++i) {
    const ParamRef& p = params[i];
    bool extends = false;
    const bool f32 = p.value.dtype == DType::f32 && tensor_of(i).dtype == DType::f32;
    if (!runs.empty() && f32 && params[runs.back().first].value.dtype == DType::f32 &&
        tensor_of(runs.back().first).dtype == DType::f32) {
      const size_t a = runs.back().first;
      const ptrdiff_t offset = address(p.value) - address(params[a].value);
      extends = p.gradient_span == params[a].gradient_span && offset > 0 &&
                address(tensor_of(i)) - address(tensor_of(a)) == offset;
    }
    if (extends) {
      runs.back().last = i + 1;
    } else {
      runs.push_back({i, i + 1});
    }
  }
  return runs;
}
int64_t run_floats(const std::vector<ParamRef>& params, const Run& run) {
  int64_t end = 0;
  for (size_t i = run.first; i < run.last; ++i)
    end = std::max(end, (address(params[i].value) - address(params[run.first].value)) /
                                int64_t(sizeof(float)) +
                            params[i].value.numel());
  return end;
}

}  // namespace

Optimizer::Optimizer(Backend& backend, std::vector<ParamRef> params,
                     const OptimizerConfig& config)
    : backend_(backend), params_(std::move(params)), config_(config) {
  validate(config_);

  std::set<std::string> names;
  for (const ParamRef& p : params_) {
    TB_CHECK(p.value.defined() && p.grad.defined(), "parameter '{}' lacks a value or gradient",
             p.name);
    TB_CHECK(p.value.numel() == p.grad.numel() && p.value.dtype == p.grad.dtype,
             "parameter '{}' is {} {} but its gradient is {} {}", p.name,
             dtype_name(p.value.dtype), p.value.shape.to_string(), dtype_name(p.grad.dtype),
             p.grad.shape.to_string());
    TB_CHECK(p.value.contiguous() && p.grad.contiguous(), "parameter '{}' is not contiguous",
             p.name);
    TB_CHECK(names.insert(p.name).second, "two parameters are named '{}'", p.name);
  }

  // SGD without momentum keeps no state; SGD with it keeps one buffer; Adam keeps two.
  const int slots = is_sgd(config_) ? (config_.momentum > 0 ? 1 : 0) : 2;
  size_t total = 0;
  for (const ParamRef& p : params_) total += slots * round_up(p.value.bytes(), kSliceAlign);

  slot_a_.resize(params_.size());
  if (slots == 2) slot_b_.resize(params_.size());
  plan_clip_targets();
  if (total == 0) return;

  // Over-allocate so the first slice can be aligned whatever alignment the backend gives.
  block_ = backend_.allocate(total + kSliceAlign - 1);
  const uintptr_t base = round_up(reinterpret_cast<uintptr_t>(block_), kSliceAlign);
  size_t offset = 0;
  auto carve = [&](const Tensor& like) {
    Tensor t(reinterpret_cast<void*>(base + offset), like.dtype, like.shape, backend_.device());
    offset += round_up(like.bytes(), kSliceAlign);
    return t;
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamRef& p = params_[i];
    if (slots == 1) {
      slot_a_[i] = carve(p.value);
      state_.push_back({p.name + ".momentum", slot_a_[i]});
    } else {
      slot_a_[i] = carve(p.value);
      slot_b_[i] = carve(p.value);
      state_.push_back({p.name + ".exp_avg", slot_a_[i]});
      state_.push_back({p.name + ".exp_avg_sq", slot_b_[i]});
    }
  }
  // The destructor does not run if the constructor throws, so free the block here. The gaps
  // between slices are zeroed too: a one-call update walks them (see plan_blocks).
  try {
    backend_.fill_zero(Tensor(block_, DType::u8, Shape{int64_t(total + kSliceAlign - 1)},
                              backend_.device()));
    plan_blocks();
  } catch (...) {
    backend_.release(block_);
    throw;
  }
}

// Gradients at their parameters' offsets are clipped a run at a time: the norm is over all
// targets, so fewer, longer targets only save launches.
void Optimizer::plan_clip_targets() {
  clip_targets_.clear();
  for (const Run& run : runs_at_parameter_offsets(
           params_, [&](size_t i) -> const Tensor& { return params_[i].grad; })) {
    if (run.last - run.first == 1) {
      clip_targets_.push_back(params_[run.first].grad);
    } else {
      clip_targets_.push_back(Tensor(params_[run.first].grad.data, DType::f32,
                                     Shape{run_floats(params_, run)}, backend_.device()));
    }
  }
}

// SGD with momentum on parameters planned into blocks (their gradients at the same offsets
// in a few spans) has its state at those offsets too: one update over each run of the three,
// gaps included, replaces a launch per parameter. The gaps stay zero under it (zero
// weights, gradients and momentum give zero).
void Optimizer::plan_blocks() {
  if (!is_sgd(config_) || config_.momentum <= 0) return;
  for (const ParamRef& p : params_)
    if (p.value.dtype != DType::f32) return;  // one call per parameter, in its own type
  // A run of all three: momentum slices are carved in parameter order at aligned offsets,
  // so a run of values and gradients is one of momentum too where those offsets match.
  const Device d = backend_.device();
  for (const Run& run : runs_at_parameter_offsets(
           params_, [&](size_t i) -> const Tensor& { return params_[i].grad; })) {
    size_t first = run.first;
    for (size_t i = run.first + 1; i <= run.last; ++i) {
      const bool breaks =
          i == run.last || address(slot_a_[i]) - address(slot_a_[first]) !=
                               address(params_[i].value) - address(params_[first].value);
      if (!breaks) continue;
      const Run part{first, i};
      const int64_t n = run_floats(params_, part);
      blocks_.push_back({Tensor(params_[first].value.data, DType::f32, Shape{n}, d),
                         Tensor(params_[first].grad.data, DType::f32, Shape{n}, d),
                         Tensor(slot_a_[first].data, DType::f32, Shape{n}, d)});
      first = i;
    }
  }
}

Optimizer::~Optimizer() {
  if (block_) backend_.release(block_);
}

void Optimizer::set_momentum(float momentum) {
  TB_CHECK(momentum >= 0 && momentum < 1, "momentum {} out of [0, 1)", momentum);
  if (is_sgd(config_)) {
    TB_CHECK(config_.momentum > 0 && momentum > 0,
             "SGD made with momentum {} keeps no momentum buffer; cannot switch to {}",
             config_.momentum, momentum);
    config_.momentum = momentum;
  } else {
    config_.beta1 = momentum;
  }
}

void Optimizer::step(float lr) {
  TB_CHECK(std::isfinite(lr) && lr >= 0, "learning rate {} is not a finite value >= 0", lr);
  ++steps_;
  if (config_.max_grad_norm > 0) backend_.clip_grad_norm(config_.max_grad_norm, clip_targets_);
  const bool sgd = is_sgd(config_);
  SgdUpdateParams update;
  update.lr = lr;
  update.momentum = config_.momentum;
  update.weight_decay = config_.weight_decay;
  update.nesterov = config_.nesterov;
  if (!blocks_.empty()) {
    backend_.sgd_update_spans(update, blocks_);
    return;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamRef& p = params_[i];
    if (sgd) {
      update.n = p.value.numel();
      backend_.sgd_update(update, p.value, p.grad, slot_a_[i]);
    } else {
      AdamUpdateParams u;
      u.n = p.value.numel();
      u.lr = lr;
      u.beta1 = config_.beta1;
      u.beta2 = config_.beta2;
      u.eps = config_.eps;
      u.weight_decay = config_.weight_decay;
      u.decoupled_weight_decay = config_.kind == "adamw";
      u.step = steps_;
      backend_.adam_update(u, p.value, p.grad, slot_a_[i], slot_b_[i]);
    }
  }
}

}  // namespace tb
