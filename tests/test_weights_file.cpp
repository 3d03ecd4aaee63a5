// Weights files: a model's tensors survive the round trip exactly, a training checkpoint
// exports without its optimizer state, a wrong model is refused with the tensor named, and a
// trained model evaluates to the trainer's own test figures.
#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include "bench/weights_eval.h"
#include "nn/models.h"
#include "ops/ref/ref_backend.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train/weights_file.h"

namespace tb {
namespace {

using testing::TempDir;

std::vector<float> host(const Graph& g) {
  std::vector<float> out;
  auto add = [&](const Tensor& t) {
    const float* p = static_cast<const float*>(t.data);
    out.insert(out.end(), p, p + t.numel());
  };
  for (const ParamRef& r : g.parameters()) add(r.value);
  for (const StateRef& r : g.persistent_buffers()) add(r.value);
  return out;
}

TEST(WeightsFile, RoundTripIsExact) {
  for (const std::string model : {"simple_cnn", "cifar_cnn"}) {
    const ModelInput in{3, 16, 16, 10};
    auto backend = make_ref_backend();
    Graph a = build_model(model, in), b = build_model(model, in);
    a.plan(*backend, 1, DType::f32, false);
    b.plan(*backend, 1, DType::f32, false);
    a.init_parameters(1);
    b.init_parameters(2);
    // Running statistics that are not their defaults, so buffers are really carried.
    for (const StateRef& s : a.persistent_buffers()) static_cast<float*>(s.value.data)[0] = 0.375f;
    WeightsInfo info{model, in, Normalization{{0.5f, 0.4f, 0.3f}, {0.2f, 0.2f, 0.2f}},
                     {"a", "b"}, {{"name", "test"}}};
    const std::string bytes = serialize_checkpoint(capture_weights(a, info));
    const CheckpointData back = parse_checkpoint("mem", bytes);
    const WeightsInfo got = weights_info(back, "mem");
    EXPECT_EQ(got.model, model);
    EXPECT_EQ(got.input.channels, 3);
    EXPECT_EQ(got.normalization.mean, info.normalization.mean);
    EXPECT_EQ(back.header["kind"], "weights");
    load_weights_into(back, "mem", b);
    EXPECT_EQ(host(a), host(b)) << model;
  }
}

TEST(WeightsFile, WrongModelOrKindIsRefused) {
  auto backend = make_ref_backend();
  Graph a = build_model("simple_cnn", ModelInput{}), b = build_model("alexnet_lite", ModelInput{});
  a.plan(*backend, 1, DType::f32, false);
  b.plan(*backend, 1, DType::f32, false);
  a.init_parameters(1);
  const CheckpointData w = capture_weights(a, WeightsInfo{"simple_cnn", ModelInput{}, {}, {}, {}});
  try {
    load_weights_into(w, "w.weights", b);
    FAIL() << "loaded simple_cnn weights into alexnet_lite";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("w.weights"), std::string::npos) << e.what();
  }
  CheckpointData other;
  other.header = {{"kind", "golden"}};
  EXPECT_THROW(weights_info(other, "g"), InputError);
  EXPECT_THROW(weights_from_checkpoint(other, "g"), InputError);
}

// Train, export the checkpoint as weights, evaluate them: the figures are the trainer's.
TEST(WeightsFile, ExportedCheckpointEvaluatesToTheTrainersTestResult) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 400, 100);
  TrainConfig c;
  c.data_dir = tmp.str();
  c.model = "simple_cnn";
  c.batch_size = 32;
  c.progress = false;
  c.checkpoint = tmp.str() + "/run.ckpt";
  std::ostringstream log;
  Trainer trainer(c, log);
  const TrainResult r = trainer.run();
  ASSERT_TRUE(r.tested);

  const CheckpointData ck = load_checkpoint(c.checkpoint);
  const CheckpointData w = weights_from_checkpoint(ck, c.checkpoint);
  for (const HostTensor& t : w.tensors) EXPECT_NE(t.name.rfind("optimizer.", 0), 0u) << t.name;
  EXPECT_LT(w.tensors.size(), ck.tensors.size());
  save_checkpoint(tmp.str() + "/model.weights", w);

  WeightsEvalSpec spec;
  spec.weights = tmp.str() + "/model.weights";
  spec.dataset = "mnist";
  spec.data_dir = tmp.str();
  spec.batch_size = 32;
  std::ostringstream eval_log;
  const WeightsEvalResult e = evaluate_weights(spec, eval_log);
  EXPECT_EQ(e.count, r.test.count);
  EXPECT_EQ(e.accuracy, r.test.accuracy);
  EXPECT_NEAR(e.loss, r.test.loss, 1e-12);
  EXPECT_EQ(e.confusion, r.test.confusion);
  EXPECT_EQ(e.normalization_from, "weights file");
}

}  // namespace
}  // namespace tb
