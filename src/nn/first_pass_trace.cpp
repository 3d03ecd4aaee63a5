#include "nn/first_pass_trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace tb {

void FirstPassTrace::arm() {
  const char* v = std::getenv("TB_TRACE_FIRST_PASS");
  armed_ = v && std::strcmp(v, "1") == 0;
}

bool FirstPassTrace::begin(bool backward, int n) {
  return armed_ && traced_.insert({backward, n}).second;
}

void FirstPassTrace::finish(bool backward, int n) {
  double total = 0;
  for (const auto& t : times_) total += t.first;
  std::stable_sort(times_.begin(), times_.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  fmt::print(stderr, "first {} pass, batch {}: {:.1f} ms over {} nodes; slowest:\n",
             backward ? "backward" : "forward", n, 1e3 * total, times_.size());
  for (size_t i = 0; i < times_.size() && i < 12; ++i)
    fmt::print(stderr, "  {:8.2f} ms  {}\n", 1e3 * times_[i].first, times_[i].second);
  times_.clear();
}

}  // namespace tb
