// Elementwise ops: relu, add and copy (add's backward, flatten and identity paths).
#include "ops/ref/ref_kernels.h"

namespace tb::ref {

template <class T>
void relu_forward(int64_t n, const T* x, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

// Reads the forward output y rather than x, so x's buffer may be reused once relu has run
// (y > 0 exactly where x > 0).
template <class T>
void relu_backward(int64_t n, const T* y, const T* dy, T* dx, bool accumulate_dx) {
  if (!dx) return;
  for (int64_t i = 0; i < n; ++i) {
    const T g = y[i] > T(0) ? dy[i] : T(0);
    dx[i] = accumulate_dx ? dx[i] + g : g;
  }
}

template <class T>
void add_forward(int64_t n, const T* a, const T* b, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <class T>
void copy(int64_t n, const T* src, T* dst, bool accumulate) {
  if (accumulate) {
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

#define TB_INSTANTIATE(T)                                                \
  template void relu_forward<T>(int64_t, const T*, T*);                  \
  template void relu_backward<T>(int64_t, const T*, const T*, T*, bool); \
  template void add_forward<T>(int64_t, const T*, const T*, T*);         \
  template void copy<T>(int64_t, const T*, T*, bool);
TB_INSTANTIATE(float)
TB_INSTANTIATE(double)
#undef TB_INSTANTIATE

}  // namespace tb::ref
