#include "ops/cpu/fma_peak.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "ops/cpu/thread_pool.h"

namespace tb::cpu {
namespace {

// Independent accumulator chains: at least FMA latency x FMA ports of any current core
// (4 x 2 on Intel with two 512-bit units), so the loop is bound by throughput, not latency.
constexpr int kChains = 16;
constexpr int kAvx2Chains = 12;  // 16 ymm registers, two hold the operands
constexpr uint64_t kIterationsPerCall = 1u << 16;

volatile float g_sink;  // keeps the results alive so the loops are not removed

__attribute__((target("avx512f,fma"))) double fma_loop_avx512(uint64_t iterations) {
  const __m512 x = _mm512_set1_ps(g_sink * 0.0f + 0.999999f);
  const __m512 y = _mm512_set1_ps(g_sink * 0.0f + 1e-7f);
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(float(c));
  for (uint64_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], x, y);
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  g_sink = lanes[0] + lanes[15];
  return double(iterations) * kChains * 16 * 2;
}

__attribute__((target("avx2,fma"))) double fma_loop_avx2(uint64_t iterations) {
  const __m256 x = _mm256_set1_ps(g_sink * 0.0f + 0.999999f);
  const __m256 y = _mm256_set1_ps(g_sink * 0.0f + 1e-7f);
  __m256 acc[kAvx2Chains];
  for (int c = 0; c < kAvx2Chains; ++c) acc[c] = _mm256_set1_ps(float(c));
  for (uint64_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (int c = 0; c < kAvx2Chains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], x, y);
  __m256 sum = acc[0];
  for (int c = 1; c < kAvx2Chains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  g_sink = lanes[0] + lanes[7];
  return double(iterations) * kAvx2Chains * 8 * 2;
}

// Baseline: multiply and add on 4-lane vectors (SSE2 on x86-64), 2 FLOPs per lane.
double fma_loop_portable(uint64_t iterations) {
  typedef float v4 __attribute__((vector_size(16)));
  const v4 x = v4{} + (g_sink * 0.0f + 0.999999f), y = v4{} + (g_sink * 0.0f + 1e-7f);
  v4 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = v4{} + float(c);
  for (uint64_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * x + y;
  v4 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum += acc[c];
  g_sink = sum[0] + sum[3];
  return double(iterations) * kChains * 4 * 2;
}

double run_loop(Isa isa, uint64_t iterations) {
  switch (isa) {
    case Isa::avx512: return fma_loop_avx512(iterations);
    case Isa::avx2: return fma_loop_avx2(iterations);
    case Isa::portable: break;
  }
  return fma_loop_portable(iterations);
}

}  // namespace

double measure_fma_peak_gflops(int threads, double seconds) {
  return measure_fma_peak_gflops(threads, cpu_features().hardware_isa(), seconds);
}

double measure_fma_peak_gflops(int threads, Isa isa, double seconds) {
  if (!isa_supported(isa)) isa = cpu_features().hardware_isa();
  if (threads <= 0) threads = cpu_threads();
  std::unique_ptr<ThreadPool> own;
  ThreadPool* pool = &cpu_pool();
  if (pool->size() != threads) pool = (own = std::make_unique<ThreadPool>(threads)).get();

  // Each thread reports its own rate; the sum is robust to threads starting a little apart.
  std::vector<double> rates(size_t(pool->size()), 0.0);
  pool->run([&](int t, int) {
    using clock = std::chrono::steady_clock;
    run_loop(isa, kIterationsPerCall / 16);  // warm up: wake the wide units, raise the clock
    const auto start = clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    double flops = 0;
    auto now = start;
    while (now < end) {
      flops += run_loop(isa, kIterationsPerCall);
      now = clock::now();
    }
    rates[size_t(t)] = flops / std::chrono::duration<double>(now - start).count();
  });
  double total = 0;
  for (double r : rates) total += r;
  return total * 1e-9;
}

}  // namespace tb::cpu
