#include "ops/cpu/gemm.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "ops/cpu/gemm_kernels.h"
#include "ops/cpu/thread_pool.h"

namespace tb::cpu {
namespace {

using detail::GemmKernel;
using detail::TileStore;

int ceil_div(int a, int b) { return (a + b - 1) / b; }
int round_up(int a, int b) { return ceil_div(a, b) * b; }

// A 64-byte aligned buffer that only grows: after the largest call, packing allocates nothing.
class PackBuffer {
 public:
  ~PackBuffer() { std::free(data_); }
  float* get(size_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      capacity_ = data_ ? floats : 0;
      TB_CHECK(data_ != nullptr, "cannot allocate {} bytes for GEMM packing", bytes);
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

// Each thread packs its own A blocks, and its own B slivers when no other thread needs them;
// a shared B panel lives with the thread that called sgemm.
thread_local PackBuffer t_a_pack, t_b_private, t_b_pack;

struct Operand {
  const float* data;
  int64_t ld;
  bool trans;  // stored transposed: element (row, col) of op(X) is data[col * ld + row]
};

// Packs rows [i0, i0 + m) x columns [p0, p0 + kc) of op(A) into ceil(m / mr) slivers.
void pack_a(const GemmKernel& kern, const Operand& a, int i0, int m, int p0, int kc, float* dst) {
  if (a.trans) {
    kern.pack_kmajor(a.data + int64_t(p0) * a.ld + i0, a.ld, m, kc, kern.mr, dst);
  } else {
    kern.pack_kminor(a.data + int64_t(i0) * a.ld + p0, a.ld, m, kc, kern.mr, dst);
  }
}

// Packs rows [p0, p0 + kc) x columns [j0, j0 + n) of op(B) into ceil(n / nr) slivers.
void pack_b(const GemmKernel& kern, const Operand& b, int j0, int n, int p0, int kc, float* dst) {
  if (b.trans) {
    kern.pack_kminor(b.data + int64_t(j0) * b.ld + p0, b.ld, n, kc, kern.nr, dst);
  } else {
    kern.pack_kmajor(b.data + int64_t(p0) * b.ld + j0, b.ld, n, kc, kern.nr, dst);
  }
}

const GemmKernel* kernel_list(Isa isa, int* count) {
  switch (isa) {
    case Isa::avx512: return detail::avx512_gemm_kernels(count);
    case Isa::avx2: return detail::avx2_gemm_kernels(count);
    case Isa::portable: break;
  }
  return detail::portable_gemm_kernels(count);
}

const GemmKernel& select_kernel(const SgemmOptions& o) {
  Isa isa = o.isa < 0 ? active_isa() : Isa(o.isa);
  TB_CHECK(isa_supported(isa), "sgemm: ISA {} is not supported by this CPU", isa_name(isa));
  int count = 0;
  const GemmKernel* list = kernel_list(isa, &count);
  if (o.kernel == nullptr) return list[0];
  for (int i = 0; i < count; ++i)
    if (std::strcmp(list[i].name, o.kernel) == 0) return list[i];
  TB_FAIL("sgemm: no micro-kernel '{}' for ISA {}", o.kernel, isa_name(isa));
}

// Cache blocking. kc depends only on K and the kernel (never on threads), so the summation
// order of every C element is fixed by the shape. The K blocks are balanced: K = 400 with a
// 384 limit gives two blocks of 200, not 384 + 16.
// Splits `threads` into a tm x tn grid over (row tiles, column slivers): thread (ti, tj)
// owns a block of C. The cost model is the thread's tile area (compute) plus the A rows it
// packs (each column group repacks its rows) and its share of B packing.
struct Grid {
  int tm = 1, tn = 1;
};
Grid choose_grid(int threads, int m_tiles, int n_slivers, int mr, int nr) {
  Grid best;
  double best_cost = 1e300;
  for (int tm = 1; tm <= threads; ++tm) {
    if (threads % tm) continue;
    int tn = threads / tm;
    double rows = double(ceil_div(m_tiles, tm)) * mr, cols = double(ceil_div(n_slivers, tn)) * nr;
    double cost = rows * cols + 8.0 * rows + 8.0 * cols / tm;
    if (cost < best_cost) best_cost = cost, best = Grid{tm, tn};
  }
  return best;
}

// Cache blocking and the thread grid. kc depends only on K (never on threads), so the
// summation order of every C element is fixed by the shape; the K blocks are balanced
// (K = 400 with a 384 limit gives two blocks of 200, not 384 + 16). Everything else only
// changes who computes a tile and when, never how.
struct Plan {
  const GemmKernel* kernel;
  int kc, mc, nc;
  int threads;
  Grid grid;
};

Plan make_plan(const GemmKernel& kern, const GemmBlocking& blocking, int M, int N, int K,
               int pool_threads) {
  const CpuFeatures& f = cpu_features();
  const int mr = kern.mr, nr = kern.nr;
  Plan p{&kern, 0, 0, 0, 1, Grid{}};
  // kc: the C tile is loaded and stored once per K block, so longer is better while the
  // packed slivers stay near the core.
  const int kc_max = std::max(8, blocking.kc > 0 ? blocking.kc : 384);
  p.kc = ceil_div(K, ceil_div(K, kc_max));
  // mc: the packed A block (mc x kc) takes about half of L2.
  const int mc = blocking.mc > 0 ? blocking.mc : int(f.l2_bytes / 2 / 4 / size_t(p.kc));
  p.mc = std::max(mr, mc / mr * mr);
  // Threads: enough work for each to hide the wake-up (a few microseconds), no more threads
  // than tiles.
  const int m_tiles = ceil_div(M, mr), n_slivers = ceil_div(N, nr);
  const double flops = 2.0 * M * N * K;
  p.threads = int(std::min<double>({double(pool_threads), std::max(1.0, flops / 1.0e6),
                                    double(m_tiles) * n_slivers}));
  p.grid = choose_grid(p.threads, m_tiles, n_slivers, mr, nr);
  // nc: the packed B panel (kc x nc) is reused by every A block and lives in L3. Measured on
  // Zen 4: a panel small enough for L2 (tried for few-row problems) was slower, because A is
  // repacked for every panel, and long panels make B packing read long contiguous runs.
  int nc = blocking.nc > 0
               ? blocking.nc
               : int(std::min<size_t>(f.l3_bytes / 2, 16u << 20) / 4 / 2 / size_t(p.kc));
  p.nc = std::min(std::max(nr, nc / nr * nr), round_up(N, nr));
  return p;
}

void scale_only(int M, int N, float beta, float* C, int64_t ldc, const SgemmEpilogue* epi) {
  for (int i = 0; i < M; ++i) {
    float* row = C + i * ldc;
    for (int j = 0; j < N; ++j) {
      float x = beta == 0.0f ? 0.0f : beta * row[j];
      if (epi && epi->bias_row) x += epi->bias_row[i];
      if (epi && epi->bias_col) x += epi->bias_col[j];
      if (epi && epi->relu) x = x > 0.0f ? x : 0.0f;
      row[j] = x;
    }
  }
}

void gemm_blocked(const Plan& p, ThreadPool& pool, const Operand& A, const Operand& B, int M,
                  int N, int K, float alpha, float beta, float* C, int64_t ldc,
                  const SgemmEpilogue* epi) {
  const GemmKernel& kern = *p.kernel;
  const int mr = kern.mr, nr = kern.nr;
  const int m_tiles = ceil_div(M, mr), panel_slivers = ceil_div(p.nc, nr);
  const int64_t panel_floats = int64_t(p.kc) * p.nc;
  const int pool_used = p.threads;  // <= pool.size()
  const Grid pool_grid = p.grid;
  // With tm > 1 the threads of a column group share its B slivers: one panel, packed
  // together. Two panels alternate: while slow threads still read panel i, fast ones pack
  // panel i + 1, so one barrier per K block suffices (nobody packs panel i + 2 before all
  // finished panel i). With tm == 1 every thread packs its slivers into its own buffer and
  // runs without barriers (threads may then drift apart by any number of blocks).
  float* shared_panels = pool_grid.tm > 1 ? t_b_pack.get(size_t(2 * panel_floats)) : nullptr;
  SpinBarrier barrier(pool_used);

  pool.run([&](int t, int nt) {
    const int used = nt == 1 ? 1 : pool_used;  // nt is pool.size(), or 1 when nested
    if (t >= used) return;
    const Grid g = used == 1 ? Grid{} : pool_grid;
    const bool shared = g.tm > 1;
    const int ti = t / g.tn, tj = t % g.tn;
    const auto [tile0, tile1] = static_chunk(0, m_tiles, ti, g.tm);
    const int row0 = int(tile0) * mr, row1 = std::min(int(tile1) * mr, M);
    float* a_pack = t_a_pack.get(size_t(p.mc) * p.kc);
    float* own_panel =
        shared ? nullptr : t_b_private.get(size_t(p.kc) * ceil_div(panel_slivers, g.tn) * nr);
    int iteration = 0;
    for (int jc = 0; jc < N; jc += p.nc) {
      const int ncur = std::min(p.nc, N - jc), slivers = ceil_div(ncur, nr);
      const auto [s0, s1] = static_chunk(0, slivers, tj, g.tn);
      for (int p0 = 0; p0 < K; p0 += p.kc, ++iteration) {
        const int kcur = std::min(p.kc, K - p0);
        // Sliver s of this panel lives at panel + (s - first) * kcur * nr.
        float* panel = shared ? shared_panels + (iteration & 1) * panel_floats : own_panel;
        const int64_t first = shared ? 0 : s0;
        // The threads of column group tj pack its slivers between them.
        const auto [q0, q1] = static_chunk(s0, s1, ti, g.tm);
        if (q0 < q1)
          pack_b(kern, B, jc + int(q0) * nr, std::min(ncur - int(q0) * nr, int(q1 - q0) * nr),
                 p0, kcur, panel + (q0 - first) * kcur * nr);
        if (shared) barrier.arrive_and_wait();

        const bool last = p0 + kcur >= K;
        TileStore st;
        st.alpha = alpha;
        st.beta = p0 == 0 ? beta : 1.0f;
        st.relu = last && epi && epi->relu;
        for (int ic = row0; ic < row1; ic += p.mc) {
          const int mcur = std::min(p.mc, row1 - ic);
          pack_a(kern, A, ic, mcur, p0, kcur, a_pack);
          for (int s = int(s0); s < int(s1); ++s) {
            const int j = jc + s * nr, n = std::min(nr, N - j);
            const float* b_sliver = panel + (s - first) * kcur * nr;
            st.bias_col = last && epi && epi->bias_col ? epi->bias_col + j : nullptr;
            for (int ir = 0; ir < mcur; ir += mr) {
              const int i = ic + ir;
              st.bias_row = last && epi && epi->bias_row ? epi->bias_row + i : nullptr;
              kern.kernel(kcur, a_pack + int64_t(ir) * kcur, b_sliver, C + i * ldc + j, ldc,
                          std::min(mr, M - i), n, st);
            }
          }
        }
      }
    }
  });
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, SgemmOptions{});
}

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc, const SgemmOptions& o) {
  TB_CHECK(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size {}x{}x{}", M, N, K);
  TB_CHECK(lda >= std::max(1, trans_a ? M : K), "sgemm: lda {} too small", lda);
  TB_CHECK(ldb >= std::max(1, trans_b ? K : N), "sgemm: ldb {} too small", ldb);
  TB_CHECK(ldc >= std::max(1, N), "sgemm: ldc {} too small", ldc);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) return scale_only(M, N, beta, C, ldc, o.epilogue);

  const GemmKernel& kern = select_kernel(o);
  ThreadPool& pool = o.pool ? *o.pool : cpu_pool();
  const Plan plan = make_plan(kern, o.blocking, M, N, K, pool.size());
  gemm_blocked(plan, pool, Operand{A, lda, trans_a}, Operand{B, ldb, trans_b}, M, N, K, alpha,
               beta, C, ldc, o.epilogue);
}

const char* gemm_kernel_name(Isa isa) {
  int count = 0;
  return kernel_list(isa, &count)[0].name;
}

const char* gemm_kernel_names(Isa isa) {
  static const std::array<std::string, 3> names = [] {
    std::array<std::string, 3> s;
    for (int isa_index = 0; isa_index < 3; ++isa_index) {
      int count = 0;
      const GemmKernel* list = kernel_list(Isa(isa_index), &count);
      for (int i = 0; i < count; ++i) {
        if (i) s[isa_index] += ' ';
        s[isa_index] += list[i].name;
      }
    }
    return s;
  }();
  return names[int(isa)].c_str();
}

}  // namespace tb::cpu
