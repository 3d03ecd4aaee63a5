// Fully connected layer in plain loops. Every innermost loop runs over a contiguous row:
// the forward is a dot product over `in` (x row with w row), and both backward products are
// written as row updates (axpy) over `in`, so none of them strides through memory.
#include <algorithm>

#include "ops/ref/ref_kernels.h"

namespace tb::ref {

template <class T>
void linear_forward(const LinearParams& p, const T* x, const T* w, const T* bias, T* y) {
  for (int n = 0; n < p.N; ++n) {
    const T* xrow = x + int64_t(n) * p.in;
    for (int o = 0; o < p.out; ++o) {
      const T sum = detail::dot(xrow, w + int64_t(o) * p.in, p.in);
      y[int64_t(n) * p.out + o] = (bias ? bias[o] : T(0)) + sum;
    }
  }
}

template <class T>
void linear_backward(const LinearParams& p, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* dbias, bool accumulate_dx) {
  // dx[n,:] (+)= sum_o dy[n,o] * w[o,:]
  if (dx) {
    for (int n = 0; n < p.N; ++n) {
      T* dxrow = dx + int64_t(n) * p.in;
      if (!accumulate_dx) std::fill(dxrow, dxrow + p.in, T(0));
      for (int o = 0; o < p.out; ++o) {
        const T g = dy[int64_t(n) * p.out + o];
        const T* wrow = w + int64_t(o) * p.in;
        for (int i = 0; i < p.in; ++i) dxrow[i] += g * wrow[i];
      }
    }
  }
  // dw[o,:] = sum_n dy[n,o] * x[n,:];  dbias[o] = sum_n dy[n,o]
  std::fill(dw, dw + int64_t(p.out) * p.in, T(0));
  if (dbias) std::fill(dbias, dbias + p.out, T(0));
  for (int n = 0; n < p.N; ++n) {
    const T* xrow = x + int64_t(n) * p.in;
    for (int o = 0; o < p.out; ++o) {
      const T g = dy[int64_t(n) * p.out + o];
      if (dbias) dbias[o] += g;
      T* dwrow = dw + int64_t(o) * p.in;
      for (int i = 0; i < p.in; ++i) dwrow[i] += g * xrow[i];
    }
  }
}

#define TB_INSTANTIATE(T)                                                                         \
  template void linear_forward<T>(const LinearParams&, const T*, const T*, const T*, T*);         \
  template void linear_backward<T>(const LinearParams&, const T*, const T*, const T*, T*, T*, T*, \
                                   bool);
TB_INSTANTIATE(float)
TB_INSTANTIATE(double)
#undef TB_INSTANTIATE

}  // namespace tb::ref
