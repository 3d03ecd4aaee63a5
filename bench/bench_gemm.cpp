// sgemm throughput: square sizes and the convolutions of CIFAR resnet18 (batch 64, 32x32)
// lowered to GEMMs, reported as GFLOP/s and percent of the measured FMA peak.
//
//   TRAINBENCH_THREADS=n    threads (default: every CPU in the affinity mask)
//   TRAINBENCH_CPU_ISA=...  avx512 | avx2 | portable (a lower path than the best)
//   TRAINBENCH_GEMM_KERNEL, TRAINBENCH_GEMM_KC/MC/NC: micro-kernel and blocking, for tuning
//
// Convolution lowering (NCHW, batch folded into the GEMM's N): for a layer with Cin -> Cout
// channels, a k x k kernel and P x Q outputs per image,
//   forward        Y[Cout, B*P*Q]   = W[Cout, Cin*k*k] * col[Cin*k*k, B*P*Q]
//   backward data  dcol[Cin*k*k, B*P*Q] = W^T * dY
//   backward wgt   dW[Cout, Cin*k*k] = dY * col^T
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "ops/cpu/cpu_features.h"
#include "ops/cpu/fma_peak.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/thread_pool.h"
#include "run_benchmarks.h"

namespace {

using namespace tb::cpu;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

SgemmOptions bench_options() {
  SgemmOptions o;
  static const char* kernel_env = std::getenv("TRAINBENCH_GEMM_KERNEL");
  static const std::string kernel = kernel_env ? kernel_env : "";
  if (!kernel.empty()) o.kernel = kernel.c_str();
  o.blocking = GemmBlocking{env_int("TRAINBENCH_GEMM_KC", 0), env_int("TRAINBENCH_GEMM_MC", 0),
                            env_int("TRAINBENCH_GEMM_NC", 0)};
  return o;
}

// The best of two measurements: background load only ever lowers a measured peak.
double peak_gflops() {
  static const double peak = [] {
    double a = measure_fma_peak_gflops(cpu_threads(), 0.2);
    double b = measure_fma_peak_gflops(cpu_threads(), 0.2);
    return a > b ? a : b;
  }();
  return peak;
}

struct GemmShape {
  std::string name;
  int M, N, K;
  bool ta, tb;
  int count = 1;  // how many times the network runs it per training step
  double flops() const { return 2.0 * M * N * K; }
};

std::vector<float> filled(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float(int(i % 17) - 8) * 0.125f;
  return v;
}

// Operands sized for `s` (or for the largest of several shapes).
struct Buffers {
  std::vector<float> a, b, c;
  void fit(const GemmShape& s) {
    if (a.size() < size_t(s.M) * s.K) a = filled(size_t(s.M) * s.K);
    if (b.size() < size_t(s.K) * s.N) b = filled(size_t(s.K) * s.N);
    if (c.size() < size_t(s.M) * s.N) c = filled(size_t(s.M) * s.N);
  }
};

void run_gemm(const GemmShape& s, Buffers& buf, const SgemmOptions& o) {
  sgemm(s.ta, s.tb, s.M, s.N, s.K, 1.0f, buf.a.data(), s.ta ? s.M : s.K, buf.b.data(),
        s.tb ? s.K : s.N, 0.0f, buf.c.data(), s.N, o);
}

void report(benchmark::State& state, double flops_per_iteration, double seconds) {
  double gflops = flops_per_iteration * double(state.iterations()) / seconds * 1e-9;
  state.counters["GFLOP/s"] = gflops;
  state.counters["pct_peak"] = 100.0 * gflops / peak_gflops();
  state.counters["threads"] = cpu_threads();
}

void bench_shape(benchmark::State& state, GemmShape s) {
  Buffers buf;
  buf.fit(s);
  SgemmOptions o = bench_options();
  run_gemm(s, buf, o);  // first call sizes the packing buffers
  auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    run_gemm(s, buf, o);
    benchmark::ClobberMemory();
  }
  report(state, s.flops(),
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

// The three GEMMs of every convolution of CIFAR resnet18 at batch 64.
std::vector<GemmShape> resnet18_gemms() {
  struct Conv {
    const char* name;
    int cin, cout, k, stride, h, count;
  };
  const Conv convs[] = {
      {"stem", 3, 64, 3, 1, 32, 1},      {"l1", 64, 64, 3, 1, 32, 4},
      {"l2a", 64, 128, 3, 2, 32, 1},     {"l2b", 128, 128, 3, 1, 16, 3},
      {"l2sc", 64, 128, 1, 2, 32, 1},    {"l3a", 128, 256, 3, 2, 16, 1},
      {"l3b", 256, 256, 3, 1, 8, 3},     {"l3sc", 128, 256, 1, 2, 16, 1},
      {"l4a", 256, 512, 3, 2, 8, 1},     {"l4b", 512, 512, 3, 1, 4, 3},
      {"l4sc", 256, 512, 1, 2, 8, 1},
  };
  const int batch = 64;
  std::vector<GemmShape> shapes;
  for (const Conv& c : convs) {
    int p = (c.h + 2 * (c.k / 2) - c.k) / c.stride + 1;
    int npq = batch * p * p, ckk = c.cin * c.k * c.k;
    std::string base = std::string("resnet18/") + c.name;
    shapes.push_back({base + "/fwd", c.cout, npq, ckk, false, false, c.count});
    if (c.cin > 3)  // the stem's input gradient is never needed
      shapes.push_back({base + "/bwd_data", ckk, npq, c.cout, true, false, c.count});
    shapes.push_back({base + "/bwd_weight", c.cout, ckk, npq, false, true, c.count});
  }
  return shapes;
}

// The same GEMMs for one image (the lowering that keeps the im2col matrix in cache), for a
// large-spatial and a small-spatial layer.
std::vector<GemmShape> resnet18_per_image_gemms() {
  std::vector<GemmShape> shapes;
  for (auto [name, cin, cout, p] : {std::tuple{"l1", 64, 64, 32}, std::tuple{"l3b", 256, 256, 8}}) {
    const int pq = p * p, ckk = cin * 9;
    std::string base = std::string("resnet18_1img/") + name;
    shapes.push_back({base + "/fwd", cout, pq, ckk, false, false});
    shapes.push_back({base + "/bwd_data", ckk, pq, cout, true, false});
    shapes.push_back({base + "/bwd_weight", cout, ckk, pq, false, true});
  }
  return shapes;
}

// Every conv GEMM of one training step, weighted by how often each occurs: the figure that
// bounds a whole step's convolution time.
void bench_resnet18_step(benchmark::State& state) {
  std::vector<GemmShape> shapes = resnet18_gemms();
  Buffers buf;
  double flops = 0;
  for (const GemmShape& s : shapes) buf.fit(s), flops += s.flops() * s.count;
  SgemmOptions o = bench_options();
  for (const GemmShape& s : shapes) run_gemm(s, buf, o);
  auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (const GemmShape& s : shapes)
      for (int r = 0; r < s.count; ++r) run_gemm(s, buf, o);
    benchmark::ClobberMemory();
  }
  report(state, flops,
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace

int main(int argc, char** argv) {
  set_cpu_threads(env_int("TRAINBENCH_THREADS", 0));
  const CpuFeatures& f = cpu_features();
  std::printf("cpu: %s, %d threads, isa %s, kernel %s, L1d %zu KiB, L2 %zu KiB, L3 %zu MiB\n",
              f.model_name.c_str(), cpu_threads(), isa_name(active_isa()),
              gemm_kernel_name(active_isa()), f.l1d_bytes >> 10, f.l2_bytes >> 10,
              f.l3_bytes >> 20);
  std::printf("measured FMA peak: %.1f GFLOP/s\n", peak_gflops());

  for (int n : {256, 512, 1024, 2048})
    benchmark::RegisterBenchmark(("square/" + std::to_string(n)).c_str(), bench_shape,
                                 GemmShape{"", n, n, n, false, false})
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  std::vector<GemmShape> shapes = resnet18_gemms(), per_image = resnet18_per_image_gemms();
  shapes.insert(shapes.end(), per_image.begin(), per_image.end());
  for (const GemmShape& s : shapes)
    benchmark::RegisterBenchmark(s.name.c_str(), bench_shape, s)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("resnet18/all_conv_gemms", bench_resnet18_step)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);

  return tb::bench::run_registered_benchmarks(argc, argv);
}
