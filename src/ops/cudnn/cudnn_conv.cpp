#include "ops/cudnn/cudnn_conv.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/env_choice.h"
#include "core/error.h"
#include "core/timer.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/gpu_timing.h"
#include "ops/cuda/strided_pixels_kernels.h"
#include "ops/cudnn/cudnn_check.h"
#include "ops/cudnn/cudnn_types.h"
#include "ops/cudnn/route_setting.h"

namespace tb::gpu {
namespace {

// fp32 stays on FMA math; the 16-bit types may use anything (tensor cores).
bool math_allowed(DType t, cudnnMathType_t m) { return t != DType::f32 || m == CUDNN_FMA_MATH; }

// Which measured algorithm a pass takes (TB_CUDNN_ALGOS, read once per backend):
// - deterministic (the default): the fastest, or a deterministic one (no atomics, the same
//   convolution results every run) that is at most 10% slower;
// - fastest: the fastest, deterministic or not (what PyTorch's cudnn.benchmark takes);
// - lean: of the deterministic ones at most 10% slower than the fastest, the one with the
//   smallest workspace (for peak memory).
// On an H100 with cuDNN 9 (docs/gpu-notes.md v11) the fastest algorithm was deterministic in
// all 132 searches of resnet18 b64/b512 and resnet50 b512, and the three policies ran
// resnet18 and resnet50 b512 within 0.6% of each other at the same peak memory: the default
// keeps the guarantee for free. Throws if none is usable. Results come sorted by time.
template <class Perf>
const Perf& pick(const Perf* results, int count, DType t, const char* pass, AlgoPolicy policy) {
  const Perf* fastest = nullptr;
  const Perf* chosen = nullptr;
  for (int i = 0; i < count; ++i) {
    const Perf& r = results[i];
    if (r.status != CUDNN_STATUS_SUCCESS || !math_allowed(t, r.mathType)) continue;
    if (!fastest) fastest = &r;
    if (policy == AlgoPolicy::fastest) return r;
    if (r.determinism != CUDNN_DETERMINISTIC || r.time > 1.1f * fastest->time) continue;
    if (policy == AlgoPolicy::deterministic) return r;
    if (!chosen || r.memory < chosen->memory) chosen = &r;
  }
  TB_CHECK(fastest, "cudnn: no usable {} algorithm for {} ({} tried)", pass, dtype_name(t), count);
  return chosen ? *chosen : *fastest;
}

// cuDNN's own timings of its candidates (cudnnFind*AlgorithmEx) carry about 0.1 ms of
// overhead each: at batch 64, where resnet18's convolutions take 10-30 us, they ranked the
// candidates by noise, and one search took an fp32 NCHW fallback (transposes and an FMA
// kernel, 115 us) over 17 us tensor-core kernels (docs/gpu-notes.md v16). So every usable
// candidate whose cuDNN time could still be the best is timed again here as the autotuner
// times our kernels (time_runs), its time replacing cuDNN's, and the results are sorted
// again.
constexpr int kTimedRuns = 5;
constexpr float kUntimed = 1e6f;  // added to cuDNN's time (ms) of a candidate not timed again

template <class Perf, class Run>
void retime(Perf* results, int count, DType t, size_t limit, cudaStream_t stream, void* out,
            void* ws, Run run) {
  float best = -1;
  for (int i = 0; i < count; ++i)
    if (results[i].status == CUDNN_STATUS_SUCCESS && math_allowed(t, results[i].mathType) &&
        (best < 0 || results[i].time < best))
      best = results[i].time;
  if (best < 0) return;
  for (int i = 0; i < count; ++i) {
    Perf& r = results[i];
    if (r.status != CUDNN_STATUS_SUCCESS || !math_allowed(t, r.mathType)) continue;
    if (r.memory > limit || r.time > 3 * best + 0.5f) {  // can't win even after the overhead
      r.time += kUntimed;  // ranked after every retimed one, order kept
      continue;
    }
    r.time = time_runs(stream, kTimedRuns, [&] { run(r, out, ws); });
  }
  std::stable_sort(results, results + count, [](const Perf& a, const Perf& b) {
    const bool ua = a.status == CUDNN_STATUS_SUCCESS, ub = b.status == CUDNN_STATUS_SUCCESS;
    return ua != ub ? ua : a.time < b.time;
  });
}

// TB_CUDNN_SEARCH_LOG=1: every search's candidates to stderr (time, workspace, determinism).
template <class Perf>
void log_search(const Perf* results, int count, const Perf& chosen, DType t, const char* pass,
                const ConvGeometry& g) {
  fmt::print(stderr, "cudnn search {} {} n{} c{} h{} w{} k{} r{} s{} stride{}:", dtype_name(t),
             pass, g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.stride);
  for (int i = 0; i < count; ++i) {
    const Perf& r = results[i];
    if (r.status != CUDNN_STATUS_SUCCESS) continue;
    const bool untimed = r.time >= kUntimed;
    fmt::print(stderr, " {}algo{}/m{} {:.3f}ms{} {}MiB{}", &r == &chosen ? "*" : "", int(r.algo),
               int(r.mathType), untimed ? r.time - kUntimed : r.time, untimed ? " (cuDNN's)" : "",
               (r.memory + (1 << 20) - 1) >> 20,
               r.determinism == CUDNN_DETERMINISTIC ? "" : " nondet");
  }
  fmt::print(stderr, "\n");
}

AlgoPolicy algo_policy_from_env() {
  const std::string v = env_choice("TB_CUDNN_ALGOS", {"deterministic", "fastest", "lean"});
  return v == "fastest" ? AlgoPolicy::fastest
         : v == "lean"  ? AlgoPolicy::lean
                        : AlgoPolicy::deterministic;
}

// fp32 stays on FMA math (no TF32); 16-bit types may use tensor cores.
cudnnMathType_t make_math(DType t) {
  return t == DType::f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// A 1x1 convolution with stride > 1 and no padding reads only every stride-th pixel. cuDNN's
// kernels for it can run at a tenth of its dense-GEMM speed (16 TFLOP/s on an H100 for
// resnet18's b512 shortcuts), so it may run as a gather of those pixels and a stride-1 1x1
// convolution on them (gathered_geometry()), whose data gradient is scattered back. By
// default every pass runs directly: in the whole-step comparisons so far (H100, 2026-12-06,
// docs/gpu-notes.md v8) neither the gathered route nor timing each pass's two routes made a
// resnet18 step faster, and timing them lengthened the first step. The gathered route stays
// selectable (TB_CUDNN_STRIDED_1X1, below) for comparisons, for every pass or for the forward
// alone (whose direct kernels are the slowest: ~130 us at b512 on the H100, gpu-notes v16).
bool strided_pointwise(const ConvGeometry& g) {
  return g.R == 1 && g.S == 1 && g.stride > 1 && g.pad == 0;
}
ConvGeometry gathered_geometry(const ConvGeometry& g) {
  return {g.N, g.C, g.P, g.Q, g.K, 1, 1, 1, 0, g.P, g.Q};
}

size_t round_up_256(size_t bytes) { return (bytes + 255) / 256 * 256; }
size_t image_offset(DType t, int n, int H, int W, int C) {
  return size_t(n) * H * W * C * dtype_size(t);
}
size_t activation_bytes(DType t, int N, int H, int W, int C) {
  return round_up_256(image_offset(t, N, H, W, C));
}
size_t filter_bytes(DType t, const ConvGeometry& g) {
  return round_up_256(size_t(g.K) * g.C * g.R * g.S * dtype_size(t));
}

// The gathered pixels take workspace memory; they go in chunks of images of at most 16 MiB
// (resnet18's largest shortcut at batch 512 in one), so that the gathered route never raises
// the step's peak memory by more than that.
constexpr size_t kGatherChunkBytes = size_t(16) << 20;

int gather_chunk(DType t, const ConvGeometry& g, int chunk_images) {
  return images_per_chunk(chunk_images, g.N, image_offset(t, 1, g.P, g.Q, g.C), kGatherChunkBytes);
}

// fn(gc, n0) for each chunk of g's images: gc is g with the chunk's batch, n0 its first image.
template <class Fn>
void for_each_gather_chunk(DType t, const ConvGeometry& g, int chunk_images, Fn fn) {
  const int chunk = gather_chunk(t, g, chunk_images);
  for (int n0 = 0; n0 < g.N; n0 += chunk) {
    ConvGeometry gc = g;
    gc.N = std::min(chunk, g.N - n0);
    fn(gc, n0);
  }
}

}  // namespace

CudnnConvolutions::CudnnConvolutions(Backend& backend, cudaStream_t stream, WorkspaceFn workspace)
    : backend_(backend), stream_(stream), workspace_(std::move(workspace)),
      policy_(algo_policy_from_env()) {
  if (const char* v = std::getenv("TB_CUDNN_SEARCH_LOG"); v && std::strcmp(v, "1") == 0)
    log_searches_ = true;
  // TB_CUDNN_STRIDED_1X1=auto[:IMAGES] (the default: the forward pass as a cuBLASLt product
  // where cuDNN's fastest is its generic kernel, strided_forward_on_gemm()), direct,
  // gathered[:IMAGES] (every pass, chunks of that many images), gathered-forward[:IMAGES]
  // (the forward pass only) or gemm-forward[:IMAGES] (the forward pass as a product always).
  const RouteSetting strided = route_setting_from_env(
      "TB_CUDNN_STRIDED_1X1", "direct", {"auto", "gathered", "gathered-forward", "gemm-forward"},
      /*fallback_chunked=*/true);
  strided_.gathered = strided.route == "gathered";
  strided_.gathered_forward = strided.route == "gathered" || strided.route == "gathered-forward";
  strided_.gemm_forward = strided.route == "gemm-forward";
  strided_.auto_forward = strided.route == "auto";
  strided_.chunk_images = strided.chunk_images;
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
  if (side_handle_) cudnnDestroy(side_handle_);
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
  // Every key names its policy (keys from before there were policies have no name: their
  // deterministic choices are measured again rather than taken as the fastest).
  // fp32 keys name the search's 1 GiB cap (find_limit): choices made under the old 256 MiB
  // cap are measured again.
  // "|timed": choices ranked by our own timing (retime()); those ranked by cuDNN's timings
  // alone are measured again.
  static const char* kPolicy[] = {"|deterministic", "|fastest", "|lean"};
  return fmt::format("{}|{}|{}|n{} c{} h{} w{} k{} r{} s{} stride{} pad{}{}{}|timed", device_key_,
                     dtype_name(t), kPass[index], g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.stride,
                     g.pad, kPolicy[int(policy_)], t == DType::f32 ? "|cap1g" : "");
}

bool CudnnConvolutions::adopt_cached(DType t, const ConvGeometry& g, Plan& p, int index) {
  const auto hit = cache_.find(cache_key(t, g, index));
  if (!hit || !hit->is_object() || !hit->contains("algo") || !hit->contains("math"))
    return false;
  const auto& v = *hit;
  if (!v["algo"].is_number_integer() || !v["math"].is_number_integer()) return false;
  return adopt(t, p, index, v["algo"].get<int>(), cudnnMathType_t(v["math"].get<int>()));
}

// What the search may use: a quarter of the free memory, at most 256 MiB for 16-bit types
// (algorithms that want more are not worth their memory at these sizes) and 1 GiB for fp32.
// With 256 MiB in fp32 (FMA math), resnet18 b512's 64-channel 32x32 layers were left one
// data-gradient algorithm, at 75 ms against ~1.7 ms for its neighbours' choices: cudnn's fp32
// b512 step took 385 ms (H200, v13).
size_t CudnnConvolutions::find_limit(DType t) const {
  size_t free = 0, total = 0;
  TB_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  const size_t cap = size_t(t == DType::f32 ? 1024 : 256) << 20;
  return std::min<size_t>(free / 4, cap);
}

template <class Perf, class Find, class Run>
void CudnnConvolutions::search(Plan& p, int index, DType t, const ConvGeometry& g, size_t out_bytes,
                               Find find, Run run) {
  static const char* kWhat[] = {"forward", "backward-data", "backward-filter"};
  Stopwatch clock;
  constexpr int kMax = 16;
  const size_t limit = find_limit(t);
  void* scratch = backend_.allocate(out_bytes);
  void* ws = backend_.allocate(limit);
  Perf results[kMax];
  int count = 0;
  find(results, kMax, count, scratch, ws, limit);
  retime(results, count, t, limit, stream_, scratch, ws, [&](const Perf& r, void* out, void* w) {
    TB_CUDNN_CHECK(cudnnSetConvolutionMathType(p.pass[index].conv, r.mathType));
    run(r, out, w);
  });
  TB_CUDA_CHECK(cudaStreamSynchronize(stream_));
  backend_.release(scratch);
  backend_.release(ws);
  const Perf& best = pick(results, count, t, kWhat[index], policy_);
  if (log_searches_) log_search(results, count, best, t, kWhat[index], g);
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

CudnnConvolutions::Plan& CudnnConvolutions::forward_plan(DType t, const ConvGeometry& g,
                                                          const void* x, const void* w) {
  Plan& p = plan(t, g);
  Pass& pass = p.pass[0];
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  if (!pass.found && !adopt_sibling(t, g, p, 0) && !adopt_cached(t, g, p, 0))
    search<Perf>(
        p, 0, t, g, size_t(g.N) * g.K * g.P * g.Q * dtype_size(t),
        [&](Perf* r, int n, int& count, void* out, void* ws, size_t limit) {
          TB_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
              handle_, p.x, x, p.w, w, pass.conv, p.y, out, n, &count, r, ws, limit));
        },
        [&](const Perf& r, void* out, void* ws) {
          const float one = 1.0f, zero = 0.0f;
          TB_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, p.x, x, p.w, w, pass.conv, r.algo,
                                                 ws, r.memory, &zero, p.y, out));
        });
  return p;
}

bool CudnnConvolutions::strided_forward_on_gemm(DType t, const ConvGeometry& g, const void* x,
                                                const void* w) {
  if (!strided_pointwise(g)) return false;
  if (strided_.gemm_forward) return true;
  // Only cuDNN's own measurement says whether it has a tensor-core kernel for this shape: its
  // generic IMPLICIT_GEMM kernel (implicit_convolve_sgemm) is the one that runs at a tenth
  // of the product's speed (resnet18's shortcuts; resnet50's get tensor-core kernels).
  return strided_.auto_forward &&
         forward_plan(t, g, x, w).pass[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
}

CudnnConvolutions::Plan& CudnnConvolutions::dgrad_plan(DType t, const ConvGeometry& g,
                                                        const void* dy, const void* w) {
  Plan& p = plan(t, g);
  Pass& pass = p.pass[1];
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  if (!pass.found && !adopt_sibling(t, g, p, 1) && !adopt_cached(t, g, p, 1))
    search<Perf>(
        p, 1, t, g, size_t(g.N) * g.C * g.H * g.W * dtype_size(t),
        [&](Perf* r, int n, int& count, void* out, void* ws, size_t limit) {
          TB_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
              handle_, p.w, w, p.y, dy, pass.conv, p.x, out, n, &count, r, ws, limit));
        },
        [&](const Perf& r, void* out, void* ws) {
          const float one = 1.0f, zero = 0.0f;
          TB_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.w, w, p.y, dy, pass.conv,
                                                      r.algo, ws, r.memory, &zero, p.x, out));
        });
  return p;
}

CudnnConvolutions::Plan& CudnnConvolutions::wgrad_plan(DType t, const ConvGeometry& g,
                                                        const void* x, const void* dy) {
  Plan& p = plan(t, g);
  Pass& pass = p.pass[2];
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  if (!pass.found && !adopt_sibling(t, g, p, 2) && !adopt_cached(t, g, p, 2))
    search<Perf>(
        p, 2, t, g, filter_bytes(t, g),
        [&](Perf* r, int n, int& count, void* out, void* ws, size_t limit) {
          TB_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
              handle_, p.x, x, p.y, dy, pass.conv, p.w, out, n, &count, r, ws, limit));
        },
        [&](const Perf& r, void* out, void* ws) {
          const float one = 1.0f, zero = 0.0f;
          TB_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, p.x, x, p.y, dy, pass.conv,
                                                        r.algo, ws, r.memory, &zero, p.w, out));
        });
  return p;
}

char* CudnnConvolutions::gathered_workspace(DType t, const ConvGeometry& g, const void* x,
                                            size_t front, size_t total, char* base) {
  char* grown = static_cast<char*>(workspace_(total));
  if (grown != base) gather_strided_pixels(t, x, g.N, g.H, g.W, g.C, g.stride, grown + front, stream_);
  return grown;
}

void CudnnConvolutions::forward(DType t, const ConvGeometry& g, const void* x, const void* w,
                                void* y) {
  if (strided_.gathered_forward && strided_pointwise(g))
    forward_gathered(t, g, x, w, y);
  else
    forward_direct(t, g, x, w, y);
}

void CudnnConvolutions::forward_direct(DType t, const ConvGeometry& g, const void* x,
                                       const void* w, void* y) {
  const Plan& p = forward_plan(t, g, x, w);
  const Pass& pass = p.pass[0];
  const float one = 1.0f, zero = 0.0f;
  TB_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, p.x, x, p.w, w, pass.conv,
                                         cudnnConvolutionFwdAlgo_t(pass.algo),
                                         pass.workspace ? workspace_(pass.workspace) : nullptr,
                                         pass.workspace, &zero, p.y, y));
}

void CudnnConvolutions::forward_gathered(DType t, const ConvGeometry& g, const void* x,
                                         const void* w, void* y) {
  // Per chunk of images, workspace: [their strided pixels][cuDNN's scratch]. The search
  // (first use of a shape) measures on the gathered pixels; if the workspace then grows,
  // they are gathered again.
  for_each_gather_chunk(t, g, strided_.chunk_images, [&](const ConvGeometry& gc, int n0) {
    const ConvGeometry g1 = gathered_geometry(gc);
    const void* xc = static_cast<const char*>(x) + image_offset(t, n0, g.H, g.W, g.C);
    void* yc = static_cast<char*>(y) + image_offset(t, n0, g.P, g.Q, g.K);
    const size_t xs_bytes = activation_bytes(t, g1.N, g1.H, g1.W, g1.C);
    char* base = gathered_workspace(t, gc, xc, 0, xs_bytes, nullptr);
    const Plan& p = forward_plan(t, g1, base, w);
    const Pass& pass = p.pass[0];
    base = gathered_workspace(t, gc, xc, 0, xs_bytes + pass.workspace, base);
    const float one = 1.0f, zero = 0.0f;
    TB_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, p.x, base, p.w, w, pass.conv,
                                           cudnnConvolutionFwdAlgo_t(pass.algo),
                                           base + xs_bytes, pass.workspace, &zero, p.y, yc));
  });
}

void CudnnConvolutions::backward_data(DType t, const ConvGeometry& g, const void* dy, const void* w,
                                      void* dx, bool accumulate) {
  if (strided_.gathered && strided_pointwise(g))
    backward_data_gathered(t, g, dy, w, dx, accumulate);
  else
    backward_data_direct(t, g, dy, w, dx, accumulate);
}

void CudnnConvolutions::backward_data_direct(DType t, const ConvGeometry& g, const void* dy,
                                             const void* w, void* dx, bool accumulate, void* ws) {
  const Plan& p = dgrad_plan(t, g, dy, w);
  const Pass& pass = p.pass[1];
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  if (!ws && pass.workspace) ws = workspace_(pass.workspace);
  TB_CUDNN_CHECK(cudnnConvolutionBackwardData(
      handle_, &one, p.w, w, p.y, dy, pass.conv, cudnnConvolutionBwdDataAlgo_t(pass.algo),
      pass.workspace ? ws : nullptr, pass.workspace, &beta, p.x, dx));
}

void CudnnConvolutions::backward_data_gathered(DType t, const ConvGeometry& g, const void* dy,
                                               const void* w, void* dx, bool accumulate) {
  // Per chunk of images: the stride-1 data gradient to the front of the workspace, then
  // scattered into dx.
  for_each_gather_chunk(t, g, strided_.chunk_images, [&](const ConvGeometry& gc, int n0) {
    const ConvGeometry g1 = gathered_geometry(gc);
    const void* dyc = static_cast<const char*>(dy) + image_offset(t, n0, g.P, g.Q, g.K);
    void* dxc = static_cast<char*>(dx) + image_offset(t, n0, g.H, g.W, g.C);
    const Plan& p = dgrad_plan(t, g1, dyc, w);
    const Pass& pass = p.pass[1];
    const size_t front = activation_bytes(t, g1.N, g1.H, g1.W, g1.C);
    char* base = static_cast<char*>(workspace_(front + pass.workspace));
    const float one = 1.0f, zero = 0.0f;
    TB_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.w, w, p.y, dyc, pass.conv,
                                                cudnnConvolutionBwdDataAlgo_t(pass.algo),
                                                base + front, pass.workspace, &zero, p.x, base));
    scatter_strided_pixels(t, base, gc.N, g.H, g.W, g.C, g.stride, dxc, accumulate, stream_);
  });
}

const void* CudnnConvolutions::backward_filter(DType t, const ConvGeometry& g, const void* x,
                                               const void* dy, void* into) {
  // Only unchunked: chunks would sum the filter gradient in the activation dtype.
  if (strided_.gathered && strided_pointwise(g) &&
      gather_chunk(t, g, strided_.chunk_images) == g.N)
    return backward_filter_gathered(t, g, x, dy, into);
  return backward_filter_direct(t, g, x, dy, nullptr, nullptr, into);
}

const void* CudnnConvolutions::backward_filter_direct(DType t, const ConvGeometry& g, const void* x,
                                                      const void* dy, cudnnHandle_t handle,
                                                      char* base, void* into) {
  // Workspace: [the filter gradient, unless it goes `into` a buffer][cuDNN's scratch].
  const size_t front = into ? 0 : filter_bytes(t, g);
  const Plan& p = wgrad_plan(t, g, x, dy);
  const Pass& pass = p.pass[2];
  if (!base) base = static_cast<char*>(workspace_(front + pass.workspace));
  void* out = into ? into : base;
  const float one = 1.0f, zero = 0.0f;
  TB_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      handle ? handle : handle_, &one, p.x, x, p.y, dy, pass.conv,
      cudnnConvolutionBwdFilterAlgo_t(pass.algo), pass.workspace ? base + front : nullptr,
      pass.workspace, &zero, p.w, out));
  return out;
}

const void* CudnnConvolutions::backward_filter_gathered(DType t, const ConvGeometry& g,
                                                        const void* x, const void* dy, void* into) {
  // Workspace: [the filter gradient][x's strided pixels][cuDNN's scratch]; the first part
  // goes unused when the gradient goes `into` a buffer.
  const ConvGeometry g1 = gathered_geometry(g);
  const size_t w_bytes = filter_bytes(t, g);
  const size_t front = w_bytes + activation_bytes(t, g1.N, g1.H, g1.W, g1.C);
  char* base = gathered_workspace(t, g, x, w_bytes, front, nullptr);
  const Plan& p = wgrad_plan(t, g1, base + w_bytes, dy);
  const Pass& pass = p.pass[2];
  base = gathered_workspace(t, g, x, w_bytes, front + pass.workspace, base);
  const float one = 1.0f, zero = 0.0f;
  TB_CUDNN_CHECK(
      cudnnConvolutionBackwardFilter(handle_, &one, p.x, base + w_bytes, p.y, dy, pass.conv,
                                     cudnnConvolutionBwdFilterAlgo_t(pass.algo), base + front,
                                     pass.workspace, &zero, p.w, into ? into : base));
  return into ? into : base;
}

void CudnnConvolutions::set_side_stream(cudaStream_t side) {
  if (!side_handle_) TB_CUDNN_CHECK(cudnnCreate(&side_handle_));
  TB_CUDNN_CHECK(cudnnSetStream(side_handle_, side));
}

bool CudnnConvolutions::split_backward(const ConvGeometry& g) const {
  return side_handle_ && !(strided_.gathered && strided_pointwise(g));
}

CudnnConvolutions::SplitWorkspace CudnnConvolutions::prepare_split(DType t, const ConvGeometry& g,
                                                                   const void* x, const void* dy,
                                                                   const void* w, bool with_data) {
  constexpr size_t kAlign = 256;
  SplitWorkspace split;
  if (with_data)
    split.filter_offset =
        (dgrad_plan(t, g, dy, w).pass[1].workspace + kAlign - 1) / kAlign * kAlign;
  split.total =
      split.filter_offset + filter_bytes(t, g) + wgrad_plan(t, g, x, dy).pass[2].workspace;
  return split;
}

void CudnnConvolutions::backward_data_in(DType t, const ConvGeometry& g, const void* dy,
                                         const void* w, void* dx, bool accumulate,
                                         void* workspace) {
  backward_data_direct(t, g, dy, w, dx, accumulate, workspace);
}

const void* CudnnConvolutions::backward_filter_beside(DType t, const ConvGeometry& g, const void* x,
                                                      const void* dy, char* filter_workspace) {
  TB_CHECK(side_handle_, "cudnn: backward_filter_beside() before set_side_stream()");
  return backward_filter_direct(t, g, x, dy, side_handle_, filter_workspace);
}

}  // namespace tb::gpu
