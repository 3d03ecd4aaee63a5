// The `cpu` backend's convolutions, as a training step runs them: every convolution shape of
// CIFAR resnet18 at batch 64, forward and backward (data and weight gradients), each with
// Winograd where it applies (the forward with F(2x2, 3x3), the default, and F(4x4, 3x3); the
// data gradient with F(4x4, 3x3)) and with the direct GEMM path (TB_CPU_WINOGRAD=0),
// reported as GFLOP/s of the direct convolution's arithmetic (so the two paths compare by
// time) and percent of the measured FMA peak.
//
//   TRAINBENCH_THREADS=n    threads (default: every CPU in the affinity mask)
//   --benchmark_filter=l1   one layer, etc. (Google Benchmark's options)
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/fma_peak.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/thread_pool.h"
#include "run_benchmarks.h"

namespace {

using namespace tb;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

double peak_gflops(int threads) {
  static const double peak = [threads] {
    double a = cpu::measure_fma_peak_gflops(threads, 0.2);
    double b = cpu::measure_fma_peak_gflops(threads, 0.2);
    return a > b ? a : b;
  }();
  return peak;
}

struct ConvShape {
  std::string name;
  Conv2dParams p;
};

std::vector<float> filled(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(int(i % 17) - 8) * 0.125f;
  return v;
}

Tensor view(std::vector<float>& v, Shape s) { return Tensor(v.data(), DType::f32, s); }

// pass: 0 forward, 1 backward (data and weight gradients, as conv2d_backward runs them),
// 2 the weight gradient alone (no dx): the data gradient's share is pass 1 less pass 2.
// setting: TB_CPU_WINOGRAD for the run (0: direct; f2: forward F(2x2, 3x3); all: F(4x4, 3x3)
// forward; any but 0: F(4x4, 3x3) data gradients).
void bench_conv(benchmark::State& state, ConvShape s, int pass, const char* setting) {
  setenv("TB_CPU_WINOGRAD", setting, 1);
  const Conv2dParams& p = s.p;
  CpuBackend cpu(env_int("TRAINBENCH_THREADS", 0));
  std::vector<float> x = filled(p.x_numel()), w = filled(p.w_numel()), y = filled(p.y_numel()),
                     dx = filled(p.x_numel()), dw = filled(p.w_numel());
  const Shape xs{p.N, p.C, p.H, p.W}, ws{p.K, p.C, p.kernel, p.kernel}, ys{p.N, p.K, p.P(), p.Q()};
  const auto run = [&] {
    if (pass == 0)
      cpu.conv2d_forward(p, view(x, xs), view(w, ws), Tensor(), view(y, ys));
    else
      cpu.conv2d_backward(p, view(x, xs), view(w, ws), view(y, ys),
                          pass == 1 ? view(dx, xs) : Tensor(), view(dw, ws), Tensor(), false);
  };
  run();  // sizes the scratch buffers
  const double flops =
      2.0 * double(p.N) * p.K * p.P() * p.Q() * p.C * p.kernel * p.kernel * (pass == 1 ? 2 : 1);
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double gflops = flops * double(state.iterations()) / seconds * 1e-9;
  state.counters["GFLOP/s"] = gflops;
  state.counters["pct_peak"] = 100.0 * gflops / peak_gflops(cpu.threads());
  state.counters["threads"] = cpu.threads();
  unsetenv("TB_CPU_WINOGRAD");
}

std::vector<ConvShape> resnet18_convs(int batch) {
  struct Conv {
    const char* name;
    int cin, cout, k, stride, h;
  };
  const Conv convs[] = {
      {"stem", 3, 64, 3, 1, 32},   {"l1", 64, 64, 3, 1, 32},     {"l2a", 64, 128, 3, 2, 32},
      {"l2b", 128, 128, 3, 1, 16}, {"l2sc", 64, 128, 1, 2, 32},  {"l3a", 128, 256, 3, 2, 16},
      {"l3b", 256, 256, 3, 1, 8},  {"l3sc", 128, 256, 1, 2, 16}, {"l4a", 256, 512, 3, 2, 8},
      {"l4b", 512, 512, 3, 1, 4},  {"l4sc", 256, 512, 1, 2, 8},
  };
  std::vector<ConvShape> shapes;
  for (const Conv& c : convs)
    shapes.push_back({std::string("resnet18/") + c.name,
                      Conv2dParams{batch, c.cin, c.h, c.h, c.cout, c.k, c.stride, c.k / 2, false}});
  return shapes;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = env_int("TRAINBENCH_THREADS", 0);
  cpu::set_cpu_threads(threads);
  const cpu::CpuFeatures& f = cpu::cpu_features();
  std::printf("cpu: %s, %d threads, isa %s, kernel %s\n", f.model_name.c_str(), cpu::cpu_threads(),
              cpu::isa_name(cpu::active_isa()), cpu::gemm_kernel_name(cpu::active_isa()));
  std::printf("measured FMA peak: %.1f GFLOP/s\n", peak_gflops(cpu::cpu_threads()));
  struct Variant {
    const char* setting;
    const char* name;
  };
  const Variant forward[] = {{"f2", "/winograd2"}, {"all", "/winograd4"}, {"0", "/direct"}};
  const Variant backward[] = {{"backward", "/winograd"}, {"0", "/direct"}};
  for (const ConvShape& s : resnet18_convs(64))
    for (int pass : {0, 1, 2}) {
      const bool applies = s.p.kernel == 3 && s.p.stride == 1 && s.p.C >= 16;
      for (const Variant& v : pass == 0 ? std::vector<Variant>(forward, forward + 3)
                                        : std::vector<Variant>(backward, backward + 2)) {
        if (!applies && std::string(v.setting) != "0") continue;
        static const char* kPassNames[] = {"/fwd", "/bwd", "/dw"};
        const std::string name = s.name + kPassNames[pass] + (applies ? v.name : "");
        benchmark::RegisterBenchmark(name.c_str(), bench_conv, s, pass, v.setting)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  return tb::bench::run_registered_benchmarks(argc, argv);
}
