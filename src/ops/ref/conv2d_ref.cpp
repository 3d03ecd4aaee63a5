// Direct 2-D convolution in plain loops.
//
// The loops are ordered so that the innermost one runs over an output row (q), contiguous in
// y and dy, with its bounds computed beforehand: no branch inside, so GCC vectorises it at -O3
// (with stride 1 the matching x row is contiguous too). One output plane and one input plane
// stay in L1 while the kernel taps are swept, which is what lets this oracle train simple_cnn
// on all of MNIST in about a minute.
#include <algorithm>
#include <vector>

#include "ops/ref/ref_kernels.h"

namespace tb::ref {
namespace {

struct Range {
  int begin = 0, end = 0;
};

// The outputs o in [0, out) whose input position o*stride - pad + tap lies inside [0, in).
Range valid_outputs(int out, int in, int stride, int pad, int tap) {
  const int lo = pad - tap;           // need o*stride >= lo
  const int hi = in - 1 + pad - tap;  // need o*stride <= hi
  Range r;
  r.begin = lo > 0 ? (lo + stride - 1) / stride : 0;
  r.end = hi < 0 ? 0 : std::min(out, hi / stride + 1);
  r.end = std::max(r.begin, r.end);
  return r;
}

// The valid output rows and columns of every kernel tap, computed once per call: on the
// 4x4 planes of a ResNet's last stage the loops are short enough for these to matter.
struct TapRanges {
  std::vector<Range> rows, cols;  // [kernel]
  explicit TapRanges(const Conv2dParams& p) {
    for (int t = 0; t < p.kernel; ++t) {
      rows.push_back(valid_outputs(p.P(), p.H, p.stride, p.pad, t));
      cols.push_back(valid_outputs(p.Q(), p.W, p.stride, p.pad, t));
    }
  }
};

}  // namespace

template <class T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  const int P = p.P(), Q = p.Q(), k = p.kernel, S = p.stride;
  const int64_t x_plane = int64_t(p.H) * p.W, y_plane = int64_t(P) * Q;
  const TapRanges taps(p);
  for (int n = 0; n < p.N; ++n) {
    for (int o = 0; o < p.K; ++o) {
      T* yp = y + (int64_t(n) * p.K + o) * y_plane;
      std::fill(yp, yp + y_plane, bias ? bias[o] : T(0));
      for (int c = 0; c < p.C; ++c) {
        const T* xp = x + (int64_t(n) * p.C + c) * x_plane;
        const T* wp = w + (int64_t(o) * p.C + c) * k * k;
        for (int r = 0; r < k; ++r) {
          const Range rows = taps.rows[r];
          for (int s = 0; s < k; ++s) {
            const Range cols = taps.cols[s];
            const T wv = wp[r * k + s];
            const int off = s - p.pad;  // x column of output q is q*S + off
            for (int op = rows.begin; op < rows.end; ++op) {
              const T* xrow = xp + int64_t(op * S - p.pad + r) * p.W;
              T* yrow = yp + int64_t(op) * Q;
              for (int q = cols.begin; q < cols.end; ++q) yrow[q] += wv * xrow[q * S + off];
            }
          }
        }
      }
    }
  }
}

template <class T>
void conv2d_backward(const Conv2dParams& p, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* dbias, bool accumulate_dx) {
  const int P = p.P(), Q = p.Q(), k = p.kernel, S = p.stride;
  const int64_t x_plane = int64_t(p.H) * p.W, y_plane = int64_t(P) * Q;
  const TapRanges taps(p);

  // dx: the forward's loops with x and y swapped, scattering each dy row into a dx row.
  if (dx) {
    for (int n = 0; n < p.N; ++n) {
      for (int c = 0; c < p.C; ++c) {
        T* dxp = dx + (int64_t(n) * p.C + c) * x_plane;
        if (!accumulate_dx) std::fill(dxp, dxp + x_plane, T(0));
        for (int o = 0; o < p.K; ++o) {
          const T* dyp = dy + (int64_t(n) * p.K + o) * y_plane;
          const T* wp = w + (int64_t(o) * p.C + c) * k * k;
          for (int r = 0; r < k; ++r) {
            const Range rows = taps.rows[r];
            for (int s = 0; s < k; ++s) {
              const Range cols = taps.cols[s];
              const T wv = wp[r * k + s];
              const int off = s - p.pad;
              for (int op = rows.begin; op < rows.end; ++op) {
                T* dxrow = dxp + int64_t(op * S - p.pad + r) * p.W;
                const T* dyrow = dyp + int64_t(op) * Q;
                for (int q = cols.begin; q < cols.end; ++q) dxrow[q * S + off] += wv * dyrow[q];
              }
            }
          }
        }
      }
    }
  }

  // dw[o,c,r,s] = sum over n and the valid outputs of dy * (x shifted by the tap);
  // dbias[o] = sum of dy over n and the plane.
  std::fill(dw, dw + p.w_numel(), T(0));
  if (dbias) std::fill(dbias, dbias + p.K, T(0));
  for (int n = 0; n < p.N; ++n) {
    for (int o = 0; o < p.K; ++o) {
      const T* dyp = dy + (int64_t(n) * p.K + o) * y_plane;
      if (dbias) {
        T sum = 0;
        for (int64_t i = 0; i < y_plane; ++i) sum += dyp[i];
        dbias[o] += sum;
      }
      for (int c = 0; c < p.C; ++c) {
        const T* xp = x + (int64_t(n) * p.C + c) * x_plane;
        T* dwp = dw + (int64_t(o) * p.C + c) * k * k;
        for (int r = 0; r < k; ++r) {
          const Range rows = taps.rows[r];
          for (int s = 0; s < k; ++s) {
            const Range cols = taps.cols[s];
            if (cols.begin == cols.end) continue;  // this tap only ever sees padding
            const int off = s - p.pad;
            T sum = 0;
            for (int op = rows.begin; op < rows.end; ++op) {
              const T* xrow = xp + int64_t(op * S - p.pad + r) * p.W;
              const T* dyrow = dyp + int64_t(op) * Q;
              sum += detail::dot(dyrow + cols.begin, xrow + cols.begin * S + off,
                                 cols.end - cols.begin, S);
            }
            dwp[r * k + s] += sum;
          }
        }
      }
    }
  }
}

#define TB_INSTANTIATE(T)                                                                         \
  template void conv2d_forward<T>(const Conv2dParams&, const T*, const T*, const T*, T*);         \
  template void conv2d_backward<T>(const Conv2dParams&, const T*, const T*, const T*, T*, T*, T*, \
                                   bool);
TB_INSTANTIATE(float)
TB_INSTANTIATE(double)
#undef TB_INSTANTIATE

}  // namespace tb::ref
