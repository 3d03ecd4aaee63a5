// The pieces every oneDNN op of the backend is built from: the engine and stream, counted
// buffers, the shared workspace, and Exec, a primitive bound to reusable memory objects.
//
// Why Exec and not dnnl::primitive::execute(stream, {args}): that call builds a hash map
// and a vector on every run. Exec builds its memory objects and its C argument array once;
// a run only re-points the memory objects whose buffer changed and calls the C API.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

namespace tb::onednn {

using dnnl::memory;

// Host memory owned by the backend (64-byte aligned), counted in the backend's
// allocation_count() so tests can see that a warmed-up step allocates nothing.
class Buffer {
 public:
  Buffer() = default;
  Buffer(size_t bytes, size_t& allocation_count);
  ~Buffer();
  Buffer(Buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), bytes_(o.bytes_) {}
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Temporary buffers shared by all ops (darknet's single workspace): a primitive and the
// reorders around it use at most one of each slot at a time, and ops run one after another.
// Each slot grows to the largest request, which only happens while primitives are created.
enum Slot : int {
  kSlotIn = 0,       // a reordered input (src, or diff_dst in backward)
  kSlotOut = 1,      // an output before it is reordered or added into the graph's tensor
  kSlotExtra = 2,    // a second staged operand: weight gradients, or a second input
  kSlotScratch = 3,  // oneDNN's scratchpad (user-managed mode)
  kSlotCount = 4
};

class Runtime {
 public:
  explicit Runtime(size_t& allocation_count);

  dnnl::engine engine;
  dnnl::stream stream;

  size_t& allocation_count;
  size_t primitive_creations = 0;

  Buffer make_buffer(size_t bytes) { return Buffer(bytes, allocation_count); }
  // The channel block of the blocked activation layout this CPU's kernels are fastest on:
  // nChw16c with AVX-512, nChw8c without.
  memory::format_tag blocked_tag() const { return blocked_tag_; }
  void reserve(Slot slot, size_t bytes);
  void* slot(Slot s) const { return slots_[s].data(); }

  // Attributes every primitive is created with: the scratchpad comes from kSlotScratch.
  dnnl::primitive_attr attr() const;
  // Same, with dst += result (reorders that accumulate into a gradient).
  dnnl::primitive_attr accumulate_attr() const;

 private:
  std::array<Buffer, kSlotCount> slots_;
  memory::format_tag blocked_tag_;
};

// A primitive with its arguments' memory objects. bind() points an argument at a buffer;
// run() executes it on the runtime's stream. A CPU stream with the OpenMP runtime runs the
// primitive on the calling thread and its OpenMP team: the results are there on return.
class Exec {
 public:
  Exec() = default;
  Exec(Runtime& rt, const dnnl::primitive_desc_base& pd,
       std::initializer_list<std::pair<int, memory::desc>> args);

  bool ready() const { return bool(primitive_); }
  void bind(int arg, const void* ptr);
  void run(Runtime& rt);

 private:
  struct Arg {
    int id;
    memory mem;
    void* bound;
  };
  dnnl::primitive primitive_;
  std::vector<Arg> args_;
  std::vector<dnnl_exec_arg_t> c_args_;
  bool scratchpad_ = false;
};

// Creates reorder src_md -> dst_md (accumulating into dst when `accumulate`).
Exec make_reorder(Runtime& rt, const memory::desc& src_md, const memory::desc& dst_md,
                  bool accumulate = false);

// An input the graph holds in a plain layout that a primitive wants in `want`: passed
// through when the layouts agree, else reordered into `slot`.
class InputStage {
 public:
  InputStage() = default;
  InputStage(Runtime& rt, const memory::desc& plain, const memory::desc& want, Slot slot);
  bool reorders() const { return reorder_.ready(); }
  const memory::desc& want() const { return want_; }
  // The pointer to give the primitive (runs the reorder if there is one).
  const void* stage(Runtime& rt, const void* plain);

 private:
  memory::desc want_;
  Slot slot_ = kSlotIn;
  Exec reorder_;
};

// An output the primitive writes in `have` and the graph wants in the plain layout,
// overwritten or accumulated into. The primitive writes to target(); finish() moves the
// result into the graph's tensor (a reorder, with a sum post-op when accumulating).
class OutputStage {
 public:
  OutputStage() = default;
  OutputStage(Runtime& rt, const memory::desc& have, const memory::desc& plain, Slot slot);
  void* target(Runtime& rt, void* plain, bool accumulate);
  void finish(Runtime& rt, void* plain, bool accumulate);

 private:
  bool direct(bool accumulate) const { return same_layout_ && !accumulate; }
  memory::desc have_, plain_;
  Slot slot_ = kSlotOut;
  bool same_layout_ = true;
  Exec write_, add_;  // created on first use: many outputs are never accumulated
};

}  // namespace tb::onednn
