// GpuBackend: memory, copies, checks, and every op that is not a convolution or a matrix
// product, as launches of our kernels on one stream. The step control (device schedule,
// dataset, graphs) is in gpu_step_control.cpp.
#include "ops/cuda/gpu_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/env_choice.h"
#include "ops/cuda/batchnorm_kernels.h"
#include "ops/cuda/conv_kernels.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise_kernels.h"
#include "ops/cuda/gpu_expect.h"
#include "ops/cuda/grad_clip_kernels.h"
#include "ops/cuda/loss_optimizer_kernels.h"
#include "ops/cuda/pool_kernels.h"

namespace tb::gpu {
namespace {

bool floating(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

}  // namespace

void require_gpu(const std::string& impl) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    (void)cudaGetLastError();  // clear the sticky error so later CPU work is unaffected
    throw InputError(fmt::format("--impl {} needs an NVIDIA GPU; none was found "
                                 "(cudaGetDeviceCount: {})",
                                 impl, err != cudaSuccess ? cudaGetErrorString(err) : "0 devices"));
  }
}

// ---- checks -----------------------------------------------------------------------------

// GPU_EXPECT and GPU_EXPECT_DTYPE: ops/cuda/gpu_expect.h.

// ---- lifetime and memory ----------------------------------------------------------------

GpuBackend::GpuBackend(const std::string& impl) : impl_(impl) {
  require_gpu(impl);
  TB_CUDA_CHECK(cudaSetDevice(device_));
  cudaDeviceProp prop{};
  TB_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  sm_count_ = prop.multiProcessorCount;
  device_name_ = prop.name;
  TB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  TB_CUDA_CHECK(cudaStreamCreateWithFlags(&side_stream_, cudaStreamNonBlocking));
  TB_CUDA_CHECK(cudaEventCreateWithFlags(&fork_event_, cudaEventDisableTiming));
  TB_CUDA_CHECK(cudaEventCreateWithFlags(&join_event_, cudaEventDisableTiming));
  const std::string copies = env_choice("TB_WEIGHT_COPIES", {"auto", "on", "off"});
  copies_rule_ = copies == "on"    ? CopiesRule::always
                 : copies == "off" ? CopiesRule::never
                                   : CopiesRule::automatic;
  // TB_BN_RELU_MASK=read: our fused batch norm + ReLU backward reads y for the ReLU's mask
  // even where it could rebuild it from x (for comparisons; gpu-notes v20).
  rebuild_relu_masks_ = env_choice("TB_BN_RELU_MASK", {"rebuild", "read"}) == "rebuild";
  // TB_GRADIENT_CONVERSIONS=each: every filter gradient converted by its own launch even
  // where the weight copies persist (for comparisons; deferred_filter_gradient).
  defer_gradients_ = env_choice("TB_GRADIENT_CONVERSIONS", {"auto", "each"}) == "auto";
  state_ = static_cast<GpuStepState*>(allocate_internal(sizeof(GpuStepState)));
  const GpuStepState initial{};
  copy_from_host(state_, &initial, sizeof(initial));
}

GpuBackend::~GpuBackend() {
  if (stream_) cudaStreamSynchronize(stream_);
  if (side_stream_) cudaStreamSynchronize(side_stream_);
  for (cudaGraphExec_t g : graphs_) cudaGraphExecDestroy(g);
  for (cudaEvent_t e : timing_events_) cudaEventDestroy(e);
  release_streaming();
  if (shadow_.buffer.ptr) cudaFree(shadow_.buffer.ptr);
  for (auto& [w, c] : weight_copies_)
    if (c.copy) cudaFree(c.copy);
  if (copy_table_) cudaFree(copy_table_);
  for (auto& [dw, g] : gradient_conversions_)
    if (g.krsc) cudaFree(g.krsc);
  if (gradient_table_) cudaFree(gradient_table_);
  for (void* p : {static_cast<void*>(state_), static_cast<void*>(lr_schedule_),
                  static_cast<void*>(momentum_schedule_), static_cast<void*>(dataset_images_),
                  static_cast<void*>(dataset_labels_), static_cast<void*>(epoch_order_),
                  workspace_.ptr, side_workspace_.ptr, clip_scratch_.ptr})
    if (p) cudaFree(p);
  for (cudaEvent_t e : {fork_event_, join_event_})
    if (e) cudaEventDestroy(e);
  if (side_stream_) cudaStreamDestroy(side_stream_);
  if (stream_) cudaStreamDestroy(stream_);
}

bool GpuBackend::supports(OpKind op, DType dtype) const {
  if (op == OpKind::sgd_update || op == OpKind::adam_update) return dtype == DType::f32;
  // Conv/linear + ReLU stay two nodes on the GPU (the ReLU usually fuses into batch norm).
  if (op == OpKind::conv2d_relu || op == OpKind::linear_relu) return false;
  return floating(dtype);
}

bool GpuBackend::capturing() const {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  TB_CUDA_CHECK(cudaStreamIsCapturing(stream_, &status));
  return status != cudaStreamCaptureStatusNone;
}

void* GpuBackend::allocate(size_t bytes) {
  TB_CHECK(!capturing(), "{}: a {}-byte allocation inside a captured step (a step must allocate "
           "nothing: run one uncaptured step first)", impl_, bytes);
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    throw InputError(fmt::format("{}: out of GPU memory allocating {:.1f} MiB ({:.1f} MiB in use "
                                 "by trainbench)", impl_, bytes / 1048576.0,
                                 bytes_in_use_ / 1048576.0));
  }
  TB_CUDA_CHECK(err);
  allocations_[p] = bytes;
  bytes_in_use_ += bytes;
  peak_bytes_ = std::max(peak_bytes_, bytes_in_use_);
  ++allocation_count_;
  ++weights_version_;
  return p;
}

void GpuBackend::release(void* ptr) {
  if (!ptr) return;
  auto it = allocations_.find(ptr);
  TB_CHECK(it != allocations_.end(), "{}: release of memory it did not allocate", impl_);
  releasing(ptr, it->second);
  it = allocations_.find(ptr);
  // Weights that lived in this memory: their copies (which would read freed memory) and
  // records go.
  const char* begin = static_cast<const char*>(ptr);
  const size_t size = it->second;
  auto inside = [&](const void* p) {
    return static_cast<const char*>(p) >= begin && static_cast<const char*>(p) < begin + size;
  };
  std::erase_if(own_bn_relu_forwards_, inside);
  if (std::any_of(weight_copies_.begin(), weight_copies_.end(),
                  [&](const auto& e) { return inside(e.first); })) {
    drop_persistent_copies();
    weight_copies_.clear();
    it = allocations_.find(ptr);
  }
  // Gradients that lived here: a pending conversion would write freed memory.
  if (std::any_of(gradient_conversions_.begin(), gradient_conversions_.end(),
                  [&](const auto& e) { return inside(e.first); })) {
    drop_deferred_gradients();
    gradient_conversions_.clear();
    it = allocations_.find(ptr);
  }
  bytes_in_use_ -= it->second;
  allocations_.erase(it);
  ++weights_version_;
  TB_CUDA_CHECK(cudaFree(ptr));
}

void GpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  ++weights_version_;
  TB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  TB_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the caller may reuse src at once
}

void GpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  convert_pending_gradients();
  TB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  TB_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void GpuBackend::fill_zero(const Tensor& t) {
  if (!t.defined()) return;
  TB_CHECK(t.contiguous(), "{} fill_zero: tensor is not contiguous", impl_);
  convert_pending_gradients();  // first, or its conversion would overwrite the zeros later
  ++weights_version_;
  TB_CUDA_CHECK(cudaMemsetAsync(t.data, 0, t.bytes(), stream_));
}

void GpuBackend::synchronize() {
  convert_pending_gradients();
  TB_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void GpuBackend::finish_backward() { convert_pending_gradients(); }

void GpuBackend::mark(size_t point) {
  TB_CHECK(!capturing(), "{}: timing marks cannot be recorded inside a captured graph", impl_);
  while (timing_events_.size() <= point) {
    cudaEvent_t e = nullptr;
    TB_CUDA_CHECK(cudaEventCreate(&e));
    timing_events_.push_back(e);
  }
  TB_CUDA_CHECK(cudaEventRecord(timing_events_[point], stream_));
}

double GpuBackend::seconds_between(size_t from, size_t to) {
  TB_CHECK(from < timing_events_.size() && to < timing_events_.size(),
           "{}: timing mark {} or {} was never recorded", impl_, from, to);
  float ms = 0;
  TB_CUDA_CHECK(cudaEventElapsedTime(&ms, timing_events_[from], timing_events_[to]));
  return 1e-3 * double(ms);
}

size_t GpuBackend::device_used_bytes() const {
  size_t free = 0, total = 0;
  TB_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return total - free;
}

void* GpuBackend::grow(Scratch& s, size_t bytes, const char* what) {
  if (bytes <= s.bytes) return s.ptr;
  TB_CHECK(!capturing(), "{}: the {} must grow to {} bytes inside a captured step", impl_, what,
           bytes);
  if (s.ptr) release(s.ptr);
  s.ptr = nullptr;
  s.bytes = 0;
  s.ptr = allocate(bytes);
  s.bytes = bytes;
  return s.ptr;
}

// Workspaces grow to whole MiB, no slack: they count in the step's peak memory, and growing
// again costs only a reallocation during the first, uncaptured steps.
static size_t whole_mib(size_t bytes) {
  const size_t mib = size_t(1) << 20;
  return (bytes + mib - 1) / mib * mib;
}

void* GpuBackend::workspace(size_t bytes) {
  if (bytes <= workspace_.bytes) return workspace_.ptr;
  return grow(workspace_, whole_mib(bytes), "workspace");
}

void GpuBackend::adopt_persistent_copies() {
  if (persistent_copies_ || copies_rule_ == CopiesRule::never) return;
  // The copies serve the step about to be captured: the weights the last uncaptured step
  // converted. Older entries (weights no longer converted) go.
  std::erase_if(weight_copies_, [&](const auto& e) { return e.second.step != steps_begun_; });
  if (weight_copies_.empty()) return;
  int64_t elements = 0;
  size_t bytes = 0;
  const DType t = weight_copies_.begin()->second.dtype;
  for (const auto& [w, c] : weight_copies_) {
    if (c.dtype != t) return;  // one table converts to one type
    elements += int64_t(c.K) * c.C * c.R * c.S;
  }
  // Against the memory in use now, between steps: the step's own (the first step's peak
  // may hold an algorithm search's scratch). The copies replace one conversion launch per
  // layer and pass with one per step, worth 1.5-2% at batch 512 (gpu-notes v15). They are
  // taken where they come to at least 1/64 of that memory, i.e. where the weights are large
  // beside the activations and their conversions weigh in the step: resnet50 at b512 (47
  // MiB of copies beside 6.4 GiB), whose peak sits within 15 MiB of PyTorch's, stays
  // without them.
  constexpr size_t kMemoryPerCopyByte = 64;
  bytes = size_t(elements) * dtype_size(t);
  if (copies_rule_ == CopiesRule::automatic && bytes * kMemoryPerCopyByte < bytes_in_use_) return;
  std::vector<KrscSegment> rows;
  for (auto& [w, c] : weight_copies_) {
    c.copy = allocate(size_t(c.K) * c.C * c.R * c.S * dtype_size(t));
    // The table's fp32 side is only read in this direction.
    rows.push_back({const_cast<float*>(static_cast<const float*>(w)), c.copy, c.K, c.C, c.R, c.S});
  }
  copy_table_ = upload_segment_table(rows, copy_blocks_);
  copy_count_ = int(rows.size());
  copy_dtype_ = t;
  copies_version_ = ~uint64_t(0);
  persistent_copies_ = true;
}

KrscSegment* GpuBackend::upload_segment_table(std::vector<KrscSegment>& rows, int64_t& blocks) {
  blocks = 0;
  for (KrscSegment& r : rows) {
    r.begin = blocks;
    blocks += krsc_blocks(r.K, r.C, r.R, r.S);
  }
  auto* table = static_cast<KrscSegment*>(allocate(sizeof(KrscSegment) * rows.size()));
  copy_from_host(table, rows.data(), sizeof(KrscSegment) * rows.size());
  return table;
}

void GpuBackend::drop_persistent_copies() {
  if (!persistent_copies_) return;
  persistent_copies_ = false;  // first: release() below must not come back here
  drop_deferred_gradients();
  for (auto& [w, c] : weight_copies_)
    if (c.copy) release(c.copy);
  release(copy_table_);
  weight_copies_.clear();
  copy_table_ = nullptr;
  copy_count_ = 0;
  copy_blocks_ = 0;
}

void GpuBackend::adopt_deferred_gradients() {
  if (deferred_gradients_ || !defer_gradients_ || !persistent_copies_) return;
  // The gradients the last uncaptured step converted, all of one type.
  std::erase_if(gradient_conversions_,
                [&](const auto& e) { return e.second.step != steps_begun_; });
  if (gradient_conversions_.empty()) return;
  const DType t = gradient_conversions_.begin()->second.dtype;
  for (const auto& [dw, g] : gradient_conversions_)
    if (g.dtype != t) return;
  std::vector<KrscSegment> rows;
  for (auto& [dw, g] : gradient_conversions_) {
    g.krsc = allocate(size_t(g.K) * g.C * g.R * g.S * dtype_size(t));
    rows.push_back({dw, g.krsc, g.K, g.C, g.R, g.S});
  }
  gradient_table_ = upload_segment_table(rows, gradient_blocks_);
  gradient_count_ = int(rows.size());
  gradient_dtype_ = t;
  gradients_written_ = 0;
  deferred_gradients_ = true;
}

void GpuBackend::drop_deferred_gradients() {
  if (!deferred_gradients_) return;
  // Called while memory the gradients or weights live in is being released: a conversion
  // still pending would write there, so it is dropped with them.
  gradients_written_ = 0;
  deferred_gradients_ = false;  // first: release() below must not come back here
  for (auto& [dw, g] : gradient_conversions_)
    if (g.krsc) release(g.krsc);
  release(gradient_table_);
  gradient_conversions_.clear();
  gradient_table_ = nullptr;
  gradient_count_ = 0;
  gradient_blocks_ = 0;
}

void* GpuBackend::deferred_filter_gradient(float* dw, DType t, int K, int C, int R, int S) {
  if (!deferred_gradients_) {
    if (defer_gradients_ && !capturing())
      gradient_conversions_[dw] = GradientConversion{t, K, C, R, S, steps_begun_};
    return nullptr;
  }
  auto known = gradient_conversions_.find(dw);
  if (known == gradient_conversions_.end()) return nullptr;
  GradientConversion& g = known->second;
  if (g.dtype != t || g.K != K || g.C != C || g.R != R || g.S != S) return nullptr;
  if (!g.written) ++gradients_written_;
  g.written = true;
  return g.krsc;
}

void GpuBackend::convert_pending_gradients() {
  if (gradients_written_ == 0) return;
  if (gradients_written_ == gradient_count_)
    weights_from_krsc(gradient_dtype_, gradient_table_, gradient_count_, gradient_blocks_, stream_);
  for (auto& [dw, g] : gradient_conversions_) {
    if (g.written && gradients_written_ < gradient_count_)
      weights_from_krsc(g.dtype, g.krsc, dw, g.K, g.C, g.R, g.S, stream_);
    g.written = false;
  }
  gradients_written_ = 0;
}

void* GpuBackend::side_workspace(size_t bytes) {
  if (bytes <= side_workspace_.bytes) return side_workspace_.ptr;
  return grow(side_workspace_, whole_mib(bytes), "side stream's workspace");
}

void GpuBackend::fork_side() {
  TB_CUDA_CHECK(cudaEventRecord(fork_event_, stream_));
  TB_CUDA_CHECK(cudaStreamWaitEvent(side_stream_, fork_event_, 0));
}

void GpuBackend::join_side() {
  TB_CUDA_CHECK(cudaEventRecord(join_event_, side_stream_));
  TB_CUDA_CHECK(cudaStreamWaitEvent(stream_, join_event_, 0));
}

const void* GpuBackend::krsc_weights(const Tensor& w, DType t, int K, int C, int R, int S,
                                     bool reuse) {
  GPU_EXPECT(w, int64_t(K) * C * R * S, "w");
  GPU_EXPECT_DTYPE(w, DType::f32, "w (fp32 master weights)");
  auto known = weight_copies_.find(w.data);
  const bool same = known != weight_copies_.end() && known->second.dtype == t &&
                    known->second.K == K && known->second.C == C && known->second.R == R &&
                    known->second.S == S;
  if (persistent_copies_ && same) {
    if (copies_version_ != weights_version_) {
      weights_to_krsc(copy_dtype_, copy_table_, copy_count_, copy_blocks_, stream_);
      copies_version_ = weights_version_;
    }
    return known->second.copy;
  }
  if (!persistent_copies_) weight_copies_[w.data] = WeightCopy{t, K, C, R, S, steps_begun_};
  const size_t bytes = size_t(w.numel()) * dtype_size(t);
  Shadow& sh = shadow_;
  if (reuse && sh.source == w.data && sh.dtype == t && sh.version == weights_version_)
    return sh.buffer.ptr;
  // Growing allocates, which advances weights_version_: the version is taken after it.
  void* out = grow(sh.buffer, bytes, "16-bit weight copy");
  weights_to_krsc(t, w.ptr<float>(), out, K, C, R, S, stream_);
  sh.source = w.data;
  sh.dtype = t;
  sh.version = weights_version_;
  return out;
}

// ---- elementwise ------------------------------------------------------------------------

void GpuBackend::relu_forward(const Tensor& x, const Tensor& y) {
  GPU_EXPECT(x, x.numel(), "x");
  GPU_EXPECT(y, x.numel(), "y");
  GPU_EXPECT_DTYPE(y, x.dtype, "y");
  if (library_relu_forward(x.dtype, x.data, y.data, x.numel())) return;
  gpu::relu_forward(x.dtype, x.data, y.data, x.numel(), stream_);
}

void GpuBackend::relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx,
                               bool accumulate_dx) {
  if (!dx.defined()) return;
  GPU_EXPECT(y, y.numel(), "y");
  GPU_EXPECT(dy, y.numel(), "dy");
  GPU_EXPECT(dx, y.numel(), "dx");
  GPU_EXPECT_DTYPE(dx, y.dtype, "dx");
  if (library_relu_backward(y.dtype, y.data, dy.data, dx.data, y.numel(), accumulate_dx)) return;
  gpu::relu_backward(y.dtype, y.data, dy.data, dx.data, y.numel(), accumulate_dx, stream_);
}

void GpuBackend::add_forward(const Tensor& a, const Tensor& b, const Tensor& y) {
  GPU_EXPECT(a, a.numel(), "a");
  GPU_EXPECT(b, a.numel(), "b");
  GPU_EXPECT(y, a.numel(), "y");
  gpu::add_forward(a.dtype, a.data, b.data, y.data, a.numel(), stream_);
}

void GpuBackend::copy(const Tensor& src, const Tensor& dst, bool accumulate) {
  convert_pending_gradients();  // src may be a parameter gradient
  GPU_EXPECT(src, src.numel(), "src");
  GPU_EXPECT(dst, src.numel(), "dst");
  TB_CHECK(floating(src.dtype) && floating(dst.dtype), "{} copy: {} -> {}", impl_,
           dtype_name(src.dtype), dtype_name(dst.dtype));
  const bool src4 = src.shape.rank == 4, dst4 = dst.shape.rank == 4;
  if (src4 && !dst4) {  // flatten: channels-last -> C,H,W features
    const Shape& s = src.shape;
    nhwc_to_flat(src.dtype, src.data, dst.dtype, dst.data, int(s[0]), int(s[1]), int(s[2]),
                 int(s[3]), accumulate, stream_);
  } else if (!src4 && dst4) {  // unflatten, or an NCHW batch into the graph's input
    const Shape& s = dst.shape;
    flat_to_nhwc(src.dtype, src.data, dst.dtype, dst.data, int(s[0]), int(s[1]), int(s[2]),
                 int(s[3]), accumulate, stream_);
  } else {
    convert_copy(src.dtype, src.data, dst.dtype, dst.data, src.numel(), accumulate, stream_);
  }
}

void GpuBackend::dropout_forward(const DropoutParams& p, const Tensor& x, const Tensor& y,
                                 const Tensor& mask) {
  TB_CHECK(p.p >= 0.0f && p.p <= 1.0f, "{} dropout: p = {} is outside [0, 1]", impl_, p.p);
  GPU_EXPECT(x, p.numel, "x");
  GPU_EXPECT(y, p.numel, "y");
  GPU_EXPECT(mask, p.numel, "mask");
  GPU_EXPECT_DTYPE(mask, DType::u8, "mask");
  const bool planar = x.shape.rank == 4;
  const int channels = planar ? int(x.shape[1]) : 1;
  const int64_t hw = planar ? x.shape[2] * x.shape[3] : 1;
  gpu::dropout_forward(x.dtype, p, channels, hw, x.data, y.data, mask.ptr<uint8_t>(),
                       kernel_state(), stream_);
}

void GpuBackend::dropout_backward(const DropoutParams& p, const Tensor& dy, const Tensor& mask,
                                  const Tensor& dx, bool accumulate_dx) {
  if (!dx.defined()) return;
  GPU_EXPECT(dy, p.numel, "dy");
  GPU_EXPECT(mask, p.numel, "mask");
  GPU_EXPECT(dx, p.numel, "dx");
  gpu::dropout_backward(dy.dtype, p, dy.data, mask.ptr<uint8_t>(), dx.data, accumulate_dx,
                        stream_);
}

// ---- pooling ----------------------------------------------------------------------------

namespace {
void check_pool(const std::string& impl, const Pool2dParams& p) {
  TB_CHECK(p.kernel > 0 && p.stride > 0 && p.pad >= 0 && 2 * p.pad <= p.kernel,
           "{} pooling: bad params kernel={} stride={} pad={}", impl, p.kernel, p.stride, p.pad);
  TB_CHECK(p.P() > 0 && p.Q() > 0, "{} pooling: a {}x{} window does not fit a {}x{} input", impl,
           p.kernel, p.kernel, p.H, p.W);
}
}  // namespace

void GpuBackend::max_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) {
  check_pool(impl_, p);
  GPU_EXPECT(x, p.x_numel(), "x");
  GPU_EXPECT(y, p.y_numel(), "y");
  if (library_pool2d_forward(x.dtype, true, p, x.data, y.data)) return;
  gpu::max_pool2d_forward(x.dtype, p, x.data, y.data, stream_);
}

void GpuBackend::max_pool2d_backward(const Pool2dParams& p, const Tensor& x, const Tensor&,
                                     const Tensor& dy, const Tensor& dx, bool accumulate_dx) {
  if (!dx.defined()) return;
  check_pool(impl_, p);
  GPU_EXPECT(x, p.x_numel(), "x");
  GPU_EXPECT(dy, p.y_numel(), "dy");
  GPU_EXPECT(dx, p.x_numel(), "dx");
  gpu::max_pool2d_backward(x.dtype, p, x.data, dy.data, dx.data, accumulate_dx, stream_);
}

void GpuBackend::avg_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) {
  check_pool(impl_, p);
  GPU_EXPECT(x, p.x_numel(), "x");
  GPU_EXPECT(y, p.y_numel(), "y");
  if (library_pool2d_forward(x.dtype, false, p, x.data, y.data)) return;
  gpu::avg_pool2d_forward(x.dtype, p, x.data, y.data, stream_);
}

void GpuBackend::avg_pool2d_backward(const Pool2dParams& p, const Tensor& dy, const Tensor& dx,
                                     bool accumulate_dx) {
  if (!dx.defined()) return;
  check_pool(impl_, p);
  GPU_EXPECT(dy, p.y_numel(), "dy");
  GPU_EXPECT(dx, p.x_numel(), "dx");
  if (library_avg_pool2d_backward(dy.dtype, p, dy.data, dx.data, accumulate_dx)) return;
  gpu::avg_pool2d_backward(dy.dtype, p, dy.data, dx.data, accumulate_dx, stream_);
}

void GpuBackend::global_avg_pool_forward(const GlobalPoolParams& p, const Tensor& x,
                                         const Tensor& y) {
  GPU_EXPECT(x, int64_t(p.N) * p.C * p.H * p.W, "x");
  GPU_EXPECT(y, int64_t(p.N) * p.C, "y");
  if (library_global_avg_pool_forward(x.dtype, p, x.data, y.data)) return;
  gpu::global_avg_pool_forward(x.dtype, p, x.data, y.data, stream_);
}

void GpuBackend::global_avg_pool_backward(const GlobalPoolParams& p, const Tensor& dy,
                                          const Tensor& dx, bool accumulate_dx) {
  if (!dx.defined()) return;
  GPU_EXPECT(dy, int64_t(p.N) * p.C, "dy");
  GPU_EXPECT(dx, int64_t(p.N) * p.C * p.H * p.W, "dx");
  if (library_global_avg_pool_backward(dy.dtype, p, dy.data, dx.data, accumulate_dx)) return;
  gpu::global_avg_pool_backward(dy.dtype, p, dy.data, dx.data, accumulate_dx, stream_);
}

// ---- batch norm -------------------------------------------------------------------------

void GpuBackend::batch_norm_forward_train(const BatchNormParams& p, const Tensor& x,
                                          const Tensor& gamma, const Tensor& beta, const Tensor& y,
                                          const Tensor& running_mean, const Tensor& running_var,
                                          const Tensor& save_mean, const Tensor& save_invstd) {
  const int64_t rows = int64_t(p.N) * p.spatial;
  TB_CHECK(rows > 1, "batch norm in training needs more than 1 value per channel, got N={} x {}",
           p.N, p.spatial);
  GPU_EXPECT(x, p.numel(), "x");
  GPU_EXPECT(y, p.numel(), "y");
  for (const Tensor* t : {&gamma, &beta, &running_mean, &running_var, &save_mean, &save_invstd}) {
    GPU_EXPECT(*t, p.C, "a per-channel tensor");
    GPU_EXPECT_DTYPE(*t, DType::f32, "a per-channel tensor");
  }
  if (library_batch_norm_forward_train(x.dtype, p, x.data, gamma.ptr<float>(), beta.ptr<float>(),
                                       nullptr, false, y.data, running_mean.ptr<float>(),
                                       running_var.ptr<float>(), save_mean.ptr<float>(),
                                       save_invstd.ptr<float>()))
    return;
  void* ws = workspace(batch_norm_workspace_bytes(rows, p.C));
  gpu::batch_norm_forward_train(x.dtype, p, x.data, gamma.ptr<float>(), beta.ptr<float>(), y.data,
                                running_mean.ptr<float>(), running_var.ptr<float>(),
                                save_mean.ptr<float>(), save_invstd.ptr<float>(), ws, stream_);
}

void GpuBackend::batch_norm_forward_eval(const BatchNormParams& p, const Tensor& x,
                                         const Tensor& gamma, const Tensor& beta,
                                         const Tensor& running_mean, const Tensor& running_var,
                                         const Tensor& y) {
  GPU_EXPECT(x, p.numel(), "x");
  GPU_EXPECT(y, p.numel(), "y");
  for (const Tensor* t : {&gamma, &beta, &running_mean, &running_var}) {
    GPU_EXPECT(*t, p.C, "a per-channel tensor");
    GPU_EXPECT_DTYPE(*t, DType::f32, "a per-channel tensor");
  }
  void* ws = workspace(batch_norm_workspace_bytes(int64_t(p.N) * p.spatial, p.C));
  gpu::batch_norm_forward_eval(x.dtype, p, x.data, gamma.ptr<float>(), beta.ptr<float>(),
                               running_mean.ptr<float>(), running_var.ptr<float>(), y.data, ws,
                               stream_);
}

void GpuBackend::batch_norm_backward(const BatchNormParams& p, const Tensor& x, const Tensor& gamma,
                                     const Tensor& save_mean, const Tensor& save_invstd,
                                     const Tensor& dy, const Tensor& dx, const Tensor& dgamma,
                                     const Tensor& dbeta, bool accumulate_dx) {
  GPU_EXPECT(x, p.numel(), "x");
  GPU_EXPECT(dy, p.numel(), "dy");
  if (dx.defined()) GPU_EXPECT(dx, p.numel(), "dx");
  for (const Tensor* t : {&gamma, &save_mean, &save_invstd, &dgamma, &dbeta}) {
    GPU_EXPECT(*t, p.C, "a per-channel tensor");
    GPU_EXPECT_DTYPE(*t, DType::f32, "a per-channel tensor");
  }
  if (library_batch_norm_backward(x.dtype, p, x.data, gamma.ptr<float>(), save_mean.ptr<float>(),
                                  save_invstd.ptr<float>(), nullptr, dy.data,
                                  dx.defined() ? dx.data : nullptr, dgamma.ptr<float>(),
                                  dbeta.ptr<float>(), accumulate_dx, nullptr, false, false))
    return;
  void* ws = workspace(batch_norm_workspace_bytes(int64_t(p.N) * p.spatial, p.C));
  gpu::batch_norm_backward(x.dtype, p, x.data, gamma.ptr<float>(), save_mean.ptr<float>(),
                           save_invstd.ptr<float>(), dy.data, dx.defined() ? dx.data : nullptr,
                           dgamma.ptr<float>(), dbeta.ptr<float>(), accumulate_dx, ws, stream_);
}

// ---- batch norm fused with ReLU (and residual add) --------------------------------------

void GpuBackend::batch_norm_relu_forward_train(const BatchNormParams& p, const Tensor& x,
                                               const Tensor& gamma, const Tensor& beta,
                                               const Tensor& residual, const Tensor& y,
                                               const Tensor& running_mean,
                                               const Tensor& running_var,
                                               const Tensor& save_mean,
                                               const Tensor& save_invstd) {
  const int64_t rows = int64_t(p.N) * p.spatial;
  TB_CHECK(rows > 1, "batch norm in training needs more than 1 value per channel, got N={} x {}",
           p.N, p.spatial);
  GPU_EXPECT(x, p.numel(), "x");
  GPU_EXPECT(y, p.numel(), "y");
  GPU_EXPECT_DTYPE(y, x.dtype, "y");
  if (residual.defined()) {
    GPU_EXPECT(residual, p.numel(), "residual");
    GPU_EXPECT_DTYPE(residual, x.dtype, "residual");
  }
  for (const Tensor* t : {&gamma, &beta, &running_mean, &running_var, &save_mean, &save_invstd}) {
    GPU_EXPECT(*t, p.C, "a per-channel tensor");
    GPU_EXPECT_DTYPE(*t, DType::f32, "a per-channel tensor");
  }
  if (library_batch_norm_forward_train(x.dtype, p, x.data, gamma.ptr<float>(), beta.ptr<float>(),
                                       residual.defined() ? residual.data : nullptr, true, y.data,
                                       running_mean.ptr<float>(), running_var.ptr<float>(),
                                       save_mean.ptr<float>(), save_invstd.ptr<float>())) {
    own_bn_relu_forwards_.erase(save_mean.data);
    return;
  }
  if (residual.defined() || !rebuild_relu_masks_)
    own_bn_relu_forwards_.erase(save_mean.data);
  else
    own_bn_relu_forwards_.insert(save_mean.data);
  void* ws = workspace(batch_norm_workspace_bytes(rows, p.C));
  gpu::batch_norm_relu_forward_train(x.dtype, p, x.data, gamma.ptr<float>(), beta.ptr<float>(),
                                     residual.defined() ? residual.data : nullptr, y.data,
                                     running_mean.ptr<float>(), running_var.ptr<float>(),
                                     save_mean.ptr<float>(), save_invstd.ptr<float>(), ws, stream_);
}

void GpuBackend::batch_norm_relu_forward_eval(const BatchNormParams& p, const Tensor& x,
                                              const Tensor& gamma, const Tensor& beta,
                                              const Tensor& residual, const Tensor& running_mean,
                                              const Tensor& running_var, const Tensor& y) {
  GPU_EXPECT(x, p.numel(), "x");
  GPU_EXPECT(y, p.numel(), "y");
  GPU_EXPECT_DTYPE(y, x.dtype, "y");
  if (residual.defined()) {
    GPU_EXPECT(residual, p.numel(), "residual");
    GPU_EXPECT_DTYPE(residual, x.dtype, "residual");
  }
  for (const Tensor* t : {&gamma, &beta, &running_mean, &running_var}) {
    GPU_EXPECT(*t, p.C, "a per-channel tensor");
    GPU_EXPECT_DTYPE(*t, DType::f32, "a per-channel tensor");
  }
  void* ws = workspace(batch_norm_workspace_bytes(int64_t(p.N) * p.spatial, p.C));
  gpu::batch_norm_relu_forward_eval(x.dtype, p, x.data, gamma.ptr<float>(), beta.ptr<float>(),
                                    running_mean.ptr<float>(), running_var.ptr<float>(),
                                    residual.defined() ? residual.data : nullptr, y.data, ws,
                                    stream_);
}

void GpuBackend::batch_norm_relu_backward(const BatchNormParams& p, const Tensor& x,
                                          const Tensor& gamma, const Tensor& beta,
                                          const Tensor& save_mean, const Tensor& save_invstd,
                                          const Tensor& y, const Tensor& dy, const Tensor& dx,
                                          const Tensor& dgamma, const Tensor& dbeta,
                                          const Tensor& dresidual, bool accumulate_dx,
                                          bool accumulate_dresidual) {
  GPU_EXPECT(x, p.numel(), "x");
  for (const Tensor* t : {&y, &dy, &dx, &dresidual}) {
    if (!t->defined() && (t == &dx || t == &dresidual)) continue;
    GPU_EXPECT(*t, p.numel(), "an activation or its gradient");
    GPU_EXPECT_DTYPE(*t, x.dtype, "an activation or its gradient");
  }
  for (const Tensor* t : {&gamma, &beta, &save_mean, &save_invstd, &dgamma, &dbeta}) {
    GPU_EXPECT(*t, p.C, "a per-channel tensor");
    GPU_EXPECT_DTYPE(*t, DType::f32, "a per-channel tensor");
  }
  if (library_batch_norm_backward(x.dtype, p, x.data, gamma.ptr<float>(), save_mean.ptr<float>(),
                                  save_invstd.ptr<float>(), y.data, dy.data,
                                  dx.defined() ? dx.data : nullptr, dgamma.ptr<float>(),
                                  dbeta.ptr<float>(), accumulate_dx,
                                  dresidual.defined() ? dresidual.data : nullptr,
                                  accumulate_dresidual, true))
    return;
  void* ws = workspace(batch_norm_workspace_bytes(int64_t(p.N) * p.spatial, p.C));
  // The mask comes from x where our forward, without a residual, wrote these statistics.
  const float* mask_beta =
      own_bn_relu_forwards_.count(save_mean.data) ? beta.ptr<float>() : nullptr;
  gpu::batch_norm_relu_backward(
      x.dtype, p, x.data, gamma.ptr<float>(), mask_beta, save_mean.ptr<float>(),
      save_invstd.ptr<float>(), y.data, dy.data, dx.defined() ? dx.data : nullptr,
      dgamma.ptr<float>(), dbeta.ptr<float>(), accumulate_dx,
      dresidual.defined() ? dresidual.data : nullptr, accumulate_dresidual, ws, stream_);
}

// ---- loss and optimizers ----------------------------------------------------------------

void GpuBackend::cross_entropy_forward(const CrossEntropyParams& p, const Tensor& logits,
                                       const Tensor& labels, const Tensor& probs,
                                       const Tensor& losses) {
  GPU_EXPECT(logits, int64_t(p.N) * p.classes, "logits");
  GPU_EXPECT(labels, p.N, "labels");
  GPU_EXPECT(probs, int64_t(p.N) * p.classes, "probs");
  GPU_EXPECT(losses, p.N, "losses");
  GPU_EXPECT_DTYPE(probs, DType::f32, "probs");
  GPU_EXPECT_DTYPE(losses, DType::f32, "losses");
  gpu::cross_entropy_forward(logits.dtype, p, logits.data, labels.ptr<int32_t>(),
                             probs.ptr<float>(), losses.ptr<float>(), stream_);
}

void GpuBackend::cross_entropy_backward(const CrossEntropyParams& p, const Tensor& probs,
                                        const Tensor& labels, const Tensor& dlogits) {
  GPU_EXPECT(probs, int64_t(p.N) * p.classes, "probs");
  GPU_EXPECT(labels, p.N, "labels");
  GPU_EXPECT(dlogits, int64_t(p.N) * p.classes, "dlogits");
  GPU_EXPECT_DTYPE(probs, DType::f32, "probs");
  gpu::cross_entropy_backward(dlogits.dtype, p, probs.ptr<float>(), labels.ptr<int32_t>(),
                              dlogits.data, kernel_state(), stream_);
}

void GpuBackend::clip_grad_norm(float max_norm, const std::vector<Tensor>& grads) {
  TB_CHECK(max_norm > 0, "{} clip_grad_norm: max_norm must be > 0, got {}", impl_, max_norm);
  convert_pending_gradients();
  int count = 0;
  for (const Tensor& g : grads) {
    GPU_EXPECT(g, g.numel(), "grad");
    GPU_EXPECT_DTYPE(g, DType::f32, "grad");
    count += gpu::clip_partial_count(g.numel());
  }
  if (count == 0) return;
  const size_t factor_at = size_t(count) * sizeof(double);
  char* scratch = static_cast<char*>(grow(clip_scratch_, factor_at + sizeof(float), "clip scratch"));
  double* partials = reinterpret_cast<double*>(scratch);
  float* factor = reinterpret_cast<float*>(scratch + factor_at);
  int at = 0;
  for (const Tensor& g : grads) {
    gpu::clip_sum_squares(g.ptr<float>(), g.numel(), partials + at, stream_);
    at += gpu::clip_partial_count(g.numel());
  }
  gpu::clip_factor(partials, count, max_norm, kernel_state(), factor, stream_);
  for (const Tensor& g : grads) gpu::clip_scale(g.ptr<float>(), g.numel(), factor, stream_);
}

void GpuBackend::sgd_update(const SgdUpdateParams& p, const Tensor& param, const Tensor& grad,
                            const Tensor& momentum_buffer) {
  GPU_EXPECT(param, p.n, "param");
  GPU_EXPECT(grad, p.n, "grad");
  GPU_EXPECT_DTYPE(param, DType::f32, "param");
  GPU_EXPECT_DTYPE(grad, DType::f32, "grad");
  convert_pending_gradients();
  float* buffer = nullptr;
  if (p.momentum != 0.0f) {
    GPU_EXPECT(momentum_buffer, p.n, "momentum_buffer");
    buffer = momentum_buffer.ptr<float>();
  }
  ++weights_version_;
  gpu::sgd_update(p, param.ptr<float>(), grad.ptr<float>(), buffer, kernel_state(), stream_);
}

void GpuBackend::sgd_update_spans(const SgdUpdateParams& p, const std::vector<SgdSpan>& spans) {
  convert_pending_gradients();
  gpu::SgdSpanTable table;
  auto flush = [&] {
    gpu::sgd_update_spans(p, table, kernel_state(), stream_);
    table.count = 0;
  };
  for (const SgdSpan& span : spans) {
    const int64_t n = span.param.numel();
    GPU_EXPECT(span.grad, n, "grad");
    GPU_EXPECT_DTYPE(span.param, DType::f32, "param");
    GPU_EXPECT_DTYPE(span.grad, DType::f32, "grad");
    if (p.momentum != 0.0f) GPU_EXPECT(span.momentum, n, "momentum_buffer");
    if (n == 0) continue;
    const int i = table.count++;
    table.param[i] = span.param.ptr<float>();
    table.grad[i] = span.grad.ptr<float>();
    table.buf[i] = p.momentum != 0.0f ? span.momentum.ptr<float>() : nullptr;
    table.n[i] = n;
    if (table.count == gpu::kMaxSgdSpans) flush();
  }
  if (table.count) flush();
  ++weights_version_;
}

void GpuBackend::adam_update(const AdamUpdateParams& p, const Tensor& param, const Tensor& grad,
                             const Tensor& exp_avg, const Tensor& exp_avg_sq) {
  TB_CHECK(p.step >= 1, "{} adam_update: step {} (steps count from 1)", impl_, p.step);
  GPU_EXPECT(param, p.n, "param");
  GPU_EXPECT(grad, p.n, "grad");
  GPU_EXPECT(exp_avg, p.n, "exp_avg");
  GPU_EXPECT(exp_avg_sq, p.n, "exp_avg_sq");
  for (const Tensor* t : {&param, &grad, &exp_avg, &exp_avg_sq})
    GPU_EXPECT_DTYPE(*t, DType::f32, "an optimizer tensor");
  convert_pending_gradients();
  ++weights_version_;
  gpu::adam_update(p, param.ptr<float>(), grad.ptr<float>(), exp_avg.ptr<float>(),
                   exp_avg_sq.ptr<float>(), kernel_state(), stream_);
}

}  // namespace tb::gpu
