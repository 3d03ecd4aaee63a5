// Inverted dropout. The keep decision for element i is a pure function of (seed, stream, i),
// so every backend, in any order and on any device, draws the same mask.
#include "core/rng.h"
#include "ops/ref/ref_kernels.h"

namespace tb::ref {
namespace {

// 1 / (1 - p), and 0 for p == 1 where every element is dropped (avoids 0 * inf = NaN).
template <class T>
T keep_scale(float p) {
  return p < 1.0f ? T(1) / (T(1) - T(p)) : T(0);
}

}  // namespace

template <class T>
void dropout_forward(const DropoutParams& p, const T* x, T* y, uint8_t* mask) {
  const T scale = keep_scale<T>(p.p);
  for (int64_t i = 0; i < p.numel; ++i) {
    const bool keep = counter_uniform(p.seed, p.stream, uint64_t(i)) >= p.p;
    mask[i] = keep ? 1 : 0;
    y[i] = keep ? x[i] * scale : T(0);
  }
}

template <class T>
void dropout_backward(const DropoutParams& p, const T* dy, const uint8_t* mask, T* dx,
                      bool accumulate_dx) {
  if (!dx) return;
  const T scale = keep_scale<T>(p.p);
  for (int64_t i = 0; i < p.numel; ++i) {
    const T g = mask[i] ? dy[i] * scale : T(0);
    dx[i] = accumulate_dx ? dx[i] + g : g;
  }
}

#define TB_INSTANTIATE(T)                                                         \
  template void dropout_forward<T>(const DropoutParams&, const T*, T*, uint8_t*); \
  template void dropout_backward<T>(const DropoutParams&, const T*, const uint8_t*, T*, bool);
TB_INSTANTIATE(float)
TB_INSTANTIATE(double)
#undef TB_INSTANTIATE

}  // namespace tb::ref
