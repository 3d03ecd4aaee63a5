// Winograd convolution for the `cpu` backend: 3x3, stride 1, pad 1 layers (most of a
// ResNet's convolutions), forward and, through the flipped weights, the data gradient.
//
// Each m x m tile of output is computed from an (m+2) x (m+2) tile of input in a transformed
// space where the convolution is an element-wise product: V = B^T d B (input), U = G g G^T
// (weights), y = A^T (sum over channels of U . V) A. The channel sums are (m+2)^2 independent
// GEMMs, one per tap of the tile, [K x C] x [C x tiles], on the GEMM's own micro-kernel. A
// direct convolution does 9 m^2 multiply-adds per channel pair and tile; F(4x4, 3x3) does 36
// (4x fewer), F(2x2, 3x3) 16 (2.25x fewer), plus transforms that cost O(C + K) per tile.
//
// Precision, norm-wise against ref on resnet18's layers (CpuConvWinograd): direct ~3e-7,
// F(2x2) about the same (its constants are 1 and 1/2, exact in fp32), F(4x4) ~2e-6 (1/6,
// 1/24 and 8 round and cancel). The conv tests hold all to 1e-4. Bits do not depend on the
// thread count: every output element's arithmetic is fixed by the shape (tiles are cut into
// blocks by shape alone, and each GEMM element is one micro-kernel's sequential sum over the
// channels).
//
// Where it runs (TB_CPU_WINOGRAD):
//   f2 (default)  forward F(2x2, 3x3), data gradients F(4x4, 3x3)
//   backward      data gradients only, F(4x4, 3x3)
//   all           F(4x4, 3x3) in both
//   0             never
// (F(4x4) gives way to F(2x2) in layers with fewer than 128 of its tiles; weight gradients,
// declared below, follow every setting but 0.)
// Why not F(4x4) forward by default: a data gradient perturbs only gradients, but a forward
// convolution perturbs the activations on which every later ReLU and batch norm decides. The
// PyTorch golden (tests/golden, resnet18 at batch 4) matches to 1.1e-5 with the default (the
// direct path: 1.35e-5), but F(4x4) forward moved its gradients by up to 4.9e-3 (PyTorch's
// own fp32 run: 4.3e-6; the test's floor: 1e-3).
//
// Needs the AVX-512 micro-kernel (8 x 48 and kin); elsewhere the direct path runs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/conv2d.h"

namespace tb::cpu {

class ThreadPool;

// The output tile winograd_conv3x3 would use for this convolution, a data gradient computed
// as a convolution (data_gradient) or a forward one, on this CPU with this setting: 4
// (F(4x4, 3x3)), 2 (F(2x2, 3x3)), or 0 where it does not take it.
int winograd_tile(const Conv2dParams& p, bool data_gradient);

// Where Winograd runs in this process, for reports (e.g. "F(2x2) forward, F(4x4) data
// gradients", "off", "off (no AVX-512 micro-kernel)").
const char* winograd_setting();

// Scratch the call needs on a pool of `threads`, in floats, for three buffers: transformed
// weights, and per block of tiles the transformed inputs and the GEMMs' outputs.
struct WinogradScratch {
  size_t weights = 0, inputs = 0, outputs = 0;
  size_t x_copy = 0, dy_copy = 0;  // the weight gradient's channels-last copies
};
WinogradScratch winograd_scratch_floats(const Conv2dParams& p, int tile, int threads);

// y[N,K,H,W] (=|+=) conv3x3(x[N,C,H,W], w[K,C,3,3]) (+ bias[K]) (then ReLU). The buffers are
// at least winograd_scratch_floats(p, tile, threads) floats, 64-byte aligned; tile is
// winograd_tile()'s (not 0).
void winograd_conv3x3(ThreadPool& pool, const Conv2dParams& p, int tile, const float* x,
                      const float* w, const float* bias, float* y, bool accumulate, bool relu,
                      float* weights_buf, float* inputs_buf, float* outputs_buf);

// The weight gradient dw[K,C,3,3] of such a convolution from x[N,C,H,W] and dy[N,K,H,W],
// through F(2x2, 3x3) transposed (conv_winograd.cpp), whose transforms are exact in fp32: its
// rounding is a direct sum's. Needs C and K multiples of 16. Runs under every TB_CPU_WINOGRAD
// setting but 0.
bool winograd_weight_gradient_usable(const Conv2dParams& p);
// Its buffers: weights = the transformed gradient's sums, inputs = transformed x, outputs =
// transformed dy, and channels-last copies of x (zero-padded) and dy.
// threads: the pool's size (with enough groups of tiles each thread gets buffers of its own).
WinogradScratch winograd_weight_gradient_scratch_floats(const Conv2dParams& p, int threads);
void winograd_weight_gradient(ThreadPool& pool, const Conv2dParams& p, const float* x,
                              const float* dy, float* dw, float* sums_buf, float* x_buf,
                              float* dy_buf, float* x_copy, float* dy_copy);

}  // namespace tb::cpu
