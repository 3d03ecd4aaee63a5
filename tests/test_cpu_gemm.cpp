// CPU GEMM and thread pool: every ISA path against a double-precision triple loop, over edge
// shapes, transposes, alpha/beta, padded leading dimensions and the fused epilogue; plus
// bit-identical results for 1, 2 and 3 threads.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "core/error.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/thread_pool.h"

namespace tb::cpu {
namespace {

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512})
    if (isa_supported(isa)) isas.push_back(isa);
  return isas;
}

std::vector<float> random_vector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// One GEMM problem with its operands laid out as sgemm expects (ld > width where asked).
struct Problem {
  int M, N, K;
  bool ta, tb;
  int pad;  // extra elements per row of A, B and C
  float alpha, beta;
  Problem(int m, int n, int k, bool trans_a, bool trans_b, int padding, float al, float be)
      : M(m), N(n), K(k), ta(trans_a), tb(trans_b), pad(padding), alpha(al), beta(be) {}
  int lda() const { return (ta ? M : K) + pad; }
  int ldb() const { return (tb ? K : N) + pad; }
  int ldc() const { return N + pad; }
  std::vector<float> a, b, c0;

  void fill(uint32_t seed) {
    a = random_vector(size_t(ta ? K : M) * lda(), seed);
    b = random_vector(size_t(tb ? N : K) * ldb(), seed + 1);
    c0 = random_vector(size_t(M) * ldc(), seed + 2);
    // beta == 0 must not read C: NaN there would poison any result that did.
    if (beta == 0.0f)
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j)
          c0[size_t(i) * ldc() + j] = std::numeric_limits<float>::quiet_NaN();
  }
  float A(int i, int k) const { return ta ? a[size_t(k) * lda() + i] : a[size_t(i) * lda() + k]; }
  float B(int k, int j) const { return tb ? b[size_t(j) * ldb() + k] : b[size_t(k) * ldb() + j]; }

  std::vector<float> run(const SgemmOptions& options) const {
    std::vector<float> c = c0;
    sgemm(ta, tb, M, N, K, alpha, a.data(), lda(), b.data(), ldb(), beta, c.data(), ldc(), options);
    return c;
  }

  // Checks c against the double-precision result, with an error bound that grows with K
  // and the magnitude of the terms, and checks the padding columns of C were not touched.
  void check(const std::vector<float>& c, const SgemmEpilogue* epi, const char* what) const {
    int bad = 0;
    for (int i = 0; i < M && bad < 5; ++i) {
      for (int j = 0; j < N && bad < 5; ++j) {
        double sum = 0, mag = 0;
        for (int k = 0; k < K; ++k) {
          sum += double(A(i, k)) * B(k, j);
          mag += std::fabs(double(A(i, k)) * B(k, j));
        }
        double c_old = c0[size_t(i) * ldc() + j];
        // alpha == 0 and beta == 0 each mean "not read" (BLAS), even where the data is NaN.
        double want = (alpha != 0.0f ? alpha * sum : 0.0) + (beta != 0.0f ? beta * c_old : 0.0);
        mag = (alpha != 0.0f ? std::fabs(alpha) * mag : 0.0) +
              (beta != 0.0f ? std::fabs(beta * c_old) : 0.0);
        if (epi && epi->bias_row) want += epi->bias_row[i], mag += std::fabs(epi->bias_row[i]);
        if (epi && epi->bias_col) want += epi->bias_col[j], mag += std::fabs(epi->bias_col[j]);
        if (epi && epi->relu) want = std::max(want, 0.0);
        double got = c[size_t(i) * ldc() + j];
        double tol = 2.0 * (K + 4) * 1.2e-7 * mag + 1e-30;
        if (!(std::fabs(got - want) <= tol)) {
          ADD_FAILURE() << what << " C(" << i << "," << j << ") = " << got << ", want " << want;
          ++bad;
        }
      }
      for (int j = N; j < ldc(); ++j)
        if (std::memcmp(&c[size_t(i) * ldc() + j], &c0[size_t(i) * ldc() + j], 4) != 0) {
          ADD_FAILURE() << what << " wrote padding C(" << i << "," << j << ")";
          ++bad;
        }
    }
  }
};

std::string describe(const Problem& p, Isa isa) {
  return fmt::format("{} M={} N={} K={} ta={} tb={} pad={} alpha={} beta={}", isa_name(isa), p.M,
                     p.N, p.K, p.ta, p.tb, p.pad, p.alpha, p.beta);
}

struct Shape {
  int M, N, K;
};

TEST(CpuGemm, MatchesDoubleReferenceOnEveryIsa) {
  const Shape shapes[] = {{1, 1, 1},    {37, 53, 71}, {1, 100, 50},  {100, 1, 50},
                          {200, 3, 1},  {3, 200, 1},  {64, 33, 5},   {15, 33, 769},
                          {42, 64, 385}, {300, 300, 300}, {13, 700, 20},
                          {20, 30, 9000}};  // the last one takes the split-K path
  const float alpha_beta[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-1.5f, 0.25f}};
  ThreadPool pool(2);
  uint32_t seed = 1;
  for (const Shape& s : shapes)
    for (int trans = 0; trans < 4; ++trans)
      for (const auto& ab : alpha_beta) {
        Problem p(s.M, s.N, s.K, bool(trans & 1), bool(trans & 2), (trans == 3) ? 5 : 0,
                  ab[0], ab[1]);
        p.fill(seed++);
        for (Isa isa : supported_isas()) {
          SgemmOptions o;
          o.isa = int(isa);
          o.pool = &pool;
          p.check(p.run(o), nullptr, describe(p, isa).c_str());
        }
      }
}

TEST(CpuGemm, EveryMicroKernelAndSmallBlocking) {
  // Small blocks make every loop level iterate several times, with ragged last blocks.
  ThreadPool pool(3);
  for (Isa isa : supported_isas()) {
    std::string names = gemm_kernel_names(isa);
    for (size_t start = 0; start < names.size();) {
      size_t end = names.find(' ', start);
      if (end == std::string::npos) end = names.size();
      std::string kernel = names.substr(start, end - start);
      start = end + 1;
      for (int trans = 0; trans < 4; ++trans) {
        Problem p(131, 157, 203, bool(trans & 1), bool(trans & 2), 3, 0.75f, -0.5f);
        p.fill(100 + trans);
        SgemmOptions o;
        o.isa = int(isa);
        o.kernel = kernel.c_str();
        o.pool = &pool;
        o.blocking = GemmBlocking{48, 30, 70};
        p.check(p.run(o), nullptr, (kernel + " " + describe(p, isa)).c_str());
      }
    }
  }
}

TEST(CpuGemm, BitIdenticalForAnyThreadCount) {
  // 4 threads can form a 2 x 2 grid: row groups sharing B panels, several column groups.
  ThreadPool pool1(1), pool2(2), pool3(3), pool4(4);
  const Shape shapes[] = {{37, 53, 71},   {300, 300, 300}, {64, 2000, 576}, {512, 40, 1000},
                          {5, 3000, 100}, {400, 700, 90},   {64, 100, 20000}};
  for (Isa isa : supported_isas())
    for (const Shape& s : shapes)
      for (GemmBlocking blocking : {GemmBlocking{}, GemmBlocking{64, 28, 96}}) {
        Problem p(s.M, s.N, s.K, false, true, 1, 1.0f, 0.5f);
        p.fill(7);
        SgemmOptions o;
        o.isa = int(isa);
        o.blocking = blocking;
        o.pool = &pool1;
        std::vector<float> c1 = p.run(o);
        o.pool = &pool2;
        std::vector<float> c2 = p.run(o);
        o.pool = &pool3;
        std::vector<float> c3 = p.run(o);
        o.pool = &pool4;
        std::vector<float> c4 = p.run(o);
        EXPECT_EQ(std::memcmp(c1.data(), c2.data(), c1.size() * 4), 0) << describe(p, isa);
        EXPECT_EQ(std::memcmp(c1.data(), c3.data(), c1.size() * 4), 0) << describe(p, isa);
        EXPECT_EQ(std::memcmp(c1.data(), c4.data(), c1.size() * 4), 0) << describe(p, isa);
      }
}

// Called from inside a task of the same pool, sgemm runs on that thread alone.
TEST(CpuGemm, NestedCallRunsInlineWithSameBits) {
  ThreadPool pool(3);
  Problem p(200, 300, 150, false, false, 0, 1.0f, 0.0f);
  p.fill(21);
  SgemmOptions o;
  o.pool = &pool;
  std::vector<float> direct = p.run(o);
  std::vector<std::vector<float>> nested(3);
  pool.parallel_for(0, 3, [&](int64_t i) { nested[size_t(i)] = p.run(o); });
  for (const auto& c : nested) EXPECT_EQ(std::memcmp(c.data(), direct.data(), c.size() * 4), 0);
}

// A B packer callback that reads op(B) from a matrix must give exactly the matrix path's bits.
struct MatrixPacker {
  const Problem* p;
  static void pack(const void* ctx, int k0, int kc, int j0, int n, int nr, int64_t stride,
                   float* dst) {
    const Problem& p = *static_cast<const MatrixPacker*>(ctx)->p;
    for (int s = 0; s * nr < n; ++s)
      for (int k = 0; k < kc; ++k)
        for (int c = 0; c < nr; ++c) {
          const int j = j0 + s * nr + c;
          dst[s * stride + int64_t(k) * nr + c] = j < j0 + n ? p.B(k0 + k, j) : 0.0f;
        }
  }
};

TEST(CpuGemm, BPackerCallbackMatchesMatrix) {
  ThreadPool pool1(1), pool4(4);
  const Shape shapes[] = {{150, 333, 700}, {30, 40, 9000}};  // the second one splits K
  for (Isa isa : supported_isas())
    for (int variant = 0; variant < 4; ++variant) {
      const Shape s = shapes[variant / 2];
      const bool tb = variant % 2;
      Problem p(s.M, s.N, s.K, false, tb, 2, 1.0f, 0.0f);
      p.fill(40);
      SgemmOptions o;
      o.isa = int(isa);
      o.pool = &pool4;
      std::vector<float> want = p.run(o);
      MatrixPacker packer{&p};
      o.b_packer = SgemmBPacker{&MatrixPacker::pack, &packer};
      for (ThreadPool* pool : {&pool1, &pool4}) {
        o.pool = pool;
        std::vector<float> got = p.c0;
        sgemm(false, tb, p.M, p.N, p.K, p.alpha, p.a.data(), p.lda(), nullptr, 0, p.beta,
              got.data(), p.ldc(), o);
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << describe(p, isa);
      }
    }
}

// B read through row pointers (SgemmBRows) is the same matrix read in place: every AVX-512
// micro-kernel must give the bits of its packed path, for ragged edges and several K blocks.
struct MatrixRows {
  const Problem* p;
  static void rows(const void* ctx, int k0, int kc, const float** out) {
    const Problem& p = *static_cast<const MatrixRows*>(ctx)->p;
    for (int k = 0; k < kc; ++k) out[k] = p.b.data() + size_t(k0 + k) * p.ldb();
  }
  static void col_offsets(const void*, int j0, int n, int64_t* out) {
    for (int v = 0; 16 * v < n; ++v) out[v] = j0 + 16 * v;
  }
};

TEST(CpuGemm, BRowsMatchPackedB) {
  if (!isa_supported(Isa::avx512)) GTEST_SKIP() << "no AVX-512";
  ThreadPool pool1(1), pool4(4);
  const Shape shapes[] = {{37, 53, 71}, {64, 1000, 900}, {150, 333, 700}};
  const std::string names = gemm_kernel_names(Isa::avx512);
  for (size_t start = 0; start < names.size();) {
    size_t end = names.find(' ', start);
    if (end == std::string::npos) end = names.size();
    const std::string kernel = names.substr(start, end - start);
    start = end + 1;
    for (const Shape& s : shapes) {
      Problem p(s.M, s.N, s.K, false, false, 3, 0.5f, s.M == 37 ? 1.0f : 0.0f);
      p.fill(60);
      SgemmOptions o;
      o.kernel = kernel.c_str();
      o.pool = &pool4;
      const std::vector<float> want = p.run(o);
      MatrixRows rows{&p};
      o.b_rows = SgemmBRows{&MatrixRows::rows, &MatrixRows::col_offsets, &rows};
      for (ThreadPool* pool : {&pool1, &pool4}) {
        o.pool = pool;
        std::vector<float> got = p.c0;
        sgemm(false, false, p.M, p.N, p.K, p.alpha, p.a.data(), p.lda(), nullptr, 0, p.beta,
              got.data(), p.ldc(), o);
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0)
            << kernel << " " << describe(p, Isa::avx512);
      }
    }
  }
}

// A packed once by sgemm_pack_a and shared gives the bits of packing it in the call, on every
// ISA, for both layouts of A, one or several row blocks and K blocks, 1 or 4 threads.
TEST(CpuGemm, PrePackedAMatchesPackingInTheCall) {
  ThreadPool pool1(1), pool4(4);
  // The last shape takes split-K, which packs A from the matrix whether or not it comes packed.
  const Shape shapes[] = {{37, 530, 700}, {512, 400, 1000}, {64, 64, 8192}};
  for (Isa isa : supported_isas())
    for (int variant = 0; variant < 6; ++variant) {
      const Shape s = shapes[variant / 2];
      const bool ta = variant % 2;
      Problem p(s.M, s.N, s.K, ta, false, 2, 1.0f, 0.5f);
      p.fill(70 + variant);
      SgemmOptions o;
      o.isa = int(isa);
      o.pool = &pool4;
      const std::vector<float> want = p.run(o);
      std::vector<float> packed(sgemm_packed_a_floats(p.M, p.K, o));
      sgemm_pack_a(ta, p.M, p.K, p.a.data(), p.lda(), o, packed.data());
      o.a_packed = packed.data();
      for (ThreadPool* pool : {&pool1, &pool4}) {
        o.pool = pool;
        std::vector<float> got = p.c0;
        sgemm(ta, false, p.M, p.N, p.K, p.alpha, p.a.data(), p.lda(), p.b.data(), p.ldb(), p.beta,
              got.data(), p.ldc(), o);
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << describe(p, isa);
      }
    }
}

TEST(CpuGemm, FusedEpilogue) {
  ThreadPool pool(2);
  for (Isa isa : supported_isas())
    for (int variant = 0; variant < 4; ++variant) {
      // variant 3: long K, small C - the split-K path applies the epilogue in its reduction
      Problem p(45, 70, variant == 3 ? 8200 : 500, variant == 1, false, 2, 1.0f,
                variant == 2 ? 1.0f : 0.0f);
      p.fill(30 + variant);
      std::vector<float> bias_row = random_vector(size_t(p.M), 5);
      std::vector<float> bias_col = random_vector(size_t(p.N), 6);
      SgemmEpilogue epi;
      epi.bias_row = variant != 1 ? bias_row.data() : nullptr;
      epi.bias_col = variant != 0 ? bias_col.data() : nullptr;
      epi.relu = variant != 2;
      SgemmOptions o;
      o.isa = int(isa);
      o.pool = &pool;
      o.epilogue = &epi;
      o.blocking = GemmBlocking{128, 0, 0};  // several K blocks: epilogue only on the last
      p.check(p.run(o), &epi, describe(p, isa).c_str());
    }
}

TEST(CpuGemm, ZeroAlphaOrZeroKScalesC) {
  for (int K : {0, 5}) {
    Problem p(4, 6, K, false, false, 1, 0.0f, 2.0f);
    p.fill(9);
    if (K > 0) p.a.assign(p.a.size(), std::numeric_limits<float>::quiet_NaN());  // not read
    p.check(p.run(SgemmOptions{}), nullptr, "alpha=0");
  }
}

TEST(CpuGemm, DefaultEntryPointUsesGlobalPool) {
  Problem p(50, 60, 70, true, true, 0, 1.0f, 0.0f);
  p.fill(11);
  std::vector<float> c = p.c0;
  sgemm(true, true, p.M, p.N, p.K, 1.0f, p.a.data(), p.lda(), p.b.data(), p.ldb(), 0.0f, c.data(),
        p.ldc());
  p.check(c, nullptr, "default");
}

TEST(CpuFeatures, DetectsSomethingSensible) {
  const CpuFeatures& f = cpu_features();
  EXPECT_GE(f.logical_cpus, 1);
  EXPECT_GE(f.physical_cores, 1);
  EXPECT_GE(f.l1d_bytes, 4096u);
  EXPECT_TRUE(isa_supported(Isa::portable));
  EXPECT_TRUE(isa_supported(active_isa()));
  EXPECT_EQ(parse_isa("avx2"), Isa::avx2);
  EXPECT_THROW(parse_isa("sse9"), InputError);
}

TEST(ThreadPool, CoversEveryIndexOnceWithStaticChunks) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 3, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(size_t(n) + 10);
      std::vector<int> owner(size_t(n) + 10, -1);
      pool.run([&](int t, int nt) {
        EXPECT_EQ(nt, threads);
        auto [lo, hi] = static_chunk(10, 10 + n, t, nt);
        for (int64_t i = lo; i < hi; ++i) owner[size_t(i)] = t;
      });
      pool.parallel_for(10, 10 + n, [&](int64_t i) { hits[size_t(i)].fetch_add(1); });
      for (int64_t i = 0; i < n + 10; ++i) EXPECT_EQ(hits[size_t(i)].load(), i >= 10 ? 1 : 0);
      // Chunks are contiguous, in thread order, and differ in size by at most one.
      for (int64_t i = 11; i < n + 10; ++i) EXPECT_LE(owner[size_t(i - 1)], owner[size_t(i)]);
      int64_t prev_hi = 10;
      for (int t = 0; t < threads; ++t) {
        auto [lo, hi] = static_chunk(10, 10 + n, t, threads);
        EXPECT_EQ(lo, prev_hi);
        EXPECT_LE(hi - lo, n / threads + 1);
        EXPECT_GE(hi - lo, n / threads);
        prev_hi = hi;
      }
      EXPECT_EQ(prev_hi, 10 + n);
    }
  }
}

TEST(ThreadPool, NestedCallsRunInlineAndComplete) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(40 * 40);
  pool.parallel_for(0, 40, [&](int64_t i) {
    EXPECT_TRUE(ThreadPool::inside_task());
    pool.run([&](int t, int nt) {
      EXPECT_EQ(t, 0);
      EXPECT_EQ(nt, 1);
    });
    pool.parallel_for(0, 40, [&](int64_t j) { hits[size_t(i * 40 + j)].fetch_add(1); });
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  EXPECT_FALSE(ThreadPool::inside_task());
}

TEST(ThreadPool, ConcurrentCallersAndExceptions) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep) pool.parallel_for(0, 100, [&](int64_t i) { sum += i; });
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(sum.load(), 3 * 200 * 4950);
  EXPECT_THROW(pool.run([](int t, int) {
    if (t == 1) throw std::runtime_error("worker failed");
  }), std::runtime_error);
  int after = 0;
  pool.run([&](int t, int) { if (t == 0) after = 1; });  // still usable
  EXPECT_EQ(after, 1);
}

TEST(ThreadPool, GlobalPoolFollowsSetCpuThreads) {
  set_cpu_threads(3);
  EXPECT_EQ(cpu_threads(), 3);
  set_cpu_threads(0);
  EXPECT_EQ(cpu_threads(), cpu_features().logical_cpus);
}

}  // namespace
}  // namespace tb::cpu
