// A memory plan: every buffer a model needs is requested up front, then one allocation per
// category is made and carved into aligned slices. After allocate(), nothing else is
// allocated, so a training step can run (and be captured as a CUDA graph) without touching
// the allocator.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace tb {

class Backend;

class MemoryPlan {
 public:
  static constexpr size_t kAlignment = 256;  // enough for AVX-512 and GPU coalescing

  MemoryPlan() = default;
  ~MemoryPlan();
  MemoryPlan(const MemoryPlan&) = delete;
  MemoryPlan& operator=(const MemoryPlan&) = delete;

  // Asks for `bytes` in `category` ("parameters", "activations", ...); returns a handle.
  size_t request(const std::string& category, size_t bytes);
  // One allocation per category from the backend.
  void allocate(Backend& backend);
  void* pointer(size_t handle) const;
  bool allocated() const { return backend_ != nullptr; }

  // Bytes per category (after alignment), for reports.
  std::map<std::string, size_t> bytes_by_category() const;
  size_t total_bytes() const;
  // The base pointer and size of a category's block (e.g. all parameters, contiguous).
  void* category_base(const std::string& category) const;
  size_t category_bytes(const std::string& category) const;

 private:
  struct Request {
    std::string category;
    size_t offset;
  };
  std::vector<Request> requests_;
  std::map<std::string, size_t> category_size_;
  std::map<std::string, void*> category_base_;
  Backend* backend_ = nullptr;
};

}  // namespace tb
