#include "ops/cpu/conv_packer.h"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "ops/cpu/cpu_features.h"
#include "ops/cpu/gemm_kernels.h"

#define TB_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,bmi2")))

namespace tb::cpu {
namespace {

// A piece of the packed columns that lies in one output row of one image (and one sliver):
// the same for every im2col row, so it is worked out once per pack call, not once per row.
struct Run {
  int64_t dst;    // offset of its first column in the output line (sliver * stride + lane)
  int64_t image;  // offset of the image's first plane in x
  int ih0;        // input row of kernel row r = 0: p * stride - pad
  int q0, len;    // output columns [q0, q0 + len)
};

// Grow-only, one per thread: the GEMM calls the packer from several threads at once.
thread_local std::vector<Run> t_runs;

// Lanes [lo, hi) of a 16-lane mask (any ints; clamped to [0, 16]).
inline uint32_t lane_mask(int lo, int hi) {
  const auto bits = [](int n) { return n <= 0 ? 0u : n >= 16 ? 0xFFFFu : (1u << n) - 1u; };
  return bits(hi) & ~bits(lo);
}

// One im2col row (c, r, s), restricted to the columns of `runs`, written to out + run.dst.
struct RowSource {
  const float* x;
  int64_t plane;   // c * H * W
  int r, s;        // kernel tap
  int lo_q, hi_q;  // output columns whose input column q * S - pad + s lies inside [0, W)
};

RowSource row_source(const ConvColumnsSource& src, int row) {
  const Conv2dParams& p = src.params;
  const int k = p.kernel, S = p.stride, Q = p.Q();
  const int c = row / (k * k), r = row / k % k, s = row % k;
  RowSource rs{src.x, int64_t(c) * p.H * p.W, r, s, 0, 0};
  rs.lo_q = p.pad - s > 0 ? (p.pad - s + S - 1) / S : 0;
  rs.hi_q = p.W - 1 + p.pad - s < 0 ? 0 : std::min(Q, (p.W - 1 + p.pad - s) / S + 1);
  return rs;
}

void write_row_scalar(const std::vector<Run>& runs, const Conv2dParams& p, const RowSource& rs,
                      float* out) {
  const int S = p.stride;
  for (const Run& run : runs) {
    float* d = out + run.dst;
    const int ih = run.ih0 + rs.r;
    const int q1 = run.q0 + run.len;
    const int lo = std::clamp(rs.lo_q, run.q0, q1), hi = std::clamp(rs.hi_q, lo, q1);
    if (ih < 0 || ih >= p.H || lo == hi) {
      std::fill(d, d + run.len, 0.0f);
      continue;
    }
    // x at output column q of this run is line[q * S].
    const float* line = rs.x + run.image + rs.plane + int64_t(ih) * p.W + (rs.s - p.pad);
    float* dq = d - run.q0;  // dq[q] is the slot of output column q
    for (int q = run.q0; q < lo; ++q) dq[q] = 0.0f;
    if (S == 1) {
      for (int q = lo; q < hi; ++q) dq[q] = line[q];
    } else {
      for (int q = lo; q < hi; ++q) dq[q] = line[int64_t(q) * S];
    }
    for (int q = hi; q < q1; ++q) dq[q] = 0.0f;
  }
}

// Stride 1 with AVX-512: a run is short (at most a sliver, 48 floats, or an output row), so
// it takes a few masked load/store pairs instead of a zero loop, a copy loop and a zero loop
// with their branches (the scalar packer was 15% of a cifar_cnn step). Masked-off lanes are
// not read, so the loads never touch memory outside the input row. Same values as scalar.
TB_AVX512 void write_row_stride1_avx512(const std::vector<Run>& runs, const Conv2dParams& p,
                                        const RowSource& rs, float* out) {
  const int64_t plane = rs.plane, row_offset = rs.s - p.pad;
  const int r = rs.r, lo_q = rs.lo_q, hi_q = rs.hi_q, H = p.H, W = p.W;
  const float* x = rs.x;
  float* d_row = out;
  for (const Run& run : runs) {
    float* d = d_row + run.dst;
    const int ih = run.ih0 + r;
    const bool inside = ih >= 0 && ih < H;
    // Valid packed positions t (output column q0 + t) of this run.
    const int vlo = lo_q - run.q0, vhi = hi_q - run.q0;
    const float* line = x + run.image + plane + int64_t(inside ? ih : 0) * W + row_offset + run.q0;
    for (int t = 0; t < run.len; t += 16) {
      const __mmask16 store = __mmask16(lane_mask(0, run.len - t));
      const __mmask16 load = inside ? __mmask16(store & lane_mask(vlo - t, vhi - t)) : 0;
      _mm512_mask_storeu_ps(d + t, store, _mm512_maskz_loadu_ps(load, line + t));
    }
  }
}

// Stride 2 with AVX-512: output column q reads line[2q], so 16 outputs come from two
// masked 16-float loads (only the even lanes of valid outputs are read, so nothing outside
// the input row is touched) and one two-source permute of the even lanes. Same values as
// scalar (it was 1.5% of a resnet18 step).
TB_AVX512 void write_row_stride2_avx512(const std::vector<Run>& runs, const Conv2dParams& p,
                                        const RowSource& rs, float* out) {
  const int64_t plane = rs.plane, row_offset = rs.s - p.pad;
  const int r = rs.r, lo_q = rs.lo_q, hi_q = rs.hi_q, H = p.H, W = p.W;
  const float* x = rs.x;
  const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  for (const Run& run : runs) {
    float* d = out + run.dst;
    const int ih = run.ih0 + r;
    const bool inside = ih >= 0 && ih < H;
    const int vlo = lo_q - run.q0, vhi = hi_q - run.q0;
    const float* line =
        x + run.image + plane + int64_t(inside ? ih : 0) * W + row_offset + 2 * int64_t(run.q0);
    for (int t = 0; t < run.len; t += 16) {
      const uint32_t store = lane_mask(0, run.len - t);
      const uint32_t valid = inside ? store & lane_mask(vlo - t, vhi - t) : 0;
      // Output lane i reads source float 2i: spread the 16 output bits to the even bits.
      const uint32_t load = _pdep_u32(valid, 0x55555555u);
      const __m512 lo = _mm512_maskz_loadu_ps(__mmask16(load), line + 2 * t);
      const __m512 hi = _mm512_maskz_loadu_ps(__mmask16(load >> 16), line + 2 * t + 16);
      _mm512_mask_storeu_ps(d + t, __mmask16(store), _mm512_permutex2var_ps(lo, evens, hi));
    }
  }
}

// The row writer for this stride and ISA.
using RowWriter = void (*)(const std::vector<Run>&, const Conv2dParams&, const RowSource&, float*);
RowWriter row_writer(int stride) {
  if (active_isa() != Isa::avx512) return write_row_scalar;
  if (stride == 1) return write_row_stride1_avx512;
  if (stride == 2) return write_row_stride2_avx512;
  return write_row_scalar;
}

void pack_columns(const void* ctx, int k0, int kc, int j0, int n, int nr, int64_t sliver_stride,
                  float* dst) {
  const ConvColumnsSource& src = *static_cast<const ConvColumnsSource*>(ctx);
  const Conv2dParams& p = src.params;
  const int P = p.P(), Q = p.Q(), S = p.stride;
  const int64_t pq = int64_t(P) * Q, hw = int64_t(p.H) * p.W;

  std::vector<Run>& runs = t_runs;
  runs.clear();
  for (int jj = 0; jj < n;) {
    const int64_t j = int64_t(j0) + jj;
    const int i = int(j / pq);
    const int64_t pos = j % pq;
    const int op = int(pos / Q), oq = int(pos % Q);
    const int lane = jj % nr;
    const int len = std::min({Q - oq, nr - lane, n - jj});
    runs.push_back(Run{int64_t(jj / nr) * sliver_stride + lane,
                       int64_t(src.n0 + i) * p.C * hw, op * S - p.pad, oq, len});
    jj += len;
  }
  const int tail = n % nr;  // columns past n in the last sliver are zeros
  float* tail_dst = tail ? dst + int64_t(n / nr) * sliver_stride + tail : nullptr;
  const RowWriter write_row = row_writer(S);

  for (int kk = 0; kk < kc; ++kk) {
    const RowSource rs = row_source(src, k0 + kk);
    float* d_row = dst + int64_t(kk) * nr;
    if (tail_dst)
      std::fill(tail_dst + int64_t(kk) * nr, tail_dst + int64_t(kk) * nr + (nr - tail), 0.0f);
    write_row(runs, p, rs, d_row);
  }
}

// Thread-local, grow-only: the im2col rows of one sliver of the transposed packer.
thread_local std::vector<float> t_lines;

// op(B) = col^T (the weight gradient dW = dY * col^T): rows k are im2col columns (image,
// pixel), columns j are im2col rows (c, r, s). Each sliver's nr im2col rows, restricted to
// columns [k0, k0 + kc), are written to a small buffer that stays in L1/L2 and then
// transposed into the sliver by the GEMM's own k-minor packer, instead of writing the whole
// chunk's im2col matrix and transposing from there.
void pack_columns_transposed(const void* ctx, int k0, int kc, int j0, int n, int nr,
                             int64_t sliver_stride, float* dst) {
  const ConvColumnsSource& src = *static_cast<const ConvColumnsSource*>(ctx);
  const Conv2dParams& p = src.params;
  const int P = p.P(), Q = p.Q(), S = p.stride;
  const int64_t pq = int64_t(P) * Q, hw = int64_t(p.H) * p.W;

  std::vector<Run>& runs = t_runs;  // pieces of [k0, k0 + kc) within one output row
  runs.clear();
  for (int kk = 0; kk < kc;) {
    const int64_t j = int64_t(k0) + kk;
    const int i = int(j / pq);
    const int64_t pos = j % pq;
    const int op = int(pos / Q), oq = int(pos % Q);
    const int len = std::min(Q - oq, kc - kk);
    runs.push_back(Run{kk, int64_t(src.n0 + i) * p.C * hw, op * S - p.pad, oq, len});
    kk += len;
  }
  const RowWriter write_row = row_writer(S);
  const auto pack_kminor = isa_supported(Isa::avx2) ? detail::pack_kminor_avx2
                                                    : detail::pack_kminor_portable;
  std::vector<float>& lines = t_lines;
  if (lines.size() < size_t(nr) * kc) lines.resize(size_t(nr) * kc);
  for (int s0 = 0; s0 < n; s0 += nr) {
    const int count = std::min(nr, n - s0);
    for (int l = 0; l < count; ++l) {
      const RowSource rs = row_source(src, j0 + s0 + l);
      float* out = lines.data() + int64_t(l) * kc;
      write_row(runs, p, rs, out);
    }
    pack_kminor(lines.data(), kc, count, kc, nr, sliver_stride,
                dst + int64_t(s0 / nr) * sliver_stride);
  }
}

}  // namespace

SgemmBPacker ConvColumnsSource::packer() const { return SgemmBPacker{&pack_columns, this}; }
SgemmBPacker ConvColumnsSource::transposed_packer() const {
  return SgemmBPacker{&pack_columns_transposed, this};
}

}  // namespace tb::cpu
