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

// Stride 1 with "same" padding (P == H and Q == W, every 3x3 pad-1 conv of a ResNet and the
// data gradient of one): output column (p, q) of im2col row (c, r, s) reads
// x[c, p + r - pad, q + s - pad], which is the image's flat plane index p * W + q shifted by
// the constant (r - pad) * W + (s - pad). So a row is a shifted copy of the planes, and 16
// columns take one masked load and one store whatever the output width. The run-by-run
// writer needs a pass per output row: 8 floats at a time for an 8x8 layer, 4 for 4x4, and it
// was 11% of a resnet18 step. Lanes whose input lies outside the image (the borders, and so
// any lane that would cross into the next image) are masked off and stored as zeros. The
// masks depend only on the lane's column and the tap (r, s), so a pack call works them out
// once, for every 16-lane piece of its columns, and reuses them for all its rows. Same
// values as the other writers.
struct Piece {
  int64_t dst;       // offset of lane 0 in the output line
  int64_t src;       // offset in x of lane 0's position: image * C * H * W + p * W + q
  uint32_t store;    // lanes written
  uint32_t masks;    // index of the piece's k * k load masks (tap r * k + s) in t_masks
};
thread_local std::vector<Piece> t_pieces;
thread_local std::vector<uint16_t> t_masks;

bool flat_rows(const Conv2dParams& p) {
  return p.stride == 1 && p.P() == p.H && p.Q() == p.W && p.kernel <= 16 &&
         active_isa() == Isa::avx512;
}

// For the 16 positions pos + l of a plane (lanes l < lanes), the lanes whose input row
// (row_ok[r]) and input column (col_ok[s]) lie inside the image for kernel tap (r, s). In
// vectors: per lane, with divisions, they were 15% of the transposed packer.
TB_AVX512 void tap_lane_masks(int pos, int lanes, int W, int H, int pad, int k,
                              uint16_t* row_ok, uint16_t* col_ok) {
  const __m512i lane = _mm512_add_epi32(_mm512_set1_epi32(pos),
                                        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                          12, 13, 14, 15));
  // Exact: positions are below 2^23, so the rounded quotient never reaches the next integer.
  // maskz forms: the plain conversions trip a GCC 12 -Wuninitialized false alarm.
  const __m512i ph = _mm512_maskz_cvttps_epi32(
      0xFFFF, _mm512_div_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, lane), _mm512_set1_ps(float(W))));
  const __m512i qw = _mm512_sub_epi32(lane, _mm512_mullo_epi32(ph, _mm512_set1_epi32(W)));
  const __mmask16 valid = __mmask16(lane_mask(0, lanes));
  const __m512i h = _mm512_set1_epi32(H), w = _mm512_set1_epi32(W), zero = _mm512_setzero_si512();
  for (int t = 0; t < k; ++t) {
    const __m512i shift = _mm512_set1_epi32(t - pad);
    const __m512i ih = _mm512_add_epi32(ph, shift), iw = _mm512_add_epi32(qw, shift);
    row_ok[t] = _mm512_mask_cmpge_epi32_mask(valid, ih, zero) & _mm512_cmplt_epi32_mask(ih, h);
    col_ok[t] = _mm512_mask_cmpge_epi32_mask(valid, iw, zero) & _mm512_cmplt_epi32_mask(iw, w);
  }
}

// Appends the pieces of `total` output slots at dst0.. holding columns col0.. of the chunk's
// im2col matrix; slots at or past `valid` are zeros. Pieces break at every 16th slot (so the
// stores of full pieces are aligned when dst0 is) and at image boundaries.
void add_pieces(const ConvColumnsSource& src, int64_t col0, int valid, int total, int64_t dst0) {
  const Conv2dParams& p = src.params;
  const int k = p.kernel, kk = k * k, W = p.W, H = p.H;
  const int64_t pq = int64_t(p.H) * W, image_stride = int64_t(p.C) * pq;
  for (int u = 0; u < total;) {
    const int block_end = std::min(total, (u / 16 + 1) * 16);
    Piece piece{dst0 + u, 0, 0, uint32_t(t_masks.size())};
    int end = block_end;
    uint16_t row_ok[16] = {}, col_ok[16] = {};  // by tap r / s, lanes as bits
    if (u < valid) {
      const int64_t j = col0 + u, pos = j % pq;
      end = int(std::min<int64_t>({block_end, valid, u + pq - pos}));
      piece.src = (src.n0 + j / pq) * image_stride + pos;
      tap_lane_masks(int(pos), end - u, W, H, p.pad, k, row_ok, col_ok);
    }
    piece.store = lane_mask(0, end - u);
    for (int t = 0; t < kk; ++t) t_masks.push_back(uint16_t(row_ok[t / k] & col_ok[t % k]));
    t_pieces.push_back(piece);
    u = end;
  }
}

// Rows [row0, row0 + rows) through pieces [first, last), row i at out + i * row_stride.
TB_AVX512 void write_flat_rows(const ConvColumnsSource& src, int row0, int rows,
                               int64_t row_stride, const Piece* first, const Piece* last,
                               float* out) {
  const Conv2dParams& p = src.params;
  const int k = p.kernel, kk = k * k;
  const int64_t hw = int64_t(p.H) * p.W;
  // Row (c, r, s) counted along, without a division per row.
  int c = row0 / kk, t = row0 % kk;
  for (int i = 0; i < rows; ++i, out += row_stride) {
    const int r = t / k, s = t - r * k;
    const float* x = src.x + c * hw + int64_t(r - p.pad) * p.W + (s - p.pad);
    const uint16_t* masks = t_masks.data() + t;  // + piece.masks: this tap's mask
    for (const Piece* piece = first; piece != last; ++piece)
      _mm512_mask_storeu_ps(out + piece->dst, __mmask16(piece->store),
                            _mm512_maskz_loadu_ps(__mmask16(masks[piece->masks]), x + piece->src));
    if (++t == kk) t = 0, ++c;
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

  if (flat_rows(p)) {  // whole slivers, the zero columns past n included
    t_pieces.clear();
    t_masks.clear();
    for (int s0 = 0; s0 < n; s0 += nr)
      add_pieces(src, int64_t(j0) + s0, n - s0, nr, int64_t(s0 / nr) * sliver_stride);
    // Row by row across all slivers: sliver by sliver was no faster (7.4 against 7.1 cycles
    // per vector, Sapphire Rapids), the panel is written to L2 either way.
    write_flat_rows(src, k0, kc, nr, t_pieces.data(), t_pieces.data() + t_pieces.size(), dst);
    return;
  }

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
thread_local std::vector<const Piece*> t_block_start;  // first piece of each column block

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
  const bool flat = flat_rows(p);

  std::vector<Run>& runs = t_runs;  // pieces of [k0, k0 + kc) within one output row
  runs.clear();
  t_pieces.clear();
  t_masks.clear();
  if (flat) add_pieces(src, k0, kc, kc, 0);
  for (int kk = 0; kk < kc && !flat;) {
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
  if (flat) {
    // In blocks of kBlock columns: the nr lines of a block stay in L1 (12 KiB) between
    // being written and being transposed. Whole lines (nr x kc, 64 KiB for resnet18) went
    // through L2 and back, 13 cycles per packed vector against 8 (Sapphire Rapids). The
    // pieces are cut at every 16th column, so none straddles a block.
    constexpr int kBlock = 64;
    if (lines.size() < size_t(nr) * kBlock) lines.resize(size_t(nr) * kBlock);
    std::vector<const Piece*>& block_start = t_block_start;
    block_start.clear();
    const Piece* piece = t_pieces.data();
    const Piece* const end = piece + t_pieces.size();
    for (int kb = 0; kb < kc; kb += kBlock) {
      while (piece != end && piece->dst < kb) ++piece;
      block_start.push_back(piece);
    }
    block_start.push_back(end);
    for (int s0 = 0; s0 < n; s0 += nr) {
      const int count = std::min(nr, n - s0);
      float* sliver = dst + int64_t(s0 / nr) * sliver_stride;
      for (int b = 0, kb = 0; kb < kc; ++b, kb += kBlock) {
        write_flat_rows(src, j0 + s0, count, kBlock, block_start[b], block_start[b + 1],
                        lines.data() - kb);
        pack_kminor(lines.data(), kBlock, count, std::min(kBlock, kc - kb), nr, sliver_stride,
                    sliver + int64_t(kb) * nr);
      }
    }
    return;
  }
  if (lines.size() < size_t(nr) * kc) lines.resize(size_t(nr) * kc);
  for (int s0 = 0; s0 < n; s0 += nr) {
    const int count = std::min(nr, n - s0);
    for (int l = 0; l < count; ++l) {
      float* out = lines.data() + int64_t(l) * kc;
      write_row(runs, p, row_source(src, j0 + s0 + l), out);
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
