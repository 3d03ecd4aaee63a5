// The training loop end to end: learning, exact resume, a diverging loss, checkpoints.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace tb {
namespace {

using testing::TempDir;

TrainConfig quick_config(const std::string& data_dir) {
  TrainConfig c;
  c.data_dir = data_dir;
  c.progress = false;
  return c;
}

// DEVELOPERS.md: simple_cnn learns on 2,000 real MNIST images when the data is present, or on
// generated data otherwise.
TEST(Trainer, SimpleCnnLearnsMnist) {
  TempDir tmp;
  std::string dir = testing::real_data_dir("mnist");
  const bool real = !dir.empty();
  if (!real) {
    testing::write_synthetic_mnist(tmp.str(), "mnist", 2000, 500);
    dir = tmp.str();
  }
  TrainConfig c = quick_config(dir);
  c.limit = 2000;
  c.epochs = 3;
  c.batch_size = 32;
  std::ostringstream log;
  Trainer t(c, log);
  const TrainResult r = t.run();
  ASSERT_EQ(r.status, "completed") << log.str();
  ASSERT_TRUE(r.tested);
  EXPECT_EQ(r.epochs.size(), 3u);
  EXPECT_LT(r.epochs.back().train_loss, r.epochs.front().train_loss);
  // 2,000 real images, 3 epochs: about 93% on held-out digits; synthetic data is easier.
  EXPECT_GT(r.test.accuracy, real ? 0.85 : 0.95) << log.str();
  RecordProperty("data", real ? "real MNIST" : "synthetic");
}

// Runs cifar_cnn (batch norm + dropout, so RNG streams matter) for two epochs, optionally
// interrupted after `stop_at` steps and resumed from the checkpoint.
std::vector<float> train_cifar_cnn(const std::string& data, const std::string& ckpt, int stop_at) {
  TrainConfig c = quick_config(data);
  c.model = "cifar_cnn";
  c.limit = 48;
  c.batch_size = 8;
  c.epochs = 2;
  c.optimizer.kind = "sgd";
  c.optimizer.nesterov = true;
  c.schedule = "one-cycle";
  c.checkpoint = ckpt;
  std::ostringstream log;
  if (stop_at > 0) {
    Trainer first(c, log);
    first.on_step = [&](int64_t step) {
      if (step == stop_at) first.request_stop();
    };
    EXPECT_EQ(first.run().status, "interrupted") << log.str();
    c.resume = true;
  }
  Trainer t(c, log);
  EXPECT_EQ(t.run().status, "completed") << log.str();
  return t.parameters_host();
}

TEST(Trainer, InterruptedAndResumedRunEndsWithTheSameWeights) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 64, 16);
  const std::vector<float> straight = train_cifar_cnn(tmp.str(), tmp.str() + "/a.ckpt", 0);
  // Stop mid-epoch (step 4 of 6) and exactly at an epoch boundary (step 6).
  for (int stop_at : {4, 6}) {
    const std::vector<float> resumed = train_cifar_cnn(tmp.str(), tmp.str() + "/b.ckpt", stop_at);
    ASSERT_EQ(straight.size(), resumed.size());
    EXPECT_TRUE(std::equal(straight.begin(), straight.end(), resumed.begin()))
        << "weights differ after resuming from step " << stop_at;
    std::filesystem::remove(tmp.str() + "/b.ckpt");
  }
}

TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 256, 16);
  TrainConfig c = quick_config(tmp.str());
  c.limit = 256;
  c.epochs = 3;
  c.batch_size = 64;
  c.checkpoint = tmp.str() + "/run.ckpt";
  std::ostringstream log;
  {
    Trainer t(c, log);
    t.run();
  }
  const auto good_size = std::filesystem::file_size(c.checkpoint);
  c.lr = 1e30;  // diverges at once
  c.checkpoint = tmp.str() + "/run.ckpt";
  c.epochs = 1;
  Trainer t(c, log);
  try {
    t.run();
    FAIL() << "expected a DivergedError";
  } catch (const DivergedError& e) {
    EXPECT_NE(std::string(e.what()).find("at step"), std::string::npos) << e.what();
  }
  EXPECT_EQ(t.result().status, "failed");
  EXPECT_EQ(std::filesystem::file_size(c.checkpoint), good_size);
  EXPECT_NO_THROW(load_checkpoint(c.checkpoint));
}

TEST(Trainer, ResumeRefusesACheckpointOfAnotherRun) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 64, 16);
  TrainConfig c = quick_config(tmp.str());
  c.limit = 64;
  c.max_steps = 1;
  c.checkpoint = tmp.str() + "/run.ckpt";
  std::ostringstream log;
  Trainer(c, log).run();
  c.resume = true;
  c.batch_size = 32;
  Trainer t(c, log);
  try {
    t.run();
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("batch_size"), std::string::npos) << e.what();
  }
}

// Checkpoints written before --validation existed have no validation_fraction in their run
// identity: they held out the fixed 10%, so they resume as 0.1 and are refused otherwise.
TEST(Trainer, ACheckpointFromBeforeValidationResumesAsTenPercent) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 64, 16);
  TrainConfig c = quick_config(tmp.str());
  c.limit = 64;
  c.epochs = 2;
  c.batch_size = 8;
  c.checkpoint = tmp.str() + "/run.ckpt";
  std::ostringstream log;
  Trainer first(c, log);
  first.on_step = [&](int64_t step) {
    if (step == 2) first.request_stop();
  };
  ASSERT_EQ(first.run().status, "interrupted") << log.str();
  CheckpointData old = load_checkpoint(c.checkpoint);
  ASSERT_TRUE(old.header.at("identity").contains("validation_fraction"));
  old.header["identity"].erase("validation_fraction");
  save_checkpoint(c.checkpoint, old);

  c.resume = true;
  c.validation_fraction = 0.2;
  try {
    Trainer(c, log).run();
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("validation_fraction"), std::string::npos) << e.what();
  }
  c.validation_fraction = 0.1;
  EXPECT_EQ(Trainer(c, log).run().status, "completed") << log.str();
}

TEST(Trainer, BadValuesAreInputErrors) {
  std::ostringstream log;
  TrainConfig c;
  c.epochs = 0;
  EXPECT_THROW(Trainer(c, log).run(), InputError);
  c = TrainConfig{};
  c.model = "nope";
  c.dataset = "nope";
  EXPECT_THROW(Trainer(c, log).run(), InputError);
}

}  // namespace
}  // namespace tb
