// The system monitor: CPU time and RSS sampled on a background thread, bounded series, and
// the record fields they become.
#include <gtest/gtest.h>
#include <time.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "core/timer.h"
#include "metrics/bounded_series.h"
#include "metrics/monitoring_record.h"
#include "metrics/system_monitor.h"

namespace tb {
namespace {

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + t.tv_nsec * 1e-9;
}

// Burns `cpu` seconds of CPU time on this thread, however busy the machine is (a loaded CI
// machine may give a spinning thread only part of a core).
void spin_cpu(double cpu) {
  volatile double sink = 0;
  const double end = process_cpu_seconds() + cpu;
  while (process_cpu_seconds() < end)
    for (int i = 0; i < 1000; ++i) sink = sink + i * 1e-9;
}

TEST(SystemMonitor, SamplesCpuTimeAndRssWhileRunning) {
  SystemMonitor monitor({0.05, true, 4096});
  monitor.start();
  spin_cpu(0.2);
  // Touch 64 MiB so that the peak RSS has to move, then give it back.
  {
    std::vector<char> block(64 << 20);
    std::memset(block.data(), 1, block.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
  }
  monitor.stop();
  const SystemReport r = monitor.report();
  EXPECT_GT(r.wall_seconds, 0.3);
  EXPECT_GE(r.cores, 1);
  // One thread burnt 0.2 s of CPU: no more than one core's worth of the wall.
  EXPECT_GE(r.cpu_user_seconds + r.cpu_system_seconds, 0.19);
  EXPECT_LE(r.cpu_cores_busy, 1.2);
  EXPECT_NEAR(r.cpu_utilisation, r.cpu_cores_busy / r.cores, 1e-12);
  EXPECT_GE(r.peak_rss_bytes, r.rss_start_bytes + (60 << 20));
  // Start and stop bracket the window; the thread sampled in between, in time order.
  ASSERT_GE(r.samples.size(), 4u);
  // The first sample is start()'s own, taken before the work: all of the 0.2 s of CPU burnt
  // after start() returned lies between it and the last (CPU accounting against the work
  // spin_cpu did, whatever this machine's speed; 0.01 s for the clock's granularity).
  EXPECT_GE(r.samples.back().cpu_seconds - r.samples.front().cpu_seconds, 0.19);
  EXPECT_NEAR(r.samples.back().t_seconds, r.wall_seconds, 1e-9);
  for (size_t i = 1; i < r.samples.size(); ++i) {
    EXPECT_GT(r.samples[i].t_seconds, r.samples[i - 1].t_seconds);
    EXPECT_GE(r.samples[i].cpu_seconds, r.samples[i - 1].cpu_seconds);
    EXPECT_GT(r.samples[i].rss_bytes, 0);
  }
  const std::vector<double> u = r.interval_utilisation();
  ASSERT_EQ(u.size(), r.samples.size());
  EXPECT_EQ(u[0], 0.0);
  for (double x : u) EXPECT_GE(x, 0.0);
}

// start() and stop() each take a sample themselves, so even a window shorter than one period
// has both ends (a period of an hour keeps the background thread from sampling at all).
TEST(SystemMonitor, StartAndStopEachTakeTheirOwnSample) {
  SystemMonitor monitor({3600.0, false, 4096});
  monitor.start();
  ASSERT_EQ(monitor.report().samples.size(), 1u);
  spin_cpu(0.05);
  monitor.stop();
  const SystemReport r = monitor.report();
  ASSERT_EQ(r.samples.size(), 2u);
  // stop()'s sample comes after the work: the CPU spin_cpu burnt lies between the two.
  EXPECT_GE(r.samples.back().cpu_seconds - r.samples.front().cpu_seconds, 0.04);
  EXPECT_NEAR(r.samples.back().t_seconds, r.wall_seconds, 1e-9);
}

TEST(SystemMonitor, StopIsIdempotentAndRestartBeginsAFreshSeries) {
  SystemMonitor monitor({0.02, false, 4096});
  monitor.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  monitor.stop();
  monitor.stop();
  const size_t first = monitor.report().samples.size();
  EXPECT_GE(first, 2u);
  monitor.start();
  monitor.stop();
  const SystemReport again = monitor.report();
  EXPECT_GE(again.samples.size(), 2u);
  EXPECT_LT(again.samples.size(), first + 2);
  EXPECT_FALSE(again.peak_rss_since_start);
}

TEST(SystemMonitor, ReadsRssOfThisProcess) {
  const RssReading r = read_process_rss();
  EXPECT_GT(r.rss_bytes, 1 << 20);
  EXPECT_GE(r.peak_bytes, r.rss_bytes);
}

TEST(BoundedSeries, ThinsEvenlyAndKeepsTheEnds) {
  BoundedSeries<int> s(8);
  for (int i = 0; i < 100; ++i) s.offer(i, i == 99);
  const std::vector<int>& v = s.samples();
  ASSERT_LE(v.size(), 8u);
  EXPECT_EQ(v.front(), 0);
  EXPECT_EQ(v.back(), 99);
  EXPECT_EQ(s.stride(), 16);
  for (size_t i = 1; i + 1 < v.size(); ++i) EXPECT_EQ(v[i] - v[i - 1], 16);
}

TEST(MonitoringRecord, SystemFieldsAndColumnsLineUp) {
  SystemMonitor monitor({0.02, true, 4096});
  monitor.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(70));
  monitor.stop();
  GpuReport gpu;
  gpu.reason = "no GPU here";
  nlohmann::json record = nlohmann::json::object();
  add_monitoring(record, monitor.report(), gpu);
  for (const char* key : {"cpu_utilisation", "cpu_cores_busy", "peak_rss_bytes", "cores",
                          "wall_seconds", "sample_period_seconds", "peak_rss_scope"})
    EXPECT_TRUE(record["system"].contains(key)) << key;
  EXPECT_EQ(record["gpu"], (nlohmann::json{{"available", false}, {"reason", "no GPU here"}}));
  const nlohmann::json& ts = record["timeseries"]["system"];
  const size_t n = ts["t_seconds"].size();
  EXPECT_GE(n, 3u);
  for (const char* column : {"cpu_seconds", "cpu_utilisation", "rss_bytes"})
    EXPECT_EQ(ts[column].size(), n) << column;
  EXPECT_TRUE(ts["cpu_utilisation"][0].is_null());
  EXPECT_TRUE(ts["cpu_utilisation"][1].is_number());
  EXPECT_TRUE(record["timeseries"]["gpu"].is_array());
}

}  // namespace
}  // namespace tb
