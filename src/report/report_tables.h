// The tables of a report, as rows of formatted text: the same tables feed the HTML page and
// the Markdown output, so both always say the same thing.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "report/run_records.h"

namespace tb {

struct ReportTable {
  std::vector<std::string> headers;
  std::vector<bool> numeric;  // right-aligned columns
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row_tags;  // per row: "", "baseline", "failed", "interrupted"
};

// One row per run: identity, status, training time, throughput, time to target, accuracy.
// Columns no run has a value for are left out (here and in the efficiency table).
ReportTable runs_table(const std::vector<RunRecord>& runs);
// Completed runs: achieved FLOP rate and share of peak, memory, CPU and GPU utilisation,
// GPU power and energy per image, inference latency and throughput.
ReportTable efficiency_table(const std::vector<RunRecord>& runs);
// Completed runs against their group's baseline: throughput ratio and accuracy change.
ReportTable speedup_table(const std::vector<RunRecord>& runs);
// Runs that failed, were skipped or were interrupted, with the reason.
ReportTable problems_table(const std::vector<RunRecord>& runs);

// Runs grouped by the machine and build they ran on.
struct EnvironmentGroup {
  nlohmann::json environment;
  std::vector<int> runs;  // indices into the runs
};
std::vector<EnvironmentGroup> environment_groups(const std::vector<RunRecord>& runs);
// The few facts a reader wants first (CPU, cores, GPU, driver, compiler, commit...).
std::vector<std::pair<std::string, std::string>> environment_highlights(
    const EnvironmentGroup& group, const std::vector<RunRecord>& runs);
// Every scalar of the environment, keys joined with dots.
std::vector<std::pair<std::string, std::string>> environment_flat(const nlohmann::json& env);

// Derived figures shared by tables, charts and CSV (NaN when the record lacks the inputs).
double achieved_gflops(const RunRecord& r);       // training FLOPs / training seconds
double data_time_fraction(const RunRecord& r);    // data loading share of training time
double gpu_utilisation_mean(const RunRecord& r);  // over monitored GPUs, 0..1
double gpu_memory_max_bytes(const RunRecord& r);
double gpu_power_mean_watts(const RunRecord& r);  // summed over monitored GPUs
double energy_per_image_joules(const RunRecord& r);

}  // namespace tb
