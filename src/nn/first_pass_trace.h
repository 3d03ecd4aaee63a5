// TB_TRACE_FIRST_PASS=1: the first forward and the first backward pass at each batch size run
// node by node, with the backend synchronised around every node, and print the host time each
// took. A GPU run's first step pays one-time costs (kernel loading, the libraries' plans,
// algorithm searches) that no later step shows; this says which layers pay them. Off by
// default: the synchronisation would slow the step it traces.
#pragma once
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/timer.h"
#include "ops/backend.h"

namespace tb {

class FirstPassTrace {
 public:
  // Reads TB_TRACE_FIRST_PASS; the graph calls it once, when it is planned.
  void arm();
  // True (once per direction and batch size, when armed) when this pass should be traced.
  bool begin(bool backward, int n);
  // Runs one node's work between two synchronisations of the backend and records its time.
  template <class Run>
  void time(const std::string& node, Backend& backend, Run&& run) {
    backend.synchronize();
    const Stopwatch clock;
    run();
    backend.synchronize();
    times_.emplace_back(clock.seconds(), node);
  }
  // Prints the recorded nodes, slowest first, to stderr, and forgets them.
  void finish(bool backward, int n);

 private:
  bool armed_ = false;
  std::set<std::pair<bool, int>> traced_;
  std::vector<std::pair<double, std::string>> times_;
};

}  // namespace tb
