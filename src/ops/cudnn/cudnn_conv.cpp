#include "ops/cudnn/cudnn_conv.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
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

bool CudnnConvolutions::adopt_sibling(DType t, const ConvGeometry& g, Plan& p, int index) {
  const Pass* sibling = measured_sibling(t, g, index);
  if (!sibling) return false;
  Pass& pass = p.pass[index];
  TB_CUDNN_CHECK(cudnnSetConvolutionMathType(pass.conv, sibling->math));
  size_t bytes = 0;
  cudnnStatus_t status;
  if (index == 0)
    status = cudnnGetConvolutionForwardWorkspaceSize(handle_, p.x, p.w, pass.conv, p.y,
                                                     cudnnConvolutionFwdAlgo_t(sibling->algo), &bytes);
  else if (index == 1)
    status = cudnnGetConvolutionBackwardDataWorkspaceSize(
        handle_, p.w, p.y, pass.conv, p.x, cudnnConvolutionBwdDataAlgo_t(sibling->algo), &bytes);
  else
    status = cudnnGetConvolutionBackwardFilterWorkspaceSize(
        handle_, p.x, p.y, pass.conv, p.w, cudnnConvolutionBwdFilterAlgo_t(sibling->algo), &bytes);
  if (status != CUDNN_STATUS_SUCCESS) {
    TB_CUDNN_CHECK(cudnnSetConvolutionMathType(pass.conv, make_math(t)));
    return false;  // not for this shape: measure it
  }
  pass.algo = sibling->algo;
  pass.math = sibling->math;
  pass.workspace = bytes;
  pass.found = true;
  return true;
}

// What the search may use: a quarter of the free memory, at most 256 MiB (algorithms that
// want more are not worth their memory at these sizes).
size_t CudnnConvolutions::find_limit() const {
  size_t free = 0, total = 0;
  TB_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return std::min<size_t>(free / 4, size_t(256) << 20);
}

void CudnnConvolutions::forward(DType t, const ConvGeometry& g, const void* x, const void* w,
                                void* y) {
  Plan& p = plan(t, g);
  Pass& pass = p.pass[0];
  const size_t y_bytes = size_t(g.N) * g.K * g.P * g.Q * dtype_size(t);
  if (!pass.found && !adopt_sibling(t, g, p, 0)) {
    const size_t limit = find_limit();
    void* scratch = backend_.allocate(y_bytes);
    void* ws = backend_.allocate(limit);
    cudnnConvolutionFwdAlgoPerf_t results[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    TB_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
        handle_, p.x, x, p.w, w, pass.conv, p.y, scratch, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count,
        results, ws, limit));
    TB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    backend_.release(scratch);
    backend_.release(ws);
    const auto& best = pick(results, count, t, "forward");
    pass.algo = int(best.algo);
    pass.workspace = best.memory;
    TB_CUDNN_CHECK(cudnnSetConvolutionMathType(pass.conv, best.mathType));
    pass.math = best.mathType;
    pass.found = true;
  }
  const float one = 1.0f, zero = 0.0f;
  void* ws = pass.workspace ? workspace_(pass.workspace) : nullptr;
  TB_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, p.x, x, p.w, w, pass.conv,
                                         cudnnConvolutionFwdAlgo_t(pass.algo), ws, pass.workspace,
                                         &zero, p.y, y));
}

void CudnnConvolutions::backward_data(DType t, const ConvGeometry& g, const void* dy, const void* w,
                                      void* dx, bool accumulate) {
  Plan& p = plan(t, g);
  Pass& pass = p.pass[1];
  const size_t x_bytes = size_t(g.N) * g.C * g.H * g.W * dtype_size(t);
  if (!pass.found && !adopt_sibling(t, g, p, 1)) {
    const size_t limit = find_limit();
    void* scratch = backend_.allocate(x_bytes);
    void* ws = backend_.allocate(limit);
    cudnnConvolutionBwdDataAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    TB_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
        handle_, p.w, w, p.y, dy, pass.conv, p.x, scratch, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
        &count, results, ws, limit));
    TB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    backend_.release(scratch);
    backend_.release(ws);
    const auto& best = pick(results, count, t, "backward-data");
    pass.algo = int(best.algo);
    pass.workspace = best.memory;
    TB_CUDNN_CHECK(cudnnSetConvolutionMathType(pass.conv, best.mathType));
    pass.math = best.mathType;
    pass.found = true;
  }
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  void* ws = pass.workspace ? workspace_(pass.workspace) : nullptr;
  TB_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.w, w, p.y, dy, pass.conv,
                                              cudnnConvolutionBwdDataAlgo_t(pass.algo), ws,
                                              pass.workspace, &beta, p.x, dx));
}

const void* CudnnConvolutions::backward_filter(DType t, const ConvGeometry& g, const void* x,
                                               const void* dy) {
  Plan& p = plan(t, g);
  Pass& pass = p.pass[2];
  // The filter gradient goes to the front of the workspace, cuDNN's scratch after it.
  const size_t w_bytes = (size_t(g.K) * g.C * g.R * g.S * dtype_size(t) + 255) / 256 * 256;
  if (!pass.found && !adopt_sibling(t, g, p, 2)) {
    const size_t limit = find_limit();
    void* scratch = backend_.allocate(w_bytes);
    void* ws = backend_.allocate(limit);
    cudnnConvolutionBwdFilterAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int count = 0;
    TB_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        handle_, p.x, x, p.y, dy, pass.conv, p.w, scratch,
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, results, ws, limit));
    TB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    backend_.release(scratch);
    backend_.release(ws);
    const auto& best = pick(results, count, t, "backward-filter");
    pass.algo = int(best.algo);
    pass.workspace = best.memory;
    TB_CUDNN_CHECK(cudnnSetConvolutionMathType(pass.conv, best.mathType));
    pass.math = best.mathType;
    pass.found = true;
  }
  char* base = static_cast<char*>(workspace_(w_bytes + pass.workspace));
  void* ws = pass.workspace ? base + w_bytes : nullptr;
  const float one = 1.0f, zero = 0.0f;
  TB_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, p.x, x, p.y, dy, pass.conv,
                                                cudnnConvolutionBwdFilterAlgo_t(pass.algo), ws,
                                                pass.workspace, &zero, p.w, base));
  return base;
}

}  // namespace tb::gpu
