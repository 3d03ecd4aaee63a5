// Pooling over square windows of NCHW activations. Average pooling counts padded cells in
// the divisor (PyTorch's default, count_include_pad=True). Max pooling passes the gradient
// to the first maximum of each window, scanning rows then columns.
#pragma once
#include <cstdint>

namespace tb {

struct Pool2dParams {
  int N = 0, C = 0, H = 0, W = 0;
  int kernel = 2;
  int stride = 2;
  int pad = 0;

  // 0 when the window does not fit (C++ division would round a negative numerator up).
  int P() const { return H + 2 * pad < kernel ? 0 : (H + 2 * pad - kernel) / stride + 1; }
  int Q() const { return W + 2 * pad < kernel ? 0 : (W + 2 * pad - kernel) / stride + 1; }
  int64_t x_numel() const { return int64_t(N) * C * H * W; }
  int64_t y_numel() const { return int64_t(N) * C * P() * Q(); }
};

// Global average pool: x[N,C,H,W] -> y[N,C].
struct GlobalPoolParams {
  int N = 0, C = 0, H = 0, W = 0;
};

}  // namespace tb
