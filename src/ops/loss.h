// Softmax cross-entropy over logits[N,classes] with int32 labels[N], optionally with label
// smoothing eps: the target is (1 - eps) * onehot + eps / classes. The loss is the mean
// over the batch, so the gradient is (softmax - target) / N.
#pragma once
#include <cstdint>

namespace tb {

struct CrossEntropyParams {
  int N = 0;
  int classes = 10;
  float label_smoothing = 0.0f;
};

}  // namespace tb
