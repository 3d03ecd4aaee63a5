#include "core/memory_plan.h"

#include <algorithm>

#include "core/error.h"
#include "ops/backend.h"

namespace tb {

MemoryPlan::~MemoryPlan() {
  if (!backend_) return;
  for (auto& [name, base] : category_base_)
    if (base) backend_->release(base);
}

size_t MemoryPlan::request(const std::string& category, size_t bytes, Lifetime lifetime) {
  TB_CHECK(!backend_, "memory plan already allocated; cannot add '{}'", category);
  TB_CHECK(lifetime.first <= lifetime.last, "empty lifetime [{}, {}] for '{}'", lifetime.first,
           lifetime.last, category);
  requests_.push_back({category, aligned(bytes), lifetime});
  laid_out_ = false;
  return requests_.size() - 1;
}

void MemoryPlan::layout() const {
  if (laid_out_) return;
  std::map<std::string, std::vector<size_t>> members;
  for (size_t i = 0; i < requests_.size(); ++i) members[requests_[i].category].push_back(i);
  category_size_.clear();
  for (const auto& [category, list] : members) {
    size_t& size = category_size_[category];
    const bool shared = std::any_of(list.begin(), list.end(),
                                    [&](size_t i) { return !requests_[i].lifetime.whole(); });
    if (shared) {
      layout_shared(list, size);
      continue;
    }
    for (size_t i : list) {
      requests_[i].offset = size;
      size += requests_[i].bytes;
    }
  }
  laid_out_ = true;
}

// Greedy by size: the largest buffers are placed first, each at the lowest offset where it
// overlaps no placed buffer whose lifetime meets its own. Ties go by request order, so the
// layout is the same on every run.
void MemoryPlan::layout_shared(const std::vector<size_t>& members, size_t& size) const {
  std::vector<size_t> order = members;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests_[a].bytes > requests_[b].bytes; });
  std::vector<size_t> placed;
  std::vector<size_t> conflicts;
  for (size_t i : order) {
    Request& r = requests_[i];
    conflicts.clear();
    for (size_t j : placed)
      if (requests_[j].lifetime.overlaps(r.lifetime)) conflicts.push_back(j);
    std::sort(conflicts.begin(), conflicts.end(),
              [&](size_t a, size_t b) { return requests_[a].offset < requests_[b].offset; });
    size_t offset = 0;
    for (size_t j : conflicts) {
      if (offset + r.bytes <= requests_[j].offset) break;
      offset = std::max(offset, requests_[j].offset + requests_[j].bytes);
    }
    r.offset = offset;
    size = std::max(size, offset + r.bytes);
    placed.push_back(i);
  }
}

size_t MemoryPlan::peak_live_bytes(const std::string& category) const {
  size_t peak = 0;
  for (const Request& at : requests_) {
    if (at.category != category) continue;
    // The live set only grows at a request's first step, so the peak is at one of them.
    size_t live = 0;
    for (const Request& r : requests_)
      if (r.category == category && r.lifetime.first <= at.lifetime.first &&
          at.lifetime.first <= r.lifetime.last)
        live += r.bytes;
    peak = std::max(peak, live);
  }
  return peak;
}

void MemoryPlan::allocate(Backend& backend) {
  TB_CHECK(!backend_, "memory plan allocated twice");
  layout();
  backend_ = &backend;
  for (auto& [name, size] : category_size_) {
    void* base = size ? backend.allocate(size) : nullptr;
    category_base_[name] = base;
  }
}

void* MemoryPlan::pointer(size_t handle) const {
  TB_CHECK(backend_, "memory plan not allocated yet");
  TB_CHECK(handle < requests_.size(), "bad memory handle {}", handle);
  const Request& r = requests_[handle];
  return static_cast<char*>(category_base_.at(r.category)) + r.offset;
}

std::map<std::string, size_t> MemoryPlan::bytes_by_category() const {
  layout();
  return category_size_;
}

size_t MemoryPlan::total_bytes() const {
  layout();
  size_t total = 0;
  for (auto& [name, size] : category_size_) total += size;
  return total;
}

void* MemoryPlan::category_base(const std::string& category) const {
  auto it = category_base_.find(category);
  return it == category_base_.end() ? nullptr : it->second;
}

size_t MemoryPlan::category_bytes(const std::string& category) const {
  layout();
  auto it = category_size_.find(category);
  return it == category_size_.end() ? 0 : it->second;
}

}  // namespace tb
