// The weight gradient of the cpu backend's Winograd convolutions (conv_winograd.h).
#include <algorithm>
#include <atomic>

#include "core/error.h"
#include "ops/cpu/conv_in_place.h"
#include "ops/cpu/conv_winograd.h"
#include "ops/cpu/conv_winograd_internal.h"
#include "ops/cpu/thread_pool.h"

namespace tb::cpu {

// dW = G^T [sum over tiles of (A dy A^T) . (B^T x B)] G: F(2x2, 3x3) transposed (its roles of
// filter and output swapped: a 2x2 tile of dy is the "filter", the 3x3 of dW the output). One
// GEMM per tap of the 4x4 tile, [K x tiles] x [tiles x C], summing over the tiles: the
// transforms put channels in the vector lanes (16 output channels for dy, 16 input channels
// for x), and write straight into the micro-kernel's packed slivers, tiles as its k index.
// Tiles go in blocks of kWgradBlock (the GEMMs' kc). The blocks form groups, a number fixed by
// the shape alone (never by the thread count): each group adds its blocks into a sum of its
// own, M_g, in block order, and dW's output transform adds the groups' sums in group order.
// Its transforms are exact in fp32 (constants 1 and 1/2), so dW rounds as a direct sum does.
//
// Two ways to run it, with the same bits: with at least as many groups as threads, each thread
// takes whole groups and does everything for a block itself (its channels-last copies, its
// transforms, its GEMMs), so nothing crosses between cores' caches and no barrier is waited
// on; layer1 of resnet18 ran its weight gradient 1.7x faster on 2 threads than on 1 the other
// way. With fewer groups than threads (the deep layers, few tiles and large sums), all threads
// share each block, phase by phase.
namespace {

using namespace winograd;

constexpr int kWgradTaps = 16;
constexpr int kWgradBlock = 256;
// Groups: at most 16 (the cores the CPU machines here have), and their sums together at most
// 2M floats (8 MiB), so that the extra sums cost little where one thread runs them all.
constexpr int64_t kMaxGroups = 16;
constexpr int64_t kMaxGroupSumFloats = int64_t(2) << 20;

struct WgradGeometry {
  int th = 0, tw = 0;
  int64_t tiles = 0, blocks = 0;
  int64_t groups = 1, blocks_per_group = 1;
  int mr = 0, nr = 0, kp = 0, cp = 0;  // K and C padded to the slivers
  int64_t u_tap = 0, v_tap = 0, m_tap = 0;
  int64_t sum_floats = 0;  // one group's sums: kWgradTaps parts of m_tap
  int block_images = 1;    // the most images one block's tiles touch
  int64_t group_of(int64_t block) const { return block / blocks_per_group; }
  int64_t first_block(int64_t group) const { return group * blocks_per_group; }
  int64_t end_block(int64_t group) const {
    return std::min(blocks, (group + 1) * blocks_per_group);
  }
  // Whether each thread takes whole groups (with buffers of its own) or all threads share
  // each block: the scratch sizes and the run must agree on it.
  bool threads_take_groups(int threads) const { return groups >= threads; }
};

// dy's shape for its channels-last copy: K channels, no padding.
Conv2dParams dy_copy_shape(const Conv2dParams& p) {
  Conv2dParams d = p;
  d.C = p.K;
  d.pad = 0;
  return d;
}

WgradGeometry wgrad_geometry(const Conv2dParams& p, const detail::GemmKernel& kern) {
  WgradGeometry g;
  g.th = (p.H + 1) / 2;
  g.tw = (p.W + 1) / 2;
  g.tiles = int64_t(p.N) * g.th * g.tw;
  g.blocks = (g.tiles + kWgradBlock - 1) / kWgradBlock;
  g.mr = kern.mr;
  g.nr = kern.nr;
  g.kp = (p.K + g.mr - 1) / g.mr * g.mr;
  g.cp = (p.C + g.nr - 1) / g.nr * g.nr;
  g.u_tap = tap_stride(int64_t(g.kp) * kWgradBlock);
  g.v_tap = tap_stride(int64_t(g.cp) * kWgradBlock);
  g.m_tap = tap_stride(int64_t(g.kp) * g.cp);
  g.sum_floats = kWgradTaps * g.m_tap;
  const int64_t want =
      std::clamp<int64_t>(std::min(kMaxGroups, kMaxGroupSumFloats / g.sum_floats), 1, g.blocks);
  g.blocks_per_group = (g.blocks + want - 1) / want;
  g.groups = (g.blocks + g.blocks_per_group - 1) / g.blocks_per_group;
  const int64_t per_image = int64_t(g.th) * g.tw;
  g.block_images = int(std::min<int64_t>(p.N, (kWgradBlock + per_image - 1) / per_image + 1));
  return g;
}

// Tile t's image and the top-left of its 2x2 output tile.
struct TileAt {
  int64_t n;
  int row, col;
};
TileAt tile_at(const WgradGeometry& g, int64_t t) {
  const int64_t per_image = int64_t(g.th) * g.tw, within = t % per_image;
  return {t / per_image, int(within / g.tw) * 2, int(within % g.tw) * 2};
}

// U (dy: A dy A^T, lanes = 16 output channels) and V (x: B^T x B, lanes = 16 input channels)
// for the block's tiles [t0, t1), from channels-last copies: dy_cl [N][H][W][K], x_pad
// [N][H+2][W+2][C] (zero-padded by 1), so 16 channels of a pixel are one load. (Gathers from
// NCHW, 16 cache lines each, took as long as the GEMMs on layer1.)
// The copies hold images from n_base on.
TB_AVX512 void wgrad_transforms(const Conv2dParams& p, const WgradGeometry& g, const float* x_pad,
                                const float* dy_cl, int64_t n_base, int64_t block_t0, int64_t t0,
                                int64_t t1, float* U, float* V) {
  const int H = p.H, W = p.W;
  for (int64_t t = t0; t < t1; ++t) {
    TileAt at = tile_at(g, t);
    at.n -= n_base;
    const int64_t local = t - block_t0;
    // dy: the 2x2 tile, rows row..row+1, columns col..col+1 (outside the image: zero).
    for (int k0 = 0; k0 < p.K; k0 += kLanes) {
      __m512 d[4], e[8], u[16];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
          const int r = at.row + i, c = at.col + j;
          d[2 * i + j] = r < H && c < W
                             ? _mm512_loadu_ps(dy_cl + ((at.n * H + r) * W + c) * p.K + k0)
                             : _mm512_setzero_ps();
        }
      // A v for a line of 2: (v0, v0 + v1, v0 - v1, -v1); down the columns, then the rows.
      for (int j = 0; j < 2; ++j) {
        e[j] = d[j];
        e[2 + j] = _mm512_add_ps(d[j], d[2 + j]);
        e[4 + j] = _mm512_sub_ps(d[j], d[2 + j]);
        e[6 + j] = _mm512_sub_ps(_mm512_setzero_ps(), d[2 + j]);
      }
      for (int i = 0; i < 4; ++i) {
        u[4 * i] = e[2 * i];
        u[4 * i + 1] = _mm512_add_ps(e[2 * i], e[2 * i + 1]);
        u[4 * i + 2] = _mm512_sub_ps(e[2 * i], e[2 * i + 1]);
        u[4 * i + 3] = _mm512_sub_ps(_mm512_setzero_ps(), e[2 * i + 1]);
      }
      const int kb = k0 / g.mr;
      for (int xi = 0; xi < kWgradTaps; ++xi) {
        float* dst = U + xi * g.u_tap + (int64_t(kb) * kWgradBlock + local) * g.mr;
        _mm256_storeu_ps(dst, _mm512_castps512_ps256(u[xi]));
        _mm256_storeu_ps(dst + int64_t(kWgradBlock) * g.mr, _mm512_extractf32x8_ps(u[xi], 1));
      }
    }
    // x: the 4x4 patch from (row - 1, col - 1).
    for (int c0 = 0; c0 < p.C; c0 += kLanes) {
      __m512 d[16], e[16];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          // Padded coordinates: row - 1 + i of x is row + i of the copy, which ends at H + 1.
          const int r = at.row + i, c = at.col + j;
          d[4 * i + j] =
              r <= H + 1 && c <= W + 1
                  ? _mm512_loadu_ps(x_pad + ((at.n * (H + 2) + r) * (W + 2) + c) * p.C + c0)
                  : _mm512_setzero_ps();
        }
      for (int j = 0; j < 4; ++j) input_line2(d + j, 4, e + j, 4);          // B^T x
      for (int i = 0; i < 4; ++i) input_line2(e + 4 * i, 1, d + 4 * i, 1);  // (B^T x) B
      const int cs = c0 / g.nr, off = c0 % g.nr;
      for (int xi = 0; xi < kWgradTaps; ++xi)
        _mm512_storeu_ps(V + xi * g.v_tap + (int64_t(cs) * kWgradBlock + local) * g.nr + off,
                         d[xi]);
    }
  }
}

// M[tap] (+)= U[tap]^T V[tap] over the block's kc tiles, for items [item0, item1): item =
// (tap * K slivers + k sliver) * C slivers + c sliver. The last C sliver computes only its
// used vectors (the kernel's narrow variants; the rest of V there is never written).
void wgrad_multiply(const Conv2dParams& p, const WgradGeometry& g, const detail::GemmKernel& kern,
                    const float* U, const float* V, float* M, int kc, bool add, int64_t item0,
                    int64_t item1) {
  const int slivers_k = g.kp / g.mr, slivers_c = g.cp / g.nr;
  detail::TileStore store;
  store.beta = add ? 1.0f : 0.0f;
  const int last_vectors = (p.C - (slivers_c - 1) * g.nr) / kLanes;
  for (int64_t item = item0; item < item1; ++item) {
    const int64_t cs = item % slivers_c, rest = item / slivers_c;
    const int64_t kb = rest % slivers_k, tap = rest / slivers_k;
    const float* a = U + tap * g.u_tap + kb * kWgradBlock * g.mr;
    const float* b = V + tap * g.v_tap + cs * kWgradBlock * g.nr;
    float* c = M + tap * g.m_tap + kb * g.mr * g.cp + cs * g.nr;
    const bool narrow = cs == slivers_c - 1 && last_vectors * kLanes < g.nr &&
                        last_vectors < detail::kMaxNarrow && kern.narrow[last_vectors];
    if (narrow)
      kern.narrow[last_vectors](kc, a, b, c, g.cp, g.mr, last_vectors * kLanes, store);
    else
      kern.kernel(kc, a, b, c, g.cp, g.mr, g.nr, store);
  }
}

// dw[k][c][3][3] = G^T M G for output channels [k0, k1), 16 input channels per vector, where
// M is the sum of the groups' sums (sum_floats apart), added in group order.
TB_AVX512 void wgrad_output(const Conv2dParams& p, const WgradGeometry& g, const float* M, int k0,
                            int k1, float* dw) {
  const __m512i nine =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(9));
  const __m512 half = _mm512_set1_ps(0.5f);
  // G^T m along a line of 4: (m0 + (m1 + m2) / 2, (m1 - m2) / 2, (m1 + m2) / 2 + m3).
  const auto line = [&](const __m512* m, int ms, __m512* o, int os) TB_AVX512_LAMBDA {
    const __m512 sum = _mm512_mul_ps(half, _mm512_add_ps(m[ms], m[2 * ms]));
    o[0] = _mm512_add_ps(m[0], sum);
    o[os] = _mm512_mul_ps(half, _mm512_sub_ps(m[ms], m[2 * ms]));
    o[2 * os] = _mm512_add_ps(sum, m[3 * ms]);
  };
  for (int k = k0; k < k1; ++k)
    for (int c0 = 0; c0 < p.C; c0 += kLanes) {
      __m512 m[16], s[12], o[9];
      for (int xi = 0; xi < kWgradTaps; ++xi) {
        const float* at = M + xi * g.m_tap + int64_t(k) * g.cp + c0;
        m[xi] = _mm512_loadu_ps(at);
        for (int64_t grp = 1; grp < g.groups; ++grp)
          m[xi] = _mm512_add_ps(m[xi], _mm512_loadu_ps(at + grp * g.sum_floats));
      }
      for (int j = 0; j < 4; ++j) line(m + j, 4, s + j, 4);          // G^T m: 3 rows of 4
      for (int r = 0; r < 3; ++r) line(s + 4 * r, 1, o + 3 * r, 1);  // (G^T m) G
      float* base = dw + (int64_t(k) * p.C + c0) * 9;
      for (int rs = 0; rs < 9; ++rs) _mm512_i32scatter_ps(base + rs, nine, o[rs], 4);
    }
}

// A thread's channels-last copy of `images` images, rounded to 64 bytes.
int64_t copy_floats(const Conv2dParams& p, int images) {
  return (ChannelsLastColumns::floats(p, images) + 15) / 16 * 16;
}

}  // namespace

bool winograd_weight_gradient_usable(const Conv2dParams& p) {
  return p.kernel == 3 && p.stride == 1 && p.pad == 1 && p.C % kLanes == 0 && p.K % kLanes == 0 &&
         p.C <= 1024 && micro_kernel() != nullptr && requested_tile(true) != 0;
}

WinogradScratch winograd_weight_gradient_scratch_floats(const Conv2dParams& p, int threads) {
  const detail::GemmKernel* kern = micro_kernel();
  TB_CHECK(kern, "winograd: no AVX-512 micro-kernel on this CPU");
  const WgradGeometry g = wgrad_geometry(p, *kern);
  const Conv2dParams dy_shape = dy_copy_shape(p);
  // Threads on groups: a block's transforms and copies per thread; else one of each, shared.
  const bool by_group = g.threads_take_groups(threads);
  const size_t copies = by_group ? size_t(threads) : 1;
  const int images = by_group ? g.block_images : p.N;
  WinogradScratch s;
  s.weights = size_t(g.groups * g.sum_floats);
  s.inputs = copies * size_t(kWgradTaps * g.v_tap);
  s.outputs = copies * size_t(kWgradTaps * g.u_tap);
  s.x_copy = copies * size_t(copy_floats(p, images));
  s.dy_copy = copies * size_t(copy_floats(dy_shape, images));
  return s;
}

void winograd_weight_gradient(ThreadPool& pool, const Conv2dParams& p, const float* x,
                              const float* dy, float* dw, float* m_buf, float* x_buf, float* dy_buf,
                              float* x_copy, float* dy_copy) {
  const detail::GemmKernel* kern = micro_kernel();
  TB_CHECK(kern && winograd_weight_gradient_usable(p),
           "winograd: asked for a weight gradient it does not take");
  const WgradGeometry g = wgrad_geometry(p, *kern);
  // Channels-last copies, x zero-padded by 1 (conv_in_place.h's).
  const Conv2dParams dy_shape = dy_copy_shape(p);
  const int64_t items = int64_t(kWgradTaps) * (g.kp / g.mr) * (g.cp / g.nr);
  const int64_t per_image = int64_t(g.th) * g.tw;
  if (g.threads_take_groups(pool.size())) {
    const int64_t x_floats = copy_floats(p, g.block_images);
    const int64_t dy_floats = copy_floats(dy_shape, g.block_images);
    std::atomic<int64_t> next{0};
    pool.run([&](int thread, int) {
      float* U = dy_buf + thread * int64_t(kWgradTaps) * g.u_tap;
      float* V = x_buf + thread * int64_t(kWgradTaps) * g.v_tap;
      float* xc = x_copy + thread * x_floats;
      float* dyc = dy_copy + thread * dy_floats;
      // Groups from a counter (a shared VM's vCPUs are not equally fast); each writes only
      // its own sums, so who runs it changes no bits.
      for (int64_t grp = next++; grp < g.groups; grp = next++) {
        float* M = m_buf + grp * g.sum_floats;
        for (int64_t b = g.first_block(grp); b < g.end_block(grp); ++b) {
          const int64_t t0 = b * kWgradBlock, t1 = std::min(g.tiles, t0 + kWgradBlock);
          const int64_t n0 = t0 / per_image, n1 = (t1 - 1) / per_image + 1;
          ChannelsLastColumns::fill(p, x, int(n0), int(n1 - n0), xc);
          ChannelsLastColumns::fill(dy_shape, dy, int(n0), int(n1 - n0), dyc);
          wgrad_transforms(p, g, xc, dyc, n0, t0, t0, t1, U, V);
          wgrad_multiply(p, g, *kern, U, V, M, int(t1 - t0), b > g.first_block(grp), 0, items);
        }
      }
    });
  } else {
    pool.parallel_for(0, p.N, [&](int64_t n) {
      ChannelsLastColumns::fill(p, x, int(n), 1, x_copy + n * ChannelsLastColumns::floats(p, 1));
      ChannelsLastColumns::fill(dy_shape, dy, int(n), 1,
                                dy_copy + n * ChannelsLastColumns::floats(dy_shape, 1));
    });
    for (int64_t b = 0; b < g.blocks; ++b) {
      const int64_t t0 = b * kWgradBlock, t1 = std::min(g.tiles, t0 + kWgradBlock);
      const int64_t grp = g.group_of(b);
      pool.parallel_for_range(t0, t1, [&](int64_t lo, int64_t hi) {
        wgrad_transforms(p, g, x_copy, dy_copy, 0, t0, lo, hi, dy_buf, x_buf);
      });
      pool.parallel_for_range(0, items, [&](int64_t lo, int64_t hi) {
        wgrad_multiply(p, g, *kern, dy_buf, x_buf, m_buf + grp * g.sum_floats, int(t1 - t0),
                       b > g.first_block(grp), lo, hi);
      });
    }
  }
  pool.parallel_for_range(
      0, p.K, [&](int64_t lo, int64_t hi) { wgrad_output(p, g, m_buf, int(lo), int(hi), dw); });
}

}  // namespace tb::cpu
