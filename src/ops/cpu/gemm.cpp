#include "ops/cpu/gemm.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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
thread_local PackBuffer t_a_pack, t_a_whole, t_b_private, t_b_pack, t_split_k;
// A B read through row pointers (SgemmBRows): those of the current K block.
thread_local std::vector<const float*> t_b_rows;

// A private-panel thread whose A is one row block (M <= mc) packs all of A once per sgemm
// call and reuses it for every further panel, instead of repacking (k-minor A means 8x8
// transposes) once per panel: a conv's weights were packed three times per image. Up to
// this many floats per thread (4 MiB, beyond which reading the copy back costs about what
// the repacking does).
constexpr int64_t kWholeAFloats = int64_t(1) << 20;

struct Operand {
  const float* data;
  int64_t ld;
  bool trans;  // stored transposed: element (row, col) of op(X) is data[col * ld + row]
  const SgemmBPacker* packer = nullptr;  // B only: produced by a callback instead
  const SgemmBRows* rows = nullptr;      // B only: read in place through row pointers
  int k_offset = 0;                      // with packer: row 0 of this B is row k_offset

  // The operand restricted to k in [k0, ...): columns of op(A) (is_a) or rows of op(B).
  Operand from_k(int k0, bool is_a) const {
    Operand o = *this;
    if (packer) {
      o.k_offset += k0;
    } else {
      o.data += (trans == is_a) ? int64_t(k0) * ld : k0;
    }
    return o;
  }
};

// Packs rows [i0, i0 + m) x columns [p0, p0 + kc) of op(A) into ceil(m / mr) slivers.
void pack_a(const GemmKernel& kern, const Operand& a, int i0, int m, int p0, int kc, float* dst) {
  const int64_t stride = int64_t(kc) * kern.mr;
  if (a.trans) {
    kern.pack_kmajor(a.data + int64_t(p0) * a.ld + i0, a.ld, m, kc, kern.mr, stride, dst);
  } else {
    kern.pack_kminor(a.data + int64_t(i0) * a.ld + p0, a.ld, m, kc, kern.mr, stride, dst);
  }
}

// Packs part of the B panel of columns [j0, j0 + n) x rows [p0, p0 + kc), whose slivers are
// kc * nr floats apart: part `part` of `parts` (the threads sharing the panel). Untransposed
// (and callback-produced) B is split by k rows, so each thread reads whole panel-wide runs of
// its rows (the prefetcher needs long runs); transposed B is split by slivers, whose source
// lines run along k.
void pack_b_part(const GemmKernel& kern, const Operand& b, int j0, int n, int p0, int kc,
                 int part, int parts, float* panel) {
  const int nr = kern.nr;
  const int64_t stride = int64_t(kc) * nr;
  if (b.packer) {
    const auto [k0, k1] = static_chunk(0, kc, part, parts);
    if (k0 < k1)
      b.packer->pack(b.packer->ctx, b.k_offset + p0 + int(k0), int(k1 - k0), j0, n, nr, stride,
                     panel + k0 * nr);
  } else if (!b.trans) {
    const auto [k0, k1] = static_chunk(0, kc, part, parts);
    if (k0 < k1)
      kern.pack_kmajor(b.data + (p0 + k0) * b.ld + j0, b.ld, n, int(k1 - k0), nr, stride,
                       panel + k0 * nr);
  } else {
    const auto [q0, q1] = static_chunk(0, ceil_div(n, nr), part, parts);
    if (q0 < q1)
      kern.pack_kminor(b.data + (j0 + q0 * nr) * b.ld + p0, b.ld,
                       std::min(n - int(q0) * nr, int(q1 - q0) * nr), kc, nr, stride,
                       panel + q0 * stride);
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
  if (o.kernel != nullptr) {  // by name, from any ISA's list
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::portable}) {
      int count = 0;
      const GemmKernel* list = kernel_list(isa, &count);
      for (int i = 0; i < count; ++i) {
        if (std::strcmp(list[i].name, o.kernel) != 0) continue;
        TB_CHECK(isa_supported(isa), "sgemm: kernel {} needs {}", o.kernel, isa_name(isa));
        return list[i];
      }
    }
    TB_FAIL("sgemm: no micro-kernel named '{}'", o.kernel);
  }
  const Isa isa = o.isa < 0 ? active_isa() : Isa(o.isa);
  TB_CHECK(isa_supported(isa), "sgemm: ISA {} is not supported by this CPU", isa_name(isa));
  int count = 0;
  return kernel_list(isa, &count)[0];
}

// Column groups that share B panels (one barrier each); more threads than this form more
// row groups instead.
constexpr int kMaxGroups = 64;

// Splits `threads` into tm x tn: with tm > 1, tn column groups of tm threads each share the
// B panels of a contiguous column range; with tm == 1 every thread packs its own panels. The
// modelled cost of a thread is its MACs per k (rows x cols) plus the operand floats feeding
// them (its rows of A, its columns of B), each weighted like 32 MACs - at peak, a float from
// L3 or another core's cache costs about that - which favours near-square blocks per thread.
// Among equals, fewer row groups win (tm == 1 needs no barriers).
struct Grid {
  int tm = 1, tn = 1;
};
Grid choose_grid(int threads, int m_tiles, int n_slivers, int mr, int nr) {
  Grid best;
  double best_cost = 1e300;
  for (int tm = 1; tm <= threads; ++tm) {
    const int tn = threads / tm;
    if (threads % tm || (tm > 1 && tn > kMaxGroups)) continue;
    const double rows = double(ceil_div(m_tiles, tm)) * mr;
    const double cols = double(ceil_div(n_slivers, tn)) * nr;
    const double cost = rows * cols + 32.0 * (rows + cols);
    if (cost < best_cost * (1.0 - 1e-9)) best_cost = cost, best = Grid{tm, tn};
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

// kc depends only on K, the micro-kernel's ISA (and a forced block size), never on threads:
// see Plan. AVX-512: 768. Every K block ends each tile with a load and store of C and the
// kernel's call overhead, and an 8x48 B sliver outgrows L1 from kc = 256 on anyway (the
// micro-kernel streams it from L2). On the 2-vCPU Xeon (2 MiB L2), 768 against 384 took 1-3%
// off resnet18's 3x3 convs at batch 64 (layer2's 1152-long K is 2 x 576 either way).
// Elsewhere 384, which a sweep from 128 to 768 put best or tied on Zen 4 and a 16-vCPU Xeon.
int plan_kc(const GemmKernel& kern, const GemmBlocking& blocking, int K) {
  const int by_isa = kern.isa == Isa::avx512 ? 768 : 384;
  const int kc_max = std::max(8, blocking.kc > 0 ? blocking.kc : by_isa);
  return ceil_div(K, ceil_div(K, kc_max));
}

// private_only: no shared B panels (a B read in place has none).
Plan make_plan(const GemmKernel& kern, const GemmBlocking& blocking, int M, int N, int K,
               int pool_threads, bool private_only = false) {
  const CpuFeatures& f = cpu_features();
  const int mr = kern.mr, nr = kern.nr;
  Plan p{&kern, 0, 0, 0, 1, Grid{}};
  // kc: the C tile is loaded and stored once per K block, so longer is better while the
  // packed slivers stay near the core.
  p.kc = plan_kc(kern, blocking, K);
  // mc: the packed A block (mc x kc) takes about half of L2.
  const int mc = blocking.mc > 0 ? blocking.mc : int(f.l2_bytes / 2 / 4 / size_t(p.kc));
  p.mc = std::max(mr, mc / mr * mr);
  // Threads: enough work for each to hide the wake-up (a few microseconds), no more threads
  // than tiles.
  const int m_tiles = ceil_div(M, mr), n_slivers = ceil_div(N, nr);
  const double flops = 2.0 * M * N * K;
  p.threads = int(std::min<double>({double(pool_threads), std::max(1.0, flops / 1.0e6),
                                    double(m_tiles) * n_slivers}));
  p.grid = private_only ? Grid{1, p.threads} : choose_grid(p.threads, m_tiles, n_slivers, mr, nr);
  // nc: shared panels (two per column group) split at most 32 MiB of L3 between them. A
  // private panel (tm == 1) that serves one A block is consumed right after packing and only
  // needs to stay in L2; one that serves several A blocks is reused and gets the thread's
  // share of L3 (at most 8 MiB), so A is repacked rarely.
  int nc = blocking.nc;
  if (nc <= 0) {
    const size_t kc_bytes = 4 * size_t(p.kc);
    if (p.grid.tm > 1) {
      nc = int(std::min<size_t>(f.l3_bytes / 2, 32u << 20) / 2 / kc_bytes / size_t(p.grid.tn));
    } else if (M <= p.mc) {
      nc = int(f.l2_bytes / 2 / kc_bytes);
    } else {
      nc = int(std::min<size_t>(f.l3_bytes / 2 / size_t(p.threads), 8u << 20) / kc_bytes);
    }
  }
  nc = std::max(nr, nc / nr * nr);
  // Private panels are the work items threads take: about three per thread when A is one
  // block (cheap to repack per panel), else one per thread (each panel repacks all of A).
  if (blocking.nc <= 0 && p.grid.tm == 1 && p.threads > 1) {
    const int per_thread = M <= p.mc ? 3 : 1;
    nc = std::min(nc, round_up(ceil_div(N, per_thread * p.threads), nr));
  }
  p.nc = std::min(nc, round_up(N, nr));
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

// A work counter on its own cache line.
struct alignas(64) WorkCounter {
  std::atomic<int64_t> next{0};
};

// Work is handed out dynamically (an atomic counter), because the cores of a shared machine
// are not equally fast: with a static split, measured on a 16-vCPU VM, the slowest thread took
// up to 1.8x as long as the fastest for the same tiles. This keeps results bit-identical:
// whoever computes a tile for a K block runs the same kernel on the same packed data, and the
// K blocks of a tile stay in order (one thread, or separated by a barrier).
// a_pre: all of A packed by sgemm_pack_a, or null.
void gemm_blocked(const Plan& p, ThreadPool& pool, const Operand& A, const Operand& B, int M,
                  int N, int K, float alpha, float beta, float* C, int64_t ldc,
                  const SgemmEpilogue* epi, const float* a_pre = nullptr) {
  const GemmKernel& kern = *p.kernel;
  const int mr = kern.mr, nr = kern.nr;
  // All of A, K block after K block: block p0 starts at p0 * m_pad (every earlier block is
  // kc long), each holding m_pad / mr slivers of kcur x mr.
  const int64_t m_pad = round_up(M, mr);
  const int64_t panel_floats = int64_t(p.kc) * p.nc;
  // With tm > 1 the threads of a column group share its B panels, packed together, and take
  // row chunks of each K block from the group's counter. Two panels alternate: while slow
  // threads still read panel i, fast ones pack panel i + 1, so one barrier per K block
  // suffices (nobody packs panel i + 2 before all finished panel i). With tm == 1 threads take
  // whole column panels (all K blocks) from one counter and pack them privately: no barriers.
  const Grid grid = p.grid;
  const bool shared_b = grid.tm > 1;
  float* shared_panels = shared_b ? t_b_pack.get(size_t(2 * panel_floats * grid.tn)) : nullptr;
  std::array<SpinBarrier, kMaxGroups> barriers;
  std::array<WorkCounter, kMaxGroups> counters;
  if (shared_b)
    for (int g = 0; g < grid.tn; ++g) barriers[size_t(g)].reset(grid.tm);
  // Row chunks: about three per thread of a group, so faster threads can take more.
  const int chunk_rows = std::min(p.mc, round_up(ceil_div(M, 3 * grid.tm), mr));
  const int row_chunks = ceil_div(M, chunk_rows);

  pool.run([&](int t, int nt) {
    const bool alone = nt == 1;  // nt is pool.size(), or 1 when nested
    if (!alone && t >= p.threads) return;
    float* a_pack = t_a_pack.get(size_t(p.mc) * p.kc);

    // C[rows r0..r1, columns jc..jc+ncur] += this K block, A packed in blocks of mc rows
    // (or already packed at a_packed, when rows r0..r1 are a single block).
    // B.rows: the row pointers of the current K block (kcur + kRowsAhead of them).
    const float* const* b_rows = nullptr;
    auto compute = [&](const float* panel, int jc, int ncur, int p0, int kcur, int r0, int r1,
                       const float* a_packed = nullptr) {
      const bool last = p0 + kcur >= K;
      TileStore st;
      st.alpha = alpha;
      st.beta = p0 == 0 ? beta : 1.0f;
      st.relu = last && epi && epi->relu;
      for (int ic = r0; ic < r1; ic += p.mc) {
        const int mcur = std::min(p.mc, r1 - ic);
        const float* a_block = a_packed;
        if (a_pre) {
          a_block = a_pre + p0 * m_pad + int64_t(ic) * kcur;
        } else if (!a_block) {
          pack_a(kern, A, ic, mcur, p0, kcur, a_pack);
          a_block = a_pack;
        }
        for (int j = jc; j < jc + ncur; j += nr) {
          const float* b_sliver = panel + int64_t(j - jc) * kcur;
          st.bias_col = last && epi && epi->bias_col ? epi->bias_col + j : nullptr;
          const int n = std::min(nr, N - j);
          const int vectors = ceil_div(n, 16);
          if (b_rows) {  // B read in place: no panel
            int64_t offsets[detail::kMaxNarrow];
            B.rows->col_offsets(B.rows->ctx, j, n, offsets);
            const detail::RowsKernel kernel = kern.rows[vectors];
            for (int ir = 0; ir < mcur; ir += mr) {
              const int i = ic + ir;
              st.bias_row = last && epi && epi->bias_row ? epi->bias_row + i : nullptr;
              kernel(kcur, a_block + int64_t(ir) * kcur, b_rows, offsets, C + i * ldc + j, ldc,
                     std::min(mr, M - i), n, st);
            }
            continue;
          }
          const detail::MicroKernel kernel =
              n < nr && vectors < detail::kMaxNarrow && kern.narrow[vectors]
                  ? kern.narrow[vectors]
                  : kern.kernel;
          for (int ir = 0; ir < mcur; ir += mr) {
            const int i = ic + ir;
            st.bias_row = last && epi && epi->bias_row ? epi->bias_row + i : nullptr;
            kernel(kcur, a_block + int64_t(ir) * kcur, b_sliver, C + i * ldc + j, ldc,
                   std::min(mr, M - i), n, st);
          }
        }
      }
    };

    if (alone || !shared_b) {
      float* panel = B.rows ? nullptr : t_b_private.get(size_t(panel_floats));
      std::atomic<int64_t>& next = counters[0].next;
      // A multiple of the thread count, so that equal panels end together (7 panels for 2
      // threads left one doing 4 of them: resnet18 layer4's weight gradient).
      const int panels = std::min(ceil_div(N, nr), round_up(ceil_div(N, p.nc), alone ? 1 : p.threads));
      float* a_whole = !a_pre && M <= p.mc && panels > 1 && m_pad * K <= kWholeAFloats
                           ? t_a_whole.get(size_t(m_pad * K))
                           : nullptr;
      bool a_whole_ready = false;
      for (int item = alone ? 0 : int(next.fetch_add(1)); item < panels;
           item = alone ? item + 1 : int(next.fetch_add(1))) {
        // The panels split the slivers evenly (at most nc / nr each): with nc-wide panels and
        // a short last one, 2 threads got 12 and 10 of resnet18 layer4's 22 slivers.
        const auto [s0, s1] = static_chunk(0, ceil_div(N, nr), item, panels);
        const int jc = int(s0) * nr, ncur = std::min(int(s1) * nr, N) - jc;
        for (int p0 = 0; p0 < K; p0 += p.kc) {
          const int kcur = std::min(p.kc, K - p0);
          if (B.rows) {
            std::vector<const float*>& rows = t_b_rows;
            rows.resize(size_t(kcur + detail::kRowsAhead));
            B.rows->rows(B.rows->ctx, p0, kcur, rows.data());
            for (int k = kcur; k < kcur + detail::kRowsAhead; ++k) rows[k] = rows[kcur - 1];
            b_rows = rows.data();
          } else {
            pack_b_part(kern, B, jc, ncur, p0, kcur, 0, 1, panel);
          }
          float* a_block = a_whole ? a_whole + p0 * m_pad : nullptr;
          if (a_block && !a_whole_ready) pack_a(kern, A, 0, M, p0, kcur, a_block);
          compute(panel, jc, ncur, p0, kcur, 0, M, a_block);
        }
        a_whole_ready = a_whole != nullptr;
      }
      return;
    }

    const int ti = t / grid.tn, tj = t % grid.tn;
    const auto [sliver0, sliver1] = static_chunk(0, ceil_div(N, nr), tj, grid.tn);
    const int col0 = int(sliver0) * nr, col1 = std::min(int(sliver1) * nr, N);
    std::atomic<int64_t>& next = counters[size_t(tj)].next;
    // Every thread of the group ends each K block with exactly one failed grab, so block i's
    // chunks are numbered from i * (row_chunks + tm) on the shared counter.
    int64_t base = 0;
    int iteration = 0;
    for (int jc = col0; jc < col1; jc += p.nc) {
      const int ncur = std::min(p.nc, col1 - jc);
      for (int p0 = 0; p0 < K; p0 += p.kc, ++iteration, base += row_chunks + grid.tm) {
        const int kcur = std::min(p.kc, K - p0);
        float* panel = shared_panels + (2 * tj + (iteration & 1)) * panel_floats;
        pack_b_part(kern, B, jc, ncur, p0, kcur, ti, grid.tm, panel);
        barriers[size_t(tj)].arrive_and_wait();
        for (int64_t c = next.fetch_add(1) - base; c < row_chunks; c = next.fetch_add(1) - base)
          compute(panel, jc, ncur, p0, kcur, int(c) * chunk_rows,
                  std::min(M, int(c + 1) * chunk_rows));
      }
    }
  });
}

// Deterministic split-K, for a C too small to keep the threads busy with a long K (a
// convolution's weight gradient: K = batch x pixels). K is cut into chunks fixed by the shape,
// each chunk is a single-threaded GEMM into its own partial C, and the partials are summed in
// chunk order - so the bits do not depend on the thread count either.
int split_k_chunks(const GemmKernel& kern, int M, int N, int K) {
  const int64_t tiles = int64_t(ceil_div(M, kern.mr)) * ceil_div(N, kern.nr);
  if (K < 4096 || tiles >= 256) return 1;
  const int64_t by_size = (int64_t(16) << 20) / (int64_t(M) * N);  // partials <= 64 MiB
  // Chunks of at least 512: alexnet_lite's fc1 (64 x 512 x 6272) had 3 chunks of 2048, so
  // 13 of 16 threads idled; summing 12 partials of 64 x 512 costs ~2% of the GEMM on one.
  return int(std::clamp<int64_t>(std::min<int64_t>(K / 512, by_size), 1, 64));
}

void gemm_split_k(const GemmKernel& kern, const GemmBlocking& blocking, int chunks,
                  ThreadPool& pool, const Operand& A, const Operand& B, int M, int N, int K,
                  float alpha, float beta, float* C, int64_t ldc, const SgemmEpilogue* epi) {
  const int64_t mn = int64_t(M) * N;
  float* partials = t_split_k.get(size_t(chunks * mn));
  WorkCounter counter;
  pool.run([&](int t, int nt) {
    if (nt > 1 && t >= chunks) return;
    for (int s = nt == 1 ? 0 : int(counter.next.fetch_add(1)); s < chunks;
         s = nt == 1 ? s + 1 : int(counter.next.fetch_add(1))) {
      const auto [k0, k1] = static_chunk(0, K, s, chunks);
      const int ks = int(k1 - k0);
      // Nested in this task, the chunk's GEMM runs on this thread alone.
      gemm_blocked(make_plan(kern, blocking, M, N, ks, 1), pool, A.from_k(int(k0), true),
                   B.from_k(int(k0), false), M, N, ks, 1.0f, 0.0f, partials + s * mn, N,
                   nullptr);
    }
  });
  pool.parallel_for_range(0, M, [&](int64_t i0, int64_t i1) {
    float sum[256];  // a piece of a row, summed chunk by chunk (vectorisable, same order)
    for (int64_t i = i0; i < i1; ++i) {
      float* row = C + i * ldc;
      for (int j0 = 0; j0 < N; j0 += 256) {
        const int n = std::min(256, N - j0);
        const float* first = partials + i * N + j0;
        for (int j = 0; j < n; ++j) sum[j] = first[j];
        for (int s = 1; s < chunks; ++s)
          for (int j = 0; j < n; ++j) sum[j] += first[s * mn + j];
        for (int j = 0; j < n; ++j) {
          float x = alpha * sum[j];
          if (beta != 0.0f) x = beta * row[j0 + j] + x;
          if (epi && epi->bias_row) x += epi->bias_row[i];
          if (epi && epi->bias_col) x += epi->bias_col[j0 + j];
          if (epi && epi->relu) x = x > 0.0f ? x : 0.0f;
          row[j0 + j] = x;
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
  TB_CHECK(o.b_packer.pack || o.b_rows.rows || ldb >= std::max(1, trans_b ? K : N),
           "sgemm: ldb {} too small", ldb);
  TB_CHECK(ldc >= std::max(1, N), "sgemm: ldc {} too small", ldc);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) return scale_only(M, N, beta, C, ldc, o.epilogue);

  const GemmKernel& kern = select_kernel(o);
  ThreadPool& pool = o.pool ? *o.pool : cpu_pool();
  Operand b{B, ldb, trans_b, o.b_packer.pack ? &o.b_packer : nullptr};
  const Operand a{A, lda, trans_a};
  if (o.b_rows.rows) {  // private panels only, no split-K: nothing of B is packed
    TB_CHECK(kern.nr % 16 == 0 && kern.nr / 16 <= detail::kMaxNarrow && kern.rows[kern.nr / 16],
             "sgemm: micro-kernel {} cannot read B through row pointers", kern.name);
    b.rows = &o.b_rows;
    const Plan plan = make_plan(kern, o.blocking, M, N, K, pool.size(), true);
    return gemm_blocked(plan, pool, a, b, M, N, K, alpha, beta, C, ldc, o.epilogue, o.a_packed);
  }
  // Split-K cuts K differently: it packs A itself from the matrix, even where A comes packed
  // (a conv packs its weights only when it has several chunks, which can depend on threads).
  if (const int chunks = split_k_chunks(kern, M, N, K); chunks > 1)
    return gemm_split_k(kern, o.blocking, chunks, pool, a, b, M, N, K, alpha, beta, C, ldc,
                        o.epilogue);
  const Plan plan = make_plan(kern, o.blocking, M, N, K, pool.size());
  gemm_blocked(plan, pool, a, b, M, N, K, alpha, beta, C, ldc, o.epilogue, o.a_packed);
}

size_t sgemm_packed_a_floats(int M, int K, const SgemmOptions& o) {
  return size_t(round_up(M, select_kernel(o).mr)) * size_t(K);
}

void sgemm_pack_a(bool trans_a, int M, int K, const float* A, int lda, const SgemmOptions& o,
                  float* out) {
  const GemmKernel& kern = select_kernel(o);
  const int kc = plan_kc(kern, o.blocking, K);
  const int64_t m_pad = round_up(M, kern.mr);
  const Operand a{A, lda, trans_a};
  // K blocks over the pool, so that packing a large A once (layer4's 2.4M-float weights)
  // does not leave the other threads waiting.
  ThreadPool& pool = o.pool ? *o.pool : cpu_pool();
  pool.parallel_for(0, ceil_div(K, kc), [&](int64_t block) {
    const int p0 = int(block) * kc;
    pack_a(kern, a, 0, M, p0, std::min(kc, K - p0), out + p0 * m_pad);
  });
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
