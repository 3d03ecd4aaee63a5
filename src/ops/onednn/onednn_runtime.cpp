#include "ops/onednn/onednn_runtime.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace tb::onednn {

// --- Buffer ------------------------------------------------------------------------------

Buffer::Buffer(size_t bytes, size_t& allocation_count) : bytes_(bytes) {
  constexpr size_t kAlignment = 64;  // a cache line and an AVX-512 vector
  const size_t rounded = std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  data_ = std::aligned_alloc(kAlignment, rounded);
  TB_CHECK(data_ != nullptr, "onednn backend: out of host memory allocating {} bytes", bytes);
  ++allocation_count;
}

Buffer::~Buffer() { std::free(data_); }

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = o.bytes_;
  }
  return *this;
}

// --- Runtime -----------------------------------------------------------------------------

Runtime::Runtime(size_t& allocations)
    : engine(dnnl::engine::kind::cpu, 0), stream(engine), allocation_count(allocations) {
  const unsigned avx512_core = dnnl_cpu_isa_avx512_core;  // ISA values are feature supersets
  const unsigned isa = unsigned(dnnl::get_effective_cpu_isa());
  blocked_tag_ = (isa & avx512_core) == avx512_core ? memory::format_tag::nChw16c
                                                    : memory::format_tag::nChw8c;
}

void Runtime::reserve(Slot s, size_t bytes) {
  if (slots_[s].bytes() >= bytes) return;
  slots_[s] = Buffer();  // free first: the old contents are not needed
  slots_[s] = make_buffer(bytes);
}

dnnl::primitive_attr Runtime::attr() const {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

dnnl::primitive_attr Runtime::accumulate_attr() const {
  dnnl::primitive_attr a = attr();
  dnnl::post_ops ops;
  ops.append_sum(1.0f);
  a.set_post_ops(ops);
  return a;
}

// --- Exec --------------------------------------------------------------------------------

Exec::Exec(Runtime& rt, const dnnl::primitive_desc_base& pd,
           std::initializer_list<std::pair<int, memory::desc>> args)
    : primitive_(pd.get()) {
  ++rt.primitive_creations;
  for (const auto& [id, md] : args) args_.push_back({id, memory(md, rt.engine, DNNL_MEMORY_NONE), nullptr});
  const memory::desc scratch = pd.scratchpad_desc();
  if (scratch.get_size() > 0) {
    scratchpad_ = true;
    rt.reserve(kSlotScratch, scratch.get_size());
    args_.push_back({DNNL_ARG_SCRATCHPAD, memory(scratch, rt.engine, DNNL_MEMORY_NONE), nullptr});
  }
  for (const Arg& a : args_) c_args_.push_back({a.id, a.mem.get()});
}

void Exec::bind(int id, const void* ptr) {
  for (Arg& a : args_) {
    if (a.id != id) continue;
    // Re-pointing costs a library call (and zeroes a padded layout's padding), so only
    // when the buffer changed.
    if (a.bound != ptr) {
      a.bound = const_cast<void*>(ptr);
      a.mem.set_data_handle(a.bound);
    }
    return;
  }
  TB_FAIL("onednn: primitive has no argument {}", id);
}

void Exec::run(Runtime& rt) {
  if (scratchpad_) bind(DNNL_ARG_SCRATCHPAD, rt.slot(kSlotScratch));
  const dnnl_status_t status = dnnl_primitive_execute(primitive_.get(), rt.stream.get(),
                                                      int(c_args_.size()), c_args_.data());
  TB_CHECK(status == dnnl_success, "onednn: primitive execution failed (status {})", int(status));
}

Exec make_reorder(Runtime& rt, const memory::desc& src_md, const memory::desc& dst_md,
                  bool accumulate) {
  const dnnl::reorder::primitive_desc pd(rt.engine, src_md, rt.engine, dst_md,
                                         accumulate ? rt.accumulate_attr() : rt.attr());
  return Exec(rt, pd, {{DNNL_ARG_FROM, src_md}, {DNNL_ARG_TO, dst_md}});
}

// --- stages ------------------------------------------------------------------------------

InputStage::InputStage(Runtime& rt, const memory::desc& plain, const memory::desc& want,
                       Slot slot)
    : want_(want), slot_(slot) {
  if (plain == want) return;
  rt.reserve(slot, want.get_size());
  reorder_ = make_reorder(rt, plain, want);
}

const void* InputStage::stage(Runtime& rt, const void* plain) {
  if (!reorder_.ready()) return plain;
  reorder_.bind(DNNL_ARG_FROM, plain);
  reorder_.bind(DNNL_ARG_TO, rt.slot(slot_));
  reorder_.run(rt);
  return rt.slot(slot_);
}

OutputStage::OutputStage(Runtime& rt, const memory::desc& have, const memory::desc& plain,
                         Slot slot)
    : have_(have), plain_(plain), slot_(slot), same_layout_(have == plain) {
  if (!same_layout_) {
    rt.reserve(slot, have.get_size());
    write_ = make_reorder(rt, have, plain);
  }
}

void* OutputStage::target(Runtime& rt, void* plain, bool accumulate) {
  if (direct(accumulate)) return plain;
  if (accumulate && !add_.ready()) {
    rt.reserve(slot_, have_.get_size());
    add_ = make_reorder(rt, have_, plain_, /*accumulate=*/true);
  }
  return rt.slot(slot_);
}

void OutputStage::finish(Runtime& rt, void* plain, bool accumulate) {
  if (direct(accumulate)) return;
  Exec& exec = accumulate ? add_ : write_;
  exec.bind(DNNL_ARG_FROM, rt.slot(slot_));
  exec.bind(DNNL_ARG_TO, plain);
  exec.run(rt);
}

}  // namespace tb::onednn
