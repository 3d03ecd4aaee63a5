// Pooling, parallel over the N*C planes (windows never cross planes, so every output and every
// gradient cell is computed by one thread in a fixed order). Max pooling keeps ref's rule:
// the first maximum of a window, scanning rows then columns with a strict >, recomputed from
// x in backward. Average pooling counts padded cells in the divisor.
#include <algorithm>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/cpu_op_checks.h"

namespace tb {
namespace {

using cpu_ops::expect;
using cpu_ops::fptr;

void check_pool(OpKind op, const Pool2dParams& p) {
  TB_CHECK(p.kernel > 0 && p.stride > 0 && p.pad >= 0 && 2 * p.pad <= p.kernel,
           "cpu {}: bad params kernel={} stride={} pad={} (pad must be at most kernel/2)",
           op_name(op), p.kernel, p.stride, p.pad);
  TB_CHECK(p.P() > 0 && p.Q() > 0, "cpu {}: a {}x{} window does not fit a {}x{} input",
           op_name(op), p.kernel, p.kernel, p.H, p.W);
}

struct Window {
  int h0, h1, w0, w1;
};

Window window_at(const Pool2dParams& p, int op, int oq) {
  const int h = op * p.stride - p.pad, w = oq * p.stride - p.pad;
  return {std::max(h, 0), std::min(h + p.kernel, p.H), std::max(w, 0), std::min(w + p.kernel, p.W)};
}

int64_t argmax_in(const Pool2dParams& p, const float* plane, const Window& win) {
  int64_t best = int64_t(win.h0) * p.W + win.w0;
  float best_value = plane[best];
  for (int h = win.h0; h < win.h1; ++h)
    for (int w = win.w0; w < win.w1; ++w) {
      const int64_t i = int64_t(h) * p.W + w;
      if (plane[i] > best_value) {
        best = i;
        best_value = plane[i];
      }
    }
  return best;
}

// A 2x2 window (a, b on the first row, c, d on the second): its maximum by argmax_in's rule
// (the first one, rows then columns, strict >) and where it is, 0-3.
inline int first_max_of_four(float a, float b, float c, float d, float& m) {
  m = a;
  int at = 0;
  if (b > m) m = b, at = 1;
  if (c > m) m = c, at = 2;
  if (d > m) m = d, at = 3;
  return at;
}

// One plane of the 2x2/2 case's gradient in one pass: every cell of a window is written (dy at
// the window's first maximum, 0 elsewhere), so dx needs no zeroing pass first; the row and
// column no window covers (odd H or W) are zeroed. Same rule as argmax_in.
void max_pool_pairs_backward(const Pool2dParams& p, const float* xp, const float* dyp, float* dxp,
                             bool accumulate) {
  const int P = p.P(), Q = p.Q();
  for (int op = 0; op < P; ++op) {
    const float* r0 = xp + int64_t(2 * op) * p.W;
    const float* r1 = r0 + p.W;
    float* d0 = dxp + int64_t(2 * op) * p.W;
    float* d1 = d0 + p.W;
    const float* g = dyp + int64_t(op) * Q;
    for (int q = 0; q < Q; ++q) {
      float m;
      const int at = first_max_of_four(r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1], m);
      const float v = g[q];
      const float ga = at == 0 ? v : 0.0f, gb = at == 1 ? v : 0.0f;
      const float gc = at == 2 ? v : 0.0f, gd = at == 3 ? v : 0.0f;
      if (accumulate) {
        d0[2 * q] += ga, d0[2 * q + 1] += gb, d1[2 * q] += gc, d1[2 * q + 1] += gd;
      } else {
        d0[2 * q] = ga, d0[2 * q + 1] = gb, d1[2 * q] = gc, d1[2 * q + 1] = gd;
      }
    }
    if (!accumulate && p.W > 2 * Q) d0[p.W - 1] = d1[p.W - 1] = 0.0f;
  }
  if (!accumulate && p.H > 2 * P)
    std::fill(dxp + int64_t(2 * P) * p.W, dxp + int64_t(p.H) * p.W, 0.0f);
}

// fn(plane) for every plane of N*C, in static chunks over the pool.
template <class F>
void for_planes(cpu::ThreadPool& pool, int64_t planes, int64_t plane_work, F&& fn) {
  auto body = [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) fn(i);
  };
  if (planes * plane_work < (1 << 14) || pool.size() == 1) {
    body(0, planes);
    return;
  }
  pool.parallel_for_range(0, planes, body);
}

}  // namespace

void CpuBackend::max_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) {
  constexpr OpKind op = OpKind::max_pool2d;
  check_pool(op, p);
  expect(op, "x", x, p.x_numel());
  expect(op, "y", y, p.y_numel());
  const int P = p.P(), Q = p.Q();
  const int64_t x_plane = int64_t(p.H) * p.W;
  const float* xd = fptr(x);
  float* yd = fptr(y);
  const bool pairs = p.kernel == 2 && p.stride == 2 && p.pad == 0;
  for_planes(*pool_, int64_t(p.N) * p.C, x_plane, [&](int64_t plane) {
    const float* xp = xd + plane * x_plane;
    float* yp = yd + plane * P * Q;
    for (int op_ = 0; op_ < P; ++op_) {
      if (pairs) {  // the common 2x2/2 case: the same first-maximum rule, without the window
        const float* r0 = xp + int64_t(2 * op_) * p.W;
        const float* r1 = r0 + p.W;
        for (int q = 0; q < Q; ++q)
          first_max_of_four(r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1],
                            yp[int64_t(op_) * Q + q]);
        continue;
      }
      for (int oq = 0; oq < Q; ++oq)
        yp[int64_t(op_) * Q + oq] = xp[argmax_in(p, xp, window_at(p, op_, oq))];
    }
  });
}

void CpuBackend::max_pool2d_backward(const Pool2dParams& p, const Tensor& x, const Tensor&,
                                     const Tensor& dy, const Tensor& dx, bool accumulate_dx) {
  constexpr OpKind op = OpKind::max_pool2d;
  check_pool(op, p);
  expect(op, "x", x, p.x_numel());
  expect(op, "dy", dy, p.y_numel());
  float* dxd = cpu_ops::optional_ptr(op, "dx", dx, p.x_numel());
  if (!dxd) return;
  const int P = p.P(), Q = p.Q();
  const int64_t x_plane = int64_t(p.H) * p.W;
  const float* xd = fptr(x);
  const float* dyd = fptr(dy);
  const bool pairs = p.kernel == 2 && p.stride == 2 && p.pad == 0;
  for_planes(*pool_, int64_t(p.N) * p.C, x_plane, [&](int64_t plane) {
    const float* xp = xd + plane * x_plane;
    const float* dyp = dyd + plane * P * Q;
    float* dxp = dxd + plane * x_plane;
    if (pairs) {
      max_pool_pairs_backward(p, xp, dyp, dxp, accumulate_dx);
      return;
    }
    if (!accumulate_dx) std::fill(dxp, dxp + x_plane, 0.0f);
    // += because overlapping windows (kernel > stride) can pick the same cell.
    for (int op_ = 0; op_ < P; ++op_)
      for (int oq = 0; oq < Q; ++oq)
        dxp[argmax_in(p, xp, window_at(p, op_, oq))] += dyp[int64_t(op_) * Q + oq];
  });
}

void CpuBackend::avg_pool2d_forward(const Pool2dParams& p, const Tensor& x, const Tensor& y) {
  constexpr OpKind op = OpKind::avg_pool2d;
  check_pool(op, p);
  expect(op, "x", x, p.x_numel());
  expect(op, "y", y, p.y_numel());
  const int P = p.P(), Q = p.Q();
  const int64_t x_plane = int64_t(p.H) * p.W;
  const float scale = 1.0f / float(p.kernel * p.kernel);
  const float* xd = fptr(x);
  float* yd = fptr(y);
  for_planes(*pool_, int64_t(p.N) * p.C, x_plane, [&](int64_t plane) {
    const float* xp = xd + plane * x_plane;
    float* yp = yd + plane * P * Q;
    for (int op_ = 0; op_ < P; ++op_)
      for (int oq = 0; oq < Q; ++oq) {
        const Window win = window_at(p, op_, oq);
        float sum = 0;
        for (int h = win.h0; h < win.h1; ++h)
          for (int w = win.w0; w < win.w1; ++w) sum += xp[int64_t(h) * p.W + w];
        yp[int64_t(op_) * Q + oq] = sum * scale;
      }
  });
}

void CpuBackend::avg_pool2d_backward(const Pool2dParams& p, const Tensor& dy, const Tensor& dx,
                                     bool accumulate_dx) {
  constexpr OpKind op = OpKind::avg_pool2d;
  check_pool(op, p);
  expect(op, "dy", dy, p.y_numel());
  float* dxd = cpu_ops::optional_ptr(op, "dx", dx, p.x_numel());
  if (!dxd) return;
  const int P = p.P(), Q = p.Q();
  const int64_t x_plane = int64_t(p.H) * p.W;
  const float scale = 1.0f / float(p.kernel * p.kernel);
  const float* dyd = fptr(dy);
  for_planes(*pool_, int64_t(p.N) * p.C, x_plane, [&](int64_t plane) {
    const float* dyp = dyd + plane * P * Q;
    float* dxp = dxd + plane * x_plane;
    if (!accumulate_dx) std::fill(dxp, dxp + x_plane, 0.0f);
    for (int op_ = 0; op_ < P; ++op_)
      for (int oq = 0; oq < Q; ++oq) {
        const Window win = window_at(p, op_, oq);
        const float g = dyp[int64_t(op_) * Q + oq] * scale;
        for (int h = win.h0; h < win.h1; ++h)
          for (int w = win.w0; w < win.w1; ++w) dxp[int64_t(h) * p.W + w] += g;
      }
  });
}

void CpuBackend::global_avg_pool_forward(const GlobalPoolParams& p, const Tensor& x,
                                         const Tensor& y) {
  constexpr OpKind op = OpKind::global_avg_pool;
  const int64_t plane_size = int64_t(p.H) * p.W;
  expect(op, "x", x, int64_t(p.N) * p.C * plane_size);
  expect(op, "y", y, int64_t(p.N) * p.C);
  const float* xd = fptr(x);
  float* yd = fptr(y);
  for_planes(*pool_, int64_t(p.N) * p.C, plane_size, [&](int64_t plane) {
    const float* xp = xd + plane * plane_size;
    double sum = 0;
    for (int64_t i = 0; i < plane_size; ++i) sum += double(xp[i]);
    yd[plane] = float(sum / double(plane_size));
  });
}

void CpuBackend::global_avg_pool_backward(const GlobalPoolParams& p, const Tensor& dy,
                                          const Tensor& dx, bool accumulate_dx) {
  constexpr OpKind op = OpKind::global_avg_pool;
  const int64_t plane_size = int64_t(p.H) * p.W;
  expect(op, "dy", dy, int64_t(p.N) * p.C);
  float* dxd = cpu_ops::optional_ptr(op, "dx", dx, int64_t(p.N) * p.C * plane_size);
  if (!dxd) return;
  const float* dyd = fptr(dy);
  for_planes(*pool_, int64_t(p.N) * p.C, plane_size, [&](int64_t plane) {
    const float g = dyd[plane] / float(plane_size);
    float* dxp = dxd + plane * plane_size;
    if (accumulate_dx) {
      for (int64_t i = 0; i < plane_size; ++i) dxp[i] += g;
    } else {
      std::fill(dxp, dxp + plane_size, g);
    }
  });
}

}  // namespace tb
