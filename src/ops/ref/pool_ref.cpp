// Pooling in plain loops: max, average (padded cells counted in the divisor) and global
// average. Windows are clipped to the image; padded cells never win a max.
#include <algorithm>

#include "ops/ref/ref_kernels.h"

namespace tb::ref {
namespace {

// The part of an output's window that lies inside the image: rows [h0,h1), cols [w0,w1).
struct Window {
  int h0, h1, w0, w1;
};

Window window_at(const Pool2dParams& p, int op, int oq) {
  const int h = op * p.stride - p.pad, w = oq * p.stride - p.pad;
  return {std::max(h, 0), std::min(h + p.kernel, p.H), std::max(w, 0), std::min(w + p.kernel, p.W)};
}

// Index within the plane of the window's first maximum, scanning rows then columns with a
// strict >, so ties go to the earliest cell (the rule every backend must follow).
template <class T>
int64_t argmax_in(const Pool2dParams& p, const T* plane, const Window& win) {
  int64_t best = int64_t(win.h0) * p.W + win.w0;
  for (int h = win.h0; h < win.h1; ++h)
    for (int w = win.w0; w < win.w1; ++w)
      if (plane[int64_t(h) * p.W + w] > plane[best]) best = int64_t(h) * p.W + w;
  return best;
}

}  // namespace

template <class T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y) {
  const int P = p.P(), Q = p.Q();
  const int64_t x_plane = int64_t(p.H) * p.W;
  for (int64_t plane = 0; plane < int64_t(p.N) * p.C; ++plane) {
    const T* xp = x + plane * x_plane;
    T* yp = y + plane * P * Q;
    for (int op = 0; op < P; ++op)
      for (int oq = 0; oq < Q; ++oq) yp[op * Q + oq] = xp[argmax_in(p, xp, window_at(p, op, oq))];
  }
}

template <class T>
void max_pool2d_backward(const Pool2dParams& p, const T* x, const T* dy, T* dx,
                         bool accumulate_dx) {
  if (!dx) return;
  const int P = p.P(), Q = p.Q();
  const int64_t x_plane = int64_t(p.H) * p.W;
  if (!accumulate_dx) std::fill(dx, dx + p.x_numel(), T(0));
  for (int64_t plane = 0; plane < int64_t(p.N) * p.C; ++plane) {
    const T* xp = x + plane * x_plane;
    const T* dyp = dy + plane * P * Q;
    T* dxp = dx + plane * x_plane;
    // += because overlapping windows (kernel > stride) can pick the same cell.
    for (int op = 0; op < P; ++op)
      for (int oq = 0; oq < Q; ++oq)
        dxp[argmax_in(p, xp, window_at(p, op, oq))] += dyp[op * Q + oq];
  }
}

template <class T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y) {
  const int P = p.P(), Q = p.Q();
  const int64_t x_plane = int64_t(p.H) * p.W;
  const T scale = T(1) / T(p.kernel * p.kernel);  // count_include_pad: always the full window
  for (int64_t plane = 0; plane < int64_t(p.N) * p.C; ++plane) {
    const T* xp = x + plane * x_plane;
    T* yp = y + plane * P * Q;
    for (int op = 0; op < P; ++op) {
      for (int oq = 0; oq < Q; ++oq) {
        const Window win = window_at(p, op, oq);
        T sum = 0;
        for (int h = win.h0; h < win.h1; ++h)
          for (int w = win.w0; w < win.w1; ++w) sum += xp[int64_t(h) * p.W + w];
        yp[op * Q + oq] = sum * scale;
      }
    }
  }
}

template <class T>
void avg_pool2d_backward(const Pool2dParams& p, const T* dy, T* dx, bool accumulate_dx) {
  if (!dx) return;
  const int P = p.P(), Q = p.Q();
  const int64_t x_plane = int64_t(p.H) * p.W;
  const T scale = T(1) / T(p.kernel * p.kernel);
  if (!accumulate_dx) std::fill(dx, dx + p.x_numel(), T(0));
  for (int64_t plane = 0; plane < int64_t(p.N) * p.C; ++plane) {
    const T* dyp = dy + plane * P * Q;
    T* dxp = dx + plane * x_plane;
    for (int op = 0; op < P; ++op) {
      for (int oq = 0; oq < Q; ++oq) {
        const Window win = window_at(p, op, oq);
        const T g = dyp[op * Q + oq] * scale;
        for (int h = win.h0; h < win.h1; ++h)
          for (int w = win.w0; w < win.w1; ++w) dxp[int64_t(h) * p.W + w] += g;
      }
    }
  }
}

template <class T>
void global_avg_pool_forward(const GlobalPoolParams& p, const T* x, T* y) {
  const int64_t plane_size = int64_t(p.H) * p.W;
  for (int64_t plane = 0; plane < int64_t(p.N) * p.C; ++plane) {
    const T* xp = x + plane * plane_size;
    T sum = 0;
    for (int64_t i = 0; i < plane_size; ++i) sum += xp[i];
    y[plane] = sum / T(plane_size);
  }
}

template <class T>
void global_avg_pool_backward(const GlobalPoolParams& p, const T* dy, T* dx, bool accumulate_dx) {
  if (!dx) return;
  const int64_t plane_size = int64_t(p.H) * p.W;
  for (int64_t plane = 0; plane < int64_t(p.N) * p.C; ++plane) {
    const T g = dy[plane] / T(plane_size);
    T* dxp = dx + plane * plane_size;
    for (int64_t i = 0; i < plane_size; ++i) dxp[i] = accumulate_dx ? dxp[i] + g : g;
  }
}

#define TB_INSTANTIATE(T)                                                                  \
  template void max_pool2d_forward<T>(const Pool2dParams&, const T*, T*);                  \
  template void max_pool2d_backward<T>(const Pool2dParams&, const T*, const T*, T*, bool); \
  template void avg_pool2d_forward<T>(const Pool2dParams&, const T*, T*);                  \
  template void avg_pool2d_backward<T>(const Pool2dParams&, const T*, T*, bool);           \
  template void global_avg_pool_forward<T>(const GlobalPoolParams&, const T*, T*);         \
  template void global_avg_pool_backward<T>(const GlobalPoolParams&, const T*, T*, bool);
TB_INSTANTIATE(float)
TB_INSTANTIATE(double)
#undef TB_INSTANTIATE

}  // namespace tb::ref
