#include "ops/onednn/onednn_state.h"

#include "core/error.h"

namespace tb::onednn {

OpKey& OpKey::operator<<(int64_t x) {
  TB_CHECK(n < int(v.size()), "onednn: op key longer than {} numbers", v.size());
  v[n++] = x;
  return *this;
}

size_t OpKeyHash::operator()(const OpKey& k) const {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the numbers
  for (int i = 0; i < k.n; ++i) h = (h ^ uint64_t(k.v[i])) * 0x100000001b3ull;
  return size_t(h);
}

const void* WeightCache::get(Runtime& rt, const void* plain_ptr, const memory::desc& plain,
                             const memory::desc& want) {
  if (plain == want) return plain_ptr;
  const char* src = static_cast<const char*>(plain_ptr);
  Copy* copy = nullptr;
  for (auto& c : copies_)
    if (c->src == src && c->want == want) copy = c.get();
  if (!copy) {
    copies_.push_back(std::make_unique<Copy>(
        Copy{src, plain.get_size(), want, rt.make_buffer(want.get_size()),
             make_reorder(rt, plain, want), true}));
    copy = copies_.back().get();
  }
  if (copy->stale) {
    copy->reorder.bind(DNNL_ARG_FROM, plain_ptr);
    copy->reorder.bind(DNNL_ARG_TO, copy->buffer.data());
    copy->reorder.run(rt);
    copy->stale = false;
  }
  return copy->buffer.data();
}

void WeightCache::note_write(const void* ptr, size_t bytes) {
  const char* begin = static_cast<const char*>(ptr);
  const char* end = begin + bytes;
  for (auto& c : copies_)
    if (c->src < end && begin < c->src + c->bytes) c->stale = true;
}

void WeightCache::forget(const char* begin, const char* end) {
  std::erase_if(copies_, [&](const std::unique_ptr<Copy>& c) {
    return c->src < end && begin < c->src + c->bytes;
  });
}

void State::forget_addresses(const void* ptr, size_t bytes) {
  const char* begin = static_cast<const char*>(ptr);
  weights.forget(begin, begin + bytes);
  for (auto& [key, plan] : plans) plan->forget_addresses(begin, begin + bytes);
}

}  // namespace tb::onednn
