// The PyTorch peer: found or explained; given a run plan it trains the same run as
// trainbench's trainer (same data, order, schedule, initial weights: the losses agree to
// rounding), records it in the results schema, and weights move both ways between the two.
// Skipped where no Python with torch is installed.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "bench/pytorch_peer.h"
#include "bench/weights_eval.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train/weights_file.h"

namespace tb {
namespace {

using testing::TempDir;

TEST(PytorchPeer, IsFoundOrTheMessageSaysWhatToInstall) {
  const PythonProbe& p = probe_python_with_torch();
  if (p.python) {
    EXPECT_FALSE(p.torch_version.empty());
    EXPECT_EQ(find_python_with_torch(), p.python);
  } else {
    EXPECT_NE(pytorch_unavailable_message().find("install python3-torch"), std::string::npos);
  }
  EXPECT_NE(find_peer_script("train.py").find("peers/pytorch/train.py"), std::string::npos);
}

// simple_cnn on synthetic MNIST, 2 epochs of batch 32 on one thread: the runs both sides train.
TrainConfig small_run(const std::string& data_dir, uint64_t seed) {
  TrainConfig c;
  c.data_dir = data_dir;
  c.model = "simple_cnn";
  c.epochs = 2;
  c.batch_size = 32;
  c.seed = seed;
  c.threads = 1;
  return c;
}

TEST(PytorchPeer, TrainsTheSameRunAndSharesWeights) {
  if (!find_python_with_torch()) GTEST_SKIP() << pytorch_unavailable_message();
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 300, 80);
  TrainConfig c = small_run(tmp.str(), 3);
  c.schedule = "cosine";
  c.lr = 0.002;  // slow enough that the losses stay far from 0, where relative errors mean little
  c.checkpoint = tmp.str() + "/tb.ckpt";
  c.progress = false;
  std::ostringstream log;
  Trainer trainer(c, log);
  const TrainResult ours = trainer.run();
  ASSERT_TRUE(ours.tested);

  PytorchPeerOptions o;
  o.device = "cpu";
  o.save_weights = tmp.str() + "/torch.weights";
  TrainConfig pc = c;
  pc.checkpoint.clear();
  std::ostringstream peer_log;
  const nlohmann::json rec = run_pytorch_peer(pc, tmp.str() + "/plan.json", o, peer_log);
  ASSERT_EQ(rec.value("status", ""), "completed") << peer_log.str();
  EXPECT_EQ(rec["schema"], "trainbench.run");
  EXPECT_EQ(rec["config"]["impl"], "pytorch");
  EXPECT_EQ(rec["data"]["train"], ours.data["train"]);
  EXPECT_FALSE(rec["environment"]["pytorch"]["version"].get<std::string>().empty());
  ASSERT_EQ(rec["epochs"].size(), ours.epochs.size());
  // Same batches, same weights, same learning rates: only rounding differs.
  for (size_t e = 0; e < ours.epochs.size(); ++e) {
    const double theirs = rec["epochs"][e]["train_loss"];
    EXPECT_NEAR(theirs, ours.epochs[e].train_loss, 1e-4 * ours.epochs[e].train_loss) << e;
  }
  const double their_test_loss = rec["final"]["test_loss"];
  EXPECT_NEAR(their_test_loss, ours.test.loss, 1e-3 * ours.test.loss);

  // PyTorch's trained weights, evaluated by trainbench, give PyTorch's own test figures.
  WeightsEvalSpec spec;
  spec.weights = o.save_weights;
  spec.dataset = "mnist";
  spec.data_dir = tmp.str();
  spec.batch_size = 32;
  std::ostringstream eval_log;
  const WeightsEvalResult here = evaluate_weights(spec, eval_log);
  EXPECT_NEAR(here.loss, their_test_loss, 1e-4 * their_test_loss);
  EXPECT_EQ(here.accuracy, rec["final"]["test_accuracy"].get<double>());

  // trainbench's trained weights, evaluated by PyTorch, give trainbench's test figures.
  save_checkpoint(tmp.str() + "/tb.weights",
                  weights_from_checkpoint(load_checkpoint(c.checkpoint), c.checkpoint));
  spec.weights = tmp.str() + "/tb.weights";
  spec.impl = "pytorch";
  spec.pytorch_device = "cpu";
  const WeightsEvalResult there = evaluate_weights(spec, eval_log);
  EXPECT_NEAR(there.loss, ours.test.loss, 1e-4 * ours.test.loss);
  EXPECT_EQ(there.accuracy, ours.test.accuracy);
  EXPECT_EQ(there.confusion, ours.test.confusion);
}

// Gradient clipping means the same on both sides: a limit that clips every step (simple_cnn's
// gradient norm is well above 0.05 here) and SGD with momentum give the same loss curve.
TEST(PytorchPeer, ClippedRunMatches) {
  if (!find_python_with_torch()) GTEST_SKIP() << pytorch_unavailable_message();
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 300, 80);
  TrainConfig c = small_run(tmp.str(), 4);
  c.lr = 0.05;
  c.optimizer.max_grad_norm = 0.05f;
  c.progress = false;
  std::ostringstream log;
  Trainer trainer(c, log);
  const TrainResult ours = trainer.run();
  PytorchPeerOptions o;
  o.device = "cpu";
  std::ostringstream peer_log;
  const nlohmann::json rec = run_pytorch_peer(c, tmp.str() + "/plan.json", o, peer_log);
  ASSERT_EQ(rec.value("status", ""), "completed") << peer_log.str();
  ASSERT_EQ(rec["epochs"].size(), ours.epochs.size());
  for (size_t e = 0; e < ours.epochs.size(); ++e) {
    const double theirs = rec["epochs"][e]["train_loss"];
    EXPECT_NEAR(theirs, ours.epochs[e].train_loss, 1e-4 * ours.epochs[e].train_loss) << e;
  }
}

}  // namespace
}  // namespace tb
