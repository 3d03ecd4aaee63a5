// Study files and the study runner: parsing with line numbers, matrix expansion, skipped and
// failed rows, the comparison table.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "bench/pytorch_peer.h"
#include "bench/study_runner.h"
#include "test_util.h"

namespace tb {
namespace {

using testing::TempDir;

TEST(Study, ExpandsTheMatrixWithExcludesAndRules) {
  const Study s = parse_study(R"({
    "defaults": {"epochs": 2, "limit": 100},
    "matrix": {"model": ["simple_cnn", "alexnet_lite"], "device": [{"impl": "ref"}, {"impl": "cpu", "threads": 2}]},
    "exclude": [{"model": "alexnet_lite", "impl": "ref"}],
    "rules": [{"when": {"impl": "cpu"}, "set": {"limit": 7}}]
  })", "s.json");
  const auto rows = expand_study(s);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].config.model, "simple_cnn");
  EXPECT_EQ(rows[0].config.impl, "ref");
  EXPECT_EQ(rows[0].config.limit, 100);
  EXPECT_EQ(rows[1].config.impl, "cpu");
  EXPECT_EQ(rows[1].config.threads, 2);
  EXPECT_EQ(rows[1].config.limit, 7);
  EXPECT_EQ(rows[2].config.model, "alexnet_lite");
  EXPECT_EQ(rows[2].config.epochs, 2);
}

std::string error_of(const std::string& text) {
  try {
    parse_study(text, "bad.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Study, MalformedFilesGiveTheLineAndTheProblem) {
  EXPECT_EQ(error_of("{\n  \"matrix\": {\n    \"model\": [\"a\",]\n  }\n}").substr(0, 11), "bad.json:3:");
  EXPECT_NE(error_of("{\n \"name\": \"x\",\n \"modles\": []\n}").find("bad.json:3: unknown key 'modles'"),
            std::string::npos);
  const std::string e = error_of("{\n\"matrix\": {\n\"model\": [\"a\"],\n\"device\": [{\"impl\": \"ref\", \"thread\": 1}]}}");
  EXPECT_NE(e.find("bad.json:4"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown setting 'thread'"), std::string::npos) << e;
  EXPECT_NE(error_of("{\"matrix\": {\"epochs\": [\"two\"]}}").find("wrong type"), std::string::npos);
  EXPECT_NE(error_of("{\"matrix\": {\"model\": []}}").find("non-empty list"), std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("JSON object"), std::string::npos);
}

TEST(Study, EveryShippedStudyParses) {
  for (const char* f : {"quick.json", "optimizers.json", "cpu-vs-gpu.json"})
    EXPECT_NO_THROW(expand_study(load_study(std::string(TB_SOURCE_DIR) + "/studies/" + f))) << f;
  EXPECT_GE(expand_study(default_study()).size(), 4u);
}

TEST(StudyRunner, SkipsWhatCannotRunRecordsFailuresAndGoesOn) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 200, 50);
  const Study s = parse_study(R"({
    "defaults": {"epochs": 1, "limit": 200, "batch_size": 32, "model": "simple_cnn"},
    "matrix": {"device": [{"impl": "ref"}, {"impl": "no-such-backend"}, {"impl": "ref", "lr": 1e30}, {"impl": "ref", "lr": 0.01}]}
  })", "t.json");
  StudyOptions o;
  o.results = tmp.str() + "/r.jsonl";
  o.data_dir = tmp.str();
  o.progress = false;
  o.measure_peak = false;
  std::ostringstream log;
  const StudyOutcome out = run_study(s, o, log);
  ASSERT_EQ(out.rows.size(), 4u) << log.str();
  EXPECT_EQ(out.rows[0].status, "completed");
  EXPECT_EQ(out.rows[1].status, "skipped");
  EXPECT_EQ(out.rows[2].status, "failed");
  EXPECT_NE(out.rows[2].reason.find("at step"), std::string::npos);
  EXPECT_EQ(out.rows[3].status, "completed");
  std::ifstream in(o.results);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("study"));
    ++lines;
  }
  EXPECT_EQ(lines, 4);
  EXPECT_TRUE(out.rows[0].record["metrics"].contains("inference"));
  const std::string table = comparison_table(s, out);
  EXPECT_NE(table.find("1.00x"), std::string::npos) << table;
  EXPECT_NE(table.find("skipped"), std::string::npos) << table;
}

TEST(Study, PytorchRowsCarryHowThePeerRuns) {
  const Study s = parse_study(R"({
    "matrix": {"device": [{"impl": "cpu"}, {"impl": "pytorch", "pytorch_device": "cpu", "threads": 1},
                          {"impl": "pytorch", "pytorch_device": "cuda", "pytorch_compile": true}]}
  })", "p.json");
  const auto rows = expand_study(s);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].config.impl, "pytorch");
  EXPECT_EQ(rows[1].pytorch.device, "cpu");
  EXPECT_EQ(rows[1].config.threads, 1);
  EXPECT_EQ(rows[2].pytorch.device, "cuda");
  EXPECT_TRUE(rows[2].pytorch.compile);
  EXPECT_FALSE(rows[1].pytorch.compile);
  const std::string e = error_of("{\n\"matrix\": {\n\"device\": [{\"impl\": \"pytorch\", \"pytorch_device\": \"tpu\"}]}}");
  EXPECT_NE(e.find("bad.json:3"), std::string::npos) << e;
  EXPECT_NE(e.find("auto, cpu or cuda"), std::string::npos) << e;

  // The default study has PyTorch on one thread, all threads and the GPU.
  int cpu1 = 0, cpu_all = 0, gpu = 0;
  for (const StudyRow& r : expand_study(default_study())) {
    if (r.config.impl != "pytorch") continue;
    if (r.pytorch.device == "cuda") ++gpu;
    else if (r.config.threads == 1) ++cpu1;
    else if (r.config.threads == 0) ++cpu_all;
  }
  EXPECT_EQ(cpu1, 4);  // 2 datasets x 2 models
  EXPECT_EQ(cpu_all, 4);
  EXPECT_EQ(gpu, 4);
}

TEST(StudyRunner, PytorchRowsSitInTheSameTable) {
  TempDir tmp;
  testing::write_synthetic_mnist(tmp.str(), "mnist", 200, 50);
  const Study s = parse_study(R"({
    "defaults": {"epochs": 1, "limit": 200, "batch_size": 32, "model": "simple_cnn", "lr": 0.01},
    "matrix": {"device": [{"impl": "ref"}, {"impl": "pytorch", "pytorch_device": "cpu", "threads": 1}]},
    "baseline": {"impl": "ref"}
  })", "t.json");
  StudyOptions o;
  o.results = tmp.str() + "/r.jsonl";
  o.data_dir = tmp.str();
  o.progress = false;
  o.measure_peak = false;
  o.measure_inference = false;
  std::ostringstream log;
  const StudyOutcome out = run_study(s, o, log);
  ASSERT_EQ(out.rows.size(), 2u) << log.str();
  EXPECT_EQ(out.rows[0].status, "completed") << log.str();
  const std::string table = comparison_table(s, out);
  EXPECT_NE(table.find("pytorch"), std::string::npos) << table;
  if (!find_python_with_torch()) {
    // Without torch the row is skipped, and says what to install.
    EXPECT_EQ(out.rows[1].status, "skipped");
    EXPECT_NE(out.rows[1].reason.find("python3-torch"), std::string::npos) << out.rows[1].reason;
    return;
  }
  ASSERT_EQ(out.rows[1].status, "completed") << out.rows[1].reason << "\n" << log.str();
  const nlohmann::json& rec = out.rows[1].record;
  EXPECT_EQ(rec["config"]["impl"], "pytorch");
  EXPECT_EQ(rec["metrics"]["device"], "CPU x1");
  EXPECT_EQ(rec["study"]["row"], 1);
  // Same data, same batches, same initial weights: the first epoch's loss agrees closely.
  const double ours = out.rows[0].record["epochs"][0]["train_loss"];
  const double theirs = rec["epochs"][0]["train_loss"];
  EXPECT_NEAR(theirs, ours, 1e-3 * ours);
  EXPECT_NE(table.find("CPU x1"), std::string::npos) << table;
}

}  // namespace
}  // namespace tb
