// Runs a study: every row is a training run whose record (config, environment, per-epoch
// metrics, final accuracy, timing, inference speed, percent of peak) is appended to the
// results file as soon as it finishes. Rows this machine cannot run are skipped with the
// reason; a failing row is recorded as failed and the study goes on; Ctrl-C stops after
// keeping every finished row.
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/study.h"

namespace tb {

struct StudyOptions {
  std::string results = "results.jsonl";
  std::string data_dir;     // overrides the rows' data_dir when set
  bool progress = true;     // a progress bar with ETA on a terminal
  bool measure_peak = true; // the CPU FMA peak per thread count, for percent of peak
  bool measure_inference = true;  // batch-1 latency and large-batch inference throughput
};

struct StudyRowOutcome {
  StudyRow row;
  std::string status;  // completed, skipped, failed, interrupted
  std::string reason;
  nlohmann::json record;  // as appended (empty for interrupted rows)
};

struct StudyOutcome {
  std::vector<StudyRowOutcome> rows;
  bool interrupted = false;
};

StudyOutcome run_study(const Study& study, const StudyOptions& options, std::ostream& log);

// The printed comparison table: one line per row, speedup against the study's baseline row
// of the same model and dataset (same other settings).
std::string comparison_table(const Study& study, const StudyOutcome& outcome);

}  // namespace tb
