// A memory plan: every buffer a model needs is requested up front, then one allocation per
// category is made and carved into aligned slices. After allocate(), nothing else is
// allocated, so a training step can run (and be captured as a CUDA graph) without touching
// the allocator.
//
// A request may carry a lifetime: the span of the owner's steps (e.g. the graph's forward
// and backward node calls) during which the buffer holds live data. Requests of one category
// whose lifetimes do not overlap may share bytes. Categories whose requests all live for
// the whole plan keep their request order, so a category such as "parameters" stays one
// contiguous block in a fixed order.
#pragma once
#include <cstddef>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace tb {

class Backend;

// Steps [first, last], both ends included. The default covers every step.
struct Lifetime {
  int first = 0;
  int last = std::numeric_limits<int>::max();
  bool overlaps(const Lifetime& o) const { return first <= o.last && o.first <= last; }
  bool whole() const { return first == 0 && last == std::numeric_limits<int>::max(); }
};

class MemoryPlan {
 public:
  static constexpr size_t kAlignment = 256;  // enough for AVX-512 and GPU coalescing

  MemoryPlan() = default;
  ~MemoryPlan();
  MemoryPlan(const MemoryPlan&) = delete;
  MemoryPlan& operator=(const MemoryPlan&) = delete;

  // The bytes a request of `bytes` takes: rounded up to kAlignment.
  static size_t aligned(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

  // Asks for `bytes` in `category` ("parameters", "activations", ...), needed during
  // `lifetime`; returns a handle.
  size_t request(const std::string& category, size_t bytes, Lifetime lifetime = {});
  // One allocation per category from the backend.
  void allocate(Backend& backend);
  void* pointer(size_t handle) const;
  bool allocated() const { return backend_ != nullptr; }

  // Bytes per category (after alignment and sharing), for reports; valid before allocate().
  std::map<std::string, size_t> bytes_by_category() const;
  size_t total_bytes() const;
  // The most bytes of a category live at any one step: the least any layout can use.
  size_t peak_live_bytes(const std::string& category) const;
  // The base pointer and size of a category's block (e.g. all parameters, contiguous).
  void* category_base(const std::string& category) const;
  size_t category_bytes(const std::string& category) const;

 private:
  struct Request {
    std::string category;
    size_t bytes;  // aligned
    Lifetime lifetime;
    size_t offset = 0;
  };
  // Assigns offsets (and category sizes) when requests changed since the last layout.
  void layout() const;
  void layout_shared(const std::vector<size_t>& members, size_t& size) const;

  mutable std::vector<Request> requests_;
  mutable std::map<std::string, size_t> category_size_;
  mutable bool laid_out_ = true;
  std::map<std::string, void*> category_base_;
  Backend* backend_ = nullptr;
};

}  // namespace tb
