// The end of every benchmark binary's main(): Google Benchmark's own flags, then the runs.
#pragma once
#include <benchmark/benchmark.h>

namespace tb::bench {

inline int run_registered_benchmarks(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace tb::bench
