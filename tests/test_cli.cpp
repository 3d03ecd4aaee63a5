// The trainbench executable as a user meets it: help, exit codes, one-line errors for bad
// input, a results line for a good run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace tb {
namespace {

using testing::TempDir;

using CliRun = testing::CommandResult;

CliRun trainbench(const std::string& args) {
  return testing::run_command(std::string(TB_BINARY) + " " + args + " 2>&1");
}

TEST(Cli, HelpListsEverySubcommand) {
  const CliRun r = trainbench("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* sub : {"train", "predict", "models", "backends", "data"})
    EXPECT_NE(r.output.find(sub), std::string::npos) << sub;
  const CliRun t = trainbench("train --help");
  EXPECT_EQ(t.code, 0);
  EXPECT_NE(t.output.find("--batch-size"), std::string::npos);
  EXPECT_NE(t.output.find("resnet50"), std::string::npos);
}

TEST(Cli, UnknownValuesGiveOneLineErrors) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 32, 8);
  const std::string base = "train --data-dir " + tmp.str() + " --limit 32 --max-steps 1 ";
  for (const char* bad : {"--model vgg", "--dataset imagenet", "--impl tpu", "--optimizer lbfgs",
                          "--lr-schedule linear", "--split 70,x,20", "--epochs 0"}) {
    const CliRun r = trainbench(base + bad);
    EXPECT_EQ(r.code, 1) << bad << "\n" << r.output;
    EXPECT_NE(r.output.find("trainbench: error:"), std::string::npos) << bad << "\n" << r.output;
  }
  EXPECT_EQ(trainbench("train --no-such-flag").code, 2);
}

TEST(Cli, CorruptMnistFilesAreRefusedWithTheFileNamed) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 64, 16);
  const std::string images = tmp.str() + "/mnist/train-images-idx3-ubyte.gz";
  const std::string args = "train --data-dir " + tmp.str() + " --max-steps 1";

  // Truncated: drop the last 1,000 bytes of the decompressed payload.
  {
    gzFile f = gzopen(images.c_str(), "rb");
    std::vector<uint8_t> all(1 << 20);
    const int n = gzread(f, all.data(), unsigned(all.size()));
    gzclose(f);
    all.resize(size_t(n) - 1000);
    testing::write_gz(images, all);
  }
  CliRun r = trainbench(args);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("train-images-idx3-ubyte"), std::string::npos) << r.output;

  // Wrong magic number.
  std::vector<uint8_t> bad = {0, 0, 8, 4, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28};
  bad.resize(16 + 784, 0);
  testing::write_gz(images, bad);
  r = trainbench(args);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("magic"), std::string::npos) << r.output;
}

TEST(Cli, TrainAppendsOneResultLine) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 256, 64);
  const std::string results = tmp.str() + "/r.jsonl";
  const std::string args = "train --data-dir " + tmp.str() + " --limit 256 --epochs 1 --results " + results;
  for (int i = 0; i < 2; ++i) ASSERT_EQ(trainbench(args).code, 0);
  std::ifstream in(results);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["status"], "completed");
    EXPECT_GT(j["final"]["test_accuracy"].get<double>(), 0.0);
    EXPECT_TRUE(j["environment"].contains("cpu"));
    EXPECT_EQ(j["config"]["model"], "simple_cnn");
    ++lines;
  }
  EXPECT_EQ(lines, 2);
}

TEST(Cli, ModelsListsEveryModelWithItsSize) {
  const CliRun r = trainbench("models --input 3x32x32");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("11173962"), std::string::npos) << r.output;  // resnet18
  EXPECT_EQ(trainbench("models --input 3by32").code, 1);
}

TEST(Cli, ModelsShowsAPlannedTrainingStep) {
  const CliRun r = trainbench("models --model resnet50 --input 3x32x32 --memory 512");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("share the activations' memory"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("planned"), std::string::npos) << r.output;
  const CliRun small = trainbench("models --model alexnet_lite --memory 64 --precision fp32");
  EXPECT_EQ(small.code, 0) << small.output;
  EXPECT_NE(small.output.find("keep their own block"), std::string::npos) << small.output;
  EXPECT_EQ(trainbench("models --memory 64").code, 1);
  EXPECT_EQ(trainbench("models --model resnet18 --memory 64 --precision fp8").code, 1);
}

}  // namespace
}  // namespace tb
