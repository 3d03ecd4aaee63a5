// What the oneDNN backend keeps between calls: the runtime, the plans (primitives with their
// staging, one per op kind and shape, created on first use) and the reordered weights.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "ops/onednn/onednn_runtime.h"

namespace tb::onednn {

// A plan's identity: the op kind and the numbers of its params struct (and, where a plan
// holds state tied to particular tensors, their addresses). Fixed size, so a lookup
// allocates nothing.
struct OpKey {
  std::array<int64_t, 16> v{};
  int n = 0;
  explicit OpKey(int kind) { v[n++] = kind; }
  OpKey& operator<<(int64_t x);
  bool operator==(const OpKey& o) const { return n == o.n && v == o.v; }
};

struct OpKeyHash {
  size_t operator()(const OpKey& k) const;
};

// Plans kinds, for keys.
enum PlanKind : int {
  kConv = 1, kLinear, kRelu, kAdd, kMaxPool, kAvgPool, kGlobalPool, kBatchNorm
};

class PlanBase {
 public:
  virtual ~PlanBase() = default;
  // The backend's memory [begin, end) was released: drop state tied to addresses in it.
  virtual void forget_addresses(const char* begin, const char* end) {}
};

// Copies of weights in the layouts primitives prefer, refreshed only after the weights
// were written (note_write) or forgotten (clear).
class WeightCache {
 public:
  // The weights at `plain_ptr` (layout `plain`) in layout `want`; `plain_ptr` itself when the
  // layouts agree.
  const void* get(Runtime& rt, const void* plain_ptr, const memory::desc& plain,
                  const memory::desc& want);
  // Marks copies of any weights overlapping [ptr, ptr + bytes) stale.
  void note_write(const void* ptr, size_t bytes);
  // Drops the copies of weights overlapping [begin, end) (released memory), or of all.
  void forget(const char* begin, const char* end);
  void clear() { copies_.clear(); }

 private:
  struct Copy {
    const char* src;
    size_t bytes;
    memory::desc want;
    Buffer buffer;
    Exec reorder;
    bool stale;
  };
  std::vector<std::unique_ptr<Copy>> copies_;  // a few dozen: a linear scan is cheapest
};

struct State {
  explicit State(size_t& allocation_count) : rt(allocation_count) {}

  // The plan for `key`, made by make() (returning std::unique_ptr<T>) the first time.
  template <class T, class Make>
  T& plan(const OpKey& key, Make&& make) {
    auto it = plans.find(key);
    if (it == plans.end()) it = plans.emplace(key, make()).first;
    return static_cast<T&>(*it->second);
  }

  // Memory [ptr, ptr + bytes) was released: reordered weights and address-keyed state in it
  // would be wrong for whatever is allocated there next.
  void forget_addresses(const void* ptr, size_t bytes);

  Runtime rt;
  WeightCache weights;
  std::unordered_map<OpKey, std::unique_ptr<PlanBase>, OpKeyHash> plans;
};

}  // namespace tb::onednn
