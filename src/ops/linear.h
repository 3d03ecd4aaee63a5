// Fully connected layer: y[N,out] = x[N,in] * w[out,in]^T + b[out].
#pragma once
#include <cstdint>

namespace tb {

struct LinearParams {
  int N = 0;
  int in = 0;
  int out = 0;
  bool has_bias = true;
  bool relu = false;  // y = relu(x w^T + b): the linear_relu op (see Conv2dParams::relu)

  double forward_flops() const { return 2.0 * double(N) * in * out; }
};

}  // namespace tb
