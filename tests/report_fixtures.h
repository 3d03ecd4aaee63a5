// Synthetic results records for report tests: what train and bench write (schema
// trainbench.run, version 1), with every optional part a report draws (epochs, confusion
// matrix, sample images, monitor series, GPU summary), built without training anything.
#pragma once
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics/base64.h"

namespace tb::testing {

struct SyntheticRun {
  std::string model = "simple_cnn", dataset = "mnist", impl = "cpu", status = "completed";
  int threads = 1, epochs = 3, batch = 64;
  double images_per_second = 1000;
  double test_accuracy = 0.95;
  double curve_offset = 0.0;  // shifts the loss and accuracy curves apart
  bool gpu = false;           // with NVML summary and GPU series
  bool monitors = true;       // with system summary and series
  std::string error;
};

inline nlohmann::json synthetic_record(const SyntheticRun& s) {
  using nlohmann::json;
  const int classes = 10, images = 2000;
  json epochs = json::array();
  for (int e = 1; e <= s.epochs; ++e)
    epochs.push_back({{"epoch", e},
                      {"steps", images / s.batch},
                      {"images", images},
                      {"lr", 0.05},
                      {"train_loss", 1.5 / e + s.curve_offset},
                      {"train_accuracy", 1 - 0.4 / e - s.curve_offset / 4},
                      {"validation_loss", 1.6 / e + s.curve_offset},
                      {"validation_accuracy", 1 - 0.45 / e - s.curve_offset / 4},
                      {"data_seconds", 0.1 * images / s.images_per_second},
                      {"compute_seconds", 0.9 * images / s.images_per_second},
                      {"eval_seconds", 0.2},
                      {"images_per_second", s.images_per_second},
                      {"elapsed_seconds", e * images / s.images_per_second}});
  // A diagonal-heavy confusion matrix with a few mistakes.
  json confusion = json::array();
  for (int t = 0; t < classes; ++t)
    for (int p = 0; p < classes; ++p)
      confusion.push_back(t == p ? 95 : (p == (t + 1) % classes ? 5 : 0));
  // Four 28x28 images: a bright square at a class-specific place.
  json items = json::array();
  for (int i = 0; i < 4; ++i) {
    std::vector<uint8_t> px(28 * 28, 0);
    for (int r = 4 + i * 4; r < 12 + i * 4; ++r)
      for (int c = 6; c < 20; ++c) px[size_t(r * 28 + c)] = 220;
    items.push_back({{"index", i},
                     {"label", i},
                     {"predicted", i == 3 ? 5 : i},
                     {"pixels", base64_encode(px.data(), px.size())}});
  }
  const double train_seconds = s.epochs * images / s.images_per_second;
  json record = {
      {"schema", "trainbench.run"},
      {"schema_version", 1},
      {"kind", "train"},
      {"status", s.status},
      {"config",
       {{"model", s.model},
        {"dataset", s.dataset},
        {"impl", s.impl},
        {"threads", s.threads},
        {"precision", "fp32"},
        {"epochs", s.epochs},
        {"batch_size", s.batch},
        {"optimizer", "sgd"},
        {"lr", 0.05},
        {"schedule", "constant"},
        {"limit", 0},
        {"seed", 1}}},
      {"environment",
       {{"time_utc", "2025-01-02T03:04:05Z"},
        {"hostname", "testhost"},
        {"os", "Linux 6.1 x86_64"},
        {"cpu",
         {{"model", "Test CPU @ 3.0GHz"},
          {"logical_cores", 2},
          {"online_cores", 2},
          {"simd", "avx2 fma"}}},
        {"memory_bytes", 8LL << 30},
        {"compiler", "g++ 12.2.0"},
        {"trainbench", {{"version", "0.1.0"}, {"git_commit", "abc123"}}},
        {"libraries", {{"fmt", "9.1.0"}}}}},
      {"data", {{"source", "synthetic"}, {"train", images}, {"validation", 200}, {"test", 1000}}},
      {"model",
       {{"name", s.model},
        {"input", {1, 28, 28}},
        {"parameters", 11274},
        {"forward_flops_per_image", 190000},
        {"training_flops_per_image", 570000},
        {"planned_bytes", 1 << 20}}},
      {"class_names", {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
      {"epochs", epochs},
      {"final",
       {{"steps", s.epochs * images / s.batch},
        {"images", s.epochs * images},
        {"train_seconds", train_seconds},
        {"total_seconds", train_seconds + 1},
        {"images_per_second", s.images_per_second},
        {"train_loss", 0.5},
        {"train_accuracy", 0.9},
        {"validation_loss", 0.55},
        {"validation_accuracy", 0.88},
        {"test_loss", 0.2},
        {"test_accuracy", s.test_accuracy},
        {"test_images", 1000},
        {"confusion_matrix", confusion}}},
      {"samples", {{"shape", {1, 28, 28}}, {"encoding", "base64-uint8-chw"}, {"items", items}}}};
  if (s.status == "failed") {
    record["epochs"] = json::array();
    record["final"] = {{"steps", 0}, {"images", 0}, {"train_seconds", 0.0}};
    record.erase("samples");
    record["error"] = s.error;
    return record;
  }
  if (s.monitors) {
    json t = json::array(), rss = json::array(), util = json::array(), cpu = json::array();
    for (int i = 0; i <= 8; ++i) {
      t.push_back(i * 0.25);
      rss.push_back((100 + 10 * i) * 1048576LL);
      cpu.push_back(i * 0.2);
      util.push_back(i == 0 ? json(nullptr) : json(0.4 + 0.05 * i));
    }
    record["system"] = {{"sample_period_seconds", 0.25}, {"samples", 9},
                        {"wall_seconds", 2.0},           {"cpu_user_seconds", 1.5},
                        {"cpu_system_seconds", 0.1},     {"cores", 2},
                        {"cpu_cores_busy", 0.8},         {"cpu_utilisation", 0.4},
                        {"rss_start_bytes", 100 << 20},  {"rss_max_sampled_bytes", 180 << 20},
                        {"peak_rss_bytes", 190 << 20},   {"peak_rss_scope", "run"}};
    record["timeseries"] = {
        {"system",
         {{"t_seconds", t}, {"cpu_seconds", cpu}, {"cpu_utilisation", util}, {"rss_bytes", rss}}},
        {"gpu", json::array()}};
    record["gpu"] = {{"available", false}, {"reason", "NVML could not be loaded"}};
  }
  if (s.gpu) {
    json t = json::array(), u = json::array(), mem = json::array(), clock = json::array(),
         power = json::array(), energy = json::array(), mu = json::array();
    for (int i = 0; i <= 8; ++i) {
      t.push_back(i * 0.25);
      u.push_back(0.9);
      mu.push_back(0.5);
      mem.push_back((2LL << 30) + i * (64LL << 20));
      clock.push_back(1980);
      power.push_back(300 + 10 * i);
      energy.push_back(i * 80.0);
    }
    record["gpu"] = {{"available", true},
                     {"driver_version", "580.00"},
                     {"sample_period_seconds", 0.25},
                     {"wall_seconds", 2.0},
                     {"energy_joules", 640.0},
                     {"devices",
                      {{{"index", 0},
                        {"name", "NVIDIA H100 80GB HBM3"},
                        {"memory_total_bytes", 80LL << 30},
                        {"memory_used_max_bytes", (2LL << 30) + (512LL << 20)},
                        {"utilisation_mean", 0.9},
                        {"memory_utilisation_mean", 0.5},
                        {"sm_clock_mean_mhz", 1980},
                        {"sm_clock_max_observed_mhz", 1980},
                        {"sm_clock_max_mhz", 1980},
                        {"power_mean_watts", 340},
                        {"power_max_watts", 380},
                        {"energy_joules", 640.0},
                        {"energy_source", "counter"}}}}};
    record["timeseries"]["gpu"] = {{{"index", 0},
                                    {"t_seconds", t},
                                    {"utilisation", u},
                                    {"memory_utilisation", mu},
                                    {"memory_used_bytes", mem},
                                    {"sm_clock_mhz", clock},
                                    {"power_watts", power},
                                    {"energy_joules", energy}}};
  }
  return record;
}

// A small study: two workloads, CPU 1 and 2 threads and a GPU run, one failed run.
inline std::vector<SyntheticRun> synthetic_study() {
  std::vector<SyntheticRun> runs;
  for (const char* model : {"simple_cnn", "alexnet_lite"}) {
    SyntheticRun a;
    a.model = model;
    a.impl = "cpu";
    a.threads = 1;
    a.images_per_second = 800;
    runs.push_back(a);
    SyntheticRun b = a;
    b.threads = 2;
    b.images_per_second = 1200;
    b.test_accuracy = 0.955;
    b.curve_offset = 0.1;
    runs.push_back(b);
    SyntheticRun g = a;
    g.impl = "cudnn";
    g.images_per_second = 40000;
    g.test_accuracy = 0.96;
    g.gpu = true;
    g.curve_offset = 0.2;
    runs.push_back(g);
  }
  SyntheticRun failed;
  failed.model = "alexnet_lite";
  failed.impl = "ref";
  failed.status = "failed";
  failed.error = "the loss became NaN at step 3 (epoch 1, batch 3); training stopped";
  runs.push_back(failed);
  return runs;
}

inline void write_records(const std::string& path, const std::vector<SyntheticRun>& runs) {
  std::ofstream out(path);
  for (const SyntheticRun& r : runs) out << synthetic_record(r).dump() << "\n";
}

}  // namespace tb::testing
