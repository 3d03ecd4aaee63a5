// Zero-padding the channel axis of a convolution, so that a layer with few input channels
// (an image's 1 or 3) runs on the tensor-core engine, which needs C % 8 == 0, instead of the
// FMA engine. The padded channels are zeros in both the activations and the weights, so the
// convolution's result is unchanged; the weight gradient's padded channels are dropped.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace tb::gpu {

// xp[pixel][0..Cp) <- x[pixel][0..C), zeros after (channels-last, dtype t). Weights in
// K,R,S,C order pad the same way, as K*R*S "pixels".
void pad_channels(DType t, const void* x, void* xp, int64_t pixels, int C, int Cp,
                  cudaStream_t s);
// dw (fp32 K,C,R,S) <- dw_padded (fp32 K,Cp,R,S): the first C channels.
void unpad_weight_gradient(const float* dw_padded, float* dw, int K, int C, int Cp, int R, int S,
                           cudaStream_t s);

}  // namespace tb::gpu
