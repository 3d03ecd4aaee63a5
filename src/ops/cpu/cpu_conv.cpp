// Convolution on the packed GEMM, one chunk of images at a time:
//   forward      Y_chunk[K, cols]   = W[K, C*k*k] * col[C*k*k, cols]      (+ bias, epilogue)
//   data grad    dcol[C*k*k, cols]  = W^T * dY_chunk, then col2im into dx (stride 1: a
//                forward conv of dY with the flipped weights instead)
//   weight grad  dW_chunk[K, C*k*k] = dY_chunk * col^T, summed over chunks in chunk order
// where cols = images in the chunk x P*Q and col is the chunk's im2col matrix. col is never
// stored: the GEMMs pack it (forward) or its transpose (weight grad) straight from x through
// conv_packer.h. A chunk holds enough images for about 1024 columns, so the GEMMs are wide
// enough for the micro-kernel and the chunk's part of x stays in L2/L3 while it is packed.
// A 1x1, stride-1, unpadded conv of a single-image chunk reads x as it is.
//
// Threads take whole chunks (each GEMM then runs on one thread, which is where the GEMM is
// most efficient); with fewer chunks than threads the chunks run one after the other, each
// GEMM on the whole pool. The chunking depends only on the shape, and sgemm's results do
// not depend on its thread count, so both ways give the same bits.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>

#include "ops/cpu/channel_sums.h"
#include "ops/cpu/conv_in_place.h"
#include "ops/cpu/conv_packer.h"
#include "ops/cpu/conv_winograd.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/cpu_op_checks.h"
#include "ops/cpu/gemm.h"

namespace tb {
namespace {

using cpu_ops::expect;
using cpu_ops::fptr;

struct Range {
  int begin = 0, end = 0;
};

// The outputs o in [0, out) whose input position o*stride - pad + tap lies inside [0, in).
Range valid_outputs(int out, int in, int stride, int pad, int tap) {
  const int lo = pad - tap, hi = in - 1 + pad - tap;
  Range r;
  r.begin = lo > 0 ? (lo + stride - 1) / stride : 0;
  r.end = hi < 0 ? 0 : std::min(out, hi / stride + 1);
  r.end = std::max(r.begin, r.end);
  return r;
}

// How a conv is cut into chunks of images: a function of the shape, and for the forward
// of the thread count too (its bits do not depend on the chunking).
struct ConvPlan {
  int P = 0, Q = 0;
  int64_t pq = 0, hw = 0, ckk = 0;
  int images = 1;  // per chunk (the last may hold fewer)
  int chunks = 1;
  bool direct = false;  // 1x1, stride 1, no padding: col is x itself for one image

  // spread > 1: smaller chunks where there are fewer than spread (see below). The forward
  // passes its thread count. The weight gradient sums one partial per chunk, so its chunks
  // must not depend on the thread count: it passes kBackwardChunks and a partials limit.
  explicit ConvPlan(const Conv2dParams& p, int spread = 1,
                    int64_t max_partial_floats = std::numeric_limits<int64_t>::max()) {
    P = p.P();
    Q = p.Q();
    pq = int64_t(P) * Q;
    hw = int64_t(p.H) * p.W;
    ckk = int64_t(p.C) * p.kernel * p.kernel;
    // 512 and 2048 were 1-10% slower on resnet18 and cifar_cnn steps (Zen 4, 1 thread).
    constexpr int64_t kTargetColumns = 1024;
    images = int(std::clamp<int64_t>((kTargetColumns + pq - 1) / pq, 1, p.N));
    chunks = (p.N + images - 1) / images;
    direct = p.kernel == 1 && p.stride == 1 && p.pad == 0;
    // Fewer chunks than threads leaves each chunk's GEMM split over the whole pool, one
    // chunk after another (alexnet_lite's conv2 at 16 threads: 11 chunks). Where smaller
    // chunks (>= 256 columns, >= 2 images) give each of `spread` threads one, take them. A
    // forward chunk's outputs are whole GEMM columns, whose sums do not depend on the
    // chunking.
    if (spread > chunks && images > 1) {
      const int64_t at_least = std::max<int64_t>(2, (256 + pq - 1) / pq);
      const int smaller = int(std::max<int64_t>(at_least, (p.N + spread - 1) / spread));
      const int64_t more = (p.N + smaller - 1) / smaller;
      if (smaller < images && more >= spread && p.w_numel() * more <= max_partial_floats) {
        images = smaller;
        chunks = int(more);
      }
    }
  }
  // The backward's chunks come from the shape alone: as many as 16 threads can share (the
  // 16-vCPU host ran alexnet_lite's conv2 backward as 11 chunks, one after another, each
  // GEMM split 16 ways), where their partials take at most 24 MiB (resnet18 layer3.0.conv1:
  // 18.9 MB for 16 chunks; with 4 of them its backward ran at a third of 16 cores).
  static constexpr int kBackwardChunks = 16;
  static constexpr int64_t kMaxPartialFloats = int64_t(6) << 20;
  int images_in(int chunk, int N) const { return std::min(images, N - chunk * images); }
  int64_t max_cols() const { return int64_t(images) * pq; }
};

void check_conv(const Conv2dParams& p) {
  TB_CHECK(p.N > 0 && p.C > 0 && p.K > 0 && p.kernel > 0 && p.stride > 0 && p.pad >= 0,
           "cpu conv2d: bad params N={} C={} K={} kernel={} stride={} pad={}", p.N, p.C, p.K,
           p.kernel, p.stride, p.pad);
  TB_CHECK(p.P() > 0 && p.Q() > 0, "cpu conv2d: a {}x{} kernel does not fit a {}x{} input, pad {}",
           p.kernel, p.kernel, p.H, p.W, p.pad);
}

// dx[images n0..n0+ni) (+)= col2im(dcol[C*k*k, ni*P*Q]). Each dx element receives its
// contributions in (r, s) order, whatever the thread count.
void col2im(cpu::ThreadPool& pool, const Conv2dParams& p, const ConvPlan& plan, const float* dcol,
            int n0, int ni, float* dx, bool accumulate) {
  const int k = p.kernel, S = p.stride, Q = plan.Q;
  const int64_t cols = int64_t(ni) * plan.pq;
  pool.parallel_for_range(0, p.C, [&](int64_t c_lo, int64_t c_hi) {
    for (int64_t c = c_lo; c < c_hi; ++c) {
      for (int i = 0; i < ni; ++i) {
        float* plane = dx + (int64_t(n0 + i) * p.C + c) * plan.hw;
        if (!accumulate) std::fill(plane, plane + plan.hw, 0.0f);
        for (int r = 0; r < k; ++r) {
          const Range rows = valid_outputs(plan.P, p.H, S, p.pad, r);
          for (int s = 0; s < k; ++s) {
            const Range cs = valid_outputs(Q, p.W, S, p.pad, s);
            const float* src = dcol + ((c * k + r) * k + s) * cols + i * plan.pq;
            for (int op = rows.begin; op < rows.end; ++op) {
              float* d = plane + int64_t(op * S - p.pad + r) * p.W + (s - p.pad);
              const float* g = src + int64_t(op) * Q;
              if (S == 1) {
                for (int q = cs.begin; q < cs.end; ++q) d[q] += g[q];
              } else {
                for (int q = cs.begin; q < cs.end; ++q) d[int64_t(q) * S] += g[q];
              }
            }
          }
        }
      }
    }
  });
}

// Between [N,K,PQ] activations (images n0..n0+ni) and a chunk matrix [K, ni*PQ].
void gather_chunk(const float* t, int K, const ConvPlan& plan, int n0, int ni, float* out) {
  const int64_t cols = int64_t(ni) * plan.pq;
  for (int i = 0; i < ni; ++i)
    for (int o = 0; o < K; ++o)
      std::memcpy(out + o * cols + i * plan.pq, t + (int64_t(n0 + i) * K + o) * plan.pq,
                  sizeof(float) * plan.pq);
}
void scatter_chunk(const float* in, int K, const ConvPlan& plan, int n0, int ni, float* t,
                   bool accumulate) {
  const int64_t cols = int64_t(ni) * plan.pq;
  for (int i = 0; i < ni; ++i)
    for (int o = 0; o < K; ++o) {
      float* dst = t + (int64_t(n0 + i) * K + o) * plan.pq;
      const float* src = in + o * cols + i * plan.pq;
      if (accumulate) {
        for (int64_t j = 0; j < plan.pq; ++j) dst[j] += src[j];
      } else {
        std::memcpy(dst, src, sizeof(float) * plan.pq);
      }
    }
}

// fn(chunk, slot) for every chunk: slot is the thread's index into per-thread scratch.
// Threads take chunks from a counter, not a static split: the cores of a shared VM are not
// equally fast (see docs/cpu-gemm.md). Each chunk writes only its own outputs (or its own
// partial), so who computes it does not change the bits.
template <class F>
void for_each_chunk(cpu::ThreadPool& pool, int chunks, F&& fn) {
  if (pool.size() == 1 || chunks < pool.size()) {
    for (int c = 0; c < chunks; ++c) fn(c, 0);  // each GEMM uses the whole pool
    return;
  }
  std::atomic<int> next{0};
  pool.run([&](int thread, int threads) {
    for (int c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) fn(c, thread);
  });
}

// How many images of a chunk the col2im data gradient takes at a time. A chunk's whole
// column gradient (resnet18: 2.4 MB for layer2's stride-2 conv) went out to L3 from the
// GEMM and came back for col2im; up to 1 MiB stays in the 2 MiB L2 between the two. Every
// one of these GEMMs reads all of W^T, so only while W^T is small: for layer4's 4.7 MB
// W^T the split was slower (38.9-39.4 -> 39.6-40.6 ms), for layer3's 1.2 MB within noise.
// Where it can, the count makes the columns a multiple of 48 (the AVX-512 micro-kernel's
// width), so that no sliver is part padding. Each column's gradient is a sum over the output
// channels alone, so the split changes no bits.
int col2im_images(const Conv2dParams& p, const ConvPlan& plan, int ni) {
  constexpr int64_t kFloats = int64_t(1) << 18, kMaxWeights = int64_t(1) << 17;
  constexpr int kWidth = 48;
  if (plan.ckk * p.K > kMaxWeights) return ni;
  const int most = int(std::clamp<int64_t>(kFloats / (plan.ckk * plan.pq), 1, ni));
  for (int s = most; s >= 1; --s)
    if ((s * plan.pq) % kWidth == 0) return s;
  return most;
}

}  // namespace

void CpuBackend::conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w,
                                const Tensor& bias, const Tensor& y) {
  constexpr OpKind op = OpKind::conv2d;
  check_conv(p);
  expect(op, "x", x, p.x_numel());
  expect(op, "w", w, p.w_numel());
  expect(op, "y", y, p.y_numel());
  conv_forward_chunks(p, fptr(x), fptr(w), cpu_ops::needed_ptr(op, "bias", p.has_bias, bias, p.K),
                      fptr(y), false, p.relu);
}

void CpuBackend::conv_forward_chunks(const Conv2dParams& p, const float* xd, const float* wd,
                                     const float* bias, float* yd, bool accumulate, bool relu,
                                     bool data_gradient) {
  TB_CHECK(!(relu && accumulate), "cpu conv2d: a fused ReLU cannot accumulate into y");
  // The data gradient of 3x3 stride-1 "same" convs (and, if asked, their forward) through
  // Winograd F(4x4, 3x3) where the CPU has AVX-512: a quarter of the multiplies
  // (conv_winograd.h says why the forward stays direct by default).
  if (const int tile = cpu::winograd_tile(p, data_gradient)) {
    const cpu::WinogradScratch s = cpu::winograd_scratch_floats(p, tile, pool_->size());
    cpu::winograd_conv3x3(*pool_, p, tile, xd, wd, bias, yd, accumulate, relu,
                          scratch(kWinogradWeights, s.weights), scratch(kWinogradInputs, s.inputs),
                          scratch(kWinogradOutputs, s.outputs));
    return;
  }
  const ConvPlan plan(p, pool_->size());
  const int slots = pool_->size();
  const int64_t out_size = per_thread_stride(int64_t(p.K) * plan.max_cols());
  float* out_buf = plan.images > 1 ? scratch(kGathered, size_t(out_size * slots)) : nullptr;
  cpu::SgemmEpilogue epilogue;
  epilogue.bias_row = bias;
  epilogue.relu = relu;  // applied to each tile as it is stored: no pass over y afterwards
  cpu::SgemmOptions options;
  options.epilogue = &epilogue;
  options.pool = pool_.get();
  // The weights, packed once for all chunks: each chunk's GEMM would otherwise repack them
  // (8x8 transposes), 64 times for layer1 of resnet18 at batch 64. Same layout, same bits.
  if (plan.chunks > 1) {
    float* packed = scratch(kPackedWeights, cpu::sgemm_packed_a_floats(p.K, int(plan.ckk), options));
    cpu::sgemm_pack_a(false, p.K, int(plan.ckk), wd, int(plan.ckk), options, packed);
    options.a_packed = packed;
  }

  // A stride-1 "same" conv reads B in place from padded planes (conv_in_place.h): any chunk
  // whose output rows are whole vectors (exact), or one-image chunks computed on the padded
  // grid, which is then copied out. An exact output goes straight into y where it is one
  // image and y is not added to (an accumulating output is added from a buffer, as before).
  const bool in_place = cpu::PaddedPlanes::usable(p) &&
                        (plan.images == 1 || cpu::PaddedPlanes::exact(p));
  const bool exact = in_place && cpu::PaddedPlanes::exact(p);
  const bool grid = in_place && !exact;
  const int64_t planes_size =
      in_place ? per_thread_stride(cpu::PaddedPlanes::floats(p, plan.images)) : 0;
  const int64_t grid_size =
      grid ? per_thread_stride(int64_t(p.K) * cpu::PaddedPlanes::columns(p, 1)) : 0;
  float* planes_buf = in_place ? scratch(kChannelsLast, size_t(planes_size * slots)) : nullptr;
  float* grid_buf = grid ? scratch(kColumnGrads, size_t(grid_size * slots)) : nullptr;
  if (exact && accumulate && !out_buf) out_buf = scratch(kGathered, size_t(out_size * slots));

  for_each_chunk(*pool_, plan.chunks, [&](int chunk, int slot) {
    const int n0 = chunk * plan.images, ni = plan.images_in(chunk, p.N);
    const int64_t cols = int64_t(ni) * plan.pq;
    if (in_place) {
      float* planes = planes_buf + slot * planes_size;
      cpu::PaddedPlanes::fill(p, xd + int64_t(n0) * p.C * plan.hw, ni, planes);
      const cpu::PaddedPlanes source{p, planes};
      cpu::SgemmOptions chunk_options = options;
      chunk_options.b_rows = source.rows();
      const int columns = cpu::PaddedPlanes::columns(p, ni);
      float* out = grid ? grid_buf + slot * grid_size
                   : ni == 1 && !accumulate ? yd + int64_t(n0) * p.K * plan.pq
                                            : out_buf + slot * out_size;
      cpu::sgemm(false, false, p.K, columns, int(plan.ckk), 1.0f, wd, int(plan.ckk), nullptr, 0,
                 0.0f, out, columns, chunk_options);
      if (exact) {
        if (ni > 1 || accumulate) scatter_chunk(out, p.K, plan, n0, ni, yd, accumulate);
        return;
      }
      const int padded_w = p.W + 2 * p.pad;
      for (int o = 0; o < p.K; ++o)
        for (int h = 0; h < p.H; ++h) {
          const float* src = out + int64_t(o) * columns + h * padded_w;
          float* dst = yd + (int64_t(n0) * p.K + o) * plan.pq + h * p.W;
          if (accumulate) {
            for (int w = 0; w < p.W; ++w) dst[w] += src[w];
          } else {
            std::memcpy(dst, src, sizeof(float) * p.W);
          }
        }
      return;
    }
    // The GEMM packs the chunk's im2col columns straight from x (conv_packer.h), unless x
    // itself is the matrix.
    const cpu::ConvColumnsSource source{p, xd, n0, ni};
    cpu::SgemmOptions chunk_options = options;
    if (!(plan.direct && ni == 1)) chunk_options.b_packer = source.packer();
    float* out = ni == 1 ? yd + int64_t(n0) * p.K * plan.pq : out_buf + slot * out_size;
    cpu::sgemm(false, false, p.K, int(cols), int(plan.ckk), 1.0f, wd, int(plan.ckk),
               xd + int64_t(n0) * p.C * plan.hw, int(cols), accumulate && ni == 1 ? 1.0f : 0.0f,
               out, int(cols), chunk_options);
    if (ni > 1) scatter_chunk(out, p.K, plan, n0, ni, yd, accumulate);
  });
}

void CpuBackend::conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& w,
                                 const Tensor& dy, const Tensor& dx, const Tensor& dw,
                                 const Tensor& dbias, bool accumulate_dx) {
  constexpr OpKind op = OpKind::conv2d;
  check_conv(p);
  expect(op, "x", x, p.x_numel());
  expect(op, "w", w, p.w_numel());
  expect(op, "dy", dy, p.y_numel());
  expect(op, "dw", dw, p.w_numel());
  float* dx_data = cpu_ops::optional_ptr(op, "dx", dx, p.x_numel());
  float* dbias_data = cpu_ops::needed_ptr(op, "dbias", p.has_bias, dbias, p.K);
  const ConvPlan plan(p, ConvPlan::kBackwardChunks, ConvPlan::kMaxPartialFloats);
  // Stride 1: dx is the forward convolution of dy (padded by k-1-pad) with the weights
  // transposed to [C, K, k, k] and flipped, the GEMM shape the micro-kernel likes best; other
  // strides scatter W^T dY back through col2im.
  const bool transposed_dx = dx_data && p.stride == 1 && p.pad <= p.kernel - 1;
  const bool col2im_dx = dx_data && !transposed_dx;
  // dW of 3x3 stride-1 "same" convs through Winograd F(2x2, 3x3) transposed, whose rounding
  // is a direct sum's (conv_winograd.h); then the chunks below have nothing left to do.
  const bool winograd_dw = cpu::winograd_weight_gradient_usable(p);  // never with col2im_dx
  const bool chunked = !winograd_dw;
  const int slots = pool_->size();
  const int64_t col_size = per_thread_stride(plan.ckk * plan.max_cols());
  const int64_t dy_size = per_thread_stride(int64_t(p.K) * plan.max_cols());
  const int64_t w_numel = p.w_numel();
  // dW's B from a channels-last copy of the chunk (conv_packer.h): dW comes out with its
  // columns in (tap, channel) order and is permuted at the end. Only while the copy is at
  // most 1.5x L2, since the micro-kernel reads it k * k times. resnet18 on the 2 MiB-L2 Xeon
  // (1 thread): faster than packing for layer1 (0.3 MB copy, -11%), layer3 (1.6 MB, -4%) and
  // layer3.0.conv1 (stride 2, 2.65 MB, -10%); slower for layer4 (4.6 MB, +6%). Not for 1x1
  // kernels: the copy is then all of col^T, read once (layer2's shortcut: 10.0 -> 10.8 ms).
  const bool channels_last = chunked && p.kernel > 1 && cpu::ChannelsLastColumns::usable(p) &&
                             size_t(cpu::ChannelsLastColumns::floats(p, plan.images)) * 4 * 2 <=
                                 cpu::cpu_features().l2_bytes * 3;
  const int64_t last_size = per_thread_stride(cpu::ChannelsLastColumns::floats(p, plan.images));
  float* last_buf = channels_last ? scratch(kChannelsLast, size_t(last_size * slots)) : nullptr;
  float* dcols_buf = col2im_dx ? scratch(kColumnGrads, size_t(col_size * slots)) : nullptr;
  float* dy_buf =
      chunked && plan.images > 1 ? scratch(kGathered, size_t(dy_size * slots)) : nullptr;
  // One partial weight gradient per chunk, unless a single chunk writes dw itself.
  float* partials =
      chunked && plan.chunks > 1 ? scratch(kPartials, size_t(w_numel * plan.chunks)) : nullptr;
  const float* xd = fptr(x);
  const float* wd = fptr(w);
  const float* dyd = fptr(dy);
  float* dwd = fptr(dw);
  cpu::SgemmOptions options;
  options.pool = pool_.get();
  // W^T packed once where the data gradient takes several GEMMs per chunk (col2im_images).
  cpu::SgemmOptions dcol_options = options;
  if (col2im_dx && col2im_images(p, plan, plan.images) < plan.images) {
    float* packed =
        scratch(kPackedWeights, cpu::sgemm_packed_a_floats(int(plan.ckk), p.K, options));
    cpu::sgemm_pack_a(true, int(plan.ckk), p.K, wd, int(plan.ckk), options, packed);
    dcol_options.a_packed = packed;
  }

  if (winograd_dw) {
    const cpu::WinogradScratch ws = cpu::winograd_weight_gradient_scratch_floats(p, pool_->size());
    cpu::winograd_weight_gradient(
        *pool_, p, xd, dyd, dwd, scratch(kWinogradWeights, ws.weights),
        scratch(kWinogradInputs, ws.inputs), scratch(kWinogradOutputs, ws.outputs),
        scratch(kChannelsLast, ws.x_copy), scratch(kGathered, ws.dy_copy));
  }
  if (chunked)
    for_each_chunk(*pool_, plan.chunks, [&](int chunk, int slot) {
      const int n0 = chunk * plan.images, ni = plan.images_in(chunk, p.N);
      const int64_t cols = int64_t(ni) * plan.pq;
      // dW's GEMM packs col^T straight from x (conv_packer.h), unless x itself is col.
      const cpu::ConvColumnsSource source{p, xd, n0, ni};
      cpu::SgemmOptions dw_options = options;
      cpu::ChannelsLastColumns last{p, last_buf + slot * last_size, ni};
      if (channels_last) {
        cpu::ChannelsLastColumns::fill(p, xd, n0, ni, last_buf + slot * last_size);
        dw_options.b_rows = last.rows();
      } else if (!(plan.direct && ni == 1)) {
        dw_options.b_packer = source.transposed_packer();
      }
      const float* col = xd + int64_t(n0) * p.C * plan.hw;
      const float* dyc = dyd + int64_t(n0) * p.K * plan.pq;
      if (ni > 1) {
        float* g = dy_buf + slot * dy_size;
        gather_chunk(dyd, p.K, plan, n0, ni, g);
        dyc = g;
      }
      float* dw_out = partials ? partials + chunk * w_numel : dwd;
      cpu::sgemm(false, true, p.K, int(plan.ckk), int(cols), 1.0f, dyc, int(cols), col, int(cols),
                 0.0f, dw_out, int(plan.ckk), dw_options);
      if (!col2im_dx) return;
      float* dcol = dcols_buf + slot * col_size;
      const int step = col2im_images(p, plan, ni);
      for (int i0 = 0; i0 < ni; i0 += step) {
        const int ns = std::min(step, ni - i0);
        const int sub_cols = int(ns * plan.pq);
        cpu::sgemm(true, false, int(plan.ckk), sub_cols, p.K, 1.0f, wd, int(plan.ckk),
                   dyc + i0 * plan.pq, int(cols), 0.0f, dcol, sub_cols, dcol_options);
        col2im(*pool_, p, plan, dcol, n0 + i0, ns, dx_data, accumulate_dx);
      }
    });

  if (transposed_dx) {
    const int k = p.kernel, kk = k * k;
    float* flipped = scratch(kFlippedWeights, size_t(w_numel));
    // Over the pool: alone it took ~2 ms for a 512x512x3x3 layer, serial at any thread count.
    // In 16 x 16 tiles of (o, c): with o outer and c inner every write went to another
    // cache line (and page), 3% of layer4's backward.
    constexpr int kTile = 16;
    pool_->parallel_for_range(0, (p.K + kTile - 1) / kTile, [&](int64_t b0, int64_t b1) {
      for (int64_t o0 = b0 * kTile; o0 < std::min<int64_t>(b1 * kTile, p.K); o0 += kTile)
        for (int c0 = 0; c0 < p.C; c0 += kTile)
          for (int64_t o = o0; o < std::min<int64_t>(o0 + kTile, p.K); ++o)
            for (int c = c0; c < std::min(c0 + kTile, p.C); ++c)
              for (int t = 0; t < kk; ++t)
                flipped[(int64_t(c) * p.K + o) * kk + t] = wd[(o * p.C + c) * kk + (kk - 1 - t)];
    });
    Conv2dParams t;
    t.N = p.N;
    t.C = p.K;
    t.H = plan.P;
    t.W = plan.Q;
    t.K = p.C;
    t.kernel = k;
    t.stride = 1;
    t.pad = k - 1 - p.pad;
    conv_forward_chunks(t, dyd, flipped, nullptr, dx_data, accumulate_dx, false,
                        /*data_gradient=*/true);
  }

  if (partials) {  // dw = sum of the chunk partials, in chunk order
    cpu_ops::parallel_elements(*pool_, w_numel, [&](int64_t lo, int64_t hi) {
      std::memcpy(dwd + lo, partials + lo, sizeof(float) * (hi - lo));
      for (int c = 1; c < plan.chunks; ++c) {
        const float* part = partials + c * w_numel;
        for (int64_t i = lo; i < hi; ++i) dwd[i] += part[i];
      }
    });
  }
  if (channels_last) {  // dw[o][t * C + c] -> dw[o][c * k * k + t]
    const int kk = p.kernel * p.kernel;
    float* tc = scratch(kFlippedWeights, size_t(w_numel));
    std::memcpy(tc, dwd, sizeof(float) * w_numel);
    pool_->parallel_for(0, p.K, [&](int64_t o) {
      const float* src = tc + o * p.C * kk;
      float* dst = dwd + o * p.C * kk;
      for (int t = 0; t < kk; ++t)
        for (int c = 0; c < p.C; ++c) dst[c * kk + t] = src[t * p.C + c];
    });
  }
  if (dbias_data) {  // per channel, in double, images then positions, in 8 fixed lanes
    pool_->parallel_for(0, p.K, [&](int64_t o) {
      cpu::LaneSums sum;
      for (int n = 0; n < p.N; ++n) cpu::add_sum(dyd + (int64_t(n) * p.K + o) * plan.pq, plan.pq, sum);
      dbias_data[o] = float(sum.total());
    });
  }
}

}  // namespace tb
