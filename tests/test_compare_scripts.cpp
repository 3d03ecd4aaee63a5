// scripts/gpu_compare.py, which ends every GPU device run (compare.txt): on session 22's
// recorded files it must print the same-call table and issue 4's targets, met or missed,
// against the same call's PyTorch and the fixed reference figures; with no files, the bare
// header and no target lines.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "test_util.h"

namespace tb {
namespace {

std::string gpu_compare(const std::string& throughput, const std::string& torch, int* code) {
  const std::string dir = std::string(TB_SOURCE_DIR);
  const testing::CommandResult r = testing::run_command(
      "python3 " + dir + "/scripts/gpu_compare.py " + throughput + " " + torch + " 2>&1");
  *code = r.code;
  return r.output;
}

TEST(CompareScripts, GpuComparePrintsTheTargetsOnARecordedCall) {
  if (std::system("python3 --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  const std::string m = std::string(TB_SOURCE_DIR) + "/docs/measurements/2026-12-08-";
  int code = -1;
  const std::string out =
      gpu_compare(m + "gpu-throughput-h100-s22b.jsonl", m + "torch-anchor-h100-s22b.jsonl", &code);
  EXPECT_EQ(code, 0) << out;
  for (const char* want :
       {"NVIDIA H100 80GB HBM3", "resnet18     3x32x32      64 bf16        36268       33404",
        "this call's PyTorch:        b64 cudnn 36268 / 8651 = 4.19x (met); "
        "b512 cudnn 80165 / 43804 = 1.83x (met)",
        "b64 cudnn 36268 / 13100 = 2.77x (missed); b512 cudnn 80165 / 72800 = 1.10x (missed)",
        "b64 cudnn 36268 / 12184 = 2.98x (missed); b512 cudnn 80165 / 66881 = 1.20x (missed)"})
    EXPECT_NE(out.find(want), std::string::npos) << want << "\n" << out;
}

TEST(CompareScripts, GpuCompareWithMissingFilesPrintsNoTargets) {
  if (std::system("python3 --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  int code = -1;
  const std::string out = gpu_compare("/nonexistent/a.jsonl", "/nonexistent/b.jsonl", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("cudnn img/s"), std::string::npos) << out;
  EXPECT_EQ(out.find("Targets"), std::string::npos) << out;
}

}  // namespace
}  // namespace tb
