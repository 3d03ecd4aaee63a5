// Batch normalisation over N and the spatial positions of each channel.
// 2-D: x[N,C,H,W] with spatial = H*W; 1-D: x[N,C] with spatial = 1.
// Training mode normalises with the batch's biased variance and updates the running
// statistics with the unbiased one (PyTorch's convention); evaluation mode uses the running
// statistics.
#pragma once
#include <cstdint>

namespace tb {

struct BatchNormParams {
  int N = 0;
  int C = 0;
  int spatial = 1;
  double eps = 1e-5;
  double momentum = 0.1;  // running = (1 - momentum) * running + momentum * batch

  int64_t numel() const { return int64_t(N) * C * spatial; }
};

}  // namespace tb
