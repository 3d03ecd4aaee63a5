// Results records read back for reports: every record of every JSON-lines file given, with
// the names a report shows (workload, device, a short unique label) derived once, and the
// baseline of each workload chosen for the speedup table.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tb {

struct RunRecord {
  nlohmann::json j;  // the record as written (docs/results-schema.md)
  std::string file;
  int line = 0;
  std::string status;     // completed, interrupted, failed
  std::string workload;   // "simple_cnn · mnist" (+ batch, precision... when they vary): a name
  std::string group;      // runs compared with each other (the study runner's group, or workload)
  std::string impl;       // ref, cpu, onednn, cuda, cudnn, pytorch
  std::string device;     // "CPU · 1 thread", "CPU · 8 threads", "GPU"
  std::string label;      // unique within the report; names only what varies between runs
  bool baseline = false;  // the speedup reference of its group
  int baseline_of = -1;   // index of this group's baseline record, -1 if none
};

// Reads every non-empty line of every file. A line that is not a trainbench.run record, or
// one written by a newer schema version, is an InputError naming the file and line.
std::vector<RunRecord> load_run_records(const std::vector<std::string>& paths);

// Fills status, workload, group, impl, device, label and the baselines. Runs are compared
// within a group: the same dataset, model, batch size, precision, epochs, optimizer and
// learning rate. baseline_spec is "" (the record marked "baseline": true, else the first
// completed run of each group) or IMPL or IMPL:THREADS (the first completed run with that
// implementation and thread count).
void describe_runs(std::vector<RunRecord>& runs, const std::string& baseline_spec = "");

// The comparison settings every run shares, as text ("bs 64, fp32, 3 ep, sgd, lr 0.05").
std::string shared_settings(const std::vector<RunRecord>& runs);

// The training runs ("kind": "train") of the files, described. Records of other kinds
// (throughput measurements) are counted in *other_kinds and left out.
std::vector<RunRecord> read_runs(const std::vector<std::string>& paths,
                                 const std::string& baseline_spec = "", int* other_kinds = nullptr);

// The number at a path of keys ("final", "test_accuracy"), or NaN when absent or not a number.
double number_at(const nlohmann::json& j, std::initializer_list<const char*> path);
// The string at a path of keys, or "" when absent or not a string.
std::string string_at(const nlohmann::json& j, std::initializer_list<const char*> path);

}  // namespace tb
