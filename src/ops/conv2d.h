// Convolution, 2-D, square kernel, NCHW activations and KCRS weights.
#pragma once
#include <cstdint>

namespace tb {

struct Conv2dParams {
  int N = 0;        // batch
  int C = 0;        // input channels
  int H = 0, W = 0; // input height, width
  int K = 0;        // output channels
  int kernel = 1;   // kernel height = width
  int stride = 1;
  int pad = 0;
  bool has_bias = false;
  // y = relu(conv(x) + bias): the ReLU that follows, fused into the output's writing (the
  // conv2d_relu op; only backends whose supports() says so accept it).
  bool relu = false;

  // 0 when the window does not fit (C++ division would round a negative numerator up).
  int P() const { return H + 2 * pad < kernel ? 0 : (H + 2 * pad - kernel) / stride + 1; }  // output height
  int Q() const { return W + 2 * pad < kernel ? 0 : (W + 2 * pad - kernel) / stride + 1; }  // output width
  int64_t x_numel() const { return int64_t(N) * C * H * W; }
  int64_t w_numel() const { return int64_t(K) * C * kernel * kernel; }
  int64_t y_numel() const { return int64_t(N) * K * P() * Q(); }
  // Multiply-adds of the forward pass, counted as 2 FLOPs each.
  double forward_flops() const { return 2.0 * double(y_numel()) * C * kernel * kernel; }
};

}  // namespace tb
