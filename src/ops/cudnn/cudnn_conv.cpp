#include "ops/cudnn/cudnn_conv.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/timer.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cudnn/cudnn_check.h"

namespace tb::gpu {
namespace {

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    case DType::f16: return CUDNN_DATA_HALF;
    default: TB_FAIL("cudnn: no convolution for {} tensors", dtype_name(t));
  }
}

// fp32 stays on FMA math; the 16-bit types may use anything (tensor cores).
bool math_allowed(DType t, cudnnMathType_t m) { return t != DType::f32 || m == CUDNN_FMA_MATH; }

// The fastest successful result the rules allow, or a deterministic one (no atomics, the
// same result every run) that is at most 10% slower; throws if none. Results come sorted
// by time.
template <class Perf>
const Perf& pick(const Perf* results, int count, DType t, const char* pass) {
  const Perf* fastest = nullptr;
  for (int i = 0; i < count; ++i) {
    const Perf& r = results[i];
    if (r.status != CUDNN_STATUS_SUCCESS || !math_allowed(t, r.mathType)) continue;
    if (!fastest) fastest = &r;
    if (r.determinism == CUDNN_DETERMINISTIC && r.time <= 1.1f * fastest->time) return r;
  }
  TB_CHECK(fastest, "cudnn: no usable {} algorithm for {} ({} tried)", pass, dtype_name(t), count);
  return *fastest;
}

// fp32 stays on FMA math (no TF32); 16-bit types may use tensor cores.
cudnnMathType_t make_math(DType t) {
  return t == DType::f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

}  // namespace

CudnnConvolutions::CudnnConvolutions(Backend& backend, cudaStream_t stream, WorkspaceFn workspace)
    : backend_(backend), stream_(stream), workspace_(std::move(workspace)) {
  TB_CUDNN_CHECK(cudnnCreate(&handle_));
  TB_CUDNN_CHECK(cudnnSetStream(handle_, stream_));
  int device = 0;
  TB_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  TB_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  device_key_ = fmt::format("{} sm_{}{} cudnn {}", prop.name, prop.major, prop.minor,
                            cudnnGetVersion());
}

CudnnConvolutions::~CudnnConvolutions() {
  for (auto& [key, p] : plans_) {
    cudnnDestroyTensorDescriptor(p.x);
    cudnnDestroyTensorDescriptor(p.y);
    cudnnDestroyFilterDescriptor(p.w);
    for (Pass& pass : p.pass)
      if (pass.conv) cudnnDestroyConvolutionDescriptor(pass.conv);
  }
  if (handle_) cudnnDestroy(handle_);
}

cudnnConvolutionDescriptor_t CudnnConvolutions::make_conv(DType t, const ConvGeometry& g) {
  cudnnConvolutionDescriptor_t c = nullptr;
  TB_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&c));
  TB_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(c, g.pad, g.pad, g.stride, g.stride, 1, 1,
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  TB_CUDNN_CHECK(cudnnSetConvolutionMathType(c, make_math(t)));
  return c;
}

CudnnConvolutions::Plan& CudnnConvolutions::plan(DType t, const ConvGeometry& g) {
  const std::array<int, 12> key{int(t), g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.stride, g.pad, g.P, g.Q};
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p;
  const cudnnDataType_t dt = cudnn_type(t);
  TB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  TB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  TB_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
  TB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NHWC, dt, g.N, g.C, g.H, g.W));
  TB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NHWC, dt, g.N, g.K, g.P, g.Q));
  TB_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, dt, CUDNN_TENSOR_NHWC, g.K, g.C, g.R, g.S));
  for (Pass& pass : p.pass) pass.conv = make_conv(t, g);
  return plans_.emplace(key, p).first->second;
}

const CudnnConvolutions::Pass* CudnnConvolutions::measured_sibling(DType t, const ConvGeometry& g,
                                                                   int pass) const {
  for (const auto& [key, p] : plans_) {
    const std::array<int, 12> mine{int(t), key[1], g.C, g.H, g.W, g.K, g.R, g.S, g.stride, g.pad, g.P, g.Q};
    if (key == mine && key[1] != g.N && p.pass[pass].found) return &p.pass[pass];
  }
  return nullptr;
}

bool CudnnConvolutions::adopt(DType t, Plan& p, int index, int algo, cudnnMathType_t math) {
  if (!math_allowed(t, math)) return false;
  Pass& pass = p.pass[index];
  TB_CUDNN_CHECK(cudnnSetConvolutionMathType(pass.conv, math));
  size_t bytes = 0;
  cudnnStatus_t status;
  if (index == 0)
    status = cudnnGetConvolutionForwardWorkspaceSize(handle_, p.x, p.w, pass.conv, p.y,
                                                     cudnnConvolutionFwdAlgo_t(algo), &bytes);
  else if (index == 1)
    status = cudnnGetConvolutionBackwardDataWorkspaceSize(
        handle_, p.w, p.y, pass.conv, p.x, cudnnConvolutionBwdDataAlgo_t(algo), &bytes);
  else
    status = cudnnGetConvolutionBackwardFilterWorkspaceSize(
        handle_, p.x, p.y, pass.conv, p.w, cudnnConvolutionBwdFilterAlgo_t(algo), &bytes);
  if (status != CUDNN_STATUS_SUCCESS) {
    TB_CUDNN_CHECK(cudnnSetConvolutionMathType(pass.conv, make_math(t)));
    return false;  // not for this shape: measure it
  }
  pass.algo = algo;
  pass.math = math;
  pass.workspace = bytes;
  pass.found = true;
  return true;
}

bool CudnnConvolutions::adopt_sibling(DType t, const ConvGeometry& g, Plan& p, int index) {
  const Pass* sibling = measured_sibling(t, g, index);
  return sibling && adopt(t, p, index, sibling->algo, sibling->math);
}

std::string CudnnConvolutions::cache_key(DType t, const ConvGeometry& g, int index) const {
  static const char* kPass[] = {"fprop", "dgrad", "wgrad"};
  return fmt::format("{}|{}|{}|n{} c{} h{} w{} k{} r{} s{} stride{} pad{}", device_key_,
                     dtype_name(t), kPass[index], g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.stride,
                     g.pad);
}

bool CudnnConvolutions::adopt_cached(DType t, const ConvGeometry& g, Plan& p, int index) {
  const auto hit = cache_.find(cache_key(t, g, index));
  if (!hit || !hit->is_object() || !hit->contains("algo") || !hit->contains("math"))
    return false;
  const auto& v = *hit;
  if (!v["algo"].is_number_integer() || !v["math"].is_number_integer()) return false;
  return adopt(t, p, index, v["algo"].get<int>(), cudnnMathType_t(v["math"].get<int>()));
}

// What the search may use: a quarter of the free memory, at most 256 MiB (algorithms that
// want more are not worth their memory at these sizes).
size_t CudnnConvolutions::find_limit() const {
  size_t free = 0, total = 0;
  TB_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return std::min<size_t>(free / 4, size_t(256) << 20);
}

template <class Perf, class Find>
void CudnnConvolutions::search(Plan& p, int index, DType t, const ConvGeometry& g,
                               size_t out_bytes, Find find) {
  static const char* kWhat[] = {"forward", "backward-data", "backward-filter"};
  Stopwatch clock;
  constexpr int kMax = 16;
  const size_t limit = find_limit();
  void* scratch = backend_.allocate(out_bytes);
  void* ws = backend_.allocate(limit);
  Perf results[kMax];
  int count = 0;
  find(results, kMax, count, scratch, ws, limit);
  TB_CUDA_CHECK(cudaStreamSynchronize(stream_));
  backend_.release(scratch);
  backend_.release(ws);
  const Perf& best = pick(results, count, t, kWhat[index]);
  Pass& pass = p.pass[index];
  pass.algo = int(best.algo);
  pass.workspace = best.memory;
  TB_CUDNN_CHECK(cudnnSetConvolutionMathType(pass.conv, best.mathType));
  pass.math = best.mathType;
  pass.found = true;
  cache_.store(cache_key(t, g, index), {{"algo", pass.algo}, {"math", int(pass.math)},
                                        {"ms", best.time}, {"workspace", best.memory}});
  ++searches_;
  search_seconds_ += clock.seconds();
}

void CudnnConvolutions::forward(DType t, const ConvGeometry& g, const void* x, const void* w,
                                void* y) {
  Plan& p = plan(t, g);
  Pass& pass = p.pass[0];
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  const float one = 1.0f, zero = 0.0f;
  if (!pass.found && !adopt_sibling(t, g, p, 0) && !adopt_cached(t, g, p, 0))
    search<Perf>(
        p, 0, t, g, size_t(g.N) * g.K * g.P * g.Q * dtype_size(t),
        [&](Perf* r, int n, int& count, void* out, void* ws, size_t limit) {
          TB_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
              handle_, p.x, x, p.w, w, pass.conv, p.y, out, n, &count, r, ws, limit));
        });
  void* ws = pass.workspace ? workspace_(pass.workspace) : nullptr;
  TB_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, p.x, x, p.w, w, pass.conv,
                                         cudnnConvolutionFwdAlgo_t(pass.algo), ws, pass.workspace,
                                         &zero, p.y, y));
}

void CudnnConvolutions::backward_data(DType t, const ConvGeometry& g, const void* dy, const void* w,
                                      void* dx, bool accumulate) {
  Plan& p = plan(t, g);
  Pass& pass = p.pass[1];
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  if (!pass.found && !adopt_sibling(t, g, p, 1) && !adopt_cached(t, g, p, 1))
    search<Perf>(
        p, 1, t, g, size_t(g.N) * g.C * g.H * g.W * dtype_size(t),
        [&](Perf* r, int n, int& count, void* out, void* ws, size_t limit) {
          TB_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
              handle_, p.w, w, p.y, dy, pass.conv, p.x, out, n, &count, r, ws, limit));
        });
  void* ws = pass.workspace ? workspace_(pass.workspace) : nullptr;
  TB_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.w, w, p.y, dy, pass.conv,
                                              cudnnConvolutionBwdDataAlgo_t(pass.algo), ws,
                                              pass.workspace, &beta, p.x, dx));
}

const void* CudnnConvolutions::backward_filter(DType t, const ConvGeometry& g, const void* x,
                                               const void* dy) {
  Plan& p = plan(t, g);
  Pass& pass = p.pass[2];
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  const float one = 1.0f, zero = 0.0f;
  // The filter gradient goes to the front of the workspace, cuDNN's scratch after it.
  const size_t w_bytes = (size_t(g.K) * g.C * g.R * g.S * dtype_size(t) + 255) / 256 * 256;
  if (!pass.found && !adopt_sibling(t, g, p, 2) && !adopt_cached(t, g, p, 2))
    search<Perf>(
        p, 2, t, g, w_bytes,
        [&](Perf* r, int n, int& count, void* out, void* ws, size_t limit) {
          TB_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
              handle_, p.x, x, p.y, dy, pass.conv, p.w, out, n, &count, r, ws, limit));
        });
  char* base = static_cast<char*>(workspace_(w_bytes + pass.workspace));
  void* ws = pass.workspace ? base + w_bytes : nullptr;
  TB_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, p.x, x, p.y, dy, pass.conv,
                                                cudnnConvolutionBwdFilterAlgo_t(pass.algo), ws,
                                                pass.workspace, &zero, p.w, base));
  return base;
}

}  // namespace tb::gpu
