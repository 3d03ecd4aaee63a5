// Golden tests against PyTorch (docs/golden-tests.md): for each committed golden file and
// each backend this machine can run, the logits, the loss, every parameter gradient, and
// the losses, weights and batch-norm statistics after 10 steps of SGD with momentum and of
// Adam must match PyTorch's within the tolerances of the precision. The largest relative
// gradient error per backend and model is printed and recorded as a test property.
// Regenerate the files with scripts/regenerate-goldens.sh (needs PyTorch); this test does not.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "bench/golden_input.h"
#include "golden_compare.h"
#include "nn/models.h"
#include "ops/backend.h"
#include "train/checkpoint.h"
#include "train/classifier.h"
#include "train/optimizer.h"

namespace tb {
namespace {

using testing::golden_doubles;
using testing::TensorError;

// fp32 tolerances against PyTorch's float64 golden, from the yardsticks golden.py stores in
// its header (docs/golden-tests.md):
//  - logits, loss, gradients: ten times the error of PyTorch's own float32 run, per tensor;
//  - the optimizer sequences: three times the spread of PyTorch float32 runs from slightly
//    perturbed weights, per tensor (ReLU and max-pool decisions near their boundaries make
//    correct float32 implementations differ after a few steps);
// and never tighter than a floor with room for summation-order rounding.
constexpr double kRoundingFactor = 10.0, kSpreadFactor = 3.0;

// The floors per precision. bf16 activations (8-bit mantissa, fp32 master weights) carry a
// relative rounding of 2^-9 on every activation, so its floors are set by bf16 itself.
// bf16 tensors are compared by their L2 norms only (see golden_compare.h). Its floors are
// about twice the largest errors of the cuda and cudnn backends on an H200 (worst: cifar_cnn,
// whose fc1.bias gradient is nearly zero in exact arithmetic: relu then batch norm over the
// batch; 0.20 for its gradient norm, 0.37 for its SGD weight change).
struct Floors {
  double logits, loss, gradients, losses, weights, buffers;
  bool norm_only;
};
Floors floors(const std::string& precision) {
  if (precision == "bf16") return {1e-1, 1e-2, 4e-1, 1e-1, 7.5e-1, 2e-1, true};
  return {1e-4, 1e-5, 1e-3, 1e-4, 1e-3, 1e-3, false};
}

double tolerance(const nlohmann::json& yardstick, double factor, double floor) {
  return std::max(floor, factor * yardstick.get<double>());
}

double max_of(const nlohmann::json& list) {
  double m = 0;
  for (const auto& v : list) m = std::max(m, v.get<double>());
  return m;
}

// Above this many FLOPs the ref backend skips the optimizer sequences (about a minute).
constexpr double kRefSequenceFlops = 2e10;

const std::vector<std::string>& golden_models() {
  static const std::vector<std::string> m = {"simple_cnn", "cifar_cnn", "resnet18"};
  return m;
}

bool is_gpu_backend(const std::string& name) { return name == "cuda" || name == "cudnn"; }

std::vector<std::string> backends(bool gpu) {
  std::vector<std::string> out;
  for (const auto& b : backend_names())
    if (is_gpu_backend(b) == gpu) out.push_back(b);
  return out;
}

// An fp32 tensor's values on the host; a bf16 one (mixed-precision activations) goes through
// an fp32 copy on the device first, converted by the backend's own copy().
std::vector<float> to_host(Backend& backend, const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::f32) {
    backend.copy_to_host(out.data(), t.data, t.bytes());
    return out;
  }
  void* buffer = backend.allocate(out.size() * sizeof(float));
  const Tensor f32(buffer, DType::f32, t.shape, backend.device());
  backend.copy(t, f32, false);
  backend.copy_to_host(out.data(), buffer, f32.bytes());
  backend.release(buffer);
  return out;
}

using Param = std::tuple<std::string, std::string, std::string>;  // model, backend, precision

class GoldenTest : public ::testing::TestWithParam<Param> {
 protected:
  void Check();
};

void GoldenTest::Check() {
  const auto [model, backend_name, precision] = GetParam();
  const char* source_dir = std::getenv("TB_SOURCE_DIR");  // set by ctest; the build's otherwise
  const std::string path = std::string(source_dir && *source_dir ? source_dir : TB_SOURCE_DIR) +
                           "/tests/golden/" + model + ".golden";
  ASSERT_TRUE(std::filesystem::exists(path))
      << path << " is missing; run scripts/regenerate-goldens.sh";
  std::unique_ptr<Backend> backend;
  try {
    backend = make_backend(backend_name, 0);
  } catch (const InputError& e) {
    GTEST_SKIP() << backend_name << " cannot run here: " << e.what();
  }
  const DType activations = precision == "bf16" ? DType::bf16 : DType::f32;
  if (!backend->supports(OpKind::conv2d, activations))
    GTEST_SKIP() << backend_name << " does not run " << precision;
  const Floors floor = floors(precision);
  const CheckpointData golden = load_checkpoint(path);
  ASSERT_EQ(golden.header.value("kind", ""), "golden");
  const GoldenSpec spec = golden_spec_from_header(golden.header, path);
  const auto pnames = golden.header.at("param_names").get<std::vector<std::string>>();
  const auto bnames = golden.header.at("buffer_names").get<std::vector<std::string>>();
  const nlohmann::json yard = golden.header.at("reference").at("pytorch_fp32_errors");
  const int B = spec.batch, S = spec.samples;

  Classifier net(build_model(spec.model, spec.input), *backend, B, true, 0.0f, activations);
  Graph& g = net.graph();
  const std::vector<ParamRef> params = g.parameters();
  const std::vector<StateRef> buffers = g.persistent_buffers();
  ASSERT_EQ(params.size(), pnames.size());
  ASSERT_EQ(buffers.size(), bnames.size());
  for (size_t i = 0; i < params.size(); ++i) ASSERT_EQ(params[i].name, pnames[i]);
  for (size_t i = 0; i < buffers.size(); ++i) ASSERT_EQ(buffers[i].name, bnames[i]);

  const HostTensor* x = golden.find("batch.images");
  const HostTensor* y = golden.find("batch.labels");
  ASSERT_TRUE(x && y);
  std::vector<float> images(x->bytes.size() / sizeof(float));
  std::vector<int32_t> labels(static_cast<size_t>(B));
  std::memcpy(images.data(), x->bytes.data(), x->bytes.size());
  std::memcpy(labels.data(), y->bytes.data(), y->bytes.size());

  auto param_values = [&](bool grads) {
    std::vector<std::vector<float>> out;
    for (const ParamRef& r : params) out.push_back(to_host(*backend, grads ? r.grad : r.value));
    return out;
  };
  auto buffer_values = [&]() {
    std::vector<std::vector<float>> out;
    for (const StateRef& r : buffers) out.push_back(to_host(*backend, r.value));
    return out;
  };
  auto fresh_start = [&]() {
    g.init_parameters(spec.seed);
    net.set_batch(B, images.data(), labels.data());
  };

  // The initial weights must be the ones the golden was made from.
  fresh_start();
  {
    const auto init = golden_doubles(golden, "init.param_stats");
    const auto now = param_values(false);
    for (size_t t = 0; t < params.size(); ++t) {
      const auto s = golden_stats(now[t].data(), int64_t(now[t].size()));
      ASSERT_NEAR(s[1], init[t * 3 + 1], 1e-6 * std::max(1.0, init[t * 3 + 1]))
          << params[t].name << ": initial weights differ from the golden's; if the init rule "
          << "changed on purpose, run scripts/regenerate-goldens.sh";
    }
  }

  // Forward, loss and gradients at step 0.
  const double loss = net.forward_loss(B, true, spec.seed, 0);
  const std::vector<float> logits = to_host(*backend, g.output(B));
  net.backward(B, spec.seed, 0);
  const auto ref_logits = golden_doubles(golden, "forward.logits");
  const double ref_loss = golden_doubles(golden, "forward.loss").at(0);
  ASSERT_EQ(ref_logits.size(), logits.size());
  const std::vector<double> logits_d(logits.begin(), logits.end());
  const double logit_error = testing::relative_error(logits_d.data(), ref_logits.data(), logits.size());
  EXPECT_LE(logit_error, tolerance(yard["logits"], kRoundingFactor, floor.logits)) << "logits";
  EXPECT_NEAR(loss, ref_loss, tolerance(yard["loss"], kRoundingFactor, floor.loss) * std::fabs(ref_loss))
      << "loss";
  const auto grad_errors =
      testing::tensor_errors(pnames, param_values(true), golden_doubles(golden, "grad.samples"),
                             golden_doubles(golden, "grad.stats"), S, floor.norm_only);
  for (size_t t = 0; t < grad_errors.size(); ++t)
    EXPECT_LE(grad_errors[t].error, tolerance(yard["gradients"][t], kRoundingFactor, floor.gradients))
        << "gradient of " << grad_errors[t];
  const TensorError worst_grad = testing::worst(grad_errors);

  // Two sequences of optimizer steps on the same batch, each from the initial weights. The
  // plain-loop oracle would need minutes for ResNet-18's (tens of GFLOP); it checks the
  // gradients above, and the optimised backends run the sequences.
  const double sequence_flops = g.training_flops_per_item() * B * 2 * spec.steps;
  std::string summary;
  std::vector<std::string> kinds = {"sgd", "adam"};
  if (backend_name == "ref" && sequence_flops > kRefSequenceFlops) {
    kinds.clear();
    summary = fmt::format("  sequences not run on ref ({:.0f} GFLOP)", sequence_flops / 1e9);
  }
  for (const std::string& kind : kinds) {
    fresh_start();
    OptimizerConfig oc;
    oc.kind = kind;
    float lr = spec.adam_lr;
    if (kind == "sgd") {
      oc.momentum = spec.sgd_momentum;
      oc.weight_decay = spec.sgd_weight_decay;
      lr = spec.sgd_lr;
    } else {
      oc.beta1 = spec.adam_beta1;
      oc.beta2 = spec.adam_beta2;
      oc.eps = spec.adam_eps;
    }
    Optimizer opt(*backend, params, oc);
    const auto start_params = param_values(false), start_buffers = buffer_values();
    const auto ref_losses = golden_doubles(golden, kind + ".losses");
    ASSERT_EQ(ref_losses.size(), size_t(spec.steps));
    double loss_error = 0;
    for (int k = 0; k < spec.steps; ++k) {
      const double l = net.forward_loss(B, true, spec.seed, uint64_t(k));
      loss_error = std::max(loss_error, std::fabs(l - ref_losses[size_t(k)]) /
                                            std::max(1e-12, std::fabs(ref_losses[size_t(k)])));
      net.backward(B, spec.seed, uint64_t(k));
      opt.step(lr);
    }
    const nlohmann::json& spread = yard[kind];
    EXPECT_LE(loss_error, tolerance(spread["losses"], kSpreadFactor, floor.losses)) << kind << " losses";
    const auto w = testing::tensor_errors(pnames, testing::minus(param_values(false), start_params),
                                          golden_doubles(golden, kind + ".param_delta_samples"),
                                          golden_doubles(golden, kind + ".param_delta_stats"), S,
                                          floor.norm_only);
    for (size_t t = 0; t < w.size(); ++t)
      EXPECT_LE(w[t].error, tolerance(spread["weights"][t], kSpreadFactor, floor.weights))
          << kind << " weight change of " << w[t];
    const auto b = testing::tensor_errors(bnames, testing::minus(buffer_values(), start_buffers),
                                          golden_doubles(golden, kind + ".buffer_delta_samples"),
                                          golden_doubles(golden, kind + ".buffer_delta_stats"), S,
                                          floor.norm_only);
    for (size_t t = 0; t < b.size(); ++t)
      EXPECT_LE(b[t].error, tolerance(spread["buffers"][t], kSpreadFactor, floor.buffers))
          << kind << " running-statistics change of " << b[t];
    const TensorError ww = testing::worst(w);
    summary += fmt::format("  {}: losses {:.2e}, weights {:.2e} ({}), buffers {:.2e}", kind,
                           loss_error, ww.error, ww.name, testing::worst(b).error);
  }
  summary += fmt::format("  [PyTorch fp32: gradient {:.2e}; spread: sgd weights {:.2e}, adam "
                         "weights {:.2e}]",
                         max_of(yard["gradients"]), max_of(yard["sgd"]["weights"]),
                         max_of(yard["adam"]["weights"]));
  RecordProperty("max_gradient_relative_error", fmt::format("{:.3e}", worst_grad.error));
  RecordProperty("worst_gradient", worst_grad.name);
  std::printf("golden %s on %s (%s): gradient %.2e (%s), logits %.2e, loss %.2e;%s\n",
              model.c_str(), backend_name.c_str(), precision.c_str(), worst_grad.error, worst_grad.name.c_str(),
              logit_error, std::fabs(loss - ref_loss) / std::fabs(ref_loss), summary.c_str());
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return std::get<0>(info.param) + "_" + std::get<1>(info.param) + "_" + std::get<2>(info.param);
}

class Golden : public GoldenTest {};
class GpuGolden : public GoldenTest {};

TEST_P(Golden, MatchesPyTorch) { Check(); }
TEST_P(GpuGolden, MatchesPyTorch) { Check(); }

// CPU backends train in fp32; GPU backends also in bf16 mixed precision. (fp16 needs the
// dynamic loss scaling of the training step, which this test does not drive.)
INSTANTIATE_TEST_SUITE_P(Backends, Golden,
                         ::testing::Combine(::testing::ValuesIn(golden_models()),
                                            ::testing::ValuesIn(backends(false)),
                                            ::testing::Values("fp32")),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Backends, GpuGolden,
                         ::testing::Combine(::testing::ValuesIn(golden_models()),
                                            ::testing::ValuesIn(backends(true)),
                                            ::testing::Values("fp32", "bf16")),
                         param_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GpuGolden);

}  // namespace
}  // namespace tb
