// cuDNN's graph API on the fusion that issue 4's batch-512 target waits for: batch-norm
// statistics computed inside the convolution, and the previous layer's normalise + ReLU
// applied as the convolution loads its input. For resnet18's 3x3 stride-1 convolutions
// (bf16, NHWC, batch TB_PROBE_BATCH, default 512) it asks cuDNN for an engine for
//   conv                  Y = conv(X, W)
//   conv_genstats         Y = conv(X, W), and per channel sum(Y), sum(Y^2)  (GenStats)
//   bnrelu_conv_genstats  Y = conv(relu(X * scale + bias), W), and the same sums
// and times the fastest of the first few engines cuDNN's heuristics offer that build (each
// timed over a few runs first), labelled with its index and whether cuDNN compiled it at run
// time. The statistics are checked against Y's own sums
// (a wrong engine ends the run with an error). conv against conv_genstats is what the sums
// cost inside the convolution, where batch norm now reads Y again for them; the third form
// would also remove batch norm's normalise + ReLU pass (docs/gpu-notes.md, v16-v17).
// Needs a GPU: without one (or built without CUDA) each benchmark says so and skips.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "run_benchmarks.h"

#ifdef TB_HAVE_CUDA
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/rng.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cudnn/cudnn_check.h"
#endif

namespace {

struct Shape {
  const char* name;
  int64_t Cin, C, HW;  // channels in and out, square input; 3x3, stride 1, pad 1
};
// resnet18's 3x3 stride-1 convolutions, and its stem: 3 channels in (which cuDNN's legacy
// API runs without tensor cores: 160 us forward at b512 on an H100, gpu-notes v16) and the
// same padded to 8. The stem's input is the image, so it has no normalise + ReLU form.
const Shape kShapes[] = {{"l1_64c_32px", 64, 64, 32},     {"l2_128c_16px", 128, 128, 16},
                         {"l3_256c_8px", 256, 256, 8},    {"l4_512c_4px", 512, 512, 4},
                         {"stem_3to64c_32px", 3, 64, 32}, {"stem_8to64c_32px", 8, 64, 32}};

enum class Form { conv, conv_genstats, bnrelu_conv_genstats };
const char* form_name(Form f) {
  return f == Form::conv            ? "conv"
         : f == Form::conv_genstats ? "conv_genstats"
                                    : "bnrelu_conv_genstats";
}

int64_t batch() {
  const char* v = std::getenv("TB_PROBE_BATCH");
  return v && *v ? std::max<int64_t>(1, std::atoll(v)) : 512;
}

#ifdef TB_HAVE_CUDA

// One backend descriptor, destroyed with its owner.
class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t type) {
    TB_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d_));
  }
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  template <class T>
  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const T* values,
           int64_t count = 1) {
    TB_CUDNN_CHECK(cudnnBackendSetAttribute(d_, name, type, count, values));
  }
  void set_desc(cudnnBackendAttributeName_t name, const Desc& other) {
    set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, &other.d_);
  }
  cudnnStatus_t finalize() { return cudnnBackendFinalize(d_); }
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t((u + 0x7FFF + ((u >> 16) & 1)) >> 16);  // round to nearest even
}
float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void* upload(const void* host, size_t bytes) {
  void* p = nullptr;
  TB_CUDA_CHECK(cudaMalloc(&p, bytes));
  TB_CUDA_CHECK(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice));
  return p;
}

// Tensor ids in the variant pack.
enum : int64_t { kX = 1, kW, kY, kSum, kSqSum, kScale, kBias, kVirtual = 100 };

// One form of one shape: its operation graph, the plan cuDNN built, and the device buffers.
struct Probe {
  cudnnHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;
  std::vector<std::unique_ptr<Desc>> keep;  // every descriptor the graph refers to
  std::unique_ptr<Desc> plan, pack;
  // Plans that built, with their labels; prepare() keeps the fastest as `plan`.
  std::vector<std::pair<std::unique_ptr<Desc>, std::string>> candidates;
  static constexpr int kMaxCandidates = 4;
  std::map<int64_t, void*> buffers;
  void* workspace = nullptr;
  std::string label;
  int64_t N = 0, Cin = 0, C = 0, HW = 0;

  ~Probe() {
    pack.reset();
    plan.reset();
    candidates.clear();
    keep.clear();
    for (auto& [id, p] : buffers) cudaFree(p);
    if (workspace) cudaFree(workspace);
    if (stream) cudaStreamDestroy(stream);
    if (handle) cudnnDestroy(handle);
  }

  Desc& make(cudnnBackendDescriptorType_t type) {
    keep.push_back(std::make_unique<Desc>(type));
    return *keep.back();
  }

  // An NHWC tensor of logical dims [n, c, h, w]; per-channel tensors are [1, c, 1, 1].
  Desc& tensor(int64_t id, cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w,
               bool is_virtual) {
    Desc& t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t dims[4] = {n, c, h, w}, strides[4] = {h * w * c, 1, w * c, c};
    const int64_t align = 16;
    const bool v = is_virtual;
    t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &type);
    t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims, 4);
    t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides, 4);
    t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &id);
    t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &align);
    t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &v);
    TB_CUDNN_CHECK(t.finalize());
    return t;
  }

  Desc& pointwise(cudnnPointwiseMode_t mode, const Desc& x, const Desc* b, const Desc& y) {
    Desc& pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mode);
    pw.set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &prec);
    TB_CUDNN_CHECK(pw.finalize());
    Desc& op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw);
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
    if (b) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
    TB_CUDNN_CHECK(op.finalize());
    return op;
  }

  // Builds the graph, then up to kMaxCandidates plans the heuristics offer that finalize.
  // Returns an empty string, or why no plan could be made.
  std::string build(Form form, const Shape& s) {
    N = batch(), Cin = s.Cin, C = s.C, HW = s.HW;
    TB_CUDNN_CHECK(cudnnCreate(&handle));
    TB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    TB_CUDNN_CHECK(cudnnSetStream(handle, stream));
    const cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
    std::vector<const Desc*> ops;

    Desc& x = tensor(kX, bf16, N, Cin, HW, HW, false);
    Desc& w = tensor(kW, bf16, C, Cin, 3, 3, false);
    Desc& y = tensor(kY, bf16, N, C, HW, HW, false);
    const Desc* conv_in = &x;
    if (form == Form::bnrelu_conv_genstats) {
      Desc& scale = tensor(kScale, f32, 1, Cin, 1, 1, false);
      Desc& bias = tensor(kBias, f32, 1, Cin, 1, 1, false);
      Desc& scaled = tensor(kVirtual + 1, f32, N, Cin, HW, HW, true);
      Desc& shifted = tensor(kVirtual + 2, f32, N, Cin, HW, HW, true);
      Desc& relu = tensor(kVirtual + 3, bf16, N, Cin, HW, HW, true);
      ops.push_back(&pointwise(CUDNN_POINTWISE_MUL, x, &scale, scaled));
      ops.push_back(&pointwise(CUDNN_POINTWISE_ADD, scaled, &bias, shifted));
      ops.push_back(&pointwise(CUDNN_POINTWISE_RELU_FWD, shifted, nullptr, relu));
      conv_in = &relu;
    }

    Desc& conv = make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    const int64_t dims = 2, one[2] = {1, 1}, pad[2] = {1, 1};
    conv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &f32);
    conv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &mode);
    conv.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, &dims);
    conv.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, one, 2);
    conv.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, one, 2);
    conv.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, pad, 2);
    conv.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, pad, 2);
    TB_CUDNN_CHECK(conv.finalize());
    Desc& fprop = make(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
    const float alpha = 1.0f, beta = 0.0f;
    fprop.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, *conv_in);
    fprop.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w);
    fprop.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, y);
    fprop.set_desc(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv);
    fprop.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, &alpha);
    fprop.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, &beta);
    TB_CUDNN_CHECK(fprop.finalize());
    ops.push_back(&fprop);

    if (form != Form::conv) {
      Desc& sum = tensor(kSum, f32, 1, C, 1, 1, false);
      Desc& sqsum = tensor(kSqSum, f32, 1, C, 1, 1, false);
      Desc& stats = make(CUDNN_BACKEND_OPERATION_GEN_STATS_DESCRIPTOR);
      const cudnnGenStatsMode_t gmode = CUDNN_GENSTATS_SUM_SQSUM;
      stats.set(CUDNN_ATTR_OPERATION_GENSTATS_MODE, CUDNN_TYPE_GENSTATS_MODE, &gmode);
      stats.set(CUDNN_ATTR_OPERATION_GENSTATS_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &f32);
      stats.set_desc(CUDNN_ATTR_OPERATION_GENSTATS_XDESC, y);
      stats.set_desc(CUDNN_ATTR_OPERATION_GENSTATS_SUMDESC, sum);
      stats.set_desc(CUDNN_ATTR_OPERATION_GENSTATS_SQSUMDESC, sqsum);
      TB_CUDNN_CHECK(stats.finalize());
      ops.push_back(&stats);
    }

    Desc& graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    std::vector<cudnnBackendDescriptor_t> raw;
    for (const Desc* op : ops) raw.push_back(op->get());
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, &handle);
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, raw.data(),
              int64_t(raw.size()));
    if (cudnnStatus_t st = graph.finalize(); st != CUDNN_STATUS_SUCCESS)
      return std::string("operation graph: ") + cudnnGetErrorString(st);

    int tried = 0;
    for (cudnnBackendHeurMode_t hmode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
      Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
      heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
      heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &hmode);
      if (heur.finalize() != CUDNN_STATUS_SUCCESS) continue;
      int64_t count = 0;
      if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                   nullptr) != CUDNN_STATUS_SUCCESS ||
          count == 0)
        continue;
      std::vector<std::unique_ptr<Desc>> configs;
      std::vector<cudnnBackendDescriptor_t> raw_configs;
      for (int64_t i = 0; i < count; ++i) {
        configs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
        raw_configs.push_back(configs.back()->get());
      }
      int64_t got = 0;
      TB_CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                              CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                                              raw_configs.data()));
      for (int64_t i = 0; i < got; ++i) {
        ++tried;
        auto p = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        p->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, &handle);
        p->set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, *configs[size_t(i)]);
        if (p->finalize() != CUDNN_STATUS_SUCCESS) continue;
        candidates.emplace_back(std::move(p), describe_engine(*configs[size_t(i)], hmode, i));
        if (int(candidates.size()) == kMaxCandidates) return {};
      }
      if (!candidates.empty()) return {};  // the fallback list only when heuristic A built none
    }
    return "no engine (" + std::to_string(tried) + " configurations offered, none built)";
  }

  static std::string describe_engine(const Desc& config, cudnnBackendHeurMode_t mode,
                                     int64_t rank) {
    Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    cudnnBackendDescriptor_t raw = engine.get();
    int64_t n = 0, index = -1;
    TB_CUDNN_CHECK(cudnnBackendGetAttribute(config.get(), CUDNN_ATTR_ENGINECFG_ENGINE,
                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &raw));
    cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n,
                             &index);
    cudnnBackendBehaviorNote_t notes[8];
    int64_t count = 0;
    bool compiled = false;
    if (cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE,
                                 CUDNN_TYPE_BEHAVIOR_NOTE, 8, &count,
                                 notes) == CUDNN_STATUS_SUCCESS)
      for (int64_t i = 0; i < count; ++i)
        compiled |= notes[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION;
    return "engine " + std::to_string(index) + (compiled ? ", runtime-compiled" : "") +
           (mode == CUDNN_HEUR_MODE_A ? ", heuristic A #" : ", fallback #") + std::to_string(rank);
  }

  // Random inputs, the variant pack, and one run whose statistics are checked.
  std::string prepare(Form form) {
    const int64_t in = N * HW * HW * Cin, act = N * HW * HW * C, filt = C * 9 * Cin;
    std::vector<uint16_t> xs(static_cast<size_t>(in)), ws(static_cast<size_t>(filt));
    tb::Rng rng(12345);
    auto uniform = [&] { return float(rng.uniform(-1.0, 1.0)); };
    for (auto& v : xs) v = to_bf16(uniform());
    const float wscale = 1.0f / std::sqrt(float(9 * Cin));
    for (auto& v : ws) v = to_bf16(uniform() * wscale);
    buffers[kX] = upload(xs.data(), xs.size() * 2);
    buffers[kW] = upload(ws.data(), ws.size() * 2);
    TB_CUDA_CHECK(cudaMalloc(&buffers[kY], size_t(act) * 2));
    if (form != Form::conv) {
      TB_CUDA_CHECK(cudaMalloc(&buffers[kSum], size_t(C) * 4));
      TB_CUDA_CHECK(cudaMalloc(&buffers[kSqSum], size_t(C) * 4));
    }
    if (form == Form::bnrelu_conv_genstats) {
      std::vector<float> scale(static_cast<size_t>(Cin)), bias(static_cast<size_t>(Cin));
      for (auto& v : scale) v = 1.0f + 0.25f * uniform();
      for (auto& v : bias) v = 0.25f * uniform();
      buffers[kScale] = upload(scale.data(), scale.size() * 4);
      buffers[kBias] = upload(bias.data(), bias.size() * 4);
    }
    int64_t ws_bytes = 0;
    for (auto& [p, l] : candidates) {
      int64_t bytes = 0, n = 0;
      TB_CUDNN_CHECK(cudnnBackendGetAttribute(p->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                              CUDNN_TYPE_INT64, 1, &n, &bytes));
      ws_bytes = std::max(ws_bytes, bytes);
    }
    if (ws_bytes > 0) TB_CUDA_CHECK(cudaMalloc(&workspace, size_t(ws_bytes)));
    std::vector<int64_t> ids;
    std::vector<void*> ptrs;
    for (auto& [id, p] : buffers) ids.push_back(id), ptrs.push_back(p);
    pack = std::make_unique<Desc>(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack->set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, ids.data(),
              int64_t(ids.size()));
    pack->set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs.data(),
              int64_t(ptrs.size()));
    pack->set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &workspace);
    TB_CUDNN_CHECK(pack->finalize());
    pick_fastest();
    label += ", workspace <= " + std::to_string(ws_bytes / 1024) + " KiB";
    run();
    TB_CUDA_CHECK(cudaStreamSynchronize(stream));
    return form == Form::conv ? std::string() : check_statistics();
  }

  void run() { TB_CUDNN_CHECK(cudnnBackendExecute(handle, plan->get(), pack->get())); }

  // Times every candidate (2 warm-up runs, then the median of 7) and keeps the fastest.
  void pick_fastest() {
    cudaEvent_t start, stop;
    TB_CUDA_CHECK(cudaEventCreate(&start));
    TB_CUDA_CHECK(cudaEventCreate(&stop));
    float best = 0;
    size_t best_i = 0;
    std::string times;
    for (size_t i = 0; i < candidates.size(); ++i) {
      std::vector<float> ms;
      for (int r = 0; r < 9; ++r) {
        TB_CUDA_CHECK(cudaEventRecord(start, stream));
        TB_CUDNN_CHECK(cudnnBackendExecute(handle, candidates[i].first->get(), pack->get()));
        TB_CUDA_CHECK(cudaEventRecord(stop, stream));
        TB_CUDA_CHECK(cudaEventSynchronize(stop));
        float t = 0;
        TB_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
        if (r >= 2) ms.push_back(t);
      }
      std::nth_element(ms.begin(), ms.begin() + 3, ms.end());
      const float median = ms[3];
      times += (times.empty() ? "" : " / ") + std::to_string(int(median * 1000)) + " us";
      if (i == 0 || median < best) best = median, best_i = i;
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    plan = std::move(candidates[best_i].first);
    label = candidates[best_i].second + " (fastest of " + std::to_string(candidates.size()) +
            " built: " + times + ")";
    candidates.clear();
  }

  // The engine's sums against Y's own, per channel, in double.
  std::string check_statistics() {
    const int64_t act = N * HW * HW * C;
    std::vector<uint16_t> y(static_cast<size_t>(act));
    std::vector<float> sum(static_cast<size_t>(C)), sqsum(static_cast<size_t>(C));
    TB_CUDA_CHECK(cudaMemcpy(y.data(), buffers[kY], y.size() * 2, cudaMemcpyDeviceToHost));
    TB_CUDA_CHECK(cudaMemcpy(sum.data(), buffers[kSum], sum.size() * 4, cudaMemcpyDeviceToHost));
    TB_CUDA_CHECK(
        cudaMemcpy(sqsum.data(), buffers[kSqSum], sqsum.size() * 4, cudaMemcpyDeviceToHost));
    std::vector<double> s(static_cast<size_t>(C)), q(static_cast<size_t>(C)),
        a(static_cast<size_t>(C));
    for (int64_t i = 0; i < act; ++i) {
      const double v = from_bf16(y[size_t(i)]);
      s[size_t(i % C)] += v;
      q[size_t(i % C)] += v * v;
      a[size_t(i % C)] += std::abs(v);
    }
    double worst = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double es = std::abs(sum[size_t(c)] - s[size_t(c)]) / (a[size_t(c)] + 1e-9);
      const double eq = std::abs(sqsum[size_t(c)] - q[size_t(c)]) / (q[size_t(c)] + 1e-9);
      worst = std::max({worst, es, eq});
    }
    // Y is rounded to bf16 after the engine may have summed it in fp32: allow that rounding.
    if (worst > 1e-2)
      return "statistics differ from Y's own sums (worst relative error " + std::to_string(worst) +
             ")";
    label += ", sums within " + std::to_string(worst);
    return {};
  }
};

// The built probes, released before main returns (not at exit, after CUDA's own teardown).
std::map<std::string, std::unique_ptr<Probe>>& probe_cache() {
  static std::map<std::string, std::unique_ptr<Probe>> probes;
  return probes;
}
void release_probes() { probe_cache().clear(); }

void bench_form(benchmark::State& state, Form form, Shape shape) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    state.SkipWithError("no GPU");
    return;
  }
  // Built once per benchmark: cuDNN may compile the engine at run time.
  auto& probes = probe_cache();
  static std::map<std::string, std::string> failures;
  const std::string key = std::string(form_name(form)) + "/" + shape.name;
  if (!probes.count(key) && !failures.count(key)) {
    auto p = std::make_unique<Probe>();
    std::string why;
    try {
      why = p->build(form, shape);
      if (why.empty()) why = p->prepare(form);
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (why.empty())
      probes[key] = std::move(p);
    else
      failures[key] = why;
  }
  if (failures.count(key)) {
    state.SkipWithError(failures[key].c_str());
    return;
  }
  Probe& p = *probes[key];
  cudaEvent_t start, stop;
  TB_CUDA_CHECK(cudaEventCreate(&start));
  TB_CUDA_CHECK(cudaEventCreate(&stop));
  for (auto _ : state) {
    TB_CUDA_CHECK(cudaEventRecord(start, p.stream));
    p.run();
    TB_CUDA_CHECK(cudaEventRecord(stop, p.stream));
    TB_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    TB_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms / 1e3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const double flops = 2.0 * double(p.N) * double(p.HW * p.HW) * double(p.Cin) * double(p.C) * 9;
  state.counters["TFLOP/s"] =
      benchmark::Counter(flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(p.label);
}

#else  // built without CUDA

void bench_form(benchmark::State& state, Form, Shape) { state.SkipWithError("built without CUDA"); }
void release_probes() {}

#endif

void register_all() {
  for (const Shape& s : kShapes)
    for (Form f : {Form::conv, Form::conv_genstats, Form::bnrelu_conv_genstats}) {
      if (f == Form::bnrelu_conv_genstats && s.Cin != s.C) continue;  // a stem
      benchmark::RegisterBenchmark((std::string(form_name(f)) + "/" + s.name).c_str(),
                                   [f, s](benchmark::State& st) { bench_form(st, f, s); })
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  const int status = tb::bench::run_registered_benchmarks(argc, argv);
  release_probes();
  return status;
}
