#include "core/memory_plan.h"

#include "core/error.h"
#include "ops/backend.h"

namespace tb {

MemoryPlan::~MemoryPlan() {
  if (!backend_) return;
  for (auto& [name, base] : category_base_)
    if (base) backend_->release(base);
}

size_t MemoryPlan::request(const std::string& category, size_t bytes) {
  TB_CHECK(!backend_, "memory plan already allocated; cannot add '{}'", category);
  size_t& size = category_size_[category];
  const size_t offset = size;
  size += (bytes + kAlignment - 1) / kAlignment * kAlignment;
  requests_.push_back({category, offset});
  return requests_.size() - 1;
}

void MemoryPlan::allocate(Backend& backend) {
  TB_CHECK(!backend_, "memory plan allocated twice");
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

std::map<std::string, size_t> MemoryPlan::bytes_by_category() const { return category_size_; }

size_t MemoryPlan::total_bytes() const {
  size_t total = 0;
  for (auto& [name, size] : category_size_) total += size;
  return total;
}

void* MemoryPlan::category_base(const std::string& category) const {
  auto it = category_base_.find(category);
  return it == category_base_.end() ? nullptr : it->second;
}

size_t MemoryPlan::category_bytes(const std::string& category) const {
  auto it = category_size_.find(category);
  return it == category_size_.end() ? 0 : it->second;
}

}  // namespace tb
