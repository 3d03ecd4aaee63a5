// Winograd F(4x4, 3x3) convolution for the `cpu` backend: 3x3, stride 1, pad 1 layers (most
// of a ResNet's convolutions), forward and, through the flipped weights, the data gradient.
//
// Each 4x4 tile of output is computed from a 6x6 tile of input in a transformed space where
// the convolution is an element-wise product: V = B^T d B (input), U = G g G^T (weights),
// y = A^T (sum over channels of U . V) A. The channel sums are 36 independent GEMMs, one per
// element of the 6x6 tile, [K x C] x [C x tiles], on the GEMM's own micro-kernel. A direct
// convolution does 9 * 16 = 144 multiply-adds per channel for a 4x4 tile; Winograd does 36,
// plus the transforms (which cost O(C + K) per tile, not O(C * K)).
//
// Precision: the transforms' constants (1/4, 1/6, 1/24, 8) round and cancel, so results
// differ from ref by ~2e-6 norm-wise on resnet18's layers where the direct path differs by
// ~3e-7 (CpuConvWinograd); the conv tests hold both to 1e-4. Bits do not depend on the thread
// count: every output element's arithmetic is fixed by the shape (tiles are cut into blocks by
// shape alone, and each GEMM element is one micro-kernel's sequential sum over the channels).
//
// Where it runs, by default: data gradients only. Those perturb nothing downstream but the
// gradient, and the PyTorch golden (tests/golden, resnet18 at batch 4) still matches to
// 1.35e-5 with them. Forward convolutions perturb the activations that every later ReLU
// and batch norm decides on: with Winograd forward that golden's gradients moved by up to
// 4.9e-3 (PyTorch's own fp32 run: 4.3e-6; the test's floor: 1e-3). TB_CPU_WINOGRAD=all runs
// the forward through it too (about 1.6-2.8x faster per 3x3 layer), 0 turns it off.
//
// Needs the AVX-512 micro-kernel (8 x 48 and kin); elsewhere the direct path runs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/conv2d.h"

namespace tb::cpu {

class ThreadPool;

// Whether winograd_conv3x3 takes this convolution (and this CPU, and the setting), which is a
// data gradient computed as a convolution (data_gradient) or a forward one.
bool winograd_usable(const Conv2dParams& p, bool data_gradient);

// Where Winograd runs in this process, for reports: "data gradients", "forward and data
// gradients", "off" or "off (no AVX-512 micro-kernel)".
const char* winograd_setting();

// Scratch the call needs on a pool of `threads`, in floats, for three buffers: transformed
// weights, and per block of tiles the transformed inputs and the GEMMs' outputs.
struct WinogradScratch {
  size_t weights = 0, inputs = 0, outputs = 0;
};
WinogradScratch winograd_scratch_floats(const Conv2dParams& p, int threads);

// y[N,K,H,W] (=|+=) conv3x3(x[N,C,H,W], w[K,C,3,3]) (+ bias[K]) (then ReLU). The buffers are
// at least winograd_scratch_floats(p) floats, 64-byte aligned.
void winograd_conv3x3(ThreadPool& pool, const Conv2dParams& p, const float* x, const float* w,
                      const float* bias, float* y, bool accumulate, bool relu, float* weights_buf,
                      float* inputs_buf, float* outputs_buf);

}  // namespace tb::cpu
