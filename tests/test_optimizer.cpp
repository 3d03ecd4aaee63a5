// Optimizer: five steps of SGD (momentum, Nesterov, weight decay), Adam and AdamW on the ref
// backend against a double-precision re-implementation of PyTorch's formulas; the state
// block (one allocation, 256-byte-aligned zeroed slices, names); no allocation in step();
// config validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "ops/ref/ref_backend.h"
#include "ops/ref/ref_kernels.h"
#include "train/optimizer.h"

namespace tb {
namespace {

// Host parameters and gradients for the CPU ref backend; sizes chosen so some slices cross a
// 256-byte boundary (70 floats = 280 bytes) and one is a single value.
struct HostParams {
  std::vector<std::string> names{"conv.weight", "conv.bias", "fc.weight", "scale"};
  std::vector<Shape> shapes{Shape{2, 1, 3}, Shape{3}, Shape{7, 10}, Shape{1}};
  std::vector<std::vector<float>> values, grads;

  explicit HostParams(uint64_t seed) {
    Rng rng(seed);
    for (const Shape& s : shapes) {
      values.emplace_back(s.numel());
      grads.emplace_back(s.numel());
      for (float& v : values.back()) v = float(rng.uniform(-1, 1));
    }
  }
  std::vector<ParamRef> refs() {
    std::vector<ParamRef> out;
    for (size_t i = 0; i < shapes.size(); ++i)
      out.push_back({names[i], Tensor(values[i].data(), DType::f32, shapes[i]),
                     Tensor(grads[i].data(), DType::f32, shapes[i])});
    return out;
  }
  // New gradients each step, as a training loop would produce.
  void draw_grads(Rng& rng) {
    for (auto& g : grads)
      for (float& v : g) v = float(rng.uniform(-2, 2));
  }
};

// torch.optim.SGD / Adam / AdamW in double, for one flat array.
struct Reference {
  OptimizerConfig c;
  std::vector<double> p, a, b;  // parameter, momentum or exp_avg, exp_avg_sq

  void sgd(const std::vector<float>& grad, double lr) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad[i] + double(c.weight_decay) * p[i];
      if (c.momentum != 0) {
        a[i] = double(c.momentum) * a[i] + g;  // step 1: buf = g, as PyTorch's clone
        g = c.nesterov ? g + double(c.momentum) * a[i] : a[i];
      }
      p[i] -= lr * g;
    }
  }
  void adam(const std::vector<float>& grad, double lr, int64_t t) {
    const double b1 = c.beta1, b2 = c.beta2, wd = c.weight_decay;
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad[i];
      if (c.kind == "adamw")
        p[i] *= 1 - lr * wd;
      else
        g += wd * p[i];
      a[i] = b1 * a[i] + (1 - b1) * g;
      b[i] = b2 * b[i] + (1 - b2) * g * g;
      const double denom = std::sqrt(b[i]) / std::sqrt(1 - std::pow(b2, double(t))) + c.eps;
      p[i] -= lr / (1 - std::pow(b1, double(t))) * a[i] / denom;
    }
  }
};

void expect_close(const std::vector<double>& want, const float* got, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 2e-6 + 2e-5 * std::abs(want[i])) << what << "[" << i << "]";
}

// Runs `steps` steps on the ref backend and the reference side by side, comparing the
// parameters and the state after every step. momentum_at (if set) changes the momentum
// before each step through set_momentum; first_step is the optimizer's count before step 1.
void check_against_reference(OptimizerConfig config, int steps = 5, int64_t first_step = 0,
                             std::vector<float> momentum_at = {}) {
  SCOPED_TRACE("optimizer " + config.kind);
  auto backend = make_ref_backend();
  HostParams host(7);
  std::vector<Reference> ref(host.shapes.size(), Reference{config, {}, {}, {}});
  for (size_t i = 0; i < ref.size(); ++i) {
    ref[i].p.assign(host.values[i].begin(), host.values[i].end());
    ref[i].a.assign(ref[i].p.size(), 0.0);
    ref[i].b.assign(ref[i].p.size(), 0.0);
  }
  Optimizer opt(*backend, host.refs(), config);
  opt.set_steps_taken(first_step);
  Rng rng(99);
  for (int k = 0; k < steps; ++k) {
    const float lr = 0.05f * float(k + 1);  // a different lr each step, as a schedule gives
    host.draw_grads(rng);
    if (!momentum_at.empty()) {
      opt.set_momentum(momentum_at[k]);
      for (Reference& r : ref) (config.kind == "sgd" ? r.c.momentum : r.c.beta1) = momentum_at[k];
    }
    // Clipping (torch.nn.utils.clip_grad_norm_) on the gradients as drawn, in double.
    std::vector<std::vector<float>> grads = host.grads;
    if (config.max_grad_norm > 0) {
      double sum = 0;
      for (const auto& g : grads)
        for (float v : g) sum += double(v) * v;
      const double f = std::min(1.0, config.max_grad_norm / (std::sqrt(sum) + 1e-6));
      for (auto& g : grads)
        for (float& v : g) v = float(v * f);
    }
    opt.step(lr);
    ASSERT_EQ(opt.steps_taken(), first_step + k + 1);
    for (size_t i = 0; i < ref.size(); ++i) {
      if (config.kind == "sgd")
        ref[i].sgd(grads[i], lr);
      else
        ref[i].adam(grads[i], lr, first_step + k + 1);
      const std::string where = host.names[i] + " after step " + std::to_string(k + 1);
      expect_close(ref[i].p, host.values[i].data(), where);
    }
  }
  // The state holds the same moments, under the names a checkpoint uses.
  for (size_t i = 0; i < ref.size(); ++i) {
    for (const StateRef& s : opt.state()) {
      if (s.name == host.names[i] + ".momentum" || s.name == host.names[i] + ".exp_avg")
        expect_close(ref[i].a, s.value.ptr<float>(), s.name);
      if (s.name == host.names[i] + ".exp_avg_sq")
        expect_close(ref[i].b, s.value.ptr<float>(), s.name);
    }
  }
}

OptimizerConfig sgd(float momentum, float wd, bool nesterov = false) {
  OptimizerConfig c;
  c.kind = "sgd";
  c.momentum = momentum;
  c.weight_decay = wd;
  c.nesterov = nesterov;
  return c;
}

OptimizerConfig adam(const std::string& kind, float wd, float b1 = 0.9f, float b2 = 0.999f,
                     float eps = 1e-8f) {
  OptimizerConfig c;
  c.kind = kind;
  c.weight_decay = wd;
  c.beta1 = b1;
  c.beta2 = b2;
  c.eps = eps;
  return c;
}

TEST(Optimizer, PlainSgdMatchesPyTorch) { check_against_reference(sgd(0, 0)); }
TEST(Optimizer, SgdWeightDecayMatchesPyTorch) { check_against_reference(sgd(0, 0.1f)); }
TEST(Optimizer, SgdMomentumMatchesPyTorch) { check_against_reference(sgd(0.9f, 5e-4f)); }
TEST(Optimizer, SgdNesterovMatchesPyTorch) { check_against_reference(sgd(0.9f, 1e-2f, true)); }
TEST(Optimizer, AdamMatchesPyTorch) { check_against_reference(adam("adam", 0)); }
TEST(Optimizer, AdamL2MatchesPyTorch) { check_against_reference(adam("adam", 0.05f)); }
TEST(Optimizer, AdamWMatchesPyTorch) { check_against_reference(adam("adamw", 0.05f)); }
TEST(Optimizer, AdamOtherBetasMatchPyTorch) {
  check_against_reference(adam("adam", 0, 0.8f, 0.99f, 1e-6f));
}

// Gradients drawn in [-2, 2] over 84 elements have a norm near 10: 1.5 clips every step,
// 1e3 never does.
TEST(Optimizer, ClippedSgdMatchesPyTorch) {
  OptimizerConfig c = sgd(0.9f, 5e-4f, true);
  c.max_grad_norm = 1.5f;
  check_against_reference(c);
  c.max_grad_norm = 1e3f;
  check_against_reference(c);
}
TEST(Optimizer, ClippedAdamWMatchesPyTorch) {
  OptimizerConfig c = adam("adamw", 0.05f);
  c.max_grad_norm = 2.0f;
  check_against_reference(c);
}

// The plain loop itself: a 3-4-5 triangle, a norm below the limit (untouched), and a NaN
// gradient (NaN everywhere, as PyTorch without error_if_nonfinite).
TEST(ClipGradNorm, RefScalesToTheLimit) {
  std::vector<float> a{3.0f}, b{0.0f, 4.0f};
  float* grads[] = {a.data(), b.data()};
  const int64_t sizes[] = {1, 2};
  EXPECT_DOUBLE_EQ(ref::clip_grad_norm(1.0f, grads, sizes, 2), 5.0);
  EXPECT_NEAR(a[0], 0.6f, 1e-6f);
  EXPECT_NEAR(b[1], 0.8f, 1e-6f);
  EXPECT_EQ(b[0], 0.0f);
  std::vector<float> small{0.1f, -0.2f};
  float* one[] = {small.data()};
  const int64_t two[] = {2};
  ref::clip_grad_norm(1.0f, one, two, 1);
  EXPECT_EQ(small, (std::vector<float>{0.1f, -0.2f}));
  small[0] = NAN;
  ref::clip_grad_norm(1.0f, one, two, 1);
  EXPECT_TRUE(std::isnan(small[1]));
}

TEST(Optimizer, ResumedAdamUsesTheRestoredStepForBiasCorrection) {
  check_against_reference(adam("adamw", 0.01f), 3, /*first_step=*/10);
}

TEST(Optimizer, SetMomentumTakesEffectNextStep) {
  check_against_reference(sgd(0.9f, 0, true), 5, 0, {0.95f, 0.93f, 0.9f, 0.87f, 0.85f});
  check_against_reference(adam("adam", 0), 5, 0, {0.95f, 0.93f, 0.9f, 0.87f, 0.85f});
}

TEST(Optimizer, SetMomentumOnSgdWithoutBufferIsABug) {
  auto backend = make_ref_backend();
  HostParams host(1);
  Optimizer opt(*backend, host.refs(), sgd(0, 0));
  EXPECT_THROW(opt.set_momentum(0.9f), InternalError);
}

// The state block: counts allocations and releases, and hands out poisoned memory so that
// a missing fill_zero shows. Updates go to the ref backend.
class RecordingBackend final : public Backend {
 public:
  std::string name() const override { return "recording"; }
  Device device() const override { return {}; }
  bool supports(OpKind op, DType dtype) const override { return ref_->supports(op, dtype); }
  void* allocate(size_t bytes) override {
    ++allocation_count_;
    // Offset by 16 from a 256-byte boundary, so the optimizer's own alignment is tested.
    blocks_.emplace_back(bytes + 272);
    std::vector<uint8_t>& block = blocks_.back();
    std::fill(block.begin(), block.end(), uint8_t(0xFF));
    const uintptr_t start = reinterpret_cast<uintptr_t>(block.data());
    allocated = reinterpret_cast<uint8_t*>((start + 255) / 256 * 256 + 16);
    allocated_bytes = bytes;
    return allocated;
  }
  void release(void* ptr) override { released.push_back(ptr); }
  void copy_from_host(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void copy_to_host(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void fill_zero(const Tensor& t) override { ref_->fill_zero(t); }
  void sgd_update(const SgdUpdateParams& p, const Tensor& param, const Tensor& grad,
                  const Tensor& buf) override {
    ref_->sgd_update(p, param, grad, buf);
  }
  void adam_update(const AdamUpdateParams& p, const Tensor& param, const Tensor& grad,
                   const Tensor& m, const Tensor& v) override {
    last_adam_step = p.step;
    last_adam_decoupled = p.decoupled_weight_decay;
    ref_->adam_update(p, param, grad, m, v);
  }

  // The optimizer never runs these.
#define TB_NOT_CALLED { TB_FAIL("the optimizer should not call this"); }
  void conv2d_forward(const Conv2dParams&, const Tensor&, const Tensor&, const Tensor&,
                      const Tensor&) override TB_NOT_CALLED
  void conv2d_backward(const Conv2dParams&, const Tensor&, const Tensor&, const Tensor&,
                       const Tensor&, const Tensor&, const Tensor&, bool) override TB_NOT_CALLED
  void linear_forward(const LinearParams&, const Tensor&, const Tensor&, const Tensor&,
                      const Tensor&) override TB_NOT_CALLED
  void linear_backward(const LinearParams&, const Tensor&, const Tensor&, const Tensor&,
                       const Tensor&, const Tensor&, const Tensor&, bool) override TB_NOT_CALLED
  void relu_forward(const Tensor&, const Tensor&) override TB_NOT_CALLED
  void relu_backward(const Tensor&, const Tensor&, const Tensor&, bool) override TB_NOT_CALLED
  void max_pool2d_forward(const Pool2dParams&, const Tensor&, const Tensor&) override
      TB_NOT_CALLED
  void max_pool2d_backward(const Pool2dParams&, const Tensor&, const Tensor&, const Tensor&,
                           const Tensor&, bool) override TB_NOT_CALLED
  void avg_pool2d_forward(const Pool2dParams&, const Tensor&, const Tensor&) override
      TB_NOT_CALLED
  void avg_pool2d_backward(const Pool2dParams&, const Tensor&, const Tensor&, bool) override
      TB_NOT_CALLED
  void global_avg_pool_forward(const GlobalPoolParams&, const Tensor&, const Tensor&) override
      TB_NOT_CALLED
  void global_avg_pool_backward(const GlobalPoolParams&, const Tensor&, const Tensor&,
                                bool) override TB_NOT_CALLED
  void batch_norm_forward_train(const BatchNormParams&, const Tensor&, const Tensor&,
                                const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                const Tensor&, const Tensor&) override TB_NOT_CALLED
  void batch_norm_forward_eval(const BatchNormParams&, const Tensor&, const Tensor&,
                               const Tensor&, const Tensor&, const Tensor&,
                               const Tensor&) override TB_NOT_CALLED
  void batch_norm_backward(const BatchNormParams&, const Tensor&, const Tensor&, const Tensor&,
                           const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                           const Tensor&, bool) override TB_NOT_CALLED
  void dropout_forward(const DropoutParams&, const Tensor&, const Tensor&,
                       const Tensor&) override TB_NOT_CALLED
  void dropout_backward(const DropoutParams&, const Tensor&, const Tensor&, const Tensor&,
                        bool) override TB_NOT_CALLED
  void add_forward(const Tensor&, const Tensor&, const Tensor&) override TB_NOT_CALLED
  void copy(const Tensor&, const Tensor&, bool) override TB_NOT_CALLED
  void cross_entropy_forward(const CrossEntropyParams&, const Tensor&, const Tensor&,
                             const Tensor&, const Tensor&) override TB_NOT_CALLED
  void cross_entropy_backward(const CrossEntropyParams&, const Tensor&, const Tensor&,
                              const Tensor&) override TB_NOT_CALLED
#undef TB_NOT_CALLED

  uint8_t* allocated = nullptr;
  size_t allocated_bytes = 0;
  std::vector<void*> released;
  int64_t last_adam_step = 0;
  bool last_adam_decoupled = false;

 private:
  std::unique_ptr<Backend> ref_ = make_ref_backend();
  std::vector<std::vector<uint8_t>> blocks_;
};

TEST(Optimizer, AdamStateIsOneZeroedAlignedBlockWithNames) {
  RecordingBackend backend;
  HostParams host(3);
  {
    Optimizer opt(backend, host.refs(), adam("adam", 0));
    EXPECT_EQ(backend.allocation_count(), 1u);
    std::vector<std::string> want;
    for (const std::string& n : host.names) {
      want.push_back(n + ".exp_avg");
      want.push_back(n + ".exp_avg_sq");
    }
    std::vector<std::string> got;
    const uint8_t* end_of_last = backend.allocated;
    for (size_t i = 0; i < opt.state().size(); ++i) {
      const Tensor& t = opt.state()[i].value;
      got.push_back(opt.state()[i].name);
      const auto* p = static_cast<const uint8_t*>(t.data);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u) << opt.state()[i].name;
      EXPECT_GE(p, end_of_last) << "slices overlap";
      end_of_last = p + t.bytes();
      EXPECT_LE(end_of_last, backend.allocated + backend.allocated_bytes);
      EXPECT_TRUE(t.shape == host.shapes[i / 2]);
      EXPECT_EQ(t.dtype, DType::f32);
      EXPECT_TRUE(std::all_of(p, p + t.bytes(), [](uint8_t b) { return b == 0; }))
          << opt.state()[i].name << " is not zeroed";
    }
    EXPECT_EQ(got, want);
    EXPECT_TRUE(backend.released.empty());
  }
  ASSERT_EQ(backend.released.size(), 1u);
  EXPECT_EQ(backend.released[0], backend.allocated);
}

TEST(Optimizer, SgdMomentumKeepsOneSlotPerParameter) {
  RecordingBackend backend;
  HostParams host(3);
  Optimizer opt(backend, host.refs(), sgd(0.9f, 0));
  EXPECT_EQ(backend.allocation_count(), 1u);
  ASSERT_EQ(opt.state().size(), host.names.size());
  for (size_t i = 0; i < host.names.size(); ++i)
    EXPECT_EQ(opt.state()[i].name, host.names[i] + ".momentum");
}

TEST(Optimizer, SgdWithoutMomentumKeepsNoState) {
  RecordingBackend backend;
  HostParams host(3);
  { Optimizer opt(backend, host.refs(), sgd(0, 0.1f)); EXPECT_TRUE(opt.state().empty()); }
  EXPECT_EQ(backend.allocation_count(), 0u);
  EXPECT_TRUE(backend.released.empty());
}

TEST(Optimizer, StepAllocatesNothing) {
  for (const OptimizerConfig& c : {sgd(0, 0), sgd(0.9f, 1e-4f, true), adam("adamw", 0.01f)}) {
    auto backend = make_ref_backend();
    HostParams host(5);
    Optimizer opt(*backend, host.refs(), c);
    const size_t before = backend->allocation_count();
    for (int k = 0; k < 5; ++k) opt.step(0.01f);
    EXPECT_EQ(backend->allocation_count(), before) << c.kind;
  }
}

TEST(Optimizer, AdamStepCountAndDecoupling) {
  RecordingBackend backend;
  HostParams host(3);
  Optimizer adamw(backend, host.refs(), adam("adamw", 0.01f));
  adamw.step(1e-3f);
  adamw.step(1e-3f);
  EXPECT_EQ(backend.last_adam_step, 2);
  EXPECT_TRUE(backend.last_adam_decoupled);
  Optimizer plain(backend, host.refs(), adam("adam", 0.01f));
  plain.set_steps_taken(41);
  plain.step(1e-3f);
  EXPECT_EQ(backend.last_adam_step, 42);
  EXPECT_FALSE(backend.last_adam_decoupled);
}

TEST(Optimizer, NoParametersIsFine) {
  RecordingBackend backend;
  Optimizer opt(backend, {}, adam("adam", 0));
  opt.step(0.1f);
  EXPECT_EQ(backend.allocation_count(), 0u);
}

std::string error_of(const OptimizerConfig& c) {
  RecordingBackend backend;
  HostParams host(1);
  try {
    Optimizer opt(backend, host.refs(), c);
  } catch (const InputError& e) {
    EXPECT_EQ(backend.allocation_count(), 0u) << "allocated before validating";
    return e.what();
  }
  return "";
}

TEST(Optimizer, ValidationNamesTheValue) {
  OptimizerConfig c = sgd(0.9f, 0);
  c.kind = "rmsprop";
  EXPECT_EQ(error_of(c), "--optimizer must be one of sgd, adam, adamw, got 'rmsprop'");
  EXPECT_EQ(error_of(sgd(1.5f, 0)), "--momentum must be in [0, 1), got 1.5");
  EXPECT_EQ(error_of(sgd(1.0f, 0)), "--momentum must be in [0, 1), got 1");
  EXPECT_EQ(error_of(sgd(-0.1f, 0)), "--momentum must be in [0, 1), got -0.1");
  EXPECT_EQ(error_of(sgd(NAN, 0)), "--momentum must be in [0, 1), got nan");
  EXPECT_EQ(error_of(sgd(0, 0, true)), "--nesterov needs --momentum > 0, got 0");
  EXPECT_EQ(error_of(sgd(0.9f, -1e-4f)), "--weight-decay must be >= 0, got -0.0001");
  EXPECT_EQ(error_of(adam("adamw", INFINITY)), "--weight-decay must be >= 0, got inf");
  EXPECT_EQ(error_of(adam("adam", 0, 1.0f)), "--beta1 must be in [0, 1), got 1");
  EXPECT_EQ(error_of(adam("adam", 0, 0.9f, -0.5f)), "--beta2 must be in [0, 1), got -0.5");
  EXPECT_EQ(error_of(adam("adamw", 0, 0.9f, 0.999f, 0)), "--eps must be > 0, got 0");
  OptimizerConfig clipped = sgd(0.9f, 0);
  clipped.max_grad_norm = -1;
  EXPECT_EQ(error_of(clipped), "--clip-grad-norm must be >= 0 (0 = off), got -1");
  // Values that only another optimizer reads are not checked.
  OptimizerConfig a = adam("adam", 0);
  a.momentum = 7;
  EXPECT_EQ(error_of(a), "");
  EXPECT_EQ(error_of(sgd(0, 0)), "");
}

TEST(Optimizer, NonFiniteLearningRateIsABug) {
  auto backend = make_ref_backend();
  HostParams host(1);
  Optimizer opt(*backend, host.refs(), sgd(0.9f, 0));
  EXPECT_THROW(opt.step(NAN), InternalError);
}

}  // namespace
}  // namespace tb
