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

// Whether tensor_of(i) is fp32 and lies at parameter i's offset (>= 0) from parameter 0 for
// every i: a planned graph's blocks, gaps zeroed. Then tensor_of(0) starts one span of
// block_floats(params) floats that covers them all.
template <class TensorOf>
bool at_parameter_offsets(const std::vector<ParamRef>& params, TensorOf tensor_of) {
  if (params.empty()) return false;
  for (size_t i = 0; i < params.size(); ++i) {
    const ptrdiff_t offset = address(params[i].value) - address(params[0].value);
    if (offset < 0 || address(tensor_of(i)) - address(tensor_of(0)) != offset ||
        tensor_of(i).dtype != DType::f32)
      return false;
  }
  return true;
}
int64_t block_floats(const std::vector<ParamRef>& params) {
  int64_t end = 0;
  for (const ParamRef& p : params)
    end = std::max(end, (address(p.value) - address(params[0].value)) / int64_t(sizeof(float)) +
                            p.value.numel());
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

// Gradients at their parameters' offsets are clipped as one span: one norm pass and one
// scaling pass.
void Optimizer::plan_clip_targets() {
  clip_targets_.clear();
  if (at_parameter_offsets(params_, [&](size_t i) -> const Tensor& { return params_[i].grad; })) {
    clip_targets_.push_back(
        Tensor(params_[0].grad.data, DType::f32, Shape{block_floats(params_)}, backend_.device()));
  } else {
    for (const ParamRef& p : params_) clip_targets_.push_back(p.grad);
  }
}

// SGD with momentum on parameters planned into one block (with their gradients in another,
// at the same offsets) has its state at those offsets too: then one update over the three
// blocks, gaps included, replaces a launch per parameter. The gaps stay zero under it (zero
// weights, gradients and momentum give zero).
void Optimizer::plan_blocks() {
  if (!is_sgd(config_) || config_.momentum <= 0) return;
  if (!at_parameter_offsets(params_, [&](size_t i) -> const Tensor& { return params_[i].value; }) ||
      !at_parameter_offsets(params_, [&](size_t i) -> const Tensor& { return params_[i].grad; }) ||
      !at_parameter_offsets(params_, [&](size_t i) -> const Tensor& { return slot_a_[i]; }))
    return;
  const int64_t n = block_floats(params_);
  const Device d = backend_.device();
  param_block_ = Tensor(params_[0].value.data, DType::f32, Shape{n}, d);
  grad_block_ = Tensor(params_[0].grad.data, DType::f32, Shape{n}, d);
  momentum_block_ = Tensor(slot_a_[0].data, DType::f32, Shape{n}, d);
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
  if (param_block_.defined()) {
    SgdUpdateParams u;
    u.n = param_block_.numel();
    u.lr = lr;
    u.momentum = config_.momentum;
    u.weight_decay = config_.weight_decay;
    u.nesterov = config_.nesterov;
    backend_.sgd_update(u, param_block_, grad_block_, momentum_block_);
    return;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamRef& p = params_[i];
    if (sgd) {
      SgdUpdateParams u;
      u.n = p.value.numel();
      u.lr = lr;
      u.momentum = config_.momentum;
      u.weight_decay = config_.weight_decay;
      u.nesterov = config_.nesterov;
      backend_.sgd_update(u, p.value, p.grad, slot_a_[i]);
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
