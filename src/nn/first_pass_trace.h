// TB_TRACE_FIRST_PASS=1: the first forward and the first backward pass at each batch size run
// node by node, with the backend synchronised around every node, and print the host time each
// took. A GPU run's first step pays one-time costs (kernel loading, the libraries' plans,
// algorithm searches) that no later step shows; this says which layers pay them. Off by
// default: the synchronisation would slow the step it traces.
#pragma once
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace tb {

class FirstPassTrace {
 public:
  // True (once per direction and batch size) when this pass should be traced.
  bool begin(bool backward, int n);
  // Runs one node's work and records its time (the caller synchronises inside `run`).
  void time(const std::string& node, const std::function<void()>& run);
  // Prints the recorded nodes, slowest first, to stderr, and forgets them.
  void finish(bool backward, int n);

 private:
  std::set<std::pair<bool, int>> traced_;
  std::vector<std::pair<double, std::string>> times_;
};

}  // namespace tb
