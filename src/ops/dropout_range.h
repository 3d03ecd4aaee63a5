// Dropout's forward over a range of elements, shared by the CPU backends (cpu, onednn): the
// same masks as ref, bit for bit, one hash round per element.
#pragma once
#include <cstdint>

namespace tb {

// 1 / (1 - p), and 0 for p == 1 where every element is dropped (avoids 0 * inf = NaN).
inline float dropout_keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

// Elements [begin, end): keeps element i where counter_uniform(seed, stream, i) >= p, with
// key = counter_key(seed, stream); y[i] = x[i] * scale or 0, mask[i] = 1 or 0.
void dropout_range(uint64_t key, float p, float scale, int64_t begin, int64_t end,
                   const float* x, float* y, uint8_t* mask);

// Elements [begin, end) of dropout's backward: dx[i] (+)= mask[i] ? dy[i] * scale : 0.
void dropout_backward_range(float scale, int64_t begin, int64_t end, const float* dy,
                            const uint8_t* mask, float* dx, bool accumulate);

}  // namespace tb
